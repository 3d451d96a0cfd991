"""Non-maximum suppression of axis-aligned and rotated boxes, optionally per category.

All four functions share one contract:

- Candidates are the boxes whose score is greater than ``score_threshold``
  (all boxes by default). They are visited by decreasing score; equal scores are
  visited by increasing index (a stable sort, like torchvision's CPU kernel), on
  CPU and CUDA alike.
- A visited box is kept unless a kept box (of the same category, for the
  ``batched_*`` functions) has IoU > ``iou_threshold`` with it.
- The result is the int64 indices of the kept boxes, sorted by decreasing score
  (ties by index), at most ``max_output`` of them; an empty input gives an empty
  result. Batched NMS is exact for any coordinates: categories are separated
  inside the kernel, not by offsetting the boxes.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from vt_ops import _C
from vt_ops._arrays import (
    TORCH,
    Backend,
    backend_of,
    check_floating,
    check_integer,
    check_same_device,
    check_shape,
    compute_dtype,
)
from vt_ops._torch_registry import on_torch, torch_ops

__all__ = ["batched_nms", "batched_nms_rotated", "nms", "nms_rotated"]

# Statuses the kernels write instead of a count (csrc/nms/nms.h).
_NON_FINITE_BOXES = -1
_NON_FINITE_SCORES = -2
# Candidates per word of the CUDA suppression bitmask.
_MASK_BITS = 64


def _check_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name}: expected a number, got NaN")
    return value


def _check_args(
    boxes: Any,
    scores: Any,
    idxs: Any | None,
    width: int,
    iou_threshold: Any,
    score_threshold: Any | None,
    max_output: Any | None,
) -> tuple[Backend, float, float, int]:
    """Validate the arguments; returns the backend and the kernel's scalar arguments."""
    backend = backend_of(boxes, "boxes")
    arrays = [(boxes, "boxes"), (scores, "scores")]
    if idxs is not None:
        arrays.append((idxs, "idxs"))
    for x, name in arrays[1:]:
        if backend_of(x, name) is not backend:
            raise TypeError(f"{name} must be an array of the same library as boxes")
    check_shape(boxes, "boxes", (None, width))
    n = int(boxes.shape[0])
    for x, name in arrays[1:]:
        if len(x.shape) != 1 or int(x.shape[0]) != n:
            raise ValueError(
                f"{name}: expected shape ({n},), one value per box, got {tuple(x.shape)}"
            )
    check_floating(backend, boxes, "boxes")
    check_floating(backend, scores, "scores")
    if idxs is not None:
        check_integer(backend, idxs, "idxs")
    check_same_device(backend, arrays)

    iou = _check_number(iou_threshold, "iou_threshold")
    if iou < 0:
        raise ValueError(f"iou_threshold: expected a non-negative number, got {iou}")
    score = (
        -math.inf if score_threshold is None else _check_number(score_threshold, "score_threshold")
    )
    if max_output is None:
        limit = -1
    elif isinstance(max_output, bool) or not isinstance(max_output, numbers.Integral):
        raise TypeError(f"max_output: expected an int or None, got {type(max_output).__name__}")
    elif max_output < 0:
        raise ValueError(f"max_output: expected a non-negative int or None, got {max_output}")
    else:
        limit = int(max_output)
    return backend, iou, score, limit


