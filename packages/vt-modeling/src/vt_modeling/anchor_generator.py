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


class _GridAnchorGenerator(nn.Module):
    """Cell anchors (one set per feature map) repeated at every location of a grid."""

    box_dim: int

    def _init_grid(
        self, strides: Sequence[int], cell_anchors: list[torch.Tensor], offset: float
    ) -> None:
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"offset: expected a value in [0, 1), got {offset}")
        self.strides = list(strides)
        self.num_features = len(self.strides)
        self.cell_anchors = BufferList([a.float() for a in cell_anchors])
        self.offset = offset

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

    def _shifts(self, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
        """Per location, the vector added to a cell anchor (box_dim values)."""
        raise NotImplementedError

    def _grid_anchors(self, grid_sizes: list[Sequence[int]]) -> list[torch.Tensor]:
        anchors = []
        d = self.box_dim
        for size, stride, base_anchors in zip(grid_sizes, self.strides, self.cell_anchors):
            shift_x, shift_y = _create_grid_offsets(size, stride, self.offset, base_anchors)
            shifts = self._shifts(shift_x, shift_y)
            anchors.append((shifts.view(-1, 1, d) + base_anchors.view(1, -1, d)).reshape(-1, d))
        return anchors


@ANCHOR_GENERATOR_REGISTRY.register()
class DefaultAnchorGenerator(_GridAnchorGenerator):
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
        n = len(strides)
        sizes = _broadcast_params(sizes, n, "sizes")
        aspect_ratios = _broadcast_params(aspect_ratios, n, "aspect_ratios")
        self._init_grid(
            strides,
            [self.generate_cell_anchors(s, a) for s, a in zip(sizes, aspect_ratios)],
            offset,
        )

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        return {
            "sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "aspect_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
            "strides": [x.stride for x in input_shape],
            "offset": cfg.MODEL.ANCHOR_GENERATOR.OFFSET,
        }

    def _shifts(self, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
        return torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)

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
        for w, h in _anchor_sizes(sizes, aspect_ratios):
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
        return [Boxes(x) for x in self._grid_anchors([f.shape[-2:] for f in features])]


@ANCHOR_GENERATOR_REGISTRY.register()
class RotatedAnchorGenerator(_GridAnchorGenerator):
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
            sizes (list[list[float]] or list[float]): as :class:`DefaultAnchorGenerator`.
            aspect_ratios (list[list[float]] or list[float]): as :class:`DefaultAnchorGenerator`.
            strides (list[int]): stride of each input feature.
            offset (float): as :class:`DefaultAnchorGenerator`.
            angles (list[list[float]] or list[float]): anchor angles in degrees,
                broadcast like ``sizes``.
        """
        super().__init__()
        n = len(strides)
        sizes = _broadcast_params(sizes, n, "sizes")
        aspect_ratios = _broadcast_params(aspect_ratios, n, "aspect_ratios")
        angles = _broadcast_params(angles, n, "angles")
        cells = [
            self.generate_cell_anchors(s, a, r) for s, a, r in zip(sizes, aspect_ratios, angles)
        ]
        self._init_grid(strides, cells, offset)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        return {
            **DefaultAnchorGenerator.from_config(cfg, input_shape),
            "angles": cfg.MODEL.ANCHOR_GENERATOR.ANGLES,
        }

    def _shifts(self, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros_like(shift_x)
        return torch.stack((shift_x, shift_y, zeros, zeros, zeros), dim=1)

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
        return torch.tensor(
            [[0, 0, w, h, a] for w, h in _anchor_sizes(sizes, aspect_ratios) for a in angles]
        )

    def forward(self, features: list[torch.Tensor]) -> list[RotatedBoxes]:
        """
        Args:
            features (list[Tensor]): feature maps on which to generate anchors.

        Returns:
            list[RotatedBoxes]: one RotatedBoxes per feature map.
        """
        return [RotatedBoxes(x) for x in self._grid_anchors([f.shape[-2:] for f in features])]


def _anchor_sizes(
    sizes: Sequence[float], aspect_ratios: Sequence[float]
) -> list[tuple[float, float]]:
    """(w, h) of an anchor of each size and aspect ratio: s * s = w * h and a = h / w."""
    out = []
    for size in sizes:
        area = size**2.0
        for aspect_ratio in aspect_ratios:
            w = math.sqrt(area / aspect_ratio)
            out.append((w, aspect_ratio * w))
    return out
