"""Axis-aligned boxes: :class:`BoxMode` conversions and the :class:`Boxes` container."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import Any

import numpy as np
import torch

import vt_ops
from vt_structures._utils import check_index, check_tensor

__all__ = [
    "BoxMode",
    "Boxes",
    "pairwise_intersection",
    "pairwise_iou",
    "pairwise_ioa",
    "pairwise_point_box_distance",
    "matched_pairwise_iou",
]

_RawBoxType = list[float] | tuple[float, ...] | torch.Tensor | np.ndarray


class BoxMode(IntEnum):
    """How a box is encoded, as detectron2's ``BoxMode``.

    ``XYXY_ABS``: (x0, y0, x1, y1) in absolute floating point coordinates.
    ``XYWH_ABS``: (x0, y0, w, h). ``XYWHA_ABS``: (xc, yc, w, h, a), a rotated
    box whose angle ``a`` is in degrees, counter-clockwise. The relative modes
    (coordinates in [0, 1] of the image size) are declared for compatibility and
    rejected by :meth:`convert`, which has no image size to scale by.
    """

    XYXY_ABS = 0
    XYWH_ABS = 1
    XYXY_REL = 2
    XYWH_REL = 3
    XYWHA_ABS = 4

    @staticmethod
    def convert(box: _RawBoxType, from_mode: BoxMode, to_mode: BoxMode) -> _RawBoxType:
        """Convert boxes from ``from_mode`` to ``to_mode``.

        Args:
            box: a single box (list, tuple or 1-D array/tensor of 4 or 5 numbers)
                or k boxes (Tensor[k, 4 or 5] or ndarray[k, 4 or 5]).
            from_mode: the mode of ``box``.
            to_mode: the wanted mode.

        Returns:
            The converted box(es), of the same type as ``box`` (a list stays a
            list, a numpy array stays an array, a tensor a new tensor).

        Raises:
            ValueError: for a relative mode, or a box whose width does not fit
                ``from_mode`` (5 numbers for XYWHA_ABS, 4 otherwise).
            TypeError: for a box that is not a list, tuple, array or tensor.
        """
        modes = []
        for name, mode in (("from_mode", from_mode), ("to_mode", to_mode)):
            try:
                mode = BoxMode(mode)
            except ValueError:
                raise ValueError(f"{name}: expected a BoxMode, got {mode!r}") from None
            modes.append(mode)
            if mode in (BoxMode.XYXY_REL, BoxMode.XYWH_REL):
                raise ValueError(f"{name}: relative box modes are not supported, got {mode.name}")
        from_mode, to_mode = modes
        width = 5 if from_mode == BoxMode.XYWHA_ABS else 4
        original_type = type(box)
        is_numpy = isinstance(box, np.ndarray)
        single_box = isinstance(box, (list, tuple))
        if single_box:
            if len(box) != width:
                raise ValueError(
                    f"box: a {from_mode.name} box has {width} numbers, got a {len(box)}-sequence"
                )
            arr = torch.tensor(box, dtype=torch.float64)[None, :]
        elif is_numpy:
            arr = torch.from_numpy(np.array(box))  # a copy, with positive strides
        elif isinstance(box, torch.Tensor):
            arr = box.clone()
        else:
            raise TypeError(
                f"box: expected a list, tuple, numpy array or tensor, got {type(box).__name__}"
            )
        squeeze = arr.dim() == 1 and not single_box
        if squeeze:
            arr = arr[None, :]
        if arr.dim() != 2 or arr.shape[1] != width:
            raise ValueError(
                f"box: {from_mode.name} boxes must have shape (k, {width}), got {tuple(arr.shape)}"
            )
        if from_mode != to_mode:
            arr = _convert_tensor(arr, from_mode, to_mode)
        if squeeze:
            arr = arr[0]
        if single_box:
            return original_type(arr.flatten().tolist())
        if is_numpy:
            return arr.numpy()
        return arr


def _convert_tensor(arr: torch.Tensor, from_mode: BoxMode, to_mode: BoxMode) -> torch.Tensor:
    """Convert k boxes between absolute modes through XYXY_ABS (and XYWHA_ABS for angles)."""
    dtype = arr.dtype
    work = arr.double()
    if from_mode == BoxMode.XYWHA_ABS:
        if to_mode == BoxMode.XYXY_ABS:
            return _xywha_to_xyxy(work).to(dtype)
        # XYWH_ABS: the enclosing axis-aligned box.
        return _xyxy_to_xywh(_xywha_to_xyxy(work)).to(dtype)
    xyxy = _xywh_to_xyxy(work) if from_mode == BoxMode.XYWH_ABS else work
    if to_mode == BoxMode.XYXY_ABS:
        out = xyxy
    elif to_mode == BoxMode.XYWH_ABS:
        out = _xyxy_to_xywh(xyxy)
    else:  # XYWHA_ABS, angle 0
        centers = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        out = torch.cat([centers, xyxy[:, 2:] - xyxy[:, :2], xyxy.new_zeros(len(xyxy), 1)], 1)
    return out.to(dtype)


def _xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:4]], dim=1)


def _xyxy_to_xywh(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[:, :2], b[:, 2:4] - b[:, :2]], dim=1)


def _xywha_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """The axis-aligned box enclosing each rotated box."""
    theta = b[:, 4] * (math.pi / 180.0)
    c, s = theta.cos().abs(), theta.sin().abs()
    new_w = c * b[:, 2] + s * b[:, 3]
    new_h = c * b[:, 3] + s * b[:, 2]
    x0 = b[:, 0] - new_w / 2
    y0 = b[:, 1] - new_h / 2
    return torch.stack([x0, y0, x0 + new_w, y0 + new_h], dim=1)


def as_box_tensor(tensor: Any, width: int, name: str) -> torch.Tensor:
    """A float32 (or the input's floating dtype) Tensor[N, width] from ``tensor``."""
    if not isinstance(tensor, torch.Tensor):
        if isinstance(tensor, (np.ndarray, list, tuple)):
            tensor = torch.as_tensor(np.asarray(tensor, dtype=np.float32))
        else:
            raise TypeError(
                f"{name}: expected a tensor, array or list of boxes, got {type(tensor).__name__}"
            )
    elif not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    # Shape first: no guard on a data-dependent size (torch.compile) for (N, width) input.
    if (tensor.dim() != 2 or tensor.size(-1) != width) and tensor.numel() == 0:
        # reshape keeps the result tied to the input (tracing).
        tensor = tensor.reshape((-1, width)).to(dtype=tensor.dtype)
    if tensor.dim() != 2 or tensor.size(-1) != width:
        raise ValueError(
            f"{name}: expected a tensor of shape (N, {width}), got {tuple(tensor.shape)}"
        )
    return tensor


class Boxes:
    """A list of N axis-aligned boxes stored as Tensor[N, 4] in (x1, y1, x2, y2).

    Supports the common box methods (``area``, ``clip``, ``nonempty``, ...) and
    behaves like a tensor for indexing, ``to(device)`` and ``len``.

    Attributes:
        tensor (Tensor[N, 4]): the boxes, floating point.
    """

    def __init__(self, tensor: torch.Tensor | np.ndarray | Sequence[Sequence[float]]) -> None:
        """
        Args:
            tensor (Tensor[N, 4]): boxes in XYXY_ABS; integer input becomes float32.
        """
        self.tensor = as_box_tensor(tensor, 4, "tensor")

    def clone(self) -> Boxes:
        """A deep copy."""
        return Boxes(self.tensor.clone())

    def to(self, *args: Any, **kwargs: Any) -> Boxes:
        """``Tensor.to`` applied to the boxes."""
        return Boxes(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        """Tensor[N]: the area of every box."""
        box = self.tensor
        return (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])

    def clip(self, box_size: tuple[int, int]) -> None:
        """Clip the boxes in place to the image of ``box_size`` (height, width).

        x coordinates are clamped to [0, width] and y to [0, height].

        Raises:
            ValueError: when a box has a non-finite coordinate (a RuntimeError from an
                in-graph assertion under ``torch.compile``/``torch.export``).
        """
        finite = torch.isfinite(self.tensor).all()
        if torch.compiler.is_compiling():
            # An in-graph check instead of a data-dependent branch (a graph break).
            torch._assert_async(finite, "Box tensor contains infinite or NaN!")
        elif not finite:
            raise ValueError("Box tensor contains infinite or NaN!")
        h, w = box_size
        x1 = self.tensor[:, 0].clamp(min=0, max=w)
        y1 = self.tensor[:, 1].clamp(min=0, max=h)
        x2 = self.tensor[:, 2].clamp(min=0, max=w)
        y2 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x1, y1, x2, y2), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """Tensor[N] (bool): boxes whose width and height both exceed ``threshold``."""
        box = self.tensor
        widths = box[:, 2] - box[:, 0]
        heights = box[:, 3] - box[:, 1]
        return (widths > threshold) & (heights > threshold)

    def __getitem__(self, item: Any) -> Boxes:
        """Boxes selected by an int (a Boxes of one box), slice, bool mask or index tensor."""
        check_index(item, len(self), "Boxes")
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise ValueError(f"Indexing on Boxes with {item} failed to return a matrix!")
        return Boxes(b)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return "Boxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """Tensor[N] (bool): boxes entirely inside the image of ``box_size`` (height, width).

        A box may exceed the image by ``boundary_threshold`` pixels on each side.
        """
        height, width = box_size
        t = self.tensor
        return (
            (t[..., 0] >= -boundary_threshold)
            & (t[..., 1] >= -boundary_threshold)
            & (t[..., 2] < width + boundary_threshold)
            & (t[..., 3] < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """Tensor[N, 2]: the box centers (x, y)."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale the boxes in place: x coordinates by ``scale_x``, y by ``scale_y``."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    @classmethod
    def cat(cls, boxes_list: Sequence[Boxes]) -> Boxes:
        """Concatenate a list of Boxes into one (an empty list gives an empty Boxes)."""
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeError(
                f"boxes_list: expected a list of Boxes, got {type(boxes_list).__name__}"
            )
        if len(boxes_list) == 0:
            return cls(torch.empty(0, 4))
        for b in boxes_list:
            if type(b) is not cls:
                raise TypeError(
                    f"boxes_list: every element must be a {cls.__name__}, got {type(b).__name__}"
                )
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield the boxes as Tensor[4]."""
        yield from self.tensor


def _check_boxes(boxes: Any, name: str) -> Boxes:
    if not isinstance(boxes, Boxes):
        raise TypeError(f"{name}: expected Boxes, got {type(boxes).__name__}")
    return boxes


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection area of every pair of boxes.

    Args:
        boxes1 (Boxes): N boxes.
        boxes2 (Boxes): M boxes.

    Returns:
        Tensor[N, M]: intersection areas.
    """
    b1 = _check_boxes(boxes1, "boxes1").tensor
    b2 = _check_boxes(boxes2, "boxes2").tensor
    width_height = torch.min(b1[:, None, 2:], b2[:, 2:]) - torch.max(b1[:, None, :2], b2[:, :2])
    width_height.clamp_(min=0)
    return width_height.prod(dim=2)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection over union of every pair of boxes (vt_ops.box_iou kernel).

    Args:
        boxes1 (Boxes): N boxes.
        boxes2 (Boxes): M boxes.

    Returns:
        Tensor[N, M]: IoU; 0 for pairs that do not intersect, including empty boxes.
    """
    return vt_ops.box_iou(
        _check_boxes(boxes1, "boxes1").tensor, _check_boxes(boxes2, "boxes2").tensor
    )


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection over the area of ``boxes2`` for every pair (vt_ops.box_ioa kernel).

    Args:
        boxes1 (Boxes): N boxes.
        boxes2 (Boxes): M boxes, whose area divides the intersection.

    Returns:
        Tensor[N, M]: IoA; 0 where the boxes do not intersect.
    """
    return vt_ops.box_ioa(
        _check_boxes(boxes1, "boxes1").tensor, _check_boxes(boxes2, "boxes2").tensor
    )


