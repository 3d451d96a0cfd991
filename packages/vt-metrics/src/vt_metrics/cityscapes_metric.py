"""mmseg's CityscapesMetric with the Cityscapes pixel-level evaluation written in numpy."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

import vt_ops
from vt_metrics._dist import is_main_process
from vt_metrics._utils import (
    basename_png,
    format_table,
    load_png,
    lookup,
    print_log,
    sample_field,
    save_png,
    to_numpy,
)
from vt_metrics.base import BaseMetric

__all__ = ["CityscapesMetric"]


class _Label(NamedTuple):
    name: str
    id: int
    train_id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool


# The Cityscapes label definitions (cityscapesScripts, helpers/labels.py).
_LABELS = (
    _Label("unlabeled", 0, 255, "void", False, True),
    _Label("ego vehicle", 1, 255, "void", False, True),
    _Label("rectification border", 2, 255, "void", False, True),
    _Label("out of roi", 3, 255, "void", False, True),
    _Label("static", 4, 255, "void", False, True),
    _Label("dynamic", 5, 255, "void", False, True),
    _Label("ground", 6, 255, "void", False, True),
    _Label("road", 7, 0, "flat", False, False),
    _Label("sidewalk", 8, 1, "flat", False, False),
    _Label("parking", 9, 255, "flat", False, True),
    _Label("rail track", 10, 255, "flat", False, True),
    _Label("building", 11, 2, "construction", False, False),
    _Label("wall", 12, 3, "construction", False, False),
    _Label("fence", 13, 4, "construction", False, False),
    _Label("guard rail", 14, 255, "construction", False, True),
    _Label("bridge", 15, 255, "construction", False, True),
    _Label("tunnel", 16, 255, "construction", False, True),
    _Label("pole", 17, 5, "object", False, False),
    _Label("polegroup", 18, 255, "object", False, True),
    _Label("traffic light", 19, 6, "object", False, False),
    _Label("traffic sign", 20, 7, "object", False, False),
    _Label("vegetation", 21, 8, "nature", False, False),
    _Label("terrain", 22, 9, "nature", False, False),
    _Label("sky", 23, 10, "sky", False, False),
    _Label("person", 24, 11, "human", True, False),
    _Label("rider", 25, 12, "human", True, False),
    _Label("car", 26, 13, "vehicle", True, False),
    _Label("truck", 27, 14, "vehicle", True, False),
    _Label("bus", 28, 15, "vehicle", True, False),
    _Label("caravan", 29, 255, "vehicle", True, True),
    _Label("trailer", 30, 255, "vehicle", True, True),
    _Label("train", 31, 16, "vehicle", True, False),
    _Label("motorcycle", 32, 17, "vehicle", True, False),
    _Label("bicycle", 33, 18, "vehicle", True, False),
    _Label("license plate", -1, -1, "vehicle", False, True),
)

# Mean pixel size of an instance of each class in the training set: the
# official iIoU weighs the pixels of an instance by mean size / instance size.
_AVG_CLASS_SIZE = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}

# Label ids 0..33 are the rows and columns of the confusion matrix (the
# license plate, id -1, never appears in label-id images).
_NUM_IDS = max(label.id for label in _LABELS) + 1
_ID_TO_LABEL = {label.id: label for label in _LABELS if label.id >= 0}
# The 19 evaluated classes, in label-id order (= train-id order).
_EVAL_IDS = np.array([label.id for label in _ID_TO_LABEL.values() if not label.ignore_in_eval])
_CATEGORIES = tuple(dict.fromkeys(label.category for label in _LABELS))
# Instance classes: have instances and are evaluated.
_INSTANCE_CLASS = np.array(
    [_ID_TO_LABEL[i].has_instances and not _ID_TO_LABEL[i].ignore_in_eval for i in range(_NUM_IDS)]
)
_INSTANCE_WEIGHT = np.array(
    [_AVG_CLASS_SIZE.get(_ID_TO_LABEL[i].name, math.nan) for i in range(_NUM_IDS)]
)


def _instance_categories() -> dict[str, list[int]]:
    """Categories whose labels all have instances, with their label ids (ignored ones included)."""
    categories = {}
    for category in _CATEGORIES:
        ids = [label.id for label in _LABELS if label.category == category and label.id >= 0]
        if all(_ID_TO_LABEL[i].has_instances for i in ids):
            categories[category] = ids
    return categories


_INSTANCE_CATEGORIES = _instance_categories()
# Index into _INSTANCE_CATEGORIES of each label id, -1 outside them.
_INSTANCE_CATEGORY_OF_ID = np.full(_NUM_IDS, -1, dtype=np.int64)
for _k, _ids in enumerate(_INSTANCE_CATEGORIES.values()):
    _INSTANCE_CATEGORY_OF_ID[_ids] = _k


def _train_id_table() -> np.ndarray:
    """trainId (0..255) -> label id, -1 where no label has that trainId.

    Several labels share trainId 255; the first in the definitions wins
    ('unlabeled', id 0), as cityscapesScripts' ``trainId2label``.
    """
    table = np.full(256, -1, dtype=np.int64)
    for label in _LABELS:
        if 0 <= label.train_id <= 255 and table[label.train_id] < 0:
            table[label.train_id] = label.id
    return table


_TRAIN_ID_TO_ID = _train_id_table()


def _new_state() -> dict[str, Any]:
    return {
        "confusion": np.zeros((_NUM_IDS, _NUM_IDS), dtype=np.int64),
        "class_tp": np.zeros(_NUM_IDS),
        "class_fn": np.zeros(_NUM_IDS),
        "category_tp": np.zeros(len(_INSTANCE_CATEGORIES)),
        "category_fn": np.zeros(len(_INSTANCE_CATEGORIES)),
        "images": 0,
        "images_with_instances": 0,
    }


class CityscapesMetric(BaseMetric):
    """Cityscapes evaluation metric (mmseg's ``CityscapesMetric``).

    Converts predicted train ids to Cityscapes label ids, writes them as
    8-bit PNG files for the test server when asked, and evaluates as the
    official pixel-level script (cityscapesScripts'
    ``evalPixelLevelSemanticLabeling``), reimplemented here:

    - a confusion matrix over the 34 label ids, accumulated image by image;
    - class IoU of the 19 evaluated classes, where false positives only
      count pixels whose ground truth is an evaluated class;
    - instance-level iIoU of the 8 classes with instances: the true positive
      and false negative pixels of every ground-truth instance are weighted
      by (mean instance size of its class) / (instance size), so that small
      instances count as much as large ones;
    - the same per category (IoU of 7 categories, iIoU of human and vehicle).

    Ground truth, per sample: the official ``*_gtFine_labelIds.png`` and
    ``*_gtFine_instanceIds.png`` next to ``seg_map_path`` (mmseg's
    ``*_gtFine_labelTrainIds.png``) when they exist; otherwise the train ids
    of ``gt_sem_seg['data']``, mapped to label ids, without instances. iIoU
    is computed only when every image has its instance map.

    Args:
        output_dir (str): directory of the label-id PNG files (named after
            each sample's ``img_path``), written when ``format_only`` or
            ``keep_results``. Needs Pillow (``vt-metrics[png]``), as does
            reading ground-truth files.
        ignore_index (int): train id of unlabeled pixels, mapped to label id 0
            ('unlabeled'). Defaults to 255.
        format_only (bool): only write the PNG files (for the test server),
            no evaluation. Needs ``keep_results=True``.
        keep_results (bool): write the label-id PNG files. Defaults to False:
            the evaluation itself needs no files.
        collect_device (str): 'cpu' or 'gpu', see :class:`BaseMetric`.
        prefix (str, optional): prefix of the metric names.
    """

    def __init__(
        self,
        output_dir: str,
        ignore_index: int = 255,
        format_only: bool = False,
        keep_results: bool = False,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device, prefix, output_dir=output_dir, format_only=format_only)
        if format_only and not keep_results:
            raise ValueError(
                "keep_results: must be True when format_only is True (the results are the "
                "PNG files for the test server)"
            )
        self.ignore_index = int(ignore_index)
        self.keep_results = bool(keep_results)
        if self.keep_results and is_main_process():
            os.makedirs(output_dir, exist_ok=True)

    def _to_label_ids(self, train_ids: np.ndarray, name: str) -> np.ndarray:
        """Map train ids to label ids (uint8); ``ignore_index`` becomes 0 ('unlabeled')."""
        train_ids = train_ids.astype(np.int64, copy=False)
        ignored = train_ids == self.ignore_index
        ids = _TRAIN_ID_TO_ID[np.clip(train_ids, 0, 255)]
        bad = ~ignored & ((train_ids < 0) | (train_ids > 255) | (ids < 0))
        if bad.any():
            raise ValueError(
                f"{name}: train ids must be in [0, 18] or ignore_index={self.ignore_index}, "
                f"found {np.unique(train_ids[bad])[:8].tolist()}"
            )
        ids[ignored] = 0
        return ids.astype(np.uint8)

    def _ground_truth(self, sample: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """(label ids, instance ids or None) of a sample."""
        seg_map_path = lookup(sample, "seg_map_path")
        if seg_map_path:
            ids_path = str(seg_map_path).replace("labelTrainIds.png", "labelIds.png")
            if ids_path.endswith("labelIds.png") and os.path.exists(ids_path):
                instance_path = ids_path.replace("labelIds", "instanceIds")
                instances = load_png(instance_path) if os.path.exists(instance_path) else None
                return load_png(ids_path), instances
        gt = sample_field(sample, "gt_sem_seg", required=False)
        if gt is None:
            raise KeyError(
                "data sample has neither 'gt_sem_seg' nor a 'seg_map_path' with its "
                "*_labelIds.png: set format_only=True for test sets without ground truth"
            )
        return self._to_label_ids(to_numpy(gt, "gt_sem_seg").squeeze(), "gt_sem_seg"), None

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Write the label-id PNG files and add each image to the running statistics.

        Args:
            data_batch (Any): the batch from the data loader (unused).
            data_samples (Sequence[dict]): outputs of the model with
                ``pred_sem_seg`` (train ids), ``img_path`` when writing files,
                and the ground truth (see the class documentation).
        """
        for sample in data_samples:
            pred = to_numpy(sample_field(sample, "pred_sem_seg"), "pred_sem_seg").squeeze()
            pred = self._to_label_ids(pred, "pred_sem_seg")
            if self.keep_results:
                save_png(basename_png(sample, self.output_dir), pred)
            if self.format_only:
                continue
            gt, instances = self._ground_truth(sample)
            if gt.shape != pred.shape:
                raise ValueError(
                    f"ground truth has shape {gt.shape} but pred_sem_seg has {pred.shape}"
                )
            if not self.results:
                self.results.append(_new_state())
            state = self.results[0]
            state["images"] += 1
            try:
                vt_ops.confusion_matrix(pred, gt, _NUM_IDS, -1, out=state["confusion"])
            except ValueError as e:
                raise ValueError(
                    f"Cityscapes ground-truth label ids must be in [0, 33]: {e}"
                ) from e
            if instances is not None:
                if instances.shape != gt.shape:
                    raise ValueError(
                        f"instance ids have shape {instances.shape} but the labels {gt.shape}"
                    )
                self._add_instances(state, pred, instances)
                state["images_with_instances"] += 1

    @staticmethod
    def _add_instances(state: dict[str, Any], pred: np.ndarray, instances: np.ndarray) -> None:
        """Add the weighted true positives and false negatives of every instance of an image.

        Instance ids above 1000 are ``label_id * 1000 + k``; smaller values
        are regions without instances (e.g. crowds) and are not instances.
        """
        inside = instances > 1000
        inst = instances[inside].astype(np.int64)
        if inst.size == 0:
            return
        pred = pred[inside].astype(np.int64)
        inst_ids, pixel_inst, sizes = np.unique(inst, return_inverse=True, return_counts=True)
        label_ids = inst_ids // 1000
        if label_ids.max() >= _NUM_IDS:
            raise ValueError(f"instance ids encode unknown label ids {label_ids.max()}")
        pixel_label = label_ids[pixel_inst]
        tp = np.bincount(pixel_inst, weights=pred == pixel_label, minlength=inst_ids.size)
        category = _INSTANCE_CATEGORY_OF_ID[pixel_label]
        category_tp = np.bincount(
            pixel_inst, weights=_INSTANCE_CATEGORY_OF_ID[pred] == category, minlength=inst_ids.size
        )
        keep = _INSTANCE_CLASS[label_ids]  # ignored classes (caravan, trailer) are skipped
        label_ids, sizes, tp, category_tp = (
            label_ids[keep],
            sizes[keep],
            tp[keep],
            category_tp[keep],
        )
        weight = _INSTANCE_WEIGHT[label_ids] / sizes
        np.add.at(state["class_tp"], label_ids, tp * weight)
        np.add.at(state["class_fn"], label_ids, (sizes - tp) * weight)
        categories = _INSTANCE_CATEGORY_OF_ID[label_ids]
        np.add.at(state["category_tp"], categories, category_tp * weight)
        np.add.at(state["category_fn"], categories, (sizes - category_tp) * weight)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Compute the Cityscapes scores from the statistics of every rank.

        Args:
            results (list): the running statistics gathered from the ranks.

        Returns:
            dict[str, float]: fractions in [0, 1] as cityscapesScripts:
            ``averageScoreClasses`` (class mIoU), ``averageScoreCategories``
            (category mIoU) and, with instance ground truth,
            ``averageScoreInstClasses`` and ``averageScoreInstCategories`` (iIoU).
            Empty with ``format_only``.
        """
        if self.format_only:
            print_log(f"results are saved to {self.output_dir}")
            return {}
        state = _new_state()
        for part in results:
            for key in state:
                state[key] = state[key] + part[key]
        confusion = state["confusion"]
        with_instances = state["images_with_instances"] > 0
        if with_instances and state["images_with_instances"] < state["images"]:
            warnings.warn(
                f"instance ground truth is missing for "
                f"{state['images'] - state['images_with_instances']} of {state['images']} "
                "images: iIoU is not computed",
                stacklevel=2,
            )
            with_instances = False

        class_iou, class_iiou = {}, {}
        for label_id in _EVAL_IDS:
            name = _ID_TO_LABEL[label_id].name
            tp = confusion[label_id, label_id]
            fn = confusion[label_id].sum() - tp
            fp = confusion[_EVAL_IDS, label_id].sum() - tp
            class_iou[name] = _ratio(tp, tp + fp + fn)
            if _INSTANCE_CLASS[label_id]:
                tp_w, fn_w = state["class_tp"][label_id], state["class_fn"][label_id]
                class_iiou[name] = _ratio(tp_w, tp_w + fp + fn_w)
        category_iou, category_iiou = {}, {}
        for category in _CATEGORIES:
            ids = [i for i in _EVAL_IDS if _ID_TO_LABEL[i].category == category]
            if not ids:
                continue  # void: no evaluated label
            others = [i for i in _EVAL_IDS if _ID_TO_LABEL[i].category != category]
            tp = confusion[np.ix_(ids, ids)].sum()
            fn = confusion[ids].sum() - tp
            fp = confusion[np.ix_(others, ids)].sum()
            category_iou[category] = _ratio(tp, tp + fp + fn)
            if category in _INSTANCE_CATEGORIES:
                k = list(_INSTANCE_CATEGORIES).index(category)
                inst_ids = _INSTANCE_CATEGORIES[category]
                fp = confusion[np.ix_(others, inst_ids)].sum()
                tp_w, fn_w = state["category_tp"][k], state["category_fn"][k]
                category_iiou[category] = _ratio(tp_w, tp_w + fp + fn_w)

        metrics = {
            "averageScoreClasses": _mean_valid(class_iou.values()),
            "averageScoreCategories": _mean_valid(category_iou.values()),
        }
        if with_instances:
            metrics["averageScoreInstClasses"] = _mean_valid(class_iiou.values())
            metrics["averageScoreInstCategories"] = _mean_valid(category_iiou.values())
        iiou = class_iiou if with_instances else {}
        print_log(
            "per class results:\n"
            + format_table(
                {
                    "Class": list(class_iou),
                    "IoU": [round(v * 100, 2) for v in class_iou.values()],
                    "iIoU": [round(iiou[n] * 100, 2) if n in iiou else "-" for n in class_iou],
                }
            )
        )
        ciiou = category_iiou if with_instances else {}
        print_log(
            "per category results:\n"
            + format_table(
                {
                    "Category": list(category_iou),
                    "IoU": [round(v * 100, 2) for v in category_iou.values()],
                    "iIoU": [round(ciiou[c] * 100, 2) if c in ciiou else "-" for c in category_iou],
                }
            )
        )
        return metrics


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator != 0 else math.nan


def _mean_valid(scores: Any) -> float:
    """Mean of the non-NaN scores (cityscapesScripts' getScoreAverage); NaN if none."""
    valid = [s for s in scores if not math.isnan(s)]
    return sum(valid) / len(valid) if valid else math.nan
