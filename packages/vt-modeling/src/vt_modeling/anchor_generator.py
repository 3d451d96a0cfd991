"""Anchor generators: dense anchors for every location of every feature map."""

from __future__ import annotations

import collections.abc
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vt_layers import ShapeSpec, move_device_like
from vt_modeling.config import configurable
from vt_modeling.registries import ANCHOR_GENERATOR_REGISTRY
from vt_structures import Boxes, RotatedBoxes

__all__ = ["DefaultAnchorGenerator", "RotatedAnchorGenerator"]


class BufferList(nn.Module):
    """Like nn.ParameterList, but for (non-persistent) buffers."""

    def __init__(self, buffers: Sequence[torch.Tensor]):
        super().__init__()
        for i, buffer in enumerate(buffers):
            self.register_buffer(str(i), buffer, persistent=False)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())


def _create_grid_offsets(size: Sequence[int], stride: int, offset: float, target: torch.Tensor):
    grid_height, grid_width = size
    shifts_x = move_device_like(
        torch.arange(offset * stride, grid_width * stride, step=stride, dtype=torch.float32), target
    )
    shifts_y = move_device_like(
        torch.arange(offset * stride, grid_height * stride, step=stride, dtype=torch.float32),
        target,
    )
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    return shift_x.reshape(-1), shift_y.reshape(-1)


def _broadcast_params(params: Any, num_features: int, name: str) -> list[Any]:
    """One list of values per feature map: a flat list is used for every feature map,
    a list of one list is repeated, otherwise one list per feature map is required."""
    if not isinstance(params, collections.abc.Sequence) or isinstance(params, str):
        raise TypeError(f"{name} in anchor generator has to be a list! Got {params!r}.")
    if not len(params):
        raise ValueError(f"{name} in anchor generator cannot be empty!")
    if not isinstance(params[0], collections.abc.Sequence):  # list[float]
        return [params] * num_features
    if len(params) == 1:
        return list(params) * num_features
    if len(params) != num_features:
        raise ValueError(
            f"Got {name} of length {len(params)} in anchor generator, but the number of input features is {num_features}!"
        )
    return list(params)


@ANCHOR_GENERATOR_REGISTRY.register()
class DefaultAnchorGenerator(nn.Module):
    """Compute anchors in the standard way of "Faster R-CNN"."""

    box_dim: int = 4

    @configurable
    def __init__(
        self,
        *,
        sizes: Sequence[Any],
        aspect_ratios: Sequence[Any],
        strides: Sequence[int],
        offset: float = 0.5,
    ):
        """
        Args:
            sizes (list[list[float]] or list[float]): sizes[i] are the anchor sizes
                (sqrt of area, absolute pixels) of the i-th feature map; a flat list
                applies to every feature map.
            aspect_ratios (list[list[float]] or list[float]): anchor height / width,
                broadcast like ``sizes``.
            strides (list[int]): stride of each input feature.
            offset (float): relative offset between the center of the first anchor and
                the top-left corner of the image, in [0, 1): 0.0 as in detectron2's
                default config, 0.5 to center anchors in their cells.
        """
        super().__init__()
        self.strides = list(strides)
        self.num_features = len(self.strides)
        sizes = _broadcast_params(sizes, self.num_features, "sizes")
        aspect_ratios = _broadcast_params(aspect_ratios, self.num_features, "aspect_ratios")
        self.cell_anchors = BufferList(
            [self.generate_cell_anchors(s, a).float() for s, a in zip(sizes, aspect_ratios)]
        )
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"offset: expected a value in [0, 1), got {offset}")
        self.offset = offset

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        return {
            "sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "aspect_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
            "strides": [x.stride for x in input_shape],
            "offset": cfg.MODEL.ANCHOR_GENERATOR.OFFSET,
        }

    @property
    def num_cell_anchors(self) -> list[int]:
        """Alias of :attr:`num_anchors`."""
        return self.num_anchors

    @property
    def num_anchors(self) -> list[int]:
        """
        Returns:
            list[int]: number of anchors at every pixel location of each feature map,
            e.g. 3 for sizes (32,) and aspect ratios (0.5, 1, 2).
        """
        return [len(cell_anchors) for cell_anchors in self.cell_anchors]

    def _grid_anchors(self, grid_sizes: list[Sequence[int]]) -> list[torch.Tensor]:
        anchors = []
        for size, stride, base_anchors in zip(grid_sizes, self.strides, self.cell_anchors):
            shift_x, shift_y = _create_grid_offsets(size, stride, self.offset, base_anchors)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts.view(-1, 1, 4) + base_anchors.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def generate_cell_anchors(
        self,
        sizes: Sequence[float] = (32, 64, 128, 256, 512),
        aspect_ratios: Sequence[float] = (0.5, 1, 2),
    ) -> torch.Tensor:
        """Anchors of every size and aspect ratio, centered on (0, 0), as XYXY boxes.

        Returns:
            Tensor[len(sizes) * len(aspect_ratios), 4]
        """
        anchors = []
        for size in sizes:
            area = size**2.0
            for aspect_ratio in aspect_ratios:
                # s * s = w * h and a = h / w, so w = sqrt(s * s / a), h = a * w
                w = math.sqrt(area / aspect_ratio)
                h = aspect_ratio * w
                anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        return torch.tensor(anchors)

    def forward(self, features: list[torch.Tensor]) -> list[Boxes]:
        """
        Args:
            features (list[Tensor]): feature maps on which to generate anchors.

        Returns:
            list[Boxes]: one Boxes per feature map, of all anchors at all locations
            (location-major: the anchors of one location are consecutive).
        """
        grid_sizes = [feature_map.shape[-2:] for feature_map in features]
        return [Boxes(x) for x in self._grid_anchors(grid_sizes)]


