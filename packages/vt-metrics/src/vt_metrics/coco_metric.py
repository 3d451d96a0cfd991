"""``CocoMetric``: COCO evaluation behind the mmengine ``BaseMetric`` contract.

A thin adapter over :class:`vt_metrics.COCOEvaluator` with mmdet's ``CocoMetric``
arguments and result names (``bbox_mAP``, ``bbox_mAP_50``, ... rounded to 3 decimals).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import vt_ops
from vt_metrics.base import BaseMetric
from vt_metrics.coco import COCOEvaluator, _load_json, _source_name

__all__ = ["CocoMetric"]

_MMDET_NAMES = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


class CocoMetric(BaseMetric):
    """COCO bbox / segm / keypoints evaluation (mmdet's ``CocoMetric`` arguments).

    Args:
        ann_file (str or dict): COCO ground truth (json path or dataset dict).
        metric (str or list[str]): 'bbox', 'segm' and/or 'keypoints'.
        classwise: also report the AP of every category (``{metric}_{name}_precision``).
        iou_thrs (list[float], optional): IoU thresholds (default 0.5:0.05:0.95).
        max_dets (list[int]): detections per image (default [1, 10, 100]).
        kpt_oks_sigmas (list[float], optional): per-keypoint OKS falloffs of the
            keypoints metric (default: COCO's 17 person keypoints).
        format_only: only write the results json files to ``outfile_prefix``.
        outfile_prefix (str, optional): where ``format_only`` writes
            ``{prefix}.{metric}.json``.
        collect_device: 'cpu' or 'gpu', as :class:`~vt_metrics.base.BaseMetric`.
        prefix (str, optional): metric name prefix (default 'coco').

    ``process`` takes data samples (dicts or objects) with ``img_id`` and
    ``pred_instances`` holding ``bboxes`` (N, 4) in (x1, y1, x2, y2), ``scores`` (N,),
    ``labels`` (N,) (indices into the sorted category ids) and, for segm,
    ``masks`` (N, H, W) or a list of RLE dicts; for keypoints, ``keypoints`` (N, K, 3).
    """

    default_prefix: str | None = "coco"

    def __init__(
        self,
        ann_file: str | os.PathLike[str] | Mapping[str, Any],
        metric: str | Sequence[str] = "bbox",
        *,
        classwise: bool = False,
        iou_thrs: Sequence[float] | None = None,
        max_dets: Sequence[int] = (1, 10, 100),
        kpt_oks_sigmas: Sequence[float] | None = None,
        format_only: bool = False,
        outfile_prefix: str | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.metrics = [metric] if isinstance(metric, str) else list(metric)
        for m in self.metrics:
            if m not in ("bbox", "segm", "keypoints"):
                raise ValueError(f"metric: expected 'bbox', 'segm' or 'keypoints', got {m!r}")
        if format_only and not outfile_prefix:
            raise ValueError("outfile_prefix is required when format_only is True")
        self.dataset = _load_json(ann_file, "ann_file")
        self.classwise = classwise
        self.iou_thrs = iou_thrs
        self.max_dets = list(max_dets)
        self.kpt_oks_sigmas = None if kpt_oks_sigmas is None else list(kpt_oks_sigmas)
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        # the ground truth is read (and checked) now, not after a whole validation pass
        name = _source_name(ann_file, "ann_file")
        self._evaluators = {}
        for m in self.metrics:
            kwargs: dict[str, Any] = {"iou_thresholds": self.iou_thrs, "name": name}
            if m != "keypoints":
                kwargs["max_dets"] = self.max_dets
            else:
                kwargs["kpt_oks_sigmas"] = self.kpt_oks_sigmas
            self._evaluators[m] = COCOEvaluator(self.dataset, m, **kwargs)
        cats = sorted(self.dataset["categories"], key=lambda c: c["id"])
        self.cat_ids = [int(c["id"]) for c in cats]
        self.cat_names = [str(c.get("name", c["id"])) for c in cats]

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Convert each sample's predictions to COCO result dicts (one list per image)."""
        for sample in data_samples:
            pred = _get(sample, "pred_instances")
            img_id = int(_get(sample, "img_id"))
            boxes = _to_numpy(_get(pred, "bboxes")).reshape(-1, 4).astype(np.float64)
            scores = _to_numpy(_get(pred, "scores")).reshape(-1).astype(np.float64)
            labels = _to_numpy(_get(pred, "labels")).reshape(-1).astype(np.int64)
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            masks = _get(pred, "masks")
            if masks is not None and not isinstance(masks, list):
                m = _to_numpy(masks).astype(np.uint8)
                masks = vt_ops.rle_encode(np.asfortranarray(m.transpose(1, 2, 0))) if len(m) else []
            keypoints = _get(pred, "keypoints")
            if keypoints is not None:
                keypoints = _to_numpy(keypoints).reshape(len(scores), -1).astype(np.float64)
            results = []
            for i in range(len(scores)):
                res = {
                    "image_id": img_id,
                    "category_id": self.cat_ids[labels[i]],
                    "bbox": xywh[i].tolist(),
                    "score": float(scores[i]),
                }
                if masks is not None:
                    rle = masks[i]
                    counts = rle["counts"]
                    res["segmentation"] = {
                        "size": list(rle["size"]),
                        "counts": counts.decode() if isinstance(counts, bytes) else counts,
                    }
                if keypoints is not None:
                    res["keypoints"] = keypoints[i].tolist()
                results.append(res)
            self.results.append(results)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """COCO stats of every requested metric, named as mmdet names them."""
        dets = [r for per_image in results for r in per_image]
        if self.format_only:
            for m in self.metrics:
                with open(f"{self.outfile_prefix}.{m}.json", "w") as f:
                    json.dump(dets, f)
            return {}
        out: dict[str, float] = {}
        for m in self.metrics:
            res = self._evaluators[m].evaluate(dets)
            if m == "keypoints":
                for name, v in res.stats_dict().items():
                    out[f"{m}_{name}"] = float(f"{v:.3f}")
            else:
                for name, v in zip(_MMDET_NAMES, res.stats[:6]):
                    out[f"{m}_{name}"] = float(f"{v:.3f}")
            if self.classwise:
                for cat, ap in res.per_category_ap().items():
                    name = self.cat_names[self.cat_ids.index(cat)]
                    out[f"{m}_{name}_precision"] = float(f"{ap:.3f}")
        return out
