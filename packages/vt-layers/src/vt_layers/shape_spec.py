"""ShapeSpec: channels, size and stride of a feature map."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ShapeSpec"]


@dataclass
class ShapeSpec:
    """A simple structure that contains basic shape specification about a tensor.

    It is often used as the auxiliary inputs/outputs of models, to complement the lack
    of shape inference ability among pytorch modules.

    Attributes:
        channels: number of channels.
        height: height in pixels.
        width: width in pixels.
        stride: stride relative to the input image.
    """

    channels: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int | None = None
