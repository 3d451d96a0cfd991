"""Building blocks of CNN backbones and heads: CNNBlockBase, DepthwiseSeparableConv2d."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vt_layers.batch_norm import FrozenBatchNorm2d, get_norm
from vt_layers.weight_init import c2_msra_fill
from vt_layers.wrappers import Conv2d

__all__ = ["CNNBlockBase", "DepthwiseSeparableConv2d"]

NormArg = str | Callable[[int], nn.Module] | None
Activation = Callable[[torch.Tensor], torch.Tensor] | None


class CNNBlockBase(nn.Module):
    """A CNN block is assumed to have input channels, output channels and a stride.

    The input and output of ``forward()`` must be NCHW tensors. The method can perform
    arbitrary computation but must match the given channels and stride specification.

    Attributes:
        in_channels (int): number of input channels.
        out_channels (int): number of output channels.
        stride (int): the stride of the block (output size = input size / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        """The ``__init__`` method of any subclass should also contain these arguments.

        Args:
            in_channels: number of input channels.
            out_channels: number of output channels.
            stride: the stride of the block.
        """
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> CNNBlockBase:
        """Make this block not trainable.

        Sets ``requires_grad=False`` on all parameters and converts every BatchNorm layer
        to :class:`FrozenBatchNorm2d`.

        Returns:
            the block itself.
        """
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


class DepthwiseSeparableConv2d(nn.Module):
    """A kxk depthwise convolution + a 1x1 convolution.

    In "Xception: Deep Learning with Depthwise Separable Convolutions", norm & activation
    are applied on the second conv. "MobileNets: Efficient Convolutional Neural Networks
    for Mobile Vision Applications" uses norm & activation on both convs.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: kernel size of the depthwise convolution.
        padding: padding of the depthwise convolution.
        dilation: dilation of the depthwise convolution.
        norm1: normalization of the depthwise conv (see :func:`get_norm`).
        activation1: activation of the depthwise conv.
        norm2: normalization of the pointwise conv.
        activation2: activation of the pointwise conv.

    A conv followed by a norm has no bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        dilation: int = 1,
        *,
        norm1: NormArg = None,
        activation1: Activation = None,
        norm2: NormArg = None,
        activation2: Activation = None,
    ) -> None:
        super().__init__()
        self.depthwise = Conv2d(
            in_channels,
            in_channels,
            kernel_size=kernel_size,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            bias=not norm1,
            norm=get_norm(norm1, in_channels),
            activation=activation1,
        )
        self.pointwise = Conv2d(
            in_channels,
            out_channels,
            kernel_size=1,
            bias=not norm2,
            norm=get_norm(norm2, out_channels),
            activation=activation2,
        )
        c2_msra_fill(self.depthwise)
        c2_msra_fill(self.pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))
