"""Region Proposal Network."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import Conv2d, ShapeSpec
from vt_modeling.box_regression import Box2BoxTransform, _dense_box_regression_loss
from vt_modeling.config import configurable
from vt_modeling.matcher import Matcher
from vt_modeling.proposal_generator.proposal_utils import find_top_rpn_proposals
from vt_modeling.registries import (
    PROPOSAL_GENERATOR_REGISTRY,
    RPN_HEAD_REGISTRY,
    build_anchor_generator,
    build_rpn_head,
)
from vt_modeling.sampling import subsample_labels
from vt_structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = ["RPN", "StandardRPNHead"]


@RPN_HEAD_REGISTRY.register()
class StandardRPNHead(nn.Module):
    """The standard RPN head of Faster R-CNN: a 3x3 conv (or a stack of them) shared by
    all levels, then two sibling 1x1 convs predicting the objectness logit and the box
    deltas of each anchor."""

    @configurable
    def __init__(
        self, *, in_channels: int, num_anchors: int, box_dim: int = 4, conv_dims: list[int] = (-1,)
    ):
        """
        Args:
            in_channels (int): number of input feature channels (the same on all levels).
            num_anchors (int): number of anchors per spatial location.
            box_dim (int): dimension of a box (4 axis-aligned, 5 rotated).
            conv_dims (list[int]): output channels of the hidden convs; -1 keeps the
                input channels.
        """
        super().__init__()
        cur_channels = in_channels
        if len(conv_dims) == 1:
            out_channels = cur_channels if conv_dims[0] == -1 else conv_dims[0]
            self.conv = self._get_rpn_conv(cur_channels, out_channels)
            cur_channels = out_channels
        else:
            self.conv = nn.Sequential()
            for k, conv_dim in enumerate(conv_dims):
                out_channels = cur_channels if conv_dim == -1 else conv_dim
                if out_channels <= 0:
                    raise ValueError(f"conv_dims: expected positive dims or -1, got {conv_dim}")
                self.conv.add_module(f"conv{k}", self._get_rpn_conv(cur_channels, out_channels))
                cur_channels = out_channels
        self.objectness_logits = nn.Conv2d(cur_channels, num_anchors, kernel_size=1, stride=1)
        self.anchor_deltas = nn.Conv2d(cur_channels, num_anchors * box_dim, kernel_size=1, stride=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def _get_rpn_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        return Conv2d(
            in_channels, out_channels, kernel_size=3, stride=1, padding=1, activation=nn.ReLU()
        )

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        in_channels = {s.channels for s in input_shape}
        if len(in_channels) != 1:
            raise ValueError(
                f"Each level must have the same channel count, got {sorted(in_channels)}"
            )
        anchor_generator = build_anchor_generator(cfg, input_shape)
        num_anchors = set(anchor_generator.num_anchors)
        if len(num_anchors) != 1:
            raise ValueError("Each level must have the same number of anchors per spatial position")
        return {
            "in_channels": in_channels.pop(),
            "num_anchors": num_anchors.pop(),
            "box_dim": anchor_generator.box_dim,
            "conv_dims": cfg.MODEL.RPN.CONV_DIMS,
        }

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            features (list[Tensor]): feature maps.

        Returns:
            list[Tensor[N, A, Hi, Wi]]: objectness logits of all anchors.
            list[Tensor[N, A*B, Hi, Wi]]: predicted box deltas (B = box_dim).
        """
        pred_objectness_logits, pred_anchor_deltas = [], []
        for x in features:
            t = self.conv(x)
            pred_objectness_logits.append(self.objectness_logits(t))
            pred_anchor_deltas.append(self.anchor_deltas(t))
        return pred_objectness_logits, pred_anchor_deltas