def pairwise_point_box_distance(points: torch.Tensor, boxes: Boxes) -> torch.Tensor:
    """Distances from every point to the four sides of every box.

    Args:
        points (Tensor[N, 2]): points (x, y).
        boxes (Boxes): M boxes.

    Returns:
        Tensor[N, M, 4]: (left, top, right, bottom) distances, all positive
        exactly when the point lies inside the box.
    """
    points = check_tensor(points, "points", (None, 2))
    x, y = points.unsqueeze(dim=2).unbind(dim=1)  # (N, 1)
    x0, y0, x1, y1 = _check_boxes(boxes, "boxes").tensor.unsqueeze(dim=0).unbind(dim=2)  # (1, M)
    return torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)


def matched_pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """IoU of the i-th box of ``boxes1`` with the i-th box of ``boxes2``.

    Args:
        boxes1 (Boxes): N boxes.
        boxes2 (Boxes): the same number of boxes.

    Returns:
        Tensor[N]: IoU per pair (0 where both boxes are empty).

    Raises:
        ValueError: when the two lengths differ.
    """
    b1 = _check_boxes(boxes1, "boxes1")
    b2 = _check_boxes(boxes2, "boxes2")
    if len(b1) != len(b2):
        raise ValueError(
            f"boxes1 and boxes2 must have the same length, got {len(b1)} and {len(b2)}"
        )
    area1, area2 = b1.area(), b2.area()
    lt = torch.max(b1.tensor[:, :2], b2.tensor[:, :2])
    rb = torch.min(b1.tensor[:, 2:], b2.tensor[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = area1 + area2 - inter
    return torch.where(inter > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)
