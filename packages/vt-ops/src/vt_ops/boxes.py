"""Pairwise overlap of axis-aligned and rotated boxes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vt_ops import _C
from vt_ops._arrays import (
    TORCH,
    Backend,
    backend_of,
    check_floating,
    check_same_device,
    check_shape,
    compute_dtype,
    result_dtype,
)
from vt_ops._torch_registry import on_torch, torch_ops

__all__ = ["box_ioa", "box_iou", "box_iou_rotated"]

_IOU, _IOA = 0, 1


def _check_box_pair(boxes1: Any, boxes2: Any, width: int) -> Backend:
    """Validate two box arrays (N x width, M x width); returns their backend."""
    backend = backend_of(boxes1, "boxes1")
    if backend_of(boxes2, "boxes2") is not backend:
        raise TypeError("boxes1 and boxes2 must be arrays of the same library")
    check_shape(boxes1, "boxes1", (None, width))
    check_shape(boxes2, "boxes2", (None, width))
    check_floating(backend, boxes1, "boxes1")
    check_floating(backend, boxes2, "boxes2")
    check_same_device(backend, [(boxes1, "boxes1"), (boxes2, "boxes2")])
    return backend


def _launch_pairwise(
    backend: Backend, boxes1: Any, boxes2: Any, kernel: Callable[[Any, Any, Any, int], None]
) -> Any:
    """Run ``kernel(boxes1, boxes2, out, stream)`` on validated arrays; allocation by ``backend``."""
    dtypes = (backend.dtype_name(boxes1), backend.dtype_name(boxes2))
    work = compute_dtype(*dtypes)
    b1 = backend.contiguous(backend.astype(boxes1, work))
    b2 = backend.contiguous(backend.astype(boxes2, work))
    out = backend.empty((b1.shape[0], b2.shape[0]), work, like=b1)
    if out.shape[0] and out.shape[1]:
        kernel(b1, b2, out, backend.stream(b1))
    return backend.astype(out, result_dtype(*dtypes))


def _launch_box_overlap(backend: Backend, boxes1: Any, boxes2: Any, mode: int) -> Any:
    return _launch_pairwise(
        backend,
        boxes1,
        boxes2,
        lambda b1, b2, out, stream: _C.box_overlap(b1, b2, out, mode, stream),
    )


def _launch_box_iou_rotated(backend: Backend, boxes1: Any, boxes2: Any) -> Any:
    return _launch_pairwise(backend, boxes1, boxes2, _C.box_iou_rotated)


@on_torch
def _define_torch_ops() -> None:
    import torch

    @torch.library.custom_op(
        "vt_ops::box_overlap",
        mutates_args=(),
        schema="(Tensor boxes1, Tensor boxes2, int mode) -> Tensor",
    )
    def box_overlap(boxes1: torch.Tensor, boxes2: torch.Tensor, mode: int) -> torch.Tensor:
        return _launch_box_overlap(TORCH, boxes1, boxes2, mode)

    @box_overlap.register_fake
    def _(boxes1: torch.Tensor, boxes2: torch.Tensor, mode: int) -> torch.Tensor:
        dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
        return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]), dtype=dtype)

    @torch.library.custom_op(
        "vt_ops::box_iou_rotated",
        mutates_args=(),
        schema="(Tensor boxes1, Tensor boxes2) -> Tensor",
    )
    def box_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return _launch_box_iou_rotated(TORCH, boxes1, boxes2)

    @box_iou_rotated.register_fake
    def _(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
        return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]), dtype=dtype)


def _box_overlap(boxes1: Any, boxes2: Any, mode: int) -> Any:
    backend = _check_box_pair(boxes1, boxes2, 4)
    if backend is TORCH:
        return torch_ops().box_overlap(boxes1, boxes2, mode)
    return _launch_box_overlap(backend, boxes1, boxes2, mode)


def box_iou(boxes1: Any, boxes2: Any) -> Any:
    """Pairwise intersection-over-union of two sets of boxes.

    Args:
        boxes1 (Array[N, 4]): boxes in (x1, y1, x2, y2) format, numpy, torch or cupy.
        boxes2 (Array[M, 4]): boxes of the same array library, dtype family and device.

    Returns:
        Array[N, M]: IoU of every pair, of the inputs' kind, device and promoted
        floating dtype (float16/bfloat16 inputs are computed in float32).

    A box with x2 < x1 or y2 < y1 has zero area. Pairs that do not intersect
    have IoU 0, including two empty boxes (where torchvision divides 0 by 0),
    as detectron2's ``pairwise_iou``. A NaN coordinate gives NaN for its row or
    column. Not differentiable.
    """
    return _box_overlap(boxes1, boxes2, _IOU)


def box_ioa(boxes1: Any, boxes2: Any) -> Any:
    """Pairwise intersection over the area of ``boxes2`` (detectron2's ``pairwise_ioa``).

    Args:
        boxes1 (Array[N, 4]): boxes in (x1, y1, x2, y2) format.
        boxes2 (Array[M, 4]): the boxes whose area divides the intersection.

    Returns:
        Array[N, M]: intersection / area(boxes2[j]); 0 where the boxes do not
        intersect. Same conventions as `box_iou`.
    """
    return _box_overlap(boxes1, boxes2, _IOA)


def box_iou_rotated(boxes1: Any, boxes2: Any) -> Any:
    """Pairwise intersection-over-union of two sets of rotated boxes.

    Args:
        boxes1 (Array[N, 5]): rotated boxes (x_ctr, y_ctr, width, height, angle_degrees),
            the angle counter-clockwise in image coordinates (y pointing down), as
            detectron2's ``RotatedBoxes``; numpy, torch or cupy.
        boxes2 (Array[M, 5]): rotated boxes of the same array library and device.

    Returns:
        Array[N, M]: IoU of every pair, of the inputs' kind, device and promoted
        floating dtype (float16/bfloat16 inputs are computed in float32).

    The intersection is the exact area of the intersection polygon (convex
    clipping), computed around the midpoint of the two centres for precision;
    pairs whose bounding boxes are disjoint are rejected before any polygon work.
    At angle 0 the result equals `box_iou` of the corresponding
    (x1, y1, x2, y2) boxes. A box with width or height <= 0 has zero area and
    IoU 0 with every box; a NaN parameter gives NaN for its row or column. Not
    differentiable.
    """
    backend = _check_box_pair(boxes1, boxes2, 5)
    if backend is TORCH:
        return torch_ops().box_iou_rotated(boxes1, boxes2)
    return _launch_box_iou_rotated(backend, boxes1, boxes2)