@PROPOSAL_GENERATOR_REGISTRY.register()
class RPN(nn.Module):
    """Region Proposal Network, introduced by "Faster R-CNN"."""

    # Box-type hooks, replaced by the rotated variant (RRPN): the box transformation
    # built from a config, IoU of ground truth and anchors, and the selection of the
    # top proposals.
    _box2box_transform_type: type = Box2BoxTransform
    _pairwise_iou = staticmethod(pairwise_iou)
    _find_top_proposals = staticmethod(find_top_rpn_proposals)

    @configurable
    def __init__(
        self,
        *,
        in_features: list[str],
        head: nn.Module,
        anchor_generator: nn.Module,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int,
        positive_fraction: float,
        pre_nms_topk: tuple[int, int],
        post_nms_topk: tuple[int, int],
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        anchor_boundary_thresh: float = -1.0,
        loss_weight: float | dict[str, float] = 1.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
    ):
        """
        Args:
            in_features (list[str]): names of the input feature maps.
            head (nn.Module): predicts logits and regression deltas per level.
            anchor_generator (nn.Module): creates anchors from the list of features.
            anchor_matcher (Matcher): labels the anchors by matching them with ground truth.
            box2box_transform (Box2BoxTransform): anchor <-> box transformation.
            batch_size_per_image (int): number of anchors per image used for training.
            positive_fraction (float): fraction of foreground anchors for training.
            pre_nms_topk (tuple[int]): (train, test) proposals kept per level before NMS.
            post_nms_topk (tuple[int]): (train, test) proposals kept per image after NMS.
            nms_thresh (float): IoU threshold of NMS.
            min_box_size (float): proposals with any side smaller than this are removed.
            anchor_boundary_thresh (float): anchors beyond the image by more than this are
                ignored in training; negative to keep all.
            loss_weight (float|dict): weight of both losses, or of each of
                "loss_rpn_cls" and "loss_rpn_loc".
            box_reg_loss_type (str): "smooth_l1", "giou", "diou" or "ciou".
            smooth_l1_beta (float): beta of the smooth L1 loss.
        """
        super().__init__()
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = {True: pre_nms_topk[0], False: pre_nms_topk[1]}
        self.post_nms_topk = {True: post_nms_topk[0], False: post_nms_topk[1]}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        self.anchor_boundary_thresh = anchor_boundary_thresh
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_rpn_cls": float(loss_weight), "loss_rpn_loc": float(loss_weight)}
        self.loss_weight = loss_weight
        if box_reg_loss_type not in ("smooth_l1", "giou", "diou", "ciou"):
            raise ValueError(f"box_reg_loss_type: unknown loss '{box_reg_loss_type}'")
        self.box_reg_loss_type = box_reg_loss_type
        self.smooth_l1_beta = smooth_l1_beta

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        in_features = cfg.MODEL.RPN.IN_FEATURES
        shapes = [input_shape[f] for f in in_features]
        return {
            "in_features": in_features,
            "min_box_size": cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE,
            "nms_thresh": cfg.MODEL.RPN.NMS_THRESH,
            "batch_size_per_image": cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": cfg.MODEL.RPN.POSITIVE_FRACTION,
            "loss_weight": {
                "loss_rpn_cls": cfg.MODEL.RPN.LOSS_WEIGHT,
                "loss_rpn_loc": cfg.MODEL.RPN.BBOX_REG_LOSS_WEIGHT * cfg.MODEL.RPN.LOSS_WEIGHT,
            },
            "anchor_boundary_thresh": cfg.MODEL.RPN.BOUNDARY_THRESH,
            "box2box_transform": cls._box2box_transform_type(
                weights=cfg.MODEL.RPN.BBOX_REG_WEIGHTS
            ),
            "box_reg_loss_type": cfg.MODEL.RPN.BBOX_REG_LOSS_TYPE,
            "smooth_l1_beta": cfg.MODEL.RPN.SMOOTH_L1_BETA,
            "pre_nms_topk": (cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, cfg.MODEL.RPN.PRE_NMS_TOPK_TEST),
            "post_nms_topk": (cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TEST),
            "anchor_generator": build_anchor_generator(cfg, shapes),
            "anchor_matcher": Matcher(
                cfg.MODEL.RPN.IOU_THRESHOLDS,
                cfg.MODEL.RPN.IOU_LABELS,
                allow_low_quality_matches=True,
            ),
            "head": build_rpn_head(cfg, shapes),
        }

    def _subsample_labels(self, label: torch.Tensor) -> torch.Tensor:
        """Keep ``batch_size_per_image`` anchors (positives up to the fraction); mark the
        rest -1 (ignore). Modifies ``label`` in place."""
        pos_idx, neg_idx = subsample_labels(
            label, self.batch_size_per_image, self.positive_fraction, 0
        )
        label.fill_(-1)
        label.scatter_(0, pos_idx, 1)
        label.scatter_(0, neg_idx, 0)
        return label

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            anchors (list[Boxes]): anchors of each feature map.
            gt_instances (list[Instances]): ground truth of each image (``gt_boxes``).

        Returns:
            list[Tensor[R]]: per image, label of every anchor: -1 ignore, 0 negative, 1 positive.
            list[Tensor[R, 4]]: per image, the matched ground-truth box of every anchor
            (meaningless for negatives and ignored anchors).
        """
        anchors = type(anchors[0]).cat(anchors)
        gt_labels, matched_gt_boxes = [], []
        for inst in gt_instances:
            gt_boxes_i = inst.gt_boxes
            match_quality_matrix = self._pairwise_iou(gt_boxes_i, anchors)
            matched_idxs, gt_labels_i = self.anchor_matcher(match_quality_matrix)
            gt_labels_i = gt_labels_i.to(device=gt_boxes_i.device)
            del match_quality_matrix
            if self.anchor_boundary_thresh >= 0:
                inside = anchors.inside_box(inst.image_size, self.anchor_boundary_thresh)
                gt_labels_i[~inside] = -1
            gt_labels_i = self._subsample_labels(gt_labels_i)
            if len(gt_boxes_i) == 0:
                matched = torch.zeros_like(anchors.tensor)
            else:
                matched = gt_boxes_i[matched_idxs].tensor
            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched)
        return gt_labels, matched_gt_boxes

    def losses(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """
        Returns:
            dict[str, Tensor]: "loss_rpn_cls" (objectness) and "loss_rpn_loc" (box
            regression), each normalised by the number of sampled anchors.
        """
        num_images = len(gt_labels)
        labels = torch.stack(gt_labels)
        pos_mask = labels == 1
        localization_loss = _dense_box_regression_loss(
            anchors,
            self.box2box_transform,
            pred_anchor_deltas,
            gt_boxes,
            pos_mask,
            box_reg_loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        valid_mask = labels >= 0
        objectness_loss = F.binary_cross_entropy_with_logits(
            torch.cat(pred_objectness_logits, dim=1)[valid_mask],
            labels[valid_mask].to(torch.float32),
            reduction="sum",
        )
        normalizer = self.batch_size_per_image * num_images
        losses = {
            "loss_rpn_cls": objectness_loss / normalizer,
            "loss_rpn_loc": localization_loss / normalizer,
        }
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        gt_instances: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """
        Args:
            images (ImageList): input images of length N.
            features (dict[str, Tensor]): input feature maps.
            gt_instances (list[Instances], optional): ground truth, required in training.

        Returns:
            proposals: list[Instances] with "proposal_boxes" and "objectness_logits".
            loss: dict[Tensor] (empty at inference).
        """
        anchors, pred_objectness_logits, pred_anchor_deltas = self._predict(features)
        if self.training:
            if gt_instances is None:
                raise ValueError("RPN requires gt_instances in training!")
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(
                anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes
            )
        else:
            losses = {}
        proposals = self.predict_proposals(
            anchors, pred_objectness_logits, pred_anchor_deltas, images.image_sizes
        )
        return proposals, losses

    def _predict(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[list[Boxes], list[torch.Tensor], list[torch.Tensor]]:
        """The anchors, objectness logits (N, Hi*Wi*A) and deltas (N, Hi*Wi*A, B) of each
        level, in the anchor order of the generator."""
        features_list = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(features_list)
        pred_objectness_logits, pred_anchor_deltas = self.rpn_head(features_list)
        # (N, A, Hi, Wi) -> (N, Hi*Wi*A)
        pred_objectness_logits = [
            score.permute(0, 2, 3, 1).flatten(1) for score in pred_objectness_logits
        ]
        box_dim = self.anchor_generator.box_dim
        pred_anchor_deltas = [
            x.view(x.shape[0], -1, box_dim, x.shape[-2], x.shape[-1])
            .permute(0, 3, 4, 1, 2)
            .flatten(1, -2)
            for x in pred_anchor_deltas
        ]
        return anchors, pred_objectness_logits, pred_anchor_deltas

    def predict_proposals(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[Instances]:
        """Decode all anchors into proposals and select the top ones per image."""
        # The proposals are treated as fixed for joint training with the ROI heads.
        with torch.no_grad():
            pred_proposals = self._decode_proposals(anchors, pred_anchor_deltas)
            return self._find_top_proposals(
                pred_proposals,
                pred_objectness_logits,
                image_sizes,
                self.nms_thresh,
                self.pre_nms_topk[self.training],
                self.post_nms_topk[self.training],
                self.min_box_size,
                self.training,
            )

    def _decode_proposals(
        self, anchors: list[Boxes], pred_anchor_deltas: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        n = pred_anchor_deltas[0].shape[0]
        proposals = []
        for anchors_i, deltas_i in zip(anchors, pred_anchor_deltas):
            b = anchors_i.tensor.size(1)
            deltas_i = deltas_i.reshape(-1, b)
            anchors_rep = anchors_i.tensor.unsqueeze(0).expand(n, -1, -1).reshape(-1, b)
            proposals.append(
                self.box2box_transform.apply_deltas(deltas_i, anchors_rep).view(n, -1, b)
            )
        return proposals
