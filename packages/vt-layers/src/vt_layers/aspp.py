"""Atrous Spatial Pyramid Pooling (DeepLabV3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from copy import deepcopy

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers.batch_norm import get_norm
from vt_layers.blocks import DepthwiseSeparableConv2d
from vt_layers.weight_init import c2_xavier_fill
from vt_layers.wrappers import Conv2d

__all__ = ["ASPP"]


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (ASPP).

    Five branches (a 1x1 conv, three dilated 3x3 convs and image pooling followed by a
    1x1 conv) are concatenated and projected to ``out_channels`` by a 1x1 conv.

    Args:
        in_channels (int): number of input channels for ASPP.
        out_channels (int): number of output channels.
        dilations (list): a list of 3 dilations in ASPP.
        norm (str or callable): normalization for all conv layers. See
            :func:`get_norm` for supported format. norm is applied to all conv layers
            except the conv following global average pooling. Convs followed by a norm
            have no bias.
        activation (callable): activation function (each conv gets its own deep copy).
        pool_kernel_size (tuple, list): the average pooling size (kh, kw) for image
            pooling layer in ASPP. If set to None, it always performs global average
            pooling. If not None, it must be divisible by the shape of inputs in
            forward(). It is recommended to use a fixed input feature size in training,
            and set this option to match this size, so that it performs global average
            pooling in training, and the size of the pooling window stays consistent in
            inference.
        dropout (float): apply dropout on the output of ASPP. It is used in the official
            DeepLab implementation with a rate of 0.1.
        use_depthwise_separable_conv (bool): use DepthwiseSeparableConv2d for 3x3 convs
            in ASPP, proposed in "Encoder-Decoder with Atrous Separable Convolution for
            Semantic Image Segmentation".
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int],
        *,
        norm: str | Callable[[int], nn.Module] | None,
        activation: Callable[[torch.Tensor], torch.Tensor],
        pool_kernel_size: Sequence[int] | None = None,
        dropout: float = 0.0,
        use_depthwise_separable_conv: bool = False,
    ) -> None:
        super().__init__()
        if len(dilations) != 3:
            raise ValueError(f"ASPP: expected 3 dilations, got {len(dilations)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"ASPP: dropout must be in [0, 1), got {dropout}")
        if pool_kernel_size is not None:
            pool_kernel_size = tuple(int(k) for k in pool_kernel_size)
            if len(pool_kernel_size) != 2:
                raise ValueError(f"ASPP: pool_kernel_size must be (kh, kw), got {pool_kernel_size}")
        self.pool_kernel_size = pool_kernel_size
        self.dropout = dropout
        use_bias = not norm

        self.convs = nn.ModuleList()
        self.convs.append(
            Conv2d(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
                activation=deepcopy(activation),
            )
        )
        c2_xavier_fill(self.convs[-1])
        for dilation in dilations:
            if use_depthwise_separable_conv:
                self.convs.append(
                    DepthwiseSeparableConv2d(
                        in_channels,
                        out_channels,
                        kernel_size=3,
                        padding=dilation,
                        dilation=dilation,
                        norm1=norm,
                        activation1=deepcopy(activation),
                        norm2=norm,
                        activation2=deepcopy(activation),
                    )
                )
            else:
                self.convs.append(
                    Conv2d(
                        in_channels,
                        out_channels,
                        kernel_size=3,
                        padding=dilation,
                        dilation=dilation,
                        bias=use_bias,
                        norm=get_norm(norm, out_channels),
                        activation=deepcopy(activation),
                    )
                )
                c2_xavier_fill(self.convs[-1])
        # No norm after image pooling: the spatial resolution is 1x1 there.
        pool = (
            nn.AdaptiveAvgPool2d(1)
            if pool_kernel_size is None
            else nn.AvgPool2d(kernel_size=pool_kernel_size, stride=1)
        )
        image_pooling = nn.Sequential(
            pool, Conv2d(in_channels, out_channels, 1, bias=True, activation=deepcopy(activation))
        )
        c2_xavier_fill(image_pooling[1])
        self.convs.append(image_pooling)

        self.project = Conv2d(
            5 * out_channels,
            out_channels,
            kernel_size=1,
            bias=use_bias,
            norm=get_norm(norm, out_channels),
            activation=deepcopy(activation),
        )
        c2_xavier_fill(self.project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x (Tensor[N, in_channels, H, W]): input features.

        Returns:
            Tensor[N, out_channels, H, W].
        """
        size = x.shape[-2:]
        if self.pool_kernel_size is not None and (
            size[0] % self.pool_kernel_size[0] or size[1] % self.pool_kernel_size[1]
        ):
            raise ValueError(
                "`pool_kernel_size` must be divisible by the shape of inputs. "
                f"Input size: {tuple(size)} `pool_kernel_size`: {self.pool_kernel_size}"
            )
        res = [conv(x) for conv in self.convs]
        res[-1] = F.interpolate(res[-1], size=size, mode="bilinear", align_corners=False)
        out = self.project(torch.cat(res, dim=1))
        if self.dropout > 0:
            out = F.dropout(out, self.dropout, training=self.training)
        return out