def _launch_nms(
    backend: Backend,
    boxes: Any,
    scores: Any,
    idxs: Any | None,
    rotated: bool,
    iou_threshold: float,
    score_threshold: float,
    max_output: int,
) -> Any:
    """Run the kernel on validated arrays; allocation by ``backend``."""
    work = compute_dtype(backend.dtype_name(boxes), backend.dtype_name(scores))
    b = backend.contiguous(backend.astype(boxes, work))
    s = backend.contiguous(backend.astype(scores, work))
    c = None if idxs is None else backend.contiguous(backend.astype(idxs, "int64"))
    n = int(b.shape[0])
    keep = backend.empty((n,), "int64", like=b)
    if n == 0:
        return keep
    count = backend.empty((1,), "int64", like=b)
    order = mask = removed = None
    if backend.device_str(b) != "cpu":
        blocks = -(-n // _MASK_BITS)
        order = backend.argsort_descending(s)
        mask = backend.empty((n * blocks,), "int64", like=b)
        removed = backend.empty((blocks,), "int64", like=b)
    _C.nms(
        b,
        s,
        c,
        order,
        keep,
        count,
        mask,
        removed,
        rotated,
        iou_threshold,
        score_threshold,
        max_output,
        backend.stream(b),
    )
    kept = int(count[0])
    if kept == _NON_FINITE_BOXES:
        raise ValueError("boxes: expected finite values, got NaN or infinity")
    if kept == _NON_FINITE_SCORES:
        raise ValueError("scores: expected finite values, got NaN or infinity")
    return keep[:kept]


# (op name, rotated, batched)
_OPS = (
    ("nms", False, False),
    ("batched_nms", False, True),
    ("nms_rotated", True, False),
    ("batched_nms_rotated", True, True),
)


@on_torch
def _define_torch_ops() -> None:
    import torch

    def fake(boxes: torch.Tensor, *args: Any) -> torch.Tensor:
        # The number of kept boxes depends on the data.
        size = torch.library.get_ctx().new_dynamic_size()
        return boxes.new_empty((size,), dtype=torch.int64)

    def define(name: str, rotated: bool, batched: bool) -> None:
        idxs_arg = "Tensor idxs, " if batched else ""
        schema = (
            f"(Tensor boxes, Tensor scores, {idxs_arg}float iou_threshold, "
            "float score_threshold, int max_output) -> Tensor"
        )

        def impl(boxes: torch.Tensor, scores: torch.Tensor, *args: Any) -> torch.Tensor:
            idxs = args[0] if batched else None
            return _launch_nms(TORCH, boxes, scores, idxs, rotated, *args[batched:])

        op = torch.library.custom_op(f"vt_ops::{name}", impl, mutates_args=(), schema=schema)
        op.register_fake(fake)

    for name, rotated, batched in _OPS:
        define(name, rotated, batched)


def _nms(
    boxes: Any,
    scores: Any,
    idxs: Any | None,
    iou_threshold: float,
    score_threshold: float | None,
    max_output: int | None,
    rotated: bool,
) -> Any:
    backend, iou, score, limit = _check_args(
        boxes, scores, idxs, 5 if rotated else 4, iou_threshold, score_threshold, max_output
    )
    if backend is TORCH:
        name = ("batched_" if idxs is not None else "") + ("nms_rotated" if rotated else "nms")
        args = (boxes, scores) if idxs is None else (boxes, scores, idxs)
        return getattr(torch_ops(), name)(*args, iou, score, limit)
    return _launch_nms(backend, boxes, scores, idxs, rotated, iou, score, limit)


def nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float,
    *,
    score_threshold: float | None = None,
    max_output: int | None = None,
) -> Any:
    """Performs non-maximum suppression (NMS) on the boxes according to their IoU.

    NMS iteratively removes lower scoring boxes which have an IoU greater than
    ``iou_threshold`` with another (higher scoring) kept box. Equal scores are
    visited by increasing index, on CPU and CUDA alike.

    Args:
        boxes (Array[N, 4]): boxes in (x1, y1, x2, y2) format (numpy, torch or cupy;
            float16, bfloat16, float32 or float64). A box with x2 < x1 or y2 < y1
            has zero area and suppresses nothing.
        scores (Array[N]): scores of the boxes, same array library and device.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.
        score_threshold (float, optional): only boxes with score > score_threshold
            take part (applied inside the kernel).
        max_output (int, optional): return at most this many indices (the highest
            scoring kept boxes); the kernel stops as soon as it has them.

    Returns:
        Array[K]: int64 indices of the kept boxes, sorted in decreasing order of
        scores, of the inputs' array library and device.

    Raises:
        ValueError: wrong shapes, NaN or infinite boxes or scores, a negative
            ``iou_threshold`` or ``max_output``, arrays on different devices.
        TypeError: non-array inputs, arrays of different libraries, non-floating
            boxes or scores.
    """
    return _nms(boxes, scores, None, iou_threshold, score_threshold, max_output, False)