@ANCHOR_GENERATOR_REGISTRY.register()
class RotatedAnchorGenerator(nn.Module):
    """Compute rotated anchors (cx, cy, w, h, angle) as in "Arbitrary-Oriented Scene
    Text Detection via Rotation Proposals"."""

    box_dim: int = 5

    @configurable
    def __init__(
        self,
        *,
        sizes: Sequence[Any],
        aspect_ratios: Sequence[Any],
        strides: Sequence[int],
        angles: Sequence[Any],
        offset: float = 0.5,
    ):
        """
        Args:
            sizes, aspect_ratios, strides, offset: as :class:`DefaultAnchorGenerator`.
            angles (list[list[float]] or list[float]): anchor angles in degrees,
                broadcast like ``sizes``.
        """
        super().__init__()
        self.strides = list(strides)
        self.num_features = len(self.strides)
        sizes = _broadcast_params(sizes, self.num_features, "sizes")
        aspect_ratios = _broadcast_params(aspect_ratios, self.num_features, "aspect_ratios")
        angles = _broadcast_params(angles, self.num_features, "angles")
        self.cell_anchors = BufferList(
            [
                self.generate_cell_anchors(s, a, r).float()
                for s, a, r in zip(sizes, aspect_ratios, angles)
            ]
        )
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"offset: expected a value in [0, 1), got {offset}")
        self.offset = offset

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        return {
            "sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "aspect_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
            "strides": [x.stride for x in input_shape],
            "offset": cfg.MODEL.ANCHOR_GENERATOR.OFFSET,
            "angles": cfg.MODEL.ANCHOR_GENERATOR.ANGLES,
        }

    @property
    def num_cell_anchors(self) -> list[int]:
        return self.num_anchors

    @property
    def num_anchors(self) -> list[int]:
        """Number of anchors at every location of each feature map (sizes x ratios x angles)."""
        return [len(cell_anchors) for cell_anchors in self.cell_anchors]

    def _grid_anchors(self, grid_sizes: list[Sequence[int]]) -> list[torch.Tensor]:
        anchors = []
        for size, stride, base_anchors in zip(grid_sizes, self.strides, self.cell_anchors):
            shift_x, shift_y = _create_grid_offsets(size, stride, self.offset, base_anchors)
            zeros = torch.zeros_like(shift_x)
            shifts = torch.stack((shift_x, shift_y, zeros, zeros, zeros), dim=1)
            anchors.append((shifts.view(-1, 1, 5) + base_anchors.view(1, -1, 5)).reshape(-1, 5))
        return anchors

    def generate_cell_anchors(
        self,
        sizes: Sequence[float] = (32, 64, 128, 256, 512),
        aspect_ratios: Sequence[float] = (0.5, 1, 2),
        angles: Sequence[float] = (-90, -60, -30, 0, 30, 60, 90),
    ) -> torch.Tensor:
        """Rotated anchors centered on (0, 0) for every size, aspect ratio and angle.

        Returns:
            Tensor[len(sizes) * len(aspect_ratios) * len(angles), 5]
        """
        anchors = []
        for size in sizes:
            area = size**2.0
            for aspect_ratio in aspect_ratios:
                w = math.sqrt(area / aspect_ratio)
                h = aspect_ratio * w
                anchors.extend([0, 0, w, h, a] for a in angles)
        return torch.tensor(anchors)

    def forward(self, features: list[torch.Tensor]) -> list[RotatedBoxes]:
        """
        Args:
            features (list[Tensor]): feature maps on which to generate anchors.

        Returns:
            list[RotatedBoxes]: one RotatedBoxes per feature map.
        """
        grid_sizes = [feature_map.shape[-2:] for feature_map in features]
        return [RotatedBoxes(x) for x in self._grid_anchors(grid_sizes)]
