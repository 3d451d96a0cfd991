"""Mask heads of Mask R-CNN."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import (
    Conv2d,
    ConvTranspose2d,
    ShapeSpec,
    c2_msra_fill,
    cpu_channels_last,
    get_norm,
)
from vt_modeling.config import configurable
from vt_modeling.registries import ROI_MASK_HEAD_REGISTRY
from vt_modeling.utils.events import EventStorage, get_event_storage, try_get_event_storage
from vt_structures import Instances

__all__ = ["BaseMaskRCNNHead", "MaskRCNNConvUpsampleHead", "mask_rcnn_inference", "mask_rcnn_loss"]


def mask_rcnn_loss(
    pred_mask_logits: torch.Tensor, instances: list[Instances], vis_period: int = 0
) -> torch.Tensor:
    """The mask loss of Mask R-CNN: binary cross entropy of the logits of each region's
    ground-truth class against its ``gt_masks`` cropped and resized to the region.

    When an EventStorage is active, the mask accuracy and the false positive and false
    negative rates (at probability 0.5) are put as "mask_rcnn/accuracy",
    "mask_rcnn/false_positive" and "mask_rcnn/false_negative".

    Args:
        pred_mask_logits (Tensor[B, C, Hmask, Wmask]): C = number of foreground classes,
            or 1 for class-agnostic masks.
        instances (list[Instances]): the foreground regions of each image, with
            "proposal_boxes", "gt_classes" and "gt_masks" (BitMasks or PolygonMasks).
        vis_period (int): every ``vis_period`` iterations, put in the current
            EventStorage each region's predicted mask probabilities next to its target
            (Tensor[3, Hmask, 2 * Wmask], float in [0, 1]); 0 disables it. A positive
            period needs an active EventStorage.

    Returns:
        Tensor: a scalar.
    """
    cls_agnostic_mask = pred_mask_logits.size(1) == 1
    total_num_masks = pred_mask_logits.size(0)
    mask_side_len = pred_mask_logits.size(2)
    if pred_mask_logits.size(2) != pred_mask_logits.size(3):
        raise ValueError("Mask prediction must be square!")

    gt_classes, gt_masks = [], []
    for instances_per_image in instances:
        if len(instances_per_image) == 0:
            continue
        if not cls_agnostic_mask:
            gt_classes.append(instances_per_image.gt_classes.to(dtype=torch.int64))
        gt_masks.append(
            instances_per_image.gt_masks.crop_and_resize(
                instances_per_image.proposal_boxes.tensor, mask_side_len
            ).to(device=pred_mask_logits.device)
        )
    storage = get_event_storage() if vis_period > 0 else try_get_event_storage()
    if len(gt_masks) == 0:
        return pred_mask_logits.sum() * 0
    gt = torch.cat(gt_masks, dim=0)
    if cls_agnostic_mask:
        pred_mask_logits = pred_mask_logits[:, 0]
    else:
        indices = torch.arange(total_num_masks, device=pred_mask_logits.device)
        pred_mask_logits = pred_mask_logits[indices, torch.cat(gt_classes, dim=0)]
    gt = gt.to(dtype=torch.float32)
    if storage is not None:
        _log_mask_stats(storage, pred_mask_logits.detach(), gt, vis_period)
    return F.binary_cross_entropy_with_logits(pred_mask_logits, gt, reduction="mean")


def _log_mask_stats(
    storage: EventStorage, pred_mask_logits: torch.Tensor, gt_masks: torch.Tensor, vis_period: int
) -> None:
    """Mask accuracy scalars and, every ``vis_period`` iterations, the mask images."""
    gt_masks_bool = gt_masks > 0.5
    mask_incorrect = (pred_mask_logits > 0.0) != gt_masks_bool
    num_positive = gt_masks_bool.sum().item()
    storage.put_scalar(
        "mask_rcnn/accuracy", 1 - mask_incorrect.sum().item() / max(mask_incorrect.numel(), 1)
    )
    storage.put_scalar(
        "mask_rcnn/false_positive",
        (mask_incorrect & ~gt_masks_bool).sum().item()
        / max(gt_masks_bool.numel() - num_positive, 1),
    )
    storage.put_scalar(
        "mask_rcnn/false_negative",
        (mask_incorrect & gt_masks_bool).sum().item() / max(num_positive, 1),
    )
    if vis_period > 0 and storage.iter % vis_period == 0:
        vis_masks = torch.cat([pred_mask_logits.sigmoid(), gt_masks], dim=2)
        name = "Left: mask prediction;   Right: mask GT"
        for idx, vis_mask in enumerate(vis_masks):
            storage.put_image(f"{name} ({idx})", vis_mask.expand(3, -1, -1))


def mask_rcnn_inference(pred_mask_logits: torch.Tensor, pred_instances: list[Instances]) -> None:
    """Set ``pred_masks`` (Tensor[Ri, 1, Hmask, Wmask], probabilities of the predicted
    class) on each image's instances.

    Args:
        pred_mask_logits (Tensor[N, C, Hmask, Wmask]): C = classes or 1 (class-agnostic).
        pred_instances (list[Instances]): with "pred_classes"; modified in place.
    """
    cls_agnostic_mask = pred_mask_logits.size(1) == 1
    if cls_agnostic_mask:
        mask_probs_pred = pred_mask_logits.sigmoid()
    else:
        num_masks = pred_mask_logits.shape[0]
        class_pred = torch.cat([i.pred_classes for i in pred_instances])
        indices = torch.arange(num_masks, device=pred_mask_logits.device)
        mask_probs_pred = pred_mask_logits[indices, class_pred.to(pred_mask_logits.device)][
            :, None
        ].sigmoid()
    for prob, instances in zip(
        mask_probs_pred.split([len(i) for i in pred_instances], dim=0), pred_instances
    ):
        instances.pred_masks = prob


class BaseMaskRCNNHead(nn.Module):
    """The base mask head: subclasses implement :meth:`layers`; this class computes the
    loss in training and sets the predicted masks at inference."""

    @configurable
    def __init__(self, *, loss_weight: float = 1.0, vis_period: int = 0):
        """
        Args:
            loss_weight (float): multiplier of the mask loss.
            vis_period (int): visualization period (see :func:`mask_rcnn_loss`).
        """
        super().__init__()
        self.vis_period = vis_period
        self.loss_weight = loss_weight

    @classmethod
    def from_config(cls, cfg: Any, input_shape: Any) -> dict[str, Any]:
        return {"vis_period": cfg.VIS_PERIOD}

    def forward(
        self, x: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        """
        Args:
            x: input region feature(s) provided by ROIHeads.
            instances (list[Instances]): in training the sampled foreground proposals with
                ground truth; at inference the predicted instances.

        Returns:
            A dict of losses in training; the instances with "pred_masks" at inference.
        """
        x = self.layers(x)
        if self.training:
            return {"loss_mask": mask_rcnn_loss(x, instances, self.vis_period) * self.loss_weight}
        mask_rcnn_inference(x, instances)
        return instances

    def layers(self, x: Any) -> torch.Tensor:
        """Neural network layers that make the mask predictions."""
        raise NotImplementedError


@ROI_MASK_HEAD_REGISTRY.register()
class MaskRCNNConvUpsampleHead(BaseMaskRCNNHead, nn.Sequential):
    """A mask head with several conv layers, plus an upsample layer (a 2x2 transposed
    conv with stride 2), then a 1x1 conv predicting one mask per class."""

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_classes: int,
        conv_dims: list[int],
        conv_norm: Any = "",
        **kwargs: Any,
    ):
        """
        Args:
            input_shape (ShapeSpec): shape of the input feature.
            num_classes (int): the number of foreground classes (1 if class agnostic).
            conv_dims (list[int]): the output dimensions of the conv layers; the last is
                the output of the transposed conv.
            conv_norm (str or callable): normalization for the conv layers.
        """
        super().__init__(**kwargs)
        if len(conv_dims) < 1:
            raise ValueError("conv_dims have to be non-empty!")
        self.conv_norm_relus = []
        cur_channels = input_shape.channels
        for k, conv_dim in enumerate(conv_dims[:-1]):
            conv = Conv2d(
                cur_channels,
                conv_dim,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=not conv_norm,
                norm=get_norm(conv_norm, conv_dim),
                activation=nn.ReLU(),
            )
            self.add_module(f"mask_fcn{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            cur_channels = conv_dim
        self.deconv = ConvTranspose2d(
            cur_channels, conv_dims[-1], kernel_size=2, stride=2, padding=0
        )
        self.add_module("deconv_relu", nn.ReLU())
        self.predictor = Conv2d(conv_dims[-1], num_classes, kernel_size=1, stride=1, padding=0)
        for layer in [*self.conv_norm_relus, self.deconv]:
            c2_msra_fill(layer)
        nn.init.normal_(self.predictor.weight, std=0.001)
        if self.predictor.bias is not None:
            nn.init.constant_(self.predictor.bias, 0)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        ret = super().from_config(cfg, input_shape)
        head = cfg.MODEL.ROI_MASK_HEAD
        ret.update(
            conv_dims=[head.CONV_DIM] * (head.NUM_CONV + 1),
            conv_norm=head.NORM,
            input_shape=input_shape,
            num_classes=1 if head.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        )
        return ret

    def forward(
        self, x: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        if (
            self.training
            or self.predictor.out_channels == 1
            or type(self).layers is not MaskRCNNConvUpsampleHead.layers
        ):
            return super().forward(x, instances)
        # Inference reads one class per region: predict only that class's mask logits
        # (the 1x1 predictor on each region's own class) instead of all of them.
        x = self._features(x)
        classes = torch.cat([i.pred_classes for i in instances]).to(x.device)
        weight = self.predictor.weight[classes, :, 0, 0]
        logits = torch.einsum("nchw,nc->nhw", x, weight)
        if self.predictor.bias is not None:
            logits = logits + self.predictor.bias[classes, None, None]
        mask_rcnn_inference(logits[:, None], instances)
        return instances

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The layers before the predictor."""
        x = cpu_channels_last(x)
        for layer in self:
            if layer is self.predictor:
                break
            x = layer(x)
        return x

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self._features(x))
