"""COCO masks (run-length encoding) and evaluation kernels, bit-compatible with pycocotools.

RLE dicts follow pycocotools: ``{'size': [h, w], 'counts': bytes}`` (compressed) or
``{'size': [h, w], 'counts': [int, ...]}`` (uncompressed), runs over the pixels in
column-major order starting with background. Batches of masks travel as a
:class:`PackedRLE` (all counts in one array), which the kernels process in
parallel without the GIL.

The ``coco_*`` kernels are the building blocks of ``vt_metrics``' COCO
evaluator: per-group overlaps, greedy matching (``COCOeval.evaluateImg``) and
accumulation (``COCOeval.accumulate``). CPU only; numpy in, numpy out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from vt_ops import _C
from vt_ops._arrays import is_torch

__all__ = [
    "PackedRLE",
    "rle_pack",
    "rle_unpack",
    "rle_encode",
    "rle_decode",
    "rle_area",
    "rle_to_bbox",
    "rle_merge",
    "rle_iou",
    "rle_from_objects",
    "coco_box_iou",
    "coco_group_order",
    "coco_grouped_iou",
    "coco_grouped_oks",
    "coco_match",
    "coco_accumulate",
    "records_fields",
]


class PackedRLE(NamedTuple):
    """A batch of N RLE masks in three arrays.

    Attributes:
        counts (ndarray[C], uint32): the runs of every mask, concatenated.
        offsets (ndarray[N + 1], int64): mask i owns ``counts[offsets[i]:offsets[i + 1]]``.
        sizes (ndarray[N, 2], int64): (height, width) of every mask.
    """

    counts: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.offsets.shape[0]) - 1


_NO_SIZE = np.zeros(0, dtype=np.int64)


def rle_pack(
    segmentations: Sequence[Any],
    heights: Any = None,
    widths: Any = None,
    *,
    name: str = "segmentations",
    key: str | None = None,
    indices: Any = None,
) -> PackedRLE:
    """Pack COCO segmentations into one :class:`PackedRLE`.

    Args:
        segmentations (list): per object, a compressed RLE dict, an uncompressed RLE
            dict, or a list of polygons ``[[x1, y1, x2, y2, ...], ...]`` (rasterised as
            pycocotools' ``frPyObjects`` and merged, like ``COCO.annToRLE``); with
            ``key``, records (dicts) holding the segmentation under that key.
        heights (array-like[N], optional): image heights of the packed objects, needed
            for polygons.
        widths (array-like[N], optional): image widths, needed for polygons.
        name: how errors name the input.
        key (str, optional): read ``segmentations[i][key]`` (e.g. 'segmentation').
        indices (array-like[N], optional): pack only these items, in this order.

    Returns:
        PackedRLE: N masks.
    """
    if isinstance(segmentations, dict):
        raise TypeError(f"{name}: expected a list of segmentations, got a dict")
    hs = _NO_SIZE if heights is None else np.ascontiguousarray(heights, dtype=np.int64)
    ws = _NO_SIZE if widths is None else np.ascontiguousarray(widths, dtype=np.int64)
    idx = _NO_SIZE if indices is None else np.ascontiguousarray(indices, dtype=np.int64)
    return PackedRLE(*_C.rle_pack(segmentations, hs, ws, name, key or "", idx, indices is not None))


def _as_packed(rles: Any, name: str) -> tuple[PackedRLE, bool]:
    """(packed, single) from a PackedRLE, one RLE dict or a list of RLE dicts."""
    if isinstance(rles, PackedRLE):
        return rles, False
    if isinstance(rles, dict):
        return rle_pack([rles], name=name), True
    if isinstance(rles, (list, tuple)):
        for i, r in enumerate(rles):
            if not isinstance(r, dict):
                raise TypeError(f"{name}[{i}]: expected an RLE dict, got {type(r).__name__}")
        return rle_pack(list(rles), name=name), False
    raise TypeError(
        f"{name}: expected an RLE dict, a list of RLE dicts or a PackedRLE, got {type(rles).__name__}"
    )


def rle_unpack(packed: PackedRLE) -> list[dict[str, Any]]:
    """The compressed RLE dicts (``counts`` as bytes) of a :class:`PackedRLE`."""
    return _C.rle_unpack(*packed)


def rle_encode(masks: np.ndarray) -> Any:
    """Run-length encode binary masks (pycocotools ``mask.encode``).

    Args:
        masks (ndarray[H, W, N] or ndarray[H, W], uint8): binary masks (a torch
            tensor is copied to a numpy array).

    Returns:
        list[dict] of N compressed RLEs, or one dict for a 2-d input.
    """
    if is_torch(masks):
        masks = masks.detach().cpu().numpy()
    if not isinstance(masks, np.ndarray):
        raise TypeError(f"masks: expected a numpy array, got {type(masks).__name__}")
    if masks.dtype != np.uint8:
        raise TypeError(f"masks: expected uint8, got {masks.dtype}")
    if masks.ndim not in (2, 3):
        raise ValueError(f"masks: expected shape (H, W) or (H, W, N), got {masks.shape}")
    single = masks.ndim == 2
    m = masks[:, :, None] if single else masks
    packed = PackedRLE(*_C.rle_encode(np.ascontiguousarray(m.transpose(2, 1, 0))))
    out = rle_unpack(packed)
    return out[0] if single else out


def rle_decode(rles: Any) -> np.ndarray:
    """Decode RLEs to masks (pycocotools ``mask.decode``).

    Args:
        rles: one RLE dict, a list of RLE dicts of the same size, or a PackedRLE.

    Returns:
        ndarray[H, W] (one dict) or ndarray[H, W, N], uint8, Fortran order.
    """
    packed, single = _as_packed(rles, "rles")
    n = len(packed)
    if n == 0:
        raise ValueError("rles: nothing to decode")
    h, w = (int(v) for v in packed.sizes[0])
    out = np.empty((n, w, h), dtype=np.uint8)
    _C.rle_decode(*packed, out)
    masks = out.transpose(2, 1, 0)
    return masks[:, :, 0] if single else masks


def rle_area(rles: Any) -> Any:
    """Foreground pixel count (pycocotools ``mask.area``): uint32 array, or an int for one dict."""
    packed, single = _as_packed(rles, "rles")
    out = np.empty(len(packed), dtype=np.uint32)
    _C.rle_area(*packed, out)
    return out[0] if single else out


def rle_to_bbox(rles: Any) -> np.ndarray:
    """Tight (x, y, w, h) boxes (pycocotools ``mask.toBbox``): ndarray[N, 4] or [4]."""
    packed, single = _as_packed(rles, "rles")
    out = np.empty((len(packed), 4), dtype=np.float64)
    _C.rle_to_bbox(*packed, out)
    return out[0] if single else out


def rle_merge(rles: Any, intersect: bool = False) -> dict[str, Any]:
    """Union (or intersection) of RLE masks (pycocotools ``mask.merge``) as one RLE dict.

    Masks of different sizes merge to an empty 0 x 0 RLE, as pycocotools.
    """
    packed, _ = _as_packed(rles, "rles")
    return rle_unpack(PackedRLE(*_C.rle_merge(*packed, bool(intersect))))[0]


def _boxes(x: Any, name: str) -> np.ndarray:
    b = np.asarray(x, dtype=np.float64)
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None]
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes of shape (N, 4), got {b.shape}")
    return np.ascontiguousarray(b)


def _crowd(iscrowd: Any, n: int) -> np.ndarray:
    c = np.ascontiguousarray(np.asarray(iscrowd, dtype=bool).reshape(-1), dtype=np.uint8)
    if c.shape[0] != n:
        raise ValueError(f"iscrowd: expected {n} flags (one per ground truth), got {c.shape[0]}")
    return c


def _single_group(nd: int, ng: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([0, nd], dtype=np.int64),
        np.array([0, ng], dtype=np.int64),
        np.array([0, nd * ng], dtype=np.int64),
    )


def coco_box_iou(dt: Any, gt: Any, iscrowd: Any) -> np.ndarray:
    """Overlaps of (x, y, w, h) boxes with COCO's crowd rule (pycocotools ``mask.iou``).

    Args:
        dt (array-like[D, 4]): detection boxes (x, y, w, h).
        gt (array-like[G, 4]): ground-truth boxes.
        iscrowd (array-like[G]): for a crowd ground truth the overlap is the
            intersection over the detection's area.

    Returns:
        ndarray[D, G], float64: 0 for boxes that do not overlap.
    """
    d, g = _boxes(dt, "dt"), _boxes(gt, "gt")
    crowd = _crowd(iscrowd, g.shape[0])
    out = np.empty((d.shape[0], g.shape[0]), dtype=np.float64)
    _C.coco_grouped_box_iou(d, g, crowd, *_single_group(d.shape[0], g.shape[0]), out.reshape(-1))
    return out


def rle_iou(dt: Any, gt: Any, iscrowd: Any) -> np.ndarray:
    """pycocotools' ``mask.iou``: overlaps of RLE masks, or of boxes (see :func:`coco_box_iou`).

    Args:
        dt: D RLE dicts (or a PackedRLE), or boxes (D, 4).
        gt: G RLE dicts (or a PackedRLE), or boxes (G, 4).
        iscrowd (array-like[G]): crowd flags of the ground truths.

    Returns:
        ndarray[D, G], float64: intersection over union (over the detection's area for a
        crowd ground truth); -1 for masks of different sizes.
    """
    is_rle = [
        isinstance(x, PackedRLE)
        or (isinstance(x, (list, tuple)) and bool(x) and isinstance(x[0], dict))
        for x in (dt, gt)
    ]
    if not any(is_rle):
        return coco_box_iou(dt, gt, iscrowd)
    if not all(is_rle) and len(dt) and len(gt):
        raise TypeError("dt and gt must both be RLEs or both be boxes")
    if not len(dt) or not len(gt):
        return np.zeros((len(dt), len(gt)), dtype=np.float64)
    d, _ = _as_packed(dt, "dt")
    g, _ = _as_packed(gt, "gt")
    crowd = _crowd(iscrowd, len(g))
    out = np.empty((len(d), len(g)), dtype=np.float64)
    _C.coco_grouped_rle_iou(
        *d,
        rle_to_bbox(d),
        *g,
        rle_to_bbox(g),
        crowd,
        *_single_group(len(d), len(g)),
        out.reshape(-1),
    )
    return out


def rle_from_objects(obj: Any, h: int, w: int) -> Any:
    """pycocotools' ``mask.frPyObjects``: polygons, boxes or uncompressed RLEs to RLEs.

    Args:
        obj: a list of polygons ``[[x1, y1, ...], ...]`` (one RLE per polygon), an
            ndarray / list of (x, y, w, h) boxes, a list of uncompressed RLE dicts, or
            one polygon, box or uncompressed RLE dict.
        h: mask height (uncompressed RLEs keep their own size).
        w: mask width.

    Returns:
        list[dict] for a list input, one dict for a single object.
    """
    if isinstance(obj, np.ndarray):
        return rle_unpack(PackedRLE(*_C.rle_from_bbox(_boxes(obj, "obj"), int(h), int(w))))
    if isinstance(obj, dict):
        return rle_unpack(rle_pack([obj], name="obj"))[0]
    if not isinstance(obj, (list, tuple)) or not obj:
        raise TypeError("obj: expected polygons, boxes or uncompressed RLE dicts")
    first = obj[0]
    if isinstance(first, dict):
        return rle_unpack(rle_pack(list(obj), name="obj"))
    if isinstance(first, (list, tuple, np.ndarray)):
        if len(first) == 4:
            return rle_unpack(PackedRLE(*_C.rle_from_bbox(_boxes(obj, "obj"), int(h), int(w))))
        n = len(obj)
        polys = [[p] for p in obj]
        return rle_unpack(rle_pack(polys, np.full(n, h), np.full(n, w), name="obj"))
    if len(obj) == 4:
        return rle_unpack(PackedRLE(*_C.rle_from_bbox(_boxes([obj], "obj"), int(h), int(w))))[0]
    return rle_unpack(rle_pack([[obj]], [h], [w], name="obj"))[0]


def coco_group_order(
    image_positions: Any,
    category_positions: Any,
    scores: Any,
    num_images: int,
    num_categories: int,
    use_cats: bool = True,
) -> np.ndarray:
    """The order in which pycocotools visits detections, in O(N) (counting sorts).

    Args:
        image_positions (array-like[N]): position of each detection's image in the
            sorted evaluated image ids, in [0, num_images).
        category_positions (array-like[N]): position of its category, in [0, num_categories).
        scores (array-like[N]): detection scores.
        num_images: the number of evaluated images.
        num_categories: the number of evaluated categories.
        use_cats: group by (category, image), category-major; else by image.

    Returns:
        ndarray[N], int64: indices ordered by group, then decreasing score, then (when
        categories are ignored) category, then input position: the stable mergesorts of
        ``COCOeval.evaluateImg`` on pycocotools' per-group lists.
    """
    img = np.ascontiguousarray(image_positions, dtype=np.int64)
    cat = np.ascontiguousarray(category_positions, dtype=np.int64)
    sc = np.ascontiguousarray(scores, dtype=np.float64)
    if not (img.ndim == cat.ndim == sc.ndim == 1 and img.shape == cat.shape == sc.shape):
        raise ValueError("image_positions, category_positions and scores: expected (N,) arrays")
    order = np.empty(img.shape[0], dtype=np.int64)
    _C.coco_group_order(img, cat, sc, int(num_images), int(num_categories), bool(use_cats), order)
    return order


def _group_offsets(dt_offsets: Any, gt_offsets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dto = np.ascontiguousarray(dt_offsets, dtype=np.int64)
    gto = np.ascontiguousarray(gt_offsets, dtype=np.int64)
    if dto.ndim != 1 or dto.shape != gto.shape or dto.shape[0] < 1:
        raise ValueError("dt_offsets and gt_offsets: expected two (num_groups + 1,) arrays")
    iou = np.zeros_like(dto)
    np.cumsum(np.diff(dto) * np.diff(gto), out=iou[1:])
    return dto, gto, iou


def coco_grouped_iou(
    dt: Any,
    gt: Any,
    iscrowd: Any,
    dt_offsets: Any,
    gt_offsets: Any,
    *,
    dt_boxes: np.ndarray | None = None,
    gt_boxes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Overlaps within groups (one group per image and category) in one parallel call.

    Args:
        dt: detection boxes (D, 4) as (x, y, w, h), or a PackedRLE of D masks.
        gt: ground-truth boxes (G, 4) or a PackedRLE of G masks (same kind as dt).
        iscrowd (array-like[G]): crowd flags.
        dt_offsets (array-like[NG + 1]): group g owns detections
            ``dt_offsets[g]:dt_offsets[g + 1]``.
        gt_offsets (array-like[NG + 1]): the same for ground truths.
        dt_boxes (ndarray[D, 4], optional): :func:`rle_to_bbox` of dt masks, if known.
        gt_boxes (ndarray[G, 4], optional): :func:`rle_to_bbox` of gt masks, if known.

    Returns:
        (ious, iou_offsets): ious[iou_offsets[g]:iou_offsets[g + 1]] is the row-major
        D_g x G_g overlap block of group g (as :func:`rle_iou` / :func:`coco_box_iou`).
    """
    dto, gto, ioo = _group_offsets(dt_offsets, gt_offsets)
    out = np.empty(int(ioo[-1]), dtype=np.float64)
    if isinstance(dt, PackedRLE) != isinstance(gt, PackedRLE):
        raise TypeError("dt and gt must both be PackedRLE or both be boxes")
    if isinstance(dt, PackedRLE):
        crowd = _crowd(iscrowd, len(gt))
        db = rle_to_bbox(dt) if dt_boxes is None else _boxes(dt_boxes, "dt_boxes")
        gb = rle_to_bbox(gt) if gt_boxes is None else _boxes(gt_boxes, "gt_boxes")
        _C.coco_grouped_rle_iou(*dt, db, *gt, gb, crowd, dto, gto, ioo, out)
    else:
        d, g = _boxes(dt, "dt"), _boxes(gt, "gt")
        _C.coco_grouped_box_iou(d, g, _crowd(iscrowd, g.shape[0]), dto, gto, ioo, out)
    return out, ioo


def coco_grouped_oks(
    dt: Any,
    gt: Any,
    gt_boxes: Any,
    gt_areas: Any,
    sigmas: Any,
    dt_offsets: Any,
    gt_offsets: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Object keypoint similarity within groups (pycocotools ``computeOks``).

    Args:
        dt (array-like[D, 3K]): detected keypoints (x, y, v) flattened.
        gt (array-like[G, 3K]): ground-truth keypoints.
        gt_boxes (array-like[G, 4]): ground-truth boxes (x, y, w, h); keypoints of a
            ground truth without visible keypoints are compared with the box doubled.
        gt_areas (array-like[G]): ground-truth areas (the OKS scale).
        sigmas (array-like[K]): per-keypoint falloff.
        dt_offsets (array-like[NG + 1]): detection group offsets as in :func:`coco_grouped_iou`.
        gt_offsets (array-like[NG + 1]): ground-truth group offsets.

    Returns:
        (oks, oks_offsets) laid out as :func:`coco_grouped_iou`.
    """
    s = np.ascontiguousarray(sigmas, dtype=np.float64).reshape(-1)
    k = s.shape[0]
    d = np.ascontiguousarray(dt, dtype=np.float64).reshape(-1, 3 * k)
    g = np.ascontiguousarray(gt, dtype=np.float64).reshape(-1, 3 * k)
    dto, gto, ioo = _group_offsets(dt_offsets, gt_offsets)
    out = np.empty(int(ioo[-1]), dtype=np.float64)
    _C.coco_grouped_oks(
        d,
        g,
        _boxes(gt_boxes, "gt_boxes"),
        np.ascontiguousarray(gt_areas, dtype=np.float64),
        s,
        dto,
        gto,
        ioo,
        out,
    )
    return out, ioo


def coco_match(
    ious: np.ndarray,
    iou_offsets: np.ndarray,
    dt_offsets: np.ndarray,
    gt_offsets: np.ndarray,
    *,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    gt_zero_id: np.ndarray,
    dt_area: np.ndarray,
    area_ranges: np.ndarray,
    iou_thresholds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCO matching of every group and area range (pycocotools ``evaluateImg``).

    Detections of each group must be sorted by decreasing score (stable) and cut to
    the largest maxDets; ground truths keep their dataset order.

    Args:
        ious (ndarray): overlaps from :func:`coco_grouped_iou` (or :func:`coco_grouped_oks`).
        iou_offsets (ndarray[NG + 1]): where each group's overlap block starts.
        dt_offsets (ndarray[NG + 1]): detection group offsets.
        gt_offsets (ndarray[NG + 1]): ground-truth group offsets.
        gt_ignore (ndarray[G], bool): ignored in every area range (crowd).
        gt_crowd (ndarray[G], bool): may match several detections.
        gt_area (ndarray[G]): areas compared with the area ranges.
        gt_zero_id (ndarray[G], bool): annotation id is 0 (pycocotools then counts the
            match as no match).
        dt_area (ndarray[D]): detection areas.
        area_ranges (ndarray[A, 2]): [min, max] areas, inclusive.
        iou_thresholds (ndarray[T]): thresholds (capped at 1 - 1e-10 as pycocotools).

    Returns:
        (dt_state, npig): int8 (D, A, T) with 0 false positive, 1 true positive,
        2 ignored; int64 (A, NG) number of non-ignored ground truths per group.
    """

    def arr(x: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=dtype)

    thr = np.minimum(arr(iou_thresholds, np.float64), 1 - 1e-10)
    areas = arr(area_ranges, np.float64).reshape(-1, 2)
    nd = int(np.asarray(dt_area).shape[0])
    ng = len(dt_offsets) - 1
    state = np.empty((nd, areas.shape[0], thr.shape[0]), dtype=np.int8)
    npig = np.empty((areas.shape[0], ng), dtype=np.int64)
    _C.coco_match(
        arr(ious, np.float64),
        arr(dt_offsets, np.int64),
        arr(gt_offsets, np.int64),
        arr(iou_offsets, np.int64),
        arr(gt_ignore, bool).view(np.uint8),
        arr(gt_crowd, bool).view(np.uint8),
        arr(gt_area, np.float64),
        arr(gt_zero_id, bool).view(np.uint8),
        arr(dt_area, np.float64),
        areas,
        thr,
        state,
        npig,
    )
    return state, npig


def coco_accumulate(
    dt_scores: np.ndarray,
    dt_rank: np.ndarray,
    dt_state: np.ndarray,
    cat_offsets: np.ndarray,
    npig: np.ndarray,
    rec_thresholds: np.ndarray,
    max_dets: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision / recall / score arrays (pycocotools ``accumulate``).

    Args:
        dt_scores (ndarray[D]): detection scores, detections grouped by category, images
            in evaluation order within a category, decreasing score within an image.
        dt_rank (ndarray[D]): rank of each detection within its (image, category) group.
        dt_state (ndarray[D, A, T], int8): from :func:`coco_match`.
        cat_offsets (ndarray[K + 1]): category k owns detections
            ``cat_offsets[k]:cat_offsets[k + 1]``.
        npig (ndarray[A, K]): non-ignored ground truths per area range and category.
        rec_thresholds (ndarray[R]): recall thresholds.
        max_dets (list[int]): detections per image considered (M values).

    Returns:
        precision (T, R, K, A, M), recall (T, K, A, M), scores (T, R, K, A, M); -1 where
        a category has no non-ignored ground truth.
    """
    a, t = dt_state.shape[1], dt_state.shape[2]
    k = len(cat_offsets) - 1
    rec = np.ascontiguousarray(rec_thresholds, dtype=np.float64)
    md = np.ascontiguousarray(max_dets, dtype=np.int64)
    # computed category-major (each category's block contiguous), returned in
    # pycocotools' axis order as transposed views
    precision = np.full((k, a, md.shape[0], t, rec.shape[0]), -1.0)
    recall = np.full((k, a, md.shape[0], t), -1.0)
    scores = np.full_like(precision, -1.0)
    _C.coco_accumulate(
        np.ascontiguousarray(dt_scores, dtype=np.float64),
        np.ascontiguousarray(dt_rank, dtype=np.int64),
        np.ascontiguousarray(dt_state, dtype=np.int8),
        np.ascontiguousarray(cat_offsets, dtype=np.int64),
        np.ascontiguousarray(npig, dtype=np.int64),
        rec,
        md,
        precision,
        recall,
        scores,
    )
    return (
        precision.transpose(3, 4, 0, 1, 2),
        recall.transpose(3, 0, 1, 2),
        scores.transpose(3, 4, 0, 1, 2),
    )


def records_fields(
    records: Sequence[dict[str, Any]],
    fields: dict[str, tuple[Any, int, Any]],
    *,
    name: str = "records",
) -> dict[str, np.ndarray]:
    """Read numeric fields of a list of dicts into arrays in one compiled pass.

    Args:
        records (list[dict]): e.g. COCO annotations.
        fields: key -> (dtype (np.float64 or np.int64), width (0 for a scalar, W for a
            list of W numbers), default (None: the key is required; a number fills
            every column)).
        name: how errors name the records.

    Returns:
        dict key -> ndarray (N,) or (N, W).

    Raises:
        TypeError: a record is not a dict or a value is not a number.
        ValueError: a required key is missing or a list has the wrong length.
    """
    for key, (dtype, _, default) in fields.items():
        number = (int,) if np.dtype(dtype) == np.int64 else (int, float)
        if default is not None and (isinstance(default, bool) or not isinstance(default, number)):
            raise TypeError(
                f"fields['{key}']: default must be None or a {np.dtype(dtype).name} number, "
                f"got {default!r}"
            )
    n = len(records)
    outs = {
        key: np.empty((n, width) if width else (n,), dtype=dtype)
        for key, (dtype, width, _) in fields.items()
    }
    _C.records_fields(
        records,
        list(fields),
        list(outs.values()),
        [default for (_, _, default) in fields.values()],
        name,
    )
    return outs
