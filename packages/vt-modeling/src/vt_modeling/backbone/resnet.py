"""ResNet and ResNeXt backbones (detectron2 layout: state_dict keys match)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import (
    CNNBlockBase,
    Conv2d,
    DeformConv,
    ModulatedDeformConv,
    ShapeSpec,
    c2_msra_fill,
    cpu_channels_last,
    get_norm,
)
from vt_modeling.backbone.backbone import Backbone
from vt_modeling.registries import BACKBONE_REGISTRY

__all__ = [
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "ResNet",
    "ResNetBlockBase",
    "build_resnet_backbone",
    "make_stage",
]

ResNetBlockBase = CNNBlockBase

_BLOCKS_PER_STAGE = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


def _shortcut(in_channels: int, out_channels: int, stride: int, norm: Any) -> Conv2d | None:
    if in_channels == out_channels:
        return None
    return Conv2d(
        in_channels,
        out_channels,
        kernel_size=1,
        stride=stride,
        bias=False,
        norm=get_norm(norm, out_channels),
    )


class BasicBlock(CNNBlockBase):
    """The basic residual block of ResNet-18 and ResNet-34: two 3x3 convolutions."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm: Any = "BN"):
        """
        Args:
            in_channels (int): number of input channels.
            out_channels (int): number of output channels.
            stride (int): stride of the first conv.
            norm (str or callable): normalization for all conv layers; see :func:`vt_layers.get_norm`.
        """
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels,
            out_channels,
            3,
            stride=1,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = self.conv2(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class BottleneckBlock(CNNBlockBase):
    """The bottleneck residual block of ResNet-50 and deeper: 1x1, 3x3, 1x1 convolutions."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: Any = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ):
        """
        Args:
            bottleneck_channels (int): number of output channels of the 3x3 "bottleneck" conv.
            num_groups (int): groups of the 3x3 conv (ResNeXt).
            norm (str or callable): normalization for all conv layers.
            stride_in_1x1 (bool): put the stride in the first 1x1 conv (MSRA ResNet)
                instead of the 3x3 conv (torchvision ResNet).
            dilation (int): dilation of the 3x3 conv.
        """
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            kernel_size=1,
            stride=stride_1x1,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv2 = Conv2d(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            bias=False,
            groups=num_groups,
            dilation=dilation,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels,
            out_channels,
            kernel_size=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class DeformBottleneckBlock(BottleneckBlock):
    """A bottleneck block whose 3x3 conv is a deformable convolution (v1, or v2 with
    ``deform_modulated``); offsets (and masks) come from a plain 3x3 conv initialised to 0."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: Any = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
        deform_modulated: bool = False,
        deform_num_groups: int = 1,
    ):
        """
        Args:
            deform_modulated (bool): deformable convolution v2 (with a mask).
            deform_num_groups (int): number of deformable groups (offset groups).
            Others as :class:`BottleneckBlock`.
        """
        super().__init__(
            in_channels,
            out_channels,
            bottleneck_channels=bottleneck_channels,
            stride=stride,
            num_groups=num_groups,
            norm=norm,
            stride_in_1x1=stride_in_1x1,
            dilation=dilation,
        )
        self.deform_modulated = deform_modulated
        stride_3x3 = 1 if stride_in_1x1 else stride
        deform_conv_op = ModulatedDeformConv if deform_modulated else DeformConv
        offset_channels = 27 if deform_modulated else 18  # (2 offsets [+ 1 mask]) x 3 x 3
        self.conv2_offset = Conv2d(
            bottleneck_channels,
            offset_channels * deform_num_groups,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
        )
        # Replaces the plain 3x3 conv of the bottleneck (same attribute name: same state_dict keys).
        self.conv2 = deform_conv_op(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            bias=False,
            groups=num_groups,
            dilation=dilation,
            deformable_groups=deform_num_groups,
            norm=get_norm(norm, bottleneck_channels),
        )
        c2_msra_fill(self.conv2)
        nn.init.constant_(self.conv2_offset.weight, 0)
        nn.init.constant_(self.conv2_offset.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        if self.deform_modulated:
            offset_x, offset_y, mask = torch.chunk(self.conv2_offset(out), 3, dim=1)
            offset = torch.cat((offset_x, offset_y), dim=1)
            out = self.conv2(out, offset, mask.sigmoid())
        else:
            out = self.conv2(out, self.conv2_offset(out))
        out = F.relu_(out)
        out = self.conv3(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class BasicStem(CNNBlockBase):
    """The standard ResNet stem: a 7x7 conv with stride 2 and a 3x3 max pool with stride 2."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm: Any = "BN"):
        super().__init__(in_channels, out_channels, 4)
        self.in_channels = in_channels
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            kernel_size=7,
            stride=2,
            padding=3,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        c2_msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class ResNet(Backbone):
    """Deep Residual Learning for Image Recognition (and ResNeXt with ``num_groups``)."""

    def __init__(
        self,
        stem: nn.Module,
        stages: list[list[CNNBlockBase]],
        num_classes: int | None = None,
        out_features: list[str] | None = None,
        freeze_at: int = 0,
    ):
        """
        Args:
            stem (nn.Module): a stem module (with ``stride`` and ``out_channels``).
            stages (list[list[CNNBlockBase]]): several (typically 4) stages, each a list of blocks.
            num_classes (None or int): if not None, add a linear classifier ("linear").
            out_features (list[str]): names of the outputs of forward: "stem", "res2", ...,
                "linear". None returns the output of the last layer.
            freeze_at (int): number of stages at the beginning to freeze; see :meth:`freeze`.
        """
        super().__init__()
        self.stem = stem
        self.num_classes = num_classes
        current_stride = self.stem.stride
        self._out_feature_strides = {"stem": current_stride}
        self._out_feature_channels = {"stem": self.stem.out_channels}

        if out_features is not None:
            # Skip the stages that no requested output needs.
            num_stages = max(
                {"res2": 1, "res3": 2, "res4": 3, "res5": 4}.get(f, 0) for f in out_features
            )
            stages = stages[:num_stages]
        stage_names, self.stages = [], []
        name = "stem"
        curr_channels = self.stem.out_channels
        for i, blocks in enumerate(stages):
            if not blocks:
                raise ValueError(f"stages[{i}]: expected at least one block")
            for block in blocks:
                if not isinstance(block, CNNBlockBase):
                    raise TypeError(
                        f"stages[{i}]: expected CNNBlockBase blocks, got {type(block).__name__}"
                    )
            name = f"res{i + 2}"
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            stage_names.append(name)
            self.stages.append(stage)
            current_stride = int(current_stride * np.prod([b.stride for b in blocks]))
            self._out_feature_strides[name] = current_stride
            self._out_feature_channels[name] = curr_channels = blocks[-1].out_channels
        self.stage_names = tuple(stage_names)

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.linear = nn.Linear(curr_channels, num_classes)
            # Sec 5.1 in "Accurate, Large Minibatch SGD": 0.01 std for the classifier.
            nn.init.normal_(self.linear.weight, std=0.01)
            name = "linear"

        self._out_features = list(out_features) if out_features is not None else [name]
        children = [n for n, _ in self.named_children()]
        for out_feature in self._out_features:
            if out_feature not in children:
                raise ValueError(
                    f"out_features: '{out_feature}' is not one of {', '.join(children)}"
                )
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            x: Tensor of shape (N, C, H, W).

        Returns:
            dict[str->Tensor]: names and the corresponding features.
        """
        if x.dim() != 4:
            raise ValueError(f"ResNet takes an input of shape (N, C, H, W), got {tuple(x.shape)}")
        outputs = {}
        x = self.stem(cpu_channels_last(x))
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if name in self._out_features:
                outputs[name] = x
        if self.num_classes is not None:
            x = torch.flatten(self.avgpool(x), 1)
            x = self.linear(x)
            if "linear" in self._out_features:
                outputs["linear"] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
            if name != "linear"
        }

    def freeze(self, freeze_at: int = 0) -> ResNet:
        """Freeze the first several stages (parameters stop training, BatchNorm becomes
        FrozenBatchNorm2d).

        Args:
            freeze_at (int): number of stages to freeze: 1 freezes the stem, 2 the stem
                and res2, etc.

        Returns:
            nn.Module: this ResNet itself.
        """
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, stage in enumerate(self.stages, start=2):
            if freeze_at >= idx:
                for block in stage.children():
                    block.freeze()
        return self

    @staticmethod
    def make_stage(
        block_class: type[CNNBlockBase],
        num_blocks: int,
        *,
        in_channels: int,
        out_channels: int,
        **kwargs: Any,
    ) -> list[CNNBlockBase]:
        """Create a list of blocks of the same type that forms one ResNet stage.

        Args:
            block_class (type): a subclass of CNNBlockBase; a block must not change the
                spatial resolution unless its stride != 1.
            num_blocks (int): number of blocks in this stage.
            in_channels (int): input channels of the entire stage.
            out_channels (int): output channels of every block in the stage.
            kwargs: other arguments of ``block_class``. An argument named "xx_per_block" is
                a list with one value per block, passed as "xx"; other arguments are
                passed to every block.

        Returns:
            list[CNNBlockBase]: a list of block modules.

        Example::

            stage = ResNet.make_stage(
                BottleneckBlock, 3, in_channels=16, out_channels=64,
                bottleneck_channels=16, num_groups=1,
                stride_per_block=[2, 1, 1],
            )
        """
        blocks = []
        for i in range(num_blocks):
            curr_kwargs = {}
            for k, v in kwargs.items():
                if k.endswith("_per_block"):
                    if len(v) != num_blocks:
                        raise ValueError(
                            f"{k}: expected {num_blocks} values, one per block, got {len(v)}"
                        )
                    newk = k[: -len("_per_block")]
                    if newk in kwargs:
                        raise ValueError(f"Cannot call make_stage with both {k} and {newk}!")
                    curr_kwargs[newk] = v[i]
                else:
                    curr_kwargs[k] = v
            blocks.append(
                block_class(in_channels=in_channels, out_channels=out_channels, **curr_kwargs)
            )
            in_channels = out_channels
        return blocks

    @staticmethod
    def make_default_stages(
        depth: int, block_class: type[CNNBlockBase] | None = None, **kwargs: Any
    ) -> list[list[CNNBlockBase]]:
        """Create the stages of a ResNet of a pre-defined depth (18, 34, 50, 101 or 152).

        Args:
            depth (int): depth of ResNet.
            block_class (type): the CNN block class; must accept ``bottleneck_channels``
                for depth >= 50. Default: BasicBlock below 50, BottleneckBlock otherwise.
            kwargs: other arguments for :meth:`make_stage`; must not contain stride and
                channels, which are predefined for each depth.

        Returns:
            list[list[CNNBlockBase]]: modules in all stages.
        """
        if depth not in _BLOCKS_PER_STAGE:
            raise ValueError(f"depth: expected one of {sorted(_BLOCKS_PER_STAGE)}, got {depth}")
        num_blocks_per_stage = _BLOCKS_PER_STAGE[depth]
        if block_class is None:
            block_class = BasicBlock if depth < 50 else BottleneckBlock
        if depth < 50:
            in_channels, out_channels = [64, 64, 128, 256], [64, 128, 256, 512]
        else:
            in_channels, out_channels = [64, 256, 512, 1024], [256, 512, 1024, 2048]
        stages = []
        for n, s, i, o in zip(num_blocks_per_stage, [1, 2, 2, 2], in_channels, out_channels):
            if depth >= 50:
                kwargs["bottleneck_channels"] = o // 4
            stages.append(
                ResNet.make_stage(
                    block_class=block_class,
                    num_blocks=n,
                    stride_per_block=[s] + [1] * (n - 1),
                    in_channels=i,
                    out_channels=o,
                    **kwargs,
                )
            )
        return stages


def make_stage(*args: Any, **kwargs: Any) -> list[CNNBlockBase]:
    """Deprecated alias of :meth:`ResNet.make_stage`."""
    return ResNet.make_stage(*args, **kwargs)


@BACKBONE_REGISTRY.register()
def build_resnet_backbone(cfg: Any, input_shape: ShapeSpec) -> ResNet:
    """Create a ResNet instance from ``cfg.MODEL.RESNETS``."""
    r = cfg.MODEL.RESNETS
    norm = r.NORM
    stem = BasicStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=norm)
    depth = r.DEPTH
    if depth not in _BLOCKS_PER_STAGE:
        raise ValueError(
            f"MODEL.RESNETS.DEPTH: expected one of {sorted(_BLOCKS_PER_STAGE)}, got {depth}"
        )
    num_groups = r.NUM_GROUPS
    bottleneck_channels = num_groups * r.WIDTH_PER_GROUP
    in_channels = r.STEM_OUT_CHANNELS
    out_channels = r.RES2_OUT_CHANNELS
    if r.RES5_DILATION not in (1, 2):
        raise ValueError(f"MODEL.RESNETS.RES5_DILATION: expected 1 or 2, got {r.RES5_DILATION}")
    if depth in (18, 34):
        if out_channels != 64:
            raise ValueError("Must set MODEL.RESNETS.RES2_OUT_CHANNELS = 64 for R18/R34")
        if any(r.DEFORM_ON_PER_STAGE):
            raise ValueError("MODEL.RESNETS.DEFORM_ON_PER_STAGE unsupported for R18/R34")
        if r.RES5_DILATION != 1 or num_groups != 1:
            raise ValueError("MODEL.RESNETS.RES5_DILATION and NUM_GROUPS must be 1 for R18/R34")

    num_blocks_per_stage = _BLOCKS_PER_STAGE[depth]
    stages = []
    for idx, stage_idx in enumerate(range(2, 6)):
        dilation = r.RES5_DILATION if stage_idx == 5 else 1
        first_stride = 1 if idx == 0 or (stage_idx == 5 and dilation == 2) else 2
        n = num_blocks_per_stage[idx]
        stage_kwargs: dict[str, Any] = {
            "num_blocks": n,
            "stride_per_block": [first_stride] + [1] * (n - 1),
            "in_channels": in_channels,
            "out_channels": out_channels,
            "norm": norm,
        }
        if depth in (18, 34):
            stage_kwargs["block_class"] = BasicBlock
        else:
            stage_kwargs.update(
                bottleneck_channels=bottleneck_channels,
                stride_in_1x1=r.STRIDE_IN_1X1,
                dilation=dilation,
                num_groups=num_groups,
            )
            if r.DEFORM_ON_PER_STAGE[idx]:
                stage_kwargs.update(
                    block_class=DeformBottleneckBlock,
                    deform_modulated=r.DEFORM_MODULATED,
                    deform_num_groups=r.DEFORM_NUM_GROUPS,
                )
            else:
                stage_kwargs["block_class"] = BottleneckBlock
        stages.append(ResNet.make_stage(**stage_kwargs))
        in_channels = out_channels
        out_channels *= 2
        bottleneck_channels *= 2
    return ResNet(
        stem, stages, out_features=list(r.OUT_FEATURES), freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT
    )
