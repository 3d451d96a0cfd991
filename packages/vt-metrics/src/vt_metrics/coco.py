"""COCO detection, segmentation and keypoint evaluation with pycocotools' numbers.

:class:`COCOEvaluator` reproduces ``pycocotools.cocoeval.COCOeval`` (evaluate,
accumulate, summarize) on whole arrays: annotations are read into numpy arrays
once, grouped by (category, image) with one stable sort, and the overlaps,
greedy matching and precision/recall accumulation run in compiled, multithreaded
vt-ops kernels. There is no per-image Python loop.

Behaviour follows pycocotools, including its corner cases: crowd ground truths
(matched by intersection over the detection's area, never counted), the stable
(mergesort) ordering of tied scores, per-image truncation to ``max_dets``, area
ranges inclusive at both ends, detection areas taken from ``bbox`` whenever the
first detection has one (also for ``segm``), ``stats[0]`` reading ``maxDets=100``
whatever ``max_dets`` is, and a match to a ground truth whose annotation id is 0
counting as no match.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import vt_ops

__all__ = ["COCOEvalResult", "COCOEvaluator"]

IOU_TYPES = ("bbox", "segm", "keypoints")

# pycocotools' Params (np.arange would give slightly different thresholds).
DEFAULT_IOU_THRESHOLDS = np.linspace(
    0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True
)
DEFAULT_REC_THRESHOLDS = np.linspace(
    0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True
)
DETECTION_AREA_RANGES = {
    "all": (0**2, 1e5**2),
    "small": (0**2, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 1e5**2),
}
KEYPOINT_AREA_RANGES = {
    "all": (0**2, 1e5**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 1e5**2),
}
COCO_KEYPOINT_SIGMAS = (
    np.array(
        [
            0.26,
            0.25,
            0.25,
            0.35,
            0.35,
            0.79,
            0.79,
            0.72,
            0.72,
            0.62,
            0.62,
            1.07,
            1.07,
            0.87,
            0.87,
            0.89,
            0.89,
        ]
    )
    / 10.0
)

DETECTION_STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

_INT, _FLOAT = np.int64, np.float64


def _sorted_unique(sorted_values: np.ndarray) -> np.ndarray:
    if len(sorted_values) == 0:
        return sorted_values
    keep = np.ones(len(sorted_values), dtype=bool)
    keep[1:] = sorted_values[1:] != sorted_values[:-1]
    return sorted_values[keep]


def _load_json(source: Any, name: str) -> Any:
    """``source`` itself, or the content of the JSON file it names."""
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{name}: file not found: {os.fspath(source)}")
        with open(source, "rb") as f:
            try:
                return json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{os.fspath(source)}: {name}: not a valid JSON file: {e}") from e
    return source


def _source_name(source: Any, name: str) -> str:
    """How errors name an input: ``"path/to/file.json: name"`` for a file, else ``name``."""
    return f"{os.fspath(source)}: {name}" if isinstance(source, (str, os.PathLike)) else name


def _require_list(value: Any, name: str) -> list:
    if not isinstance(value, list):
        raise TypeError(f"{name}: expected a list, got {type(value).__name__}")
    return value


def _check_iou_type(iou_type: str) -> str:
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type: expected one of {IOU_TYPES}, got {iou_type!r}")
    return iou_type


class _IdIndex:
    """Positions of ids in a sorted array of unique ids (-1 where absent): a lookup table
    when the ids are small non-negative integers (COCO's), else a binary search."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self.table = None
        if len(ids) and ids[0] >= 0 and ids[-1] < max(1 << 20, 16 * len(ids)):
            self.table = np.full(int(ids[-1]) + 1, -1, dtype=_INT)
            self.table[ids] = np.arange(len(ids))

    def positions(self, query: np.ndarray) -> np.ndarray:
        if self.table is not None:
            inside = (query >= 0) & (query < len(self.table))
            if inside.all():
                return self.table[query]
            pos = np.full(len(query), -1, dtype=_INT)
            pos[inside] = self.table[query[inside]]
            return pos
        pos = np.searchsorted(self.ids, query)
        found = pos < len(self.ids)
        found[found] = self.ids[pos[found]] == query[found]
        return np.where(found, pos, -1)


@dataclass
class COCOEvalResult:
    """What :meth:`COCOEvaluator.evaluate` returns.

    Attributes:
        iou_type: 'bbox', 'segm' or 'keypoints'.
        stats (ndarray[12] or ndarray[10]): pycocotools' ``COCOeval.stats``.
        precision (ndarray[T, R, K, A, M]): ``COCOeval.eval['precision']`` (-1: no ground truth).
        recall (ndarray[T, K, A, M]): ``COCOeval.eval['recall']``.
        scores (ndarray[T, R, K, A, M]): ``COCOeval.eval['scores']``.
        cat_ids (list[int]): category ids along K (``[-1]`` when categories are ignored).
        img_ids (list[int]): evaluated image ids.
        iou_thresholds (ndarray[T]): IoU thresholds used.
        rec_thresholds (ndarray[R]): recall thresholds used.
        max_dets (list[int]): detections per image considered.
        area_ranges (dict[str, tuple[float, float]]): area ranges used, by label.
    """

    iou_type: str
    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    cat_ids: list[int]
    img_ids: list[int]
    iou_thresholds: np.ndarray
    rec_thresholds: np.ndarray
    max_dets: list[int]
    area_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def stat_names(self) -> tuple[str, ...]:
        """Names of :attr:`stats` (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ...)."""
        return KEYPOINT_STAT_NAMES if self.iou_type == "keypoints" else DETECTION_STAT_NAMES

    def stats_dict(self) -> dict[str, float]:
        """``{'AP': ..., 'AP50': ..., ...}`` from :attr:`stats` (fractions, -1 when undefined)."""
        return {name: float(v) for name, v in zip(self.stat_names, self.stats)}

    def per_category_ap(self) -> dict[int, float]:
        """AP@[.5:.95] of every category (area 'all', the largest max_dets), NaN without ground truth.

        Computed as detectron2's per-category table from :attr:`precision`.
        """
        a = list(self.area_ranges).index("all") if "all" in self.area_ranges else 0
        out = {}
        for k, cat in enumerate(self.cat_ids):
            p = self.precision[:, :, k, a, -1]
            p = p[p > -1]
            out[int(cat)] = float(np.mean(p)) if p.size else float("nan")
        return out

    def summary(self) -> str:
        """The lines pycocotools' ``summarize()`` prints."""
        return "\n".join(line for line, _ in _summarize(self))


def _summarize(res: COCOEvalResult) -> list[tuple[str, float]]:
    """pycocotools' ``_summarize`` calls, with their printed lines."""
    labels = list(res.area_ranges)
    md = res.max_dets

    def at(i: int) -> int | None:
        return md[i] if i < len(md) else None

    def one(ap: int, iou_thr: float | None = None, area: str = "all", max_dets: int | None = 100):
        title = "Average Precision" if ap == 1 else "Average Recall"
        kind = "(AP)" if ap == 1 else "(AR)"
        thr = res.iou_thresholds
        iou_str = f"{thr[0]:0.2f}:{thr[-1]:0.2f}" if iou_thr is None else f"{iou_thr:0.2f}"
        aind = [i for i, lbl in enumerate(labels) if lbl == area]
        mind = [i for i, m in enumerate(md) if m == max_dets]
        s = res.precision if ap == 1 else res.recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == thr)[0]]
        s = s[:, :, :, aind, mind] if ap == 1 else s[:, :, aind, mind]
        mean_s = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
        shown = -1 if max_dets is None else max_dets
        line = f" {title:<18} {kind} @[ IoU={iou_str:<9} | area={area:>6s} | maxDets={shown:>3d} ] = {mean_s:0.3f}"
        return line, float(mean_s)

    if res.iou_type == "keypoints":
        calls = [
            one(1, max_dets=20),
            one(1, max_dets=20, iou_thr=0.5),
            one(1, max_dets=20, iou_thr=0.75),
            one(1, max_dets=20, area="medium"),
            one(1, max_dets=20, area="large"),
            one(0, max_dets=20),
            one(0, max_dets=20, iou_thr=0.5),
            one(0, max_dets=20, iou_thr=0.75),
            one(0, max_dets=20, area="medium"),
            one(0, max_dets=20, area="large"),
        ]
    else:
        calls = [
            one(1),
            one(1, iou_thr=0.5, max_dets=at(2)),
            one(1, iou_thr=0.75, max_dets=at(2)),
            one(1, area="small", max_dets=at(2)),
            one(1, area="medium", max_dets=at(2)),
            one(1, area="large", max_dets=at(2)),
            one(0, max_dets=at(0)),
            one(0, max_dets=at(1)),
            one(0, max_dets=at(2)),
            one(0, area="small", max_dets=at(2)),
            one(0, area="medium", max_dets=at(2)),
            one(0, area="large", max_dets=at(2)),
        ]
    return calls


class COCOEvaluator:
    """COCO evaluation (pycocotools ``COCOeval``) of bbox, segm or keypoints results.

    The ground truth is read once; :meth:`evaluate` can then score any number of
    result lists.

    Args:
        ground_truth (dict or path): a COCO dataset (``images``, ``annotations``,
            ``categories``) or the path of its json file.
        iou_type: 'bbox', 'segm' or 'keypoints'.
        iou_thresholds (array-like[T], optional): default 0.5:0.05:0.95.
        rec_thresholds (array-like[R], optional): default 0:0.01:1 (101 points).
        max_dets (list[int], optional): default [1, 10, 100] ([20] for keypoints);
            sorted as pycocotools does.
        area_ranges (dict label -> (min, max), optional): default all/small/medium/large
            (all/medium/large for keypoints); the labels are what :attr:`stats` reads.
        use_cats: False evaluates class-agnostically (pycocotools ``useCats=0``).
        img_ids (list[int], optional): images to evaluate (default: all).
        cat_ids (list[int], optional): categories to evaluate (default: all).
        kpt_oks_sigmas (array-like[K], optional): keypoint falloffs (default: COCO's 17).
        name (str, optional): how errors name the ground truth (default: its file path
            and ``ground_truth``).

    Ground-truth annotations need ``image_id``, ``category_id``, ``area`` and ``id``;
    ``bbox`` for bbox and keypoints, ``segmentation`` (polygons, RLE or uncompressed
    RLE) for segm, ``keypoints`` and ``num_keypoints`` for keypoints. A missing
    ``iscrowd`` means 0. Images need ``height`` and ``width`` for polygons. A malformed
    ground truth (not JSON, a missing key, a value of the wrong type or length, an
    annotation whose image or category id is not in ``images``/``categories``) raises a
    ValueError or TypeError naming the file and the field.
    """

    def __init__(
        self,
        ground_truth: Mapping[str, Any] | str | os.PathLike[str],
        iou_type: str = "bbox",
        *,
        iou_thresholds: Sequence[float] | np.ndarray | None = None,
        rec_thresholds: Sequence[float] | np.ndarray | None = None,
        max_dets: Sequence[int] | None = None,
        area_ranges: Mapping[str, tuple[float, float]] | None = None,
        use_cats: bool = True,
        img_ids: Sequence[int] | None = None,
        cat_ids: Sequence[int] | None = None,
        kpt_oks_sigmas: Sequence[float] | np.ndarray | None = None,
        name: str | None = None,
    ) -> None:
        self.iou_type = _check_iou_type(iou_type)
        keypoints = iou_type == "keypoints"
        self.iou_thresholds = np.asarray(
            DEFAULT_IOU_THRESHOLDS if iou_thresholds is None else iou_thresholds, dtype=_FLOAT
        ).reshape(-1)
        self.rec_thresholds = np.asarray(
            DEFAULT_REC_THRESHOLDS if rec_thresholds is None else rec_thresholds, dtype=_FLOAT
        ).reshape(-1)
        self.max_dets = sorted(int(m) for m in (max_dets or ([20] if keypoints else [1, 10, 100])))
        if not self.max_dets or self.max_dets[0] < 0:
            raise ValueError("max_dets: expected non-negative integers")
        ranges = area_ranges or (KEYPOINT_AREA_RANGES if keypoints else DETECTION_AREA_RANGES)
        self.area_ranges = {str(k): (float(lo), float(hi)) for k, (lo, hi) in ranges.items()}
        self.use_cats = bool(use_cats)
        self.kpt_oks_sigmas = np.asarray(
            COCO_KEYPOINT_SIGMAS if kpt_oks_sigmas is None else kpt_oks_sigmas, dtype=_FLOAT
        )

        gt_name = name or _source_name(ground_truth, "ground_truth")
        dataset = _load_json(ground_truth, "ground_truth")
        if not isinstance(dataset, Mapping):
            raise TypeError(
                f"{gt_name}: expected a dict or a json path, got {type(dataset).__name__}"
            )
        for key in ("images", "categories"):
            if key not in dataset:
                raise ValueError(f"{gt_name}: missing key '{key}'")
        images = _require_list(dataset["images"], f"{gt_name}['images']")
        categories = _require_list(dataset["categories"], f"{gt_name}['categories']")
        anns = _require_list(dataset.get("annotations", []), f"{gt_name}['annotations']")

        im = vt_ops.records_fields(
            images,
            {"id": (_INT, 0, None), "height": (_INT, 0, -1), "width": (_INT, 0, -1)},
            name=f"{gt_name}['images']",
        )
        all_ids, first = np.unique(im["id"], return_index=True)
        self._all_images = _IdIndex(all_ids)
        self._img_heights, self._img_widths = im["height"][first], im["width"][first]
        cats = vt_ops.records_fields(
            categories, {"id": (_INT, 0, None)}, name=f"{gt_name}['categories']"
        )
        self.img_ids = np.unique(all_ids if img_ids is None else np.asarray(img_ids, dtype=_INT))
        self.cat_ids = np.unique(cats["id"] if cat_ids is None else np.asarray(cat_ids, dtype=_INT))
        self._images, self._cats = _IdIndex(self.img_ids), _IdIndex(self.cat_ids)

        fields: dict[str, tuple[Any, int, Any]] = {
            "image_id": (_INT, 0, None),
            "category_id": (_INT, 0, None),
            "area": (_FLOAT, 0, None),
            "id": (_INT, 0, None),
            "iscrowd": (_FLOAT, 0, 0),
        }
        if iou_type in ("bbox", "keypoints"):
            fields["bbox"] = (_FLOAT, 4, None)
        if keypoints:
            fields["num_keypoints"] = (_FLOAT, 0, None)
            fields["keypoints"] = (_FLOAT, 3 * len(self.kpt_oks_sigmas), None)
        gt = vt_ops.records_fields(anns, fields, name=f"{gt_name}['annotations']")
        self._check_image_ids(gt["image_id"], f"{gt_name}['annotations']")
        known_cats = _IdIndex(np.unique(cats["id"])).positions(gt["category_id"]) >= 0
        if not known_cats.all():
            bad = np.unique(gt["category_id"][~known_cats])[:5].tolist()
            raise ValueError(
                f"{gt_name}['annotations']: category ids not in the ground truth categories: {bad}"
            )

        keep, img_pos, cat_pos = self._positions(gt["image_id"], gt["category_id"])
        sort_key, group = self._keys(img_pos, cat_pos)
        order = np.flatnonzero(keep)
        order = order[np.argsort(sort_key[order], kind="stable")]
        self._gt_group = group[order]
        self._gt_groups = _sorted_unique(self._gt_group)
        crowd = gt["iscrowd"][order] != 0
        ignore = crowd.copy()
        if keypoints:
            ignore |= gt["num_keypoints"][order] == 0
        self._gt_crowd, self._gt_ignore = crowd, ignore
        self._gt_area = np.ascontiguousarray(gt["area"][order])
        self._gt_zero_id = gt["id"][order] == 0
        self._gt_boxes = np.ascontiguousarray(gt["bbox"][order]) if "bbox" in gt else None
        self._gt_keypoints = np.ascontiguousarray(gt["keypoints"][order]) if keypoints else None
        self._gt_rles = self._gt_rle_boxes = None
        if iou_type == "segm":
            h, w = self._image_sizes(gt["image_id"][order])
            self._gt_rles = vt_ops.rle_pack(
                anns, h, w, key="segmentation", indices=order, name=f"{gt_name}['annotations']"
            )
            self._gt_rle_boxes = vt_ops.rle_to_bbox(self._gt_rles)

    # --- grouping ------------------------------------------------------------------

    def _check_image_ids(self, image_ids: np.ndarray, name: str) -> None:
        known = self._all_images.positions(image_ids) >= 0
        if not known.all():
            bad = np.unique(image_ids[~known])[:5].tolist()
            raise ValueError(f"{name}: image ids not in the ground truth images: {bad}")

    def _image_sizes(self, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = self._all_images.positions(image_ids)
        return self._img_heights[idx], self._img_widths[idx]

    def _positions(self, image_ids: np.ndarray, cat_ids: np.ndarray):
        """(kept, image position, category position) against the evaluated ids."""
        img_pos = self._images.positions(image_ids)
        cat_pos = self._cats.positions(cat_ids)
        return (img_pos >= 0) & (cat_pos >= 0), img_pos, cat_pos

    def _keys(self, img_pos: np.ndarray, cat_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(order key, group id). Groups are (category, image) in category-major order, or
        images when categories are ignored (then ordered by category inside the image,
        as pycocotools concatenates them)."""
        n_img, n_cat = len(self.img_ids), len(self.cat_ids)
        if self.use_cats:
            key = cat_pos * n_img + img_pos
            return key, key
        return img_pos * n_cat + cat_pos, img_pos

    # --- evaluation ----------------------------------------------------------------

    def _read_detections(self, detections: Any) -> tuple[dict[str, np.ndarray], list, str]:
        """Numeric fields of the results, the results, and pycocotools' area rule."""
        dets = _require_list(_load_json(detections, "detections"), "detections")
        fields: dict[str, tuple[Any, int, Any]] = {
            "image_id": (_INT, 0, None),
            "category_id": (_INT, 0, None),
            "score": (_FLOAT, 0, None),
        }
        first = dets[0] if dets else {}
        if not isinstance(first, dict):
            raise TypeError(f"detections[0]: expected a dict, got {type(first).__name__}")
        # pycocotools' loadRes takes the detection area from the first result's kind
        if "bbox" in first and len(first["bbox"]) > 0:
            rule = "bbox"
        elif "segmentation" in first:
            rule = "segm"
        elif "keypoints" in first:
            rule = "keypoints"
        elif dets:
            raise ValueError("detections[0]: expected a 'bbox', 'segmentation' or 'keypoints' key")
        else:
            rule = "none"
        if rule == "bbox" or self.iou_type == "bbox":
            # mask-only results get the box around their mask, as loadRes
            fields["bbox"] = (_FLOAT, 4, np.nan if rule == "segm" else None)
        if rule == "keypoints" or self.iou_type == "keypoints":
            fields["keypoints"] = (_FLOAT, 3 * len(self.kpt_oks_sigmas), None)
        out = vt_ops.records_fields(dets, fields, name="detections")
        if not np.isfinite(out["score"]).all():
            raise ValueError("detections: every 'score' must be finite")
        self._check_image_ids(out["image_id"], "detections")
        if rule == "bbox":
            out["area"] = out["bbox"][:, 2] * out["bbox"][:, 3]
        elif rule == "keypoints":
            x, y = out["keypoints"][:, 0::3], out["keypoints"][:, 1::3]
            out["area"] = (x.max(1) - x.min(1)) * (y.max(1) - y.min(1))
        elif rule == "none":
            out["area"] = np.zeros(0)
        return out, dets, rule

    def _detection_rles(
        self, dets: list, det: dict[str, np.ndarray], idx: np.ndarray, need: Any = None
    ) -> Any:
        """Masks of the detections idx; with `need`, masks left out are empty 0 x 0 RLEs."""
        sel = idx if need is None else idx[need]
        h, w = self._image_sizes(det["image_id"][sel])
        rles = vt_ops.rle_pack(dets, h, w, key="segmentation", indices=sel, name="detections")
        if need is None:
            return rles
        lengths = np.zeros(len(idx), dtype=_INT)
        lengths[need] = np.diff(rles.offsets)
        offsets = np.zeros(len(idx) + 1, dtype=_INT)
        np.cumsum(lengths, out=offsets[1:])
        sizes = np.zeros((len(idx), 2), dtype=_INT)
        sizes[need] = rles.sizes
        return vt_ops.PackedRLE(rles.counts, offsets, sizes)

    def evaluate(
        self, detections: Sequence[Mapping[str, Any]] | str | os.PathLike[str]
    ) -> COCOEvalResult:
        """Score a list of COCO results.

        Args:
            detections (list[dict] or path): results with ``image_id``,
                ``category_id``, ``score`` and ``bbox`` (x, y, w, h) / ``segmentation``
                (RLE dict or polygons) / ``keypoints``, as pycocotools' ``loadRes`` takes.

        Returns:
            COCOEvalResult: stats, precision, recall and scores equal to pycocotools'.

        Raises:
            ValueError: a missing key, a box of the wrong length, a non-finite score or
                an image id that is not in the ground truth.
            TypeError: a record that is not a dict or a value of the wrong type.
        """
        det, dets, rule = self._read_detections(detections)
        keep, img_pos, cat_pos = self._positions(det["image_id"], det["category_id"])
        _, group = self._keys(img_pos, cat_pos)
        idx = np.flatnonzero(keep)
        # stable: group, then decreasing score, then (category when ignored,) dataset order
        n_img, n_cat = len(self.img_ids), len(self.cat_ids)
        idx = idx[
            vt_ops.coco_group_order(
                img_pos[idx], cat_pos[idx], det["score"][idx], n_img, n_cat, self.use_cats
            )
        ]
        dt_group = group[idx]

        # rank within the group; keep the first max_dets[-1]
        first = np.ones(len(dt_group), dtype=bool)
        first[1:] = dt_group[1:] != dt_group[:-1]
        starts = np.flatnonzero(first)
        rank = np.arange(len(idx)) - np.repeat(starts, np.diff(np.append(starts, len(idx))))
        kept = rank < self.max_dets[-1]
        idx, dt_group, rank = idx[kept], dt_group[kept], rank[kept]

        groups = np.concatenate([dt_group[first[kept]], self._gt_groups])
        groups = _sorted_unique(np.sort(groups))
        dt_off = np.append(np.searchsorted(dt_group, groups), len(idx)).astype(_INT)
        gt_off = np.append(np.searchsorted(self._gt_group, groups), len(self._gt_group)).astype(
            _INT
        )

        dt_rles = None
        if rule == "segm":  # the masks give the areas (and boxes): decode them all
            dt_rles = self._detection_rles(dets, det, idx)
        elif self.iou_type == "segm":  # only masks in groups with ground truth are compared
            need = np.repeat(np.diff(gt_off) > 0, np.diff(dt_off))
            dt_rles = self._detection_rles(dets, det, idx, need)
        if rule == "segm" and self.iou_type == "bbox":
            boxes = det["bbox"][idx]
            missing = np.isnan(boxes[:, 0])
            boxes[missing] = vt_ops.rle_to_bbox(dt_rles)[missing]
            det["bbox"][idx] = boxes
        ious, iou_off = self._overlaps(det, dt_rles, idx, dt_off, gt_off)
        # results with masks and no boxes take the mask area, as loadRes
        dt_area = vt_ops.rle_area(dt_rles).astype(_FLOAT) if rule == "segm" else det["area"][idx]
        state, npig = vt_ops.coco_match(
            ious,
            iou_off,
            dt_off,
            gt_off,
            gt_ignore=self._gt_ignore,
            gt_crowd=self._gt_crowd,
            gt_area=self._gt_area,
            gt_zero_id=self._gt_zero_id,
            dt_area=dt_area,
            area_ranges=np.array(list(self.area_ranges.values()), dtype=_FLOAT),
            iou_thresholds=self.iou_thresholds,
        )
        n_cat = n_cat if self.use_cats else 1
        group_cat = groups // n_img if self.use_cats else np.zeros_like(groups)
        cat_off = np.searchsorted(np.repeat(group_cat, np.diff(dt_off)), np.arange(n_cat + 1))
        npig_cat = np.stack([np.bincount(group_cat, weights=n, minlength=n_cat) for n in npig])
        precision, recall, scores = vt_ops.coco_accumulate(
            det["score"][idx],
            rank,
            state,
            cat_off,
            npig_cat.astype(_INT),
            self.rec_thresholds,
            self.max_dets,
        )
        result = COCOEvalResult(
            iou_type=self.iou_type,
            stats=np.zeros(0),
            precision=precision,
            recall=recall,
            scores=scores,
            cat_ids=self.cat_ids.tolist() if self.use_cats else [-1],
            img_ids=self.img_ids.tolist(),
            iou_thresholds=self.iou_thresholds,
            rec_thresholds=self.rec_thresholds,
            max_dets=list(self.max_dets),
            area_ranges=dict(self.area_ranges),
        )
        result.stats = np.array([v for _, v in _summarize(result)])
        return result

    def _overlaps(self, det, dt_rles, idx, dt_off, gt_off) -> tuple[np.ndarray, np.ndarray]:
        if self.iou_type == "bbox":
            return vt_ops.coco_grouped_iou(
                np.ascontiguousarray(det["bbox"][idx]),
                self._gt_boxes,
                self._gt_crowd,
                dt_off,
                gt_off,
            )
        if self.iou_type == "keypoints":
            return vt_ops.coco_grouped_oks(
                det["keypoints"][idx],
                self._gt_keypoints,
                self._gt_boxes,
                self._gt_area,
                self.kpt_oks_sigmas,
                dt_off,
                gt_off,
            )
        return vt_ops.coco_grouped_iou(
            dt_rles, self._gt_rles, self._gt_crowd, dt_off, gt_off, gt_boxes=self._gt_rle_boxes
        )
