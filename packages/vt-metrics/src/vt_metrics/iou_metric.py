"""mmseg's IoUMetric on a compiled, streaming confusion matrix."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

import vt_ops
from vt_metrics._dist import is_main_process
from vt_metrics._utils import (
    basename_png,
    format_table,
    lookup,
    print_log,
    sample_field,
    save_png,
    to_numpy,
)
from vt_metrics.base import BaseMetric

__all__ = ["IoUMetric"]

_ALLOWED_METRICS = ("mIoU", "mDice", "mFscore")


def _check_metrics(metrics: str | Sequence[str]) -> list[str]:
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in _ALLOWED_METRICS]
    if unknown:
        raise ValueError(
            f"iou_metrics: {unknown} not supported, expected some of {list(_ALLOWED_METRICS)}"
        )
    return metrics


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: the mean is NaN
        return float(np.nanmean(values))


def _areas_from_matrix(matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """(intersect, union, pred, label) areas per class of a label-major confusion matrix."""
    intersect = np.diagonal(matrix).copy()
    area_label = matrix.sum(axis=1)
    area_pred = matrix.sum(axis=0)
    return intersect, area_pred + area_label - intersect, area_pred, area_label


class IoUMetric(BaseMetric):
    """IoU evaluation metric (mmseg's ``IoUMetric``).

    The metrics are data-set level, as in mmseg: every image adds its pixels
    to one C x C confusion matrix (:func:`vt_ops.confusion_matrix`, one
    compiled pass per image, memory O(C²) whatever the number of images) and
    the scores are computed once from the totals. They are not averages of
    per-image scores: a large image weighs more than a small one. ``mIoU``
    and the other ``m*`` values are means over classes, skipping classes whose
    score is NaN.

    A class no image has in its ground truth has accuracy (recall) NaN, and
    IoU/Dice NaN as well unless it was predicted somewhere (then 0); a class
    never predicted has precision NaN. ``nan_to_num`` replaces those NaNs.

    Each data sample is a dict (mmseg's ``SegDataSample`` as a dict) or an
    object with ``pred_sem_seg['data']`` and ``gt_sem_seg['data']`` holding
    (1, H, W) or (H, W) integer maps (numpy, torch on any device, or cupy);
    a field may also be the array itself. ``dataset_meta['classes']`` gives the
    number of classes and their names. Label values other than
    ``ignore_index`` outside [0, C), and predictions outside [0, C), raise
    ValueError (mmseg drops them silently).

    With torch.distributed, each rank keeps one running matrix and the
    matrices are summed; samples that a distributed sampler repeats to even
    out the ranks are counted again (the price of constant memory; mmseg
    keeps per-image histograms and drops them).

    Args:
        ignore_index (int): label value to ignore. Defaults to 255.
        iou_metrics (list[str] | str): some of 'mIoU', 'mDice' and 'mFscore'.
        nan_to_num (int, optional): replaces NaN results when given.
        beta (int): weight of recall in the F-score. Defaults to 1.
        collect_device (str): 'cpu' or 'gpu', see :class:`BaseMetric`.
        output_dir (str, optional): writes each prediction as an 8-bit PNG
            named after the sample's ``img_path`` (values + 1 when the
            sample has ``reduce_zero_label``). Needs Pillow.
        format_only (bool): only write the predictions, no metric (for test
            sets without ground truth).
        prefix (str, optional): prefix of the metric names.
    """

    def __init__(
        self,
        ignore_index: int = 255,
        iou_metrics: str | Sequence[str] = ("mIoU",),
        nan_to_num: int | None = None,
        beta: int = 1,
        collect_device: str = "cpu",
        output_dir: str | None = None,
        format_only: bool = False,
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device, prefix, output_dir=output_dir, format_only=format_only)
        self.ignore_index = int(ignore_index)
        self.metrics = _check_metrics(iou_metrics)
        self.nan_to_num = nan_to_num
        self.beta = beta
        if format_only and output_dir is None:
            raise ValueError("format_only=True needs an output_dir to write the predictions to")
        if output_dir is not None and is_main_process():
            os.makedirs(output_dir, exist_ok=True)

    def _class_names(self) -> list[str]:
        meta = self.dataset_meta
        if not meta or "classes" not in meta:
            raise ValueError(
                "dataset_meta['classes'] is not set: set metric.dataset_meta = "
                "{'classes': [...]} (a runner sets it from the data set)"
            )
        return list(meta["classes"])

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Add the confusion counts of a batch to the running matrix (``self.results[0]``).

        Args:
            data_batch (Any): the batch from the data loader (unused).
            data_samples (Sequence[dict]): outputs of the model with
                ``pred_sem_seg`` and, unless ``format_only``, ``gt_sem_seg``.
        """
        num_classes = len(self._class_names())
        for sample in data_samples:
            pred = sample_field(sample, "pred_sem_seg").squeeze()
            if not self.format_only:
                label = sample_field(sample, "gt_sem_seg").squeeze()
                self._accumulate(pred, label, num_classes)
            if self.output_dir is not None:
                mask = to_numpy(pred, "pred_sem_seg").astype(np.int64)
                if lookup(sample, "reduce_zero_label"):
                    # Predictions are in [0, 149] for ADE20K's official [1, 150].
                    mask = mask + 1
                save_png(basename_png(sample, self.output_dir), mask.astype(np.uint8))

    def _accumulate(self, pred: Any, label: Any, num_classes: int) -> None:
        if not self.results:
            self.results.append(np.zeros((num_classes, num_classes), dtype=np.int64))
        matrix = self.results[0]
        if isinstance(pred, np.ndarray) and isinstance(label, np.ndarray):
            vt_ops.confusion_matrix(pred, label, num_classes, self.ignore_index, out=matrix)
            return
        if type(pred) is not type(label):
            pred, label = to_numpy(pred, "pred_sem_seg"), to_numpy(label, "gt_sem_seg")
        matrix += to_numpy(vt_ops.confusion_matrix(pred, label, num_classes, self.ignore_index))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Compute the metrics from the confusion matrices of every rank.

        Args:
            results (list): the running matrices gathered from the ranks.

        Returns:
            dict[str, float]: ``aAcc`` and the ``m*`` class means, in percent
            rounded to 2 decimals as mmseg: aAcc, mIoU, mAcc, mDice, mFscore,
            mPrecision, mRecall (those the chosen ``iou_metrics`` produce).
        """
        if self.format_only:
            print_log(f"results are saved to {self.output_dir}")
            return {}
        class_names = self._class_names()
        num_classes = len(class_names)
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        for part in results:
            matrix += to_numpy(part, "results").astype(np.int64)
        ret_metrics = self.total_area_to_metrics(
            *_areas_from_matrix(matrix), self.metrics, self.nan_to_num, self.beta
        )
        metrics = {}
        for key, value in ret_metrics.items():
            name = key if key == "aAcc" else "m" + key
            metrics[name] = round(_nanmean(value) * 100, 2)
        per_class = {"Class": class_names}
        for key, value in ret_metrics.items():
            if key != "aAcc":
                per_class[key] = np.round(value * 100, 2).tolist()
        print_log("per class results:\n" + format_table(per_class))
        return metrics

    @staticmethod
    def intersect_and_union(
        pred_label: Any, label: Any, num_classes: int, ignore_index: int
    ) -> tuple[Any, Any, Any, Any]:
        """Calculate intersection and union of one image.

        Args:
            pred_label (Array[H, W]): predicted segmentation map, integer
                (numpy, torch or cupy).
            label (Array[H, W]): ground-truth segmentation map of the same kind.
            num_classes (int): number of categories.
            ignore_index (int): label value to ignore.

        Returns:
            tuple: int64 histograms over the classes, Array[num_classes] each:
            the intersection of prediction and ground truth, their union, the
            prediction and the ground truth; numpy for numpy inputs, CPU tensors
            for torch inputs (as mmseg, which returns float32 counts).
        """
        matrix = vt_ops.confusion_matrix(pred_label, label, num_classes, ignore_index)
        if hasattr(matrix, "cpu"):
            matrix = matrix.cpu()
        intersect = matrix.diagonal()
        area_label = matrix.sum(1)
        area_pred = matrix.sum(0)
        return intersect, area_pred + area_label - intersect, area_pred, area_label

    @staticmethod
    def total_area_to_metrics(
        total_area_intersect: Any,
        total_area_union: Any,
        total_area_pred_label: Any,
        total_area_label: Any,
        metrics: str | Sequence[str] = ("mIoU",),
        nan_to_num: int | None = None,
        beta: int = 1,
    ) -> dict[str, Any]:
        """Calculate evaluation metrics from the total areas of every class.

        Args:
            total_area_intersect (np.ndarray): intersection of prediction and
                ground truth per class, shape (num_classes,).
            total_area_union (np.ndarray): their union per class.
            total_area_pred_label (np.ndarray): prediction area per class.
            total_area_label (np.ndarray): ground-truth area per class.
            metrics (list[str] | str): some of 'mIoU', 'mDice', 'mFscore'.
            nan_to_num (int, optional): replaces NaN values when given.
            beta (int): weight of recall in the F-score. Defaults to 1.

        Returns:
            dict[str, np.ndarray]: fractions (not percentages): 'aAcc' (a
            scalar) and per class, shape (num_classes,): 'IoU' and 'Acc'
            (mIoU), 'Dice' and 'Acc' (mDice), 'Fscore', 'Precision' and
            'Recall' (mFscore). A 0/0 ratio is NaN.
        """
        metrics = _check_metrics(metrics)
        intersect, union, area_pred, area_label = (
            to_numpy(a, name).astype(np.float64)
            for a, name in (
                (total_area_intersect, "total_area_intersect"),
                (total_area_union, "total_area_union"),
                (total_area_pred_label, "total_area_pred_label"),
                (total_area_label, "total_area_label"),
            )
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ret_metrics: dict[str, Any] = {"aAcc": np.float64(intersect.sum() / area_label.sum())}
            for metric in metrics:
                if metric == "mIoU":
                    ret_metrics["IoU"] = intersect / union
                    ret_metrics["Acc"] = intersect / area_label
                elif metric == "mDice":
                    ret_metrics["Dice"] = 2 * intersect / (area_pred + area_label)
                    ret_metrics["Acc"] = intersect / area_label
                else:
                    precision = intersect / area_pred
                    recall = intersect / area_label
                    ret_metrics["Fscore"] = (
                        (1 + beta**2) * precision * recall / (beta**2 * precision + recall)
                    )
                    ret_metrics["Precision"] = precision
                    ret_metrics["Recall"] = recall
        if nan_to_num is not None:
            ret_metrics = {k: np.nan_to_num(v, nan=nan_to_num) for k, v in ret_metrics.items()}
        return ret_metrics
