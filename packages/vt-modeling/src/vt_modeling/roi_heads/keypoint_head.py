"""Keypoint heads of Keypoint R-CNN."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import Conv2d, ConvTranspose2d, ShapeSpec, interpolate
from vt_modeling.config import configurable
from vt_modeling.registries import ROI_KEYPOINT_HEAD_REGISTRY
from vt_structures import Instances, heatmaps_to_keypoints

__all__ = [
    "BaseKeypointRCNNHead",
    "KRCNNConvDeconvUpsampleHead",
    "keypoint_rcnn_inference",
    "keypoint_rcnn_loss",
]


def keypoint_rcnn_loss(
    pred_keypoint_logits: torch.Tensor, instances: list[Instances], normalizer: float | None
) -> torch.Tensor:
    """Cross entropy over the heatmap locations, per visible keypoint.

    Args:
        pred_keypoint_logits (Tensor[N, K, S, S]): K keypoints, S x S heatmaps.
        instances (list[Instances]): the foreground proposals with "proposal_boxes" and
            "gt_keypoints" (Keypoints).
        normalizer (float or None): divide the summed loss by this; None divides by the
            number of visible keypoints.
    """
    heatmaps, valid = [], []
    keypoint_side_len = pred_keypoint_logits.shape[2]
    for instances_per_image in instances:
        if len(instances_per_image) == 0:
            continue
        heatmaps_i, valid_i = instances_per_image.gt_keypoints.to_heatmap(
            instances_per_image.proposal_boxes.tensor, keypoint_side_len
        )
        heatmaps.append(heatmaps_i.view(-1))
        valid.append(valid_i.view(-1))
    if heatmaps:
        keypoint_targets = torch.cat(heatmaps, dim=0)
        valid_idx = torch.nonzero(torch.cat(valid, dim=0).to(dtype=torch.uint8)).squeeze(1)
    if not heatmaps or valid_idx.numel() == 0:
        return pred_keypoint_logits.sum() * 0
    n, k, h, w = pred_keypoint_logits.shape
    logits = pred_keypoint_logits.view(n * k, h * w)
    loss = F.cross_entropy(
        logits[valid_idx], keypoint_targets[valid_idx].to(logits.device), reduction="sum"
    )
    return loss / (valid_idx.numel() if normalizer is None else normalizer)


def keypoint_rcnn_inference(
    pred_keypoint_logits: torch.Tensor, pred_instances: list[Instances]
) -> None:
    """Set ``pred_keypoints`` (Tensor[Ri, K, 3]: x, y, score) and
    ``pred_keypoint_heatmaps`` (Tensor[Ri, K, S, S]) on each image's instances."""
    bboxes_flat = torch.cat([b.pred_boxes.tensor for b in pred_instances], dim=0)
    pred_keypoint_logits = pred_keypoint_logits.detach()
    keypoint_results = heatmaps_to_keypoints(pred_keypoint_logits, bboxes_flat.detach())
    counts = [len(i) for i in pred_instances]
    keypoint_results = keypoint_results[:, :, [0, 1, 3]].split(counts, dim=0)
    heatmap_results = pred_keypoint_logits.split(counts, dim=0)
    for keypoints_i, heatmaps_i, instances_i in zip(
        keypoint_results, heatmap_results, pred_instances
    ):
        instances_i.pred_keypoints = keypoints_i
        instances_i.pred_keypoint_heatmaps = heatmaps_i


class BaseKeypointRCNNHead(nn.Module):
    """The base keypoint head: subclasses implement :meth:`layers`."""

    @configurable
    def __init__(
        self, *, num_keypoints: int, loss_weight: float = 1.0, loss_normalizer: float | str = 1.0
    ):
        """
        Args:
            num_keypoints (int): number of keypoints to predict.
            loss_weight (float): weight to multiple on the keypoint loss.
            loss_normalizer (float or str): "visible" normalises by the number of visible
                keypoints in the batch; a float normalises by that constant times the
                number of images.
        """
        super().__init__()
        self.num_keypoints = num_keypoints
        self.loss_weight = loss_weight
        if not (loss_normalizer == "visible" or isinstance(loss_normalizer, float)):
            raise ValueError(
                f"loss_normalizer: expected 'visible' or a float, got {loss_normalizer!r}"
            )
        self.loss_normalizer = loss_normalizer

    @classmethod
    def from_config(cls, cfg: Any, input_shape: Any) -> dict[str, Any]:
        head = cfg.MODEL.ROI_KEYPOINT_HEAD
        ret: dict[str, Any] = {"loss_weight": head.LOSS_WEIGHT, "num_keypoints": head.NUM_KEYPOINTS}
        if head.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS:
            ret["loss_normalizer"] = "visible"
        else:
            ret["loss_normalizer"] = float(
                ret["num_keypoints"]
                * cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE
                * cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION
            )
        return ret

    def forward(
        self, x: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        """
        Returns:
            A dict of losses in training; the instances with "pred_keypoints" at inference.
        """
        x = self.layers(x)
        if self.training:
            normalizer = (
                None if self.loss_normalizer == "visible" else len(instances) * self.loss_normalizer
            )
            return {
                "loss_keypoint": keypoint_rcnn_loss(x, instances, normalizer=normalizer)
                * self.loss_weight
            }
        keypoint_rcnn_inference(x, instances)
        return instances

    def layers(self, x: Any) -> torch.Tensor:
        """Neural network layers that make the keypoint heatmaps."""
        raise NotImplementedError


@ROI_KEYPOINT_HEAD_REGISTRY.register()
class KRCNNConvDeconvUpsampleHead(BaseKeypointRCNNHead, nn.Sequential):
    """The keypoint head of Mask R-CNN: fully convolutional layers, then a transposed
    conv and a 2x bilinear upsampling to the heatmaps."""

    @configurable
    def __init__(
        self, input_shape: ShapeSpec, *, num_keypoints: int, conv_dims: list[int], **kwargs: Any
    ):
        """
        Args:
            input_shape (ShapeSpec): shape of the input feature.
            num_keypoints: number of keypoints.
            conv_dims: an iterable of output channel counts for each conv in the head,
                e.g. (512, 512, 512) for three convs outputting 512 channels.
        """
        super().__init__(num_keypoints=num_keypoints, **kwargs)
        self.up_scale = 2.0
        in_channels = input_shape.channels
        for idx, layer_channels in enumerate(conv_dims, 1):
            self.add_module(
                f"conv_fcn{idx}", Conv2d(in_channels, layer_channels, 3, stride=1, padding=1)
            )
            self.add_module(f"conv_fcn_relu{idx}", nn.ReLU())
            in_channels = layer_channels
        deconv_kernel = 4
        self.score_lowres = ConvTranspose2d(
            in_channels, num_keypoints, deconv_kernel, stride=2, padding=deconv_kernel // 2 - 1
        )
        for name, param in self.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0)
            elif "weight" in name:
                # Caffe2's MSRAFill, fan_out as in the reference implementation
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        ret = super().from_config(cfg, input_shape)
        ret["input_shape"] = input_shape
        ret["conv_dims"] = list(cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS)
        return ret

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
