"""Feature Pyramid Network over a bottom-up backbone."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import Conv2d, ShapeSpec, c2_xavier_fill, get_norm
from vt_modeling.backbone.backbone import Backbone
from vt_modeling.backbone.resnet import build_resnet_backbone
from vt_modeling.registries import BACKBONE_REGISTRY

__all__ = [
    "FPN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "build_resnet_fpn_backbone",
    "build_retinanet_resnet_fpn_backbone",
]


class FPN(Backbone):
    """Feature Pyramid Networks for Object Detection: pyramid features built on top
    of the feature maps of a bottom-up network."""

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: list[str],
        out_channels: int,
        norm: Any = "",
        top_block: nn.Module | None = None,
        fuse_type: str = "sum",
        square_pad: int = 0,
    ):
        """
        Args:
            bottom_up (Backbone): the bottom-up network; its outputs listed in
                ``in_features`` build the FPN levels.
            in_features (list[str]): names of the input feature maps, a contiguous list
                from high to low resolution, e.g. ["res2", "res3", "res4", "res5"].
            out_channels (int): number of channels of the output feature maps.
            norm (str): the normalization to use.
            top_block (nn.Module or None): extra operation on the last FPN output (or
                on a bottom-up feature) extending the outputs; it has attributes
                ``num_levels`` (levels it adds) and ``in_feature`` (its input, e.g. "p5").
            fuse_type (str): "sum" (default) or "avg" of the top-down and lateral features.
            square_pad (int): if > 0, inputs are padded to squares of this size.
        """
        super().__init__()
        if not isinstance(bottom_up, Backbone):
            raise TypeError(f"bottom_up: expected a Backbone, got {type(bottom_up).__name__}")
        if not in_features:
            raise ValueError("in_features: expected a non-empty list of feature names")
        if fuse_type not in ("avg", "sum"):
            raise ValueError(f"fuse_type: expected 'sum' or 'avg', got {fuse_type!r}")
        input_shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in input_shapes]
        if missing:
            raise ValueError(
                f"in_features: {missing} are not outputs of the bottom-up network ({list(input_shapes)})"
            )
        strides = [input_shapes[f].stride for f in in_features]
        _assert_strides_are_log2_contiguous(strides)

        lateral_convs, output_convs = [], []
        use_bias = norm == ""
        for in_feature, stride in zip(in_features, strides):
            lateral_conv = Conv2d(
                input_shapes[in_feature].channels,
                out_channels,
                kernel_size=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            output_conv = Conv2d(
                out_channels,
                out_channels,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            c2_xavier_fill(lateral_conv)
            c2_xavier_fill(output_conv)
            stage = int(math.log2(stride))
            self.add_module(f"fpn_lateral{stage}", lateral_conv)
            self.add_module(f"fpn_output{stage}", output_conv)
            lateral_convs.append(lateral_conv)
            output_convs.append(output_conv)
        # Top-down order: lowest resolution first.
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]
        self.top_block = top_block
        self.in_features = tuple(in_features)
        self.bottom_up = bottom_up
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if self.top_block is not None:
            last = int(math.log2(strides[-1]))
            for s in range(last, last + self.top_block.num_levels):
                self._out_feature_strides[f"p{s + 1}"] = 2 ** (s + 1)
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._size_divisibility = strides[-1]
        self._square_pad = square_pad
        self._fuse_type = fuse_type

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> dict[str, int]:
        return {"square_size": self._square_pad}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            x (Tensor[N, C, H, W]): the input images; H and W divisible by
                :attr:`size_divisibility`.

        Returns:
            dict[str->Tensor]: FPN feature maps from high to low resolution, named
            "p<stage>" where stride = 2 ** stage, e.g. ["p2", "p3", ..., "p6"].
        """
        bottom_up_features = self.bottom_up(x)
        results = []
        prev_features = self.lateral_convs[0](bottom_up_features[self.in_features[-1]])
        results.append(self.output_convs[0](prev_features))
        for idx, (lateral_conv, output_conv) in enumerate(
            zip(self.lateral_convs, self.output_convs)
        ):
            if idx == 0:
                continue
            features = bottom_up_features[self.in_features[-idx - 1]]
            top_down_features = F.interpolate(prev_features, scale_factor=2.0, mode="nearest")
            prev_features = lateral_conv(features) + top_down_features
            if self._fuse_type == "avg":
                prev_features = prev_features / 2
            results.insert(0, output_conv(prev_features))
        if self.top_block is not None:
            if self.top_block.in_feature in bottom_up_features:
                top_block_in_feature = bottom_up_features[self.top_block.in_feature]
            else:
                top_block_in_feature = results[self._out_features.index(self.top_block.in_feature)]
            results.extend(self.top_block(top_block_in_feature))
        return dict(zip(self._out_features, results))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }


def _assert_strides_are_log2_contiguous(strides: list[int]) -> None:
    for i, stride in enumerate(strides[1:], 1):
        if stride != 2 * strides[i - 1]:
            raise ValueError(f"in_features: strides {strides} are not log2 contiguous")


class LastLevelMaxPool(nn.Module):
    """Generates P6 from P5 by a stride-2 max pool (kernel 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.num_levels = 1
        self.in_feature = "p5"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


class LastLevelP6P7(nn.Module):
    """Generates P6 and P7 (RetinaNet) from C5 (or P5) with two stride-2 3x3 convs."""

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5"):
        super().__init__()
        self.num_levels = 2
        self.in_feature = in_feature
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for module in (self.p6, self.p7):
            c2_xavier_fill(module)

    def forward(self, c5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(c5)
        p7 = self.p7(F.relu(p6))
        return [p6, p7]


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_backbone(cfg: Any, input_shape: ShapeSpec) -> FPN:
    """ResNet + FPN with P6 from a max pool (Faster/Mask R-CNN)."""
    bottom_up = build_resnet_backbone(cfg, input_shape)
    return FPN(
        bottom_up=bottom_up,
        in_features=list(cfg.MODEL.FPN.IN_FEATURES),
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_retinanet_resnet_fpn_backbone(cfg: Any, input_shape: ShapeSpec) -> FPN:
    """ResNet + FPN with P6 and P7 from C5 (RetinaNet, FCOS)."""
    bottom_up = build_resnet_backbone(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    in_channels_p6p7 = bottom_up.output_shape()["res5"].channels
    return FPN(
        bottom_up=bottom_up,
        in_features=list(cfg.MODEL.FPN.IN_FEATURES),
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(in_channels_p6p7, out_channels),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
