"""mmseg's DepthMetric: per-image depth errors averaged over images."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from vt_metrics._dist import is_main_process
from vt_metrics._utils import (
    basename_png,
    format_table,
    print_log,
    sample_field,
    save_png,
    to_numpy,
)
from vt_metrics.base import BaseMetric

__all__ = ["DepthMetric"]

# Valid region of NYU Depth v2 evaluation (rows 45:471, columns 41:601 of 480 x 640).
_NYU_CROP = (slice(45, 471), slice(41, 601))


class DepthMetric(BaseMetric):
    """Depth estimation evaluation metric (mmseg's ``DepthMetric``).

    For every image, the pixels with ``min_depth_eval < gt < max_depth_eval``
    (inside the NYU crop with ``crop_type='nyu_crop'``) give, with
    ``ratio = max(gt / pred, pred / gt)``, ``diff = pred - gt`` and
    ``diff_log = log(pred) - log(gt)``:

    - d1, d2, d3: fraction of pixels with ratio < 1.25, 1.25², 1.25³;
    - abs_rel: mean(|diff| / gt); sq_rel: mean(diff² / gt);
    - rmse: sqrt(mean(diff²)); rmse_log: sqrt(mean(diff_log²));
    - log10: mean(|log10(pred) - log10(gt)|);
    - silog: sqrt(mean(diff_log²) - 0.5 * mean(diff_log)²) (mmseg's formula).

    The reported values are the means of these per-image values over the
    images, as mmseg (not pixel-level means over the data set). Computed in
    float64. An image without valid pixels gives NaN; non-positive
    predictions give NaN or infinite log terms, as in mmseg.

    Data samples carry ``pred_depth_map['data']`` and ``gt_depth_map['data']``
    ((1, H, W) or (H, W) arrays: numpy, torch or cupy).

    Args:
        depth_metrics (list[str], optional): metrics to compute; all of
            ``METRICS`` when None.
        min_depth_eval (float): minimum ground-truth depth evaluated
            (exclusive). Defaults to 0.0.
        max_depth_eval (float): maximum ground-truth depth evaluated
            (exclusive). Defaults to infinity.
        crop_type (str, optional): None or 'nyu_crop'.
        depth_scale_factor (float): factor applied to predictions written to
            ``output_dir`` as 16-bit PNG files. Defaults to 1.0.
        collect_device (str): 'cpu' or 'gpu', see :class:`BaseMetric`.
        output_dir (str, optional): writes each prediction, times
            ``depth_scale_factor``, as a uint16 PNG named after ``img_path``.
            Needs Pillow.
        format_only (bool): only write the predictions, no metric.
        prefix (str, optional): prefix of the metric names.
    """

    METRICS = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")

    def __init__(
        self,
        depth_metrics: str | Sequence[str] | None = None,
        min_depth_eval: float = 0.0,
        max_depth_eval: float = float("inf"),
        crop_type: str | None = None,
        depth_scale_factor: float = 1.0,
        collect_device: str = "cpu",
        output_dir: str | None = None,
        format_only: bool = False,
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device, prefix, output_dir=output_dir, format_only=format_only)
        if depth_metrics is None:
            self.metrics = list(self.METRICS)
        else:
            self.metrics = (
                [depth_metrics] if isinstance(depth_metrics, str) else list(depth_metrics)
            )
            unknown = [m for m in self.metrics if m not in self.METRICS]
            if unknown:
                raise ValueError(
                    f"depth_metrics: {unknown} not supported, expected some of {list(self.METRICS)}"
                )
        if crop_type not in (None, "nyu_crop"):
            raise ValueError(f"crop_type: expected None or 'nyu_crop', got {crop_type!r}")
        if format_only and output_dir is None:
            raise ValueError("format_only=True needs an output_dir to write the predictions to")
        self.crop_type = crop_type
        self.min_depth_eval = float(min_depth_eval)
        self.max_depth_eval = float(max_depth_eval)
        self.depth_scale_factor = float(depth_scale_factor)
        if output_dir is not None and is_main_process():
            os.makedirs(output_dir, exist_ok=True)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Compute the metrics of each image of a batch (one dict per image in ``self.results``).

        Args:
            data_batch (Any): the batch from the data loader (unused).
            data_samples (Sequence[dict]): outputs of the model with
                ``pred_depth_map`` and, unless ``format_only``, ``gt_depth_map``.
        """
        for sample in data_samples:
            pred = to_numpy(sample_field(sample, "pred_depth_map"), "pred_depth_map").squeeze()
            if not self.format_only:
                gt = to_numpy(sample_field(sample, "gt_depth_map"), "gt_depth_map").squeeze()
                if gt.shape != pred.shape:
                    raise ValueError(
                        f"gt_depth_map has shape {gt.shape} but pred_depth_map has {pred.shape}"
                    )
                mask = self._get_eval_mask(gt)
                self.results.append(
                    self._calc_all_metrics(
                        gt[mask].astype(np.float64), pred[mask].astype(np.float64)
                    )
                )
            if self.output_dir is not None:
                scaled = pred.astype(np.float64) * self.depth_scale_factor
                save_png(basename_png(sample, self.output_dir), scaled.astype(np.uint16))

    def _get_eval_mask(self, gt_depth: np.ndarray) -> np.ndarray:
        """Pixels evaluated: depth within (min, max), inside the crop."""
        mask = (gt_depth > self.min_depth_eval) & (gt_depth < self.max_depth_eval)
        if self.crop_type == "nyu_crop":
            crop = np.zeros_like(mask)
            crop[_NYU_CROP] = True
            mask &= crop
        return mask

    @staticmethod
    def _calc_all_metrics(gt_depth: np.ndarray, pred_depth: np.ndarray) -> dict[str, float]:
        """All of ``METRICS`` for the valid pixels of one image (1-D arrays)."""
        if gt_depth.shape != pred_depth.shape:
            raise ValueError("gt_depth and pred_depth must have the same shape")
        if gt_depth.size == 0:
            return dict.fromkeys(DepthMetric.METRICS, math.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            thresh = np.maximum(gt_depth / pred_depth, pred_depth / gt_depth)
            diff = pred_depth - gt_depth
            diff_log = np.log(pred_depth) - np.log(gt_depth)
            return {
                "d1": float(np.mean(thresh < 1.25)),
                "d2": float(np.mean(thresh < 1.25**2)),
                "d3": float(np.mean(thresh < 1.25**3)),
                "abs_rel": float(np.mean(np.abs(diff) / gt_depth)),
                "sq_rel": float(np.mean(diff**2 / gt_depth)),
                "rmse": float(np.sqrt(np.mean(diff**2))),
                "rmse_log": float(np.sqrt(np.mean(diff_log**2))),
                "log10": float(np.mean(np.abs(np.log10(pred_depth) - np.log10(gt_depth)))),
                "silog": float(np.sqrt(np.mean(diff_log**2) - 0.5 * np.mean(diff_log) ** 2)),
            }

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Average the per-image metrics over the images.

        Args:
            results (list): one dict of metrics per image.

        Returns:
            dict[str, float]: the mean over images of each metric of
            ``self.metrics`` (NaN without images).
        """
        if self.format_only:
            print_log(f"results are saved to {self.output_dir}")
            return {}
        metrics = {
            k: float(np.mean([r[k] for r in results])) if results else math.nan
            for k in self.metrics
        }
        print_log("results:\n" + format_table({k: [round(v, 5)] for k, v in metrics.items()}))
        return metrics
