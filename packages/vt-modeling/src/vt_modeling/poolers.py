"""Multi-level ROI pooling (ROIAlign, ROIAlignV2, ROIPool, ROIAlignRotated)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

import vt_ops
from vt_layers import ROIAlign, ROIAlignRotated, nonzero_tuple

__all__ = ["ROIPooler", "assign_boxes_to_levels", "convert_boxes_to_pooler_format"]


def assign_boxes_to_levels(
    box_lists: list[Any],
    min_level: int,
    max_level: int,
    canonical_box_size: int,
    canonical_level: int,
) -> torch.Tensor:
    """Map each box to a feature level by its size (Eqn. 1 of the FPN paper).

    Args:
        box_lists (list[Boxes] | list[RotatedBoxes]): boxes of each image.
        min_level, max_level (int): smallest and largest level index.
        canonical_box_size (int): a box of this sqrt(area) maps to ``canonical_level``.
        canonical_level (int): the level of canonical boxes.

    Returns:
        Tensor[M] int64: the level of each box, from 0 (min_level) to max_level - min_level.
    """
    box_sizes = torch.sqrt(torch.cat([boxes.area() for boxes in box_lists]))
    level_assignments = torch.floor(
        canonical_level + torch.log2(box_sizes / canonical_box_size + 1e-8)
    )
    level_assignments = torch.clamp(level_assignments, min=min_level, max=max_level)
    return level_assignments.to(torch.int64) - min_level


def convert_boxes_to_pooler_format(box_lists: list[Any]) -> torch.Tensor:
    """Concatenate per-image boxes into the pooler's Kx5 (Kx6 rotated) format, the batch
    index in the first column."""
    boxes = torch.cat([x.tensor for x in box_lists], dim=0)
    # torch.full rather than repeat_interleave with tensor repeats, whose output shape
    # depends on data (a graph break under torch.compile).
    indices = torch.cat(
        [
            torch.full((len(x), 1), i, dtype=boxes.dtype, device=boxes.device)
            for i, x in enumerate(box_lists)
        ]
    )
    return torch.cat([indices, boxes], dim=1)


class _ROIPool(nn.Module):
    """Max ROI pooling over vt_ops.roi_pool."""

    def __init__(self, output_size: tuple[int, int], spatial_scale: float):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return vt_ops.roi_pool(input, rois, self.output_size, self.spatial_scale)


class ROIPooler(nn.Module):
    """Region of interest feature map pooler that supports pooling from one or more
    feature maps."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        scales: list[float],
        sampling_ratio: int,
        pooler_type: str,
        canonical_box_size: int = 224,
        canonical_level: int = 4,
    ):
        """
        Args:
            output_size (int, tuple[int] or list[int]): output size of the pooled region.
            scales (list[float]): the scale of each input feature map, 1/stride, from high
                to low resolution; consecutive scales differ by a factor of 2.
            sampling_ratio (int): the sampling_ratio parameter of ROIAlign.
            pooler_type (str): "ROIAlign", "ROIAlignV2" (aligned=True), "ROIPool" or
                "ROIAlignRotated".
            canonical_box_size (int): a canonically sized box (224 in the FPN paper),
                pooled from ``canonical_level``.
            canonical_level (int): the feature level a canonical box maps to (4 in the
                FPN paper: res4 / p4).
        """
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if len(output_size) != 2 or not all(isinstance(s, int) for s in output_size):
            raise ValueError(f"output_size: expected an int or two ints, got {output_size!r}")
        self.output_size = tuple(output_size)
        if pooler_type == "ROIAlign":
            poolers = [
                ROIAlign(self.output_size, scale, sampling_ratio, aligned=False) for scale in scales
            ]
        elif pooler_type == "ROIAlignV2":
            poolers = [
                ROIAlign(self.output_size, scale, sampling_ratio, aligned=True) for scale in scales
            ]
        elif pooler_type == "ROIPool":
            poolers = [_ROIPool(self.output_size, scale) for scale in scales]
        elif pooler_type == "ROIAlignRotated":
            poolers = [ROIAlignRotated(self.output_size, scale, sampling_ratio) for scale in scales]
        else:
            raise ValueError(f"Unknown pooler type: {pooler_type}")
        self.level_poolers = nn.ModuleList(poolers)

        min_level = -math.log2(scales[0])
        max_level = -math.log2(scales[-1])
        if not (
            math.isclose(min_level, round(min_level)) and math.isclose(max_level, round(max_level))
        ):
            raise ValueError(
                f"scales: feature map strides must be powers of 2, got scales {scales}"
            )
        self.min_level = round(min_level)
        self.max_level = round(max_level)
        if len(scales) != self.max_level - self.min_level + 1:
            raise ValueError(f"scales: expected consecutive powers of 2, got {scales}")
        if not 0 <= self.min_level <= self.max_level:
            raise ValueError(
                f"scales: expected values <= 1 from high to low resolution, got {scales}"
            )
        if canonical_box_size <= 0:
            raise ValueError(
                f"canonical_box_size: expected a positive value, got {canonical_box_size}"
            )
        self.canonical_level = canonical_level
        self.canonical_box_size = canonical_box_size

    def forward(self, x: list[torch.Tensor], box_lists: list[Any]) -> torch.Tensor:
        """
        Args:
            x (list[Tensor]): feature maps of NCHW shape, from high to low resolution,
                one per scale given to the constructor.
            box_lists (list[Boxes] | list[RotatedBoxes]): N boxes lists, one per image.

        Returns:
            Tensor[M, C, output_size[0], output_size[1]]: M is the total number of boxes,
            in the order of ``box_lists``.
        """
        if not isinstance(x, list) or not isinstance(box_lists, list):
            raise TypeError("ROIPooler takes a list of feature maps and a list of box lists")
        if len(x) != len(self.level_poolers):
            raise ValueError(f"x: expected {len(self.level_poolers)} feature maps, got {len(x)}")
        if len(box_lists) != x[0].size(0):
            raise ValueError(
                f"box_lists: expected {x[0].size(0)} lists (the batch size), got {len(box_lists)}"
            )
        if len(box_lists) == 0:
            return x[0].new_zeros((0, x[0].shape[1], *self.output_size))

        pooler_fmt_boxes = convert_boxes_to_pooler_format(box_lists)
        if len(self.level_poolers) == 1:
            return self.level_poolers[0](x[0], pooler_fmt_boxes)

        level_assignments = assign_boxes_to_levels(
            box_lists, self.min_level, self.max_level, self.canonical_box_size, self.canonical_level
        )
        output = x[0].new_zeros((pooler_fmt_boxes.shape[0], x[0].shape[1], *self.output_size))
        if torch.compiler.is_compiling():
            # Static shapes, no data-dependent indexing (a graph break): each level pools
            # every box, those of the other levels replaced by empty boxes (cheap to pool),
            # and keeps the rows of its own boxes. Same values as the loop below.
            for level, pooler in enumerate(self.level_poolers):
                mask = (level_assignments == level)[:, None]
                rois = torch.cat(
                    [pooler_fmt_boxes[:, :1], torch.where(mask, pooler_fmt_boxes[:, 1:], 0.0)],
                    dim=1,
                )
                output = torch.where(mask[:, :, None, None], pooler(x[level], rois), output)
            return output
        for level, pooler in enumerate(self.level_poolers):
            inds = nonzero_tuple(level_assignments == level)[0]
            output.index_put_((inds,), pooler(x[level], pooler_fmt_boxes[inds]))
        return output
