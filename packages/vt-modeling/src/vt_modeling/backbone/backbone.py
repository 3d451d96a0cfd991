"""The Backbone interface."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from vt_layers import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """Abstract base class for network backbones.

    Subclasses set ``_out_features`` (names), ``_out_feature_channels`` and
    ``_out_feature_strides`` (name -> int) or override :meth:`output_shape`.
    """

    _out_features: list[str]
    _out_feature_channels: dict[str, int]
    _out_feature_strides: dict[str, int]

    def __init__(self) -> None:
        super().__init__()

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Returns:
            dict[str->Tensor]: mapping from feature name (e.g., "res2") to tensor.
        """

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be divisible by this (0: no constraint).

        Typically non-zero for encoder/decoder networks with lateral connections
        (e.g. FPN), whose bottom-up and top-down feature maps must match in size.
        """
        return 0

    @property
    def padding_constraints(self) -> dict[str, int]:
        """Padding the input needs: ``size_divisibility`` and/or ``square_size``
        (pad to a square of that size); empty when ``size_divisibility`` says all."""
        return {}

    def output_shape(self) -> dict[str, ShapeSpec]:
        """
        Returns:
            dict[str->ShapeSpec]: channels and stride of every output feature.
        """
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }
