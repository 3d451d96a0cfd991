"""Semantic segmentation: the meta-architecture and the FPN head."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import Conv2d, ShapeSpec, c2_msra_fill, get_norm
from vt_modeling.backbone import Backbone
from vt_modeling.config import configurable
from vt_modeling.meta_arch.rcnn import _NormalizedImagesMixin
from vt_modeling.pixel_sampler import BasePixelSampler
from vt_modeling.postprocessing import sem_seg_postprocess
from vt_modeling.registries import (
    META_ARCH_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    build_backbone,
    build_sem_seg_head,
)
from vt_structures import ImageList

__all__ = ["SemanticSegmentor", "SemSegFPNHead"]


@META_ARCH_REGISTRY.register()
class SemanticSegmentor(_NormalizedImagesMixin, nn.Module):
    """Main class for semantic segmentation architectures."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
    ):
        """
        Args:
            backbone: a backbone module, must follow the Backbone interface.
            sem_seg_head: a module that predicts semantic segmentation from backbone
                features; called as ``sem_seg_head(features, targets)`` and returning
                ``(predictions, losses)``; it has an ``ignore_value`` used to pad targets.
            pixel_mean: per-channel mean used to normalize the input.
            pixel_std: per-channel std used to normalize the input.
        """
        super().__init__()
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self._register_pixel_stats(pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "sem_seg_head": build_sem_seg_head(cfg, backbone.output_shape()),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: a list, batched outputs of a dataset mapper. Each item is a
                dict with "image" (Tensor in (C, H, W) format), "sem_seg" (Tensor[H, W]
                of class indices, the ground truth) and optionally "height", "width": the
                output resolution used in inference.

        Returns:
            In training, a dict of losses. In inference, a list of dicts, one per image,
            with "sem_seg" (Tensor[K, height, width]): the per-class logits.
        """
        if self.training and "sem_seg" not in batched_inputs[0]:
            raise ValueError('batched_inputs: training needs a "sem_seg" ground truth per image')
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)

        targets = None
        if "sem_seg" in batched_inputs[0]:
            targets = _padded_sem_seg_targets(self, batched_inputs)
        results, losses = self.sem_seg_head(features, targets)
        if self.training:
            return losses

        processed_results = []
        for result, input_per_image, image_size in zip(results, batched_inputs, images.image_sizes):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            processed_results.append(
                {"sem_seg": sem_seg_postprocess(result, image_size, height, width)}
            )
        return processed_results


def _padded_sem_seg_targets(model: Any, batched_inputs: list[dict[str, Any]]) -> torch.Tensor:
    """The "sem_seg" ground truths of ``batched_inputs`` on ``model``'s device, batched
    (Tensor[N, H, W]) and padded like the images, with the head's ``ignore_value``."""
    return ImageList.from_tensors(
        [model._move_to_current_device(x["sem_seg"]) for x in batched_inputs],
        model.backbone.size_divisibility,
        model.sem_seg_head.ignore_value,
        model.backbone.padding_constraints,
    ).tensor


@SEM_SEG_HEADS_REGISTRY.register()
class SemSegFPNHead(nn.Module):
    """A semantic segmentation head described in Panoptic FPN (Kirillov et al., 2019).

    It takes a list of FPN features as input, and applies a sequence of 3x3 convs and
    upsampling to scale all of them to the stride defined by ``common_stride``. Then
    these features are added and used to make final predictions by another 1x1 conv
    layer.
    """

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        num_classes: int,
        conv_dims: int,
        common_stride: int,
        loss_weight: float = 1.0,
        norm: str | Any | None = None,
        ignore_value: int = -1,
        pixel_sampler: BasePixelSampler | None = None,
    ):
        """
        Args:
            input_shape: shapes (channels and stride) of the input features.
            num_classes: number of classes to predict.
            conv_dims: number of output channels for the intermediate conv layers.
            common_stride: the common stride that all features will be upscaled to.
            loss_weight: loss weight.
            norm: normalization for all conv layers.
            ignore_value: category id to be ignored during training.
            pixel_sampler: optional sampler whose ``sample(logits, labels[:, None])``
                weights (Tensor[N, H, W]) multiply the per-pixel loss, which is then
                averaged over the total weight. Samplers built with ``context=self``
                (e.g. ``OHEMPixelSampler``) may be attached after construction.
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda x: x[1].stride)
        if not shapes:
            raise ValueError("SemSegFPNHead(input_shape=) cannot be empty!")
        self.in_features = [k for k, _ in shapes]
        feature_strides = [v.stride for _, v in shapes]
        feature_channels = [v.channels for _, v in shapes]

        self.ignore_value = ignore_value
        self.common_stride = common_stride
        self.loss_weight = loss_weight
        self.pixel_sampler = pixel_sampler

        self.scale_heads: list[nn.Sequential] = []
        for in_feature, stride, channels in zip(
            self.in_features, feature_strides, feature_channels
        ):
            head_ops: list[nn.Module] = []
            head_length = max(1, int(math.log2(stride) - math.log2(self.common_stride)))
            for k in range(head_length):
                conv = Conv2d(
                    channels if k == 0 else conv_dims,
                    conv_dims,
                    kernel_size=3,
                    stride=1,
                    padding=1,
                    bias=not norm,
                    norm=get_norm(norm, conv_dims),
                    activation=F.relu,
                )
                c2_msra_fill(conv)
                head_ops.append(conv)
                if stride != self.common_stride:
                    head_ops.append(
                        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
                    )
            self.scale_heads.append(nn.Sequential(*head_ops))
            self.add_module(in_feature, self.scale_heads[-1])
        self.predictor = Conv2d(conv_dims, num_classes, kernel_size=1, stride=1, padding=0)
        c2_msra_fill(self.predictor)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "ignore_value": head.IGNORE_VALUE,
            "num_classes": head.NUM_CLASSES,
            "conv_dims": head.CONVS_DIM,
            "common_stride": head.COMMON_STRIDE,
            "norm": head.NORM,
            "loss_weight": head.LOSS_WEIGHT,
        }

    @property
    def ignore_index(self) -> int:
        """``ignore_value`` under the name pixel samplers read."""
        return self.ignore_value

    def forward(
        self, features: dict[str, torch.Tensor], targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """
        Args:
            features: the backbone features, at least ``in_features``.
            targets (Tensor[N, H, W], optional): class indices at the padded input size.

        Returns:
            In training, (None, {"loss_sem_seg": loss}); in inference, the logits
            (Tensor[N, K, H, W], at the padded input size) and an empty dict.
        """
        x = self.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("targets: required in training")
            return None, self.losses(x, targets)
        x = F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return x, {}

    def layers(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (Tensor[N, K, H / common_stride, W / common_stride])."""
        x = self.scale_heads[0](features[self.in_features[0]])
        for name, head in zip(self.in_features[1:], self.scale_heads[1:]):
            x = x + head(features[name])
        return self.predictor(x)

    def pixel_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-pixel cross entropy (Tensor[N, H, W]), 0 at ``ignore_value``."""
        return F.cross_entropy(logits, targets, reduction="none", ignore_index=self.ignore_value)

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss_sem_seg": loss}`` of the stride-``common_stride`` logits against
        ``targets`` (Tensor[N, H, W]) at the input size."""
        predictions = F.interpolate(
            predictions.float(),
            scale_factor=self.common_stride,
            mode="bilinear",
            align_corners=False,
        )
        if predictions.shape[-2:] != targets.shape[-2:]:
            raise ValueError(
                f"targets: expected spatial size {tuple(predictions.shape[-2:])} "
                f"(features x common_stride), got {tuple(targets.shape[-2:])}"
            )
        targets = targets.long()
        if self.pixel_sampler is None:
            loss = F.cross_entropy(
                predictions, targets, reduction="mean", ignore_index=self.ignore_value
            )
        else:
            weight = self.pixel_sampler.sample(predictions, targets[:, None])
            loss = (self.pixel_losses(predictions, targets) * weight).sum() / weight.sum().clamp(
                min=1.0
            )
        return {"loss_sem_seg": loss * self.loss_weight}