def batched_nms(
    boxes: Any,
    scores: Any,
    idxs: Any,
    iou_threshold: float,
    *,
    score_threshold: float | None = None,
    max_output: int | None = None,
) -> Any:
    """Performs non-maximum suppression in a batched fashion.

    Each index value corresponds to a category, and NMS is not applied between
    elements of different categories. Unlike torchvision's coordinate-offset
    trick, categories are separated inside the kernel, so the result is exact
    for any coordinates (huge, negative); on CPU categories run in parallel.

    Args:
        boxes (Array[N, 4]): boxes in (x1, y1, x2, y2) format.
        scores (Array[N]): scores of the boxes.
        idxs (Array[N]): integer category of each box.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.
        score_threshold (float, optional): only boxes with score > score_threshold
            take part.
        max_output (int, optional): return at most this many indices (over all
            categories, the highest scoring kept boxes).

    Returns:
        Array[K]: int64 indices of the kept boxes, sorted in decreasing order of
        scores (ties by index).
    """
    return _nms(boxes, scores, idxs, iou_threshold, score_threshold, max_output, False)


def nms_rotated(
    boxes: Any,
    scores: Any,
    iou_threshold: float,
    *,
    score_threshold: float | None = None,
    max_output: int | None = None,
) -> Any:
    """Performs non-maximum suppression on rotated boxes according to their IoU.

    Rotated NMS iteratively removes lower scoring rotated boxes which have an
    IoU greater than ``iou_threshold`` with another (higher scoring) kept rotated
    box. The IoU is the exact polygon IoU of `box_iou_rotated`; pairs that
    cannot exceed the threshold (by their bounding boxes and areas) are rejected
    before any polygon work.

    The angle plays no other part: (5, 3, 4, 2, 90) and (5, 3, 4, 2, -90) cover
    the same region and have IoU 1, although they may be different objects
    (e.g. text read upside down); as detectron2, rotated NMS only looks at IoU.

    Args:
        boxes (Array[N, 5]): rotated boxes (x_ctr, y_ctr, width, height, angle_degrees),
            the angle counter-clockwise in image coordinates.
        scores (Array[N]): scores of the boxes.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.
        score_threshold (float, optional): only boxes with score > score_threshold
            take part.
        max_output (int, optional): return at most this many indices.

    Returns:
        Array[K]: int64 indices of the kept boxes, sorted in decreasing order of
        scores (ties by index).
    """
    return _nms(boxes, scores, None, iou_threshold, score_threshold, max_output, True)


def batched_nms_rotated(
    boxes: Any,
    scores: Any,
    idxs: Any,
    iou_threshold: float,
    *,
    score_threshold: float | None = None,
    max_output: int | None = None,
) -> Any:
    """Performs rotated non-maximum suppression in a batched fashion.

    Each index value corresponds to a category, and NMS is not applied between
    elements of different categories; see `nms_rotated` and
    `batched_nms`.

    Args:
        boxes (Array[N, 5]): rotated boxes (x_ctr, y_ctr, width, height, angle_degrees).
        scores (Array[N]): scores of the boxes.
        idxs (Array[N]): integer category of each box.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.
        score_threshold (float, optional): only boxes with score > score_threshold
            take part.
        max_output (int, optional): return at most this many indices.

    Returns:
        Array[K]: int64 indices of the kept boxes, sorted in decreasing order of
        scores (ties by index).
    """
    return _nms(boxes, scores, idxs, iou_threshold, score_threshold, max_output, True)
