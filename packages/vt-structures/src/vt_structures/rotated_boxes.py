"""Rotated boxes (cx, cy, w, h, angle in degrees), as detectron2's ``RotatedBoxes``."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

import vt_ops
from vt_structures._utils import check_index
from vt_structures.boxes import Boxes, as_box_tensor

__all__ = ["RotatedBoxes", "pairwise_iou_rotated", "scale_rotated_boxes"]


def scale_rotated_boxes(boxes: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """Rotated boxes after scaling the image by ``scale_x`` horizontally and ``scale_y`` vertically.

    Args:
        boxes (Tensor[N, 5]): (cx, cy, w, h, angle degrees).
        scale_x: horizontal factor.
        scale_y: vertical factor.

    Returns:
        Tensor[N, 5]: new boxes. With ``scale_x != scale_y`` a rotated rectangle
        becomes a parallelogram; as detectron2, the result is the rectangle whose
        sides are the images of the original sides' directions, which is exact
        for uniform scaling and for boxes at multiples of 90 degrees.
    """
    out = boxes.clone()
    out[:, 0] *= scale_x
    out[:, 1] *= scale_y
    theta = boxes[:, 4] * (math.pi / 180.0)
    c, s = torch.cos(theta), torch.sin(theta)
    # In image coordinates (y down) the side along w points to (cos, -sin), the side
    # along h to (sin, cos).
    out[:, 2] *= torch.sqrt((scale_x * c) ** 2 + (scale_y * s) ** 2)
    out[:, 3] *= torch.sqrt((scale_x * s) ** 2 + (scale_y * c) ** 2)
    out[:, 4] = torch.atan2(scale_x * s, scale_y * c) * (180.0 / math.pi)
    return out


class RotatedBoxes(Boxes):
    """A list of N rotated boxes stored as Tensor[N, 5] in (x_center, y_center, width, height, angle).

    The angle is in degrees, counter-clockwise in image coordinates (y pointing
    down): a box with angle 90 has its width along the image's vertical axis.
    """

    def __init__(self, tensor: torch.Tensor | np.ndarray | Sequence[Sequence[float]]) -> None:
        """
        Args:
            tensor (Tensor[N, 5]): rotated boxes; integer input becomes float32.
        """
        self.tensor = as_box_tensor(tensor, 5, "tensor")

    def clone(self) -> RotatedBoxes:
        return RotatedBoxes(self.tensor.clone())

    def to(self, *args: Any, **kwargs: Any) -> RotatedBoxes:
        return RotatedBoxes(self.tensor.to(*args, **kwargs))

    def area(self) -> torch.Tensor:
        """Tensor[N]: width * height of every box."""
        return self.tensor[:, 2] * self.tensor[:, 3]

    def normalize_angles(self) -> None:
        """Bring every angle into [-180, 180) degrees, in place."""
        self.tensor[:, 4] = (self.tensor[:, 4] + 180.0) % 360.0 - 180.0

    def clip(self, box_size: tuple[int, int], clip_angle_threshold: float = 1.0) -> None:
        """Clip nearly horizontal boxes to the image of ``box_size`` (height, width), in place.

        Only boxes with ``|angle| <= clip_angle_threshold`` (after
        :meth:`normalize_angles`) are clipped, as detectron2: clipping a truly
        rotated box to the image is not a rotated box any more. The clipped box
        keeps its angle; its width and height shrink to the clipped extent.
        """
        h, w = box_size
        self.normalize_angles()
        idx = torch.where(torch.abs(self.tensor[:, 4]) <= clip_angle_threshold)[0]
        t = self.tensor[idx]
        x1 = (t[:, 0] - t[:, 2] / 2.0).clamp(min=0, max=w)
        y1 = (t[:, 1] - t[:, 3] / 2.0).clamp(min=0, max=h)
        x2 = (t[:, 0] + t[:, 2] / 2.0).clamp(min=0, max=w)
        y2 = (t[:, 1] + t[:, 3] / 2.0).clamp(min=0, max=h)
        clipped = torch.stack(
            [
                (x1 + x2) / 2.0,
                (y1 + y2) / 2.0,
                torch.min(t[:, 2], x2 - x1),
                torch.min(t[:, 3], y2 - y1),
                t[:, 4],
            ],
            dim=1,
        )
        self.tensor = self.tensor.index_copy(0, idx, clipped)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """Tensor[N] (bool): boxes whose width and height both exceed ``threshold``."""
        return (self.tensor[:, 2] > threshold) & (self.tensor[:, 3] > threshold)

    def __getitem__(self, item: Any) -> RotatedBoxes:
        """Boxes selected by an int (a RotatedBoxes of one box), slice, bool mask or index tensor."""
        check_index(item, len(self), "RotatedBoxes")
        if isinstance(item, int):
            return RotatedBoxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise ValueError(f"Indexing on RotatedBoxes with {item} failed to return a matrix!")
        return RotatedBoxes(b)

    def __repr__(self) -> str:
        return "RotatedBoxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """Tensor[N] (bool): boxes whose four corners lie inside the image (height, width).

        A box may exceed the image by ``boundary_threshold`` pixels on each side.
        """
        height, width = box_size
        cnt_x, cnt_y = self.tensor[..., 0], self.tensor[..., 1]
        half_w, half_h = self.tensor[..., 2] / 2.0, self.tensor[..., 3] / 2.0
        a = self.tensor[..., 4] * (math.pi / 180.0)
        c, s = torch.abs(torch.cos(a)), torch.abs(torch.sin(a))
        max_rect_dx = c * half_w + s * half_h
        max_rect_dy = c * half_h + s * half_w
        return (
            (cnt_x - max_rect_dx >= -boundary_threshold)
            & (cnt_y - max_rect_dy >= -boundary_threshold)
            & (cnt_x + max_rect_dx < width + boundary_threshold)
            & (cnt_y + max_rect_dy < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """Tensor[N, 2]: the box centers (x, y)."""
        return self.tensor[:, :2]

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale the boxes in place as the image is scaled (see :func:`scale_rotated_boxes`)."""
        self.tensor = scale_rotated_boxes(self.tensor, scale_x, scale_y)

    @classmethod
    def cat(cls, boxes_list: Sequence[RotatedBoxes]) -> RotatedBoxes:  # type: ignore[override]
        """Concatenate a list of RotatedBoxes (an empty list gives an empty RotatedBoxes)."""
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeError(
                f"boxes_list: expected a list of RotatedBoxes, got {type(boxes_list).__name__}"
            )
        if len(boxes_list) == 0:
            return cls(torch.empty(0, 5))
        for b in boxes_list:
            if type(b) is not cls:
                raise TypeError(
                    f"boxes_list: every element must be a {cls.__name__}, got {type(b).__name__}"
                )
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield the boxes as Tensor[5]."""
        yield from self.tensor


def pairwise_iou_rotated(boxes1: RotatedBoxes, boxes2: RotatedBoxes) -> torch.Tensor:
    """Intersection over union of every pair of rotated boxes (vt_ops.box_iou_rotated kernel).

    Args:
        boxes1 (RotatedBoxes): N boxes.
        boxes2 (RotatedBoxes): M boxes.

    Returns:
        Tensor[N, M]: IoU of the rotated rectangles.
    """
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, RotatedBoxes):
            raise TypeError(f"{name}: expected RotatedBoxes, got {type(b).__name__}")
    return vt_ops.box_iou_rotated(boxes1.tensor, boxes2.tensor)
