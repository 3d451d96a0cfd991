"""Deformable convolution modules (DCN v1 and v2) over vt-ops kernels, CPU and CUDA."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.utils import _pair

import vt_ops

__all__ = ["DeformConv", "ModulatedDeformConv"]


class _DeformConvBase(nn.Module):
    """Arguments, parameters and forward shared by DeformConv and ModulatedDeformConv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int],
        padding: int | tuple[int, int],
        dilation: int | tuple[int, int],
        groups: int,
        deformable_groups: int,
        bias: bool,
        norm: nn.Module | None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if groups < 1 or deformable_groups < 1:
            raise ValueError(f"{name}: groups and deformable_groups must be >= 1")
        if in_channels % groups:
            raise ValueError(
                f"{name}: in_channels {in_channels} is not divisible by groups {groups}"
            )
        if out_channels % groups:
            raise ValueError(
                f"{name}: out_channels {out_channels} is not divisible by groups {groups}"
            )
        if in_channels % deformable_groups:
            raise ValueError(
                f"{name}: in_channels {in_channels} is not divisible by "
                f"deformable_groups {deformable_groups}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.with_bias = bias
        self.norm = norm
        self.activation = activation
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def _output_hw(self, x: torch.Tensor) -> list[int]:
        return [
            (i + 2 * p - (d * (k - 1) + 1)) // s + 1
            for i, p, d, k, s in zip(
                x.shape[-2:], self.padding, self.dilation, self.kernel_size, self.stride
            )
        ]

    def _forward(
        self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        if x.numel() == 0:
            # An empty output of the right shape, still connected to the graph.
            shape = [x.shape[0], self.out_channels, *self._output_hw(x)]
            x = x.new_zeros(shape) + 0.0 * (x.sum() + self.weight.sum())
        else:
            x = vt_ops.deform_conv2d(
                x,
                offset,
                self.weight,
                self.bias,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=self.groups,
                deformable_groups=self.deformable_groups,
                mask=mask,
            )
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, groups={self.groups}, "
            f"deformable_groups={self.deformable_groups}, bias={self.with_bias}"
        )


class DeformConv(_DeformConvBase):
    """Deformable convolution from "Deformable Convolutional Networks".

    Arguments are similar to :class:`Conv2d`. Extra arguments:

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: (kh, kw) or an int.
        stride: convolution stride.
        padding: zero padding.
        dilation: kernel dilation.
        groups: number of blocked connections from input to output channels.
        deformable_groups (int): number of groups used in deformable convolution; the
            input channels are split into that many groups, each with its own offsets.
        bias: add a learnable bias (detectron2 has none; the default is False).
        norm (nn.Module, optional): a normalization layer.
        activation (callable(Tensor) -> Tensor): a callable activation function.

    ``forward(x, offset)``: ``x`` (Tensor[N, C_in, H, W]); ``offset``
    (Tensor[N, 2 * deformable_groups * kh * kw, H_out, W_out]), for each deformable
    group and kernel point (row-major) the (dy, dx) displacement of its sampling point.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = False,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            deformable_groups,
            bias,
            norm,
            activation,
        )

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Args:
            x (Tensor[N, C_in, H, W]): input features.
            offset (Tensor[N, 2 * deformable_groups * kh * kw, H_out, W_out]): offsets.

        Returns:
            Tensor[N, C_out, H_out, W_out].
        """
        return self._forward(x, offset, None)


class ModulatedDeformConv(_DeformConvBase):
    """Modulated deformable convolution from "Deformable ConvNets v2: More Deformable, Better Results".

    Arguments are similar to :class:`Conv2d`. Extra arguments:

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: (kh, kw) or an int.
        stride: convolution stride.
        padding: zero padding.
        dilation: kernel dilation.
        groups: number of blocked connections from input to output channels.
        deformable_groups (int): number of groups used in deformable convolution.
        bias: add a learnable bias (initialized to 0).
        norm (nn.Module, optional): a normalization layer.
        activation (callable(Tensor) -> Tensor): a callable activation function.

    ``forward(x, offset, mask)``: as :class:`DeformConv`, plus ``mask``
    (Tensor[N, deformable_groups * kh * kw, H_out, W_out]), the modulation of each
    sampling point (usually a sigmoid output).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = True,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            deformable_groups,
            bias,
            norm,
            activation,
        )

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args:
            x (Tensor[N, C_in, H, W]): input features.
            offset (Tensor[N, 2 * deformable_groups * kh * kw, H_out, W_out]): offsets.
            mask (Tensor[N, deformable_groups * kh * kw, H_out, W_out]): modulation.

        Returns:
            Tensor[N, C_out, H_out, W_out].
        """
        return self._forward(x, offset, mask)
