"""Cascade R-CNN ROI heads: box heads run in stages of increasing IoU thresholds."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import Function

from vt_layers import ShapeSpec
from vt_modeling.box_regression import Box2BoxTransform
from vt_modeling.config import configurable
from vt_modeling.matcher import Matcher
from vt_modeling.poolers import ROIPooler
from vt_modeling.registries import ROI_HEADS_REGISTRY, build_box_head
from vt_modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers, fast_rcnn_inference
from vt_modeling.roi_heads.roi_heads import StandardROIHeads
from vt_structures import Boxes, Instances, pairwise_iou

__all__ = ["CascadeROIHeads"]


class _ScaleGradient(Function):
    """Identity forward; multiplies the gradient by ``scale`` backward."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return input

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output * ctx.scale, None


@ROI_HEADS_REGISTRY.register()
class CascadeROIHeads(StandardROIHeads):
    """The ROI heads of "Cascade R-CNN": each stage refines the boxes of the previous
    one, and is trained on them with its own (higher) IoU threshold.

    Box heads and predictors are ``nn.ModuleList`` (``box_head.{k}``,
    ``box_predictor.{k}``); at inference the class scores are averaged over stages and
    the boxes come from the last stage.
    """

    @configurable
    def __init__(
        self,
        *,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_heads: list[nn.Module],
        box_predictors: list[nn.Module],
        proposal_matchers: list[Matcher],
        **kwargs: Any,
    ):
        """
        Args:
            box_in_features (list[str]): feature maps of the box heads.
            box_pooler (ROIPooler): pooler shared by all stages.
            box_heads (list[nn.Module]): the box head of each stage.
            box_predictors (list[nn.Module]): the box predictor of each stage.
            proposal_matchers (list[Matcher]): the matcher of each stage; the first one
                also samples the proposals.
            **kwargs: the other arguments of :class:`StandardROIHeads` (but
                ``proposal_matcher``).
        """
        if "proposal_matcher" in kwargs:
            raise ValueError("proposal_matcher: CascadeROIHeads takes proposal_matchers")
        num_stages = len(box_heads)
        if num_stages == 0 or not len(box_predictors) == len(proposal_matchers) == num_stages:
            raise ValueError(
                "box_heads, box_predictors, proposal_matchers: expected the same non-zero "
                f"length, got {num_stages}, {len(box_predictors)}, {len(proposal_matchers)}"
            )
        kwargs["proposal_matcher"] = proposal_matchers[0]
        super().__init__(
            box_in_features=box_in_features,
            box_pooler=box_pooler,
            box_head=nn.ModuleList(box_heads),
            box_predictor=nn.ModuleList(box_predictors),
            **kwargs,
        )
        self.num_cascade_stages = num_stages
        self.proposal_matchers = list(proposal_matchers)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        ret = super().from_config(cfg, input_shape)
        ret.pop("proposal_matcher")
        return ret

    @classmethod
    def _init_box_head(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        cascade_bbox_reg_weights = cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS
        cascade_ious = cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS
        if len(cascade_bbox_reg_weights) != len(cascade_ious):
            raise ValueError(
                "MODEL.ROI_BOX_CASCADE_HEAD: BBOX_REG_WEIGHTS and IOUS must have the same "
                f"length, got {len(cascade_bbox_reg_weights)} and {len(cascade_ious)}"
            )
        if not cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG:
            raise ValueError(
                "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG: CascadeROIHeads needs "
                "class-agnostic box regression"
            )
        if cascade_ious[0] != cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]:
            raise ValueError(
                "MODEL.ROI_BOX_CASCADE_HEAD.IOUS[0] must equal MODEL.ROI_HEADS.IOU_THRESHOLDS[0]"
            )
        box_pooler, in_channels = cls._pooler_args(cfg.MODEL.ROI_BOX_HEAD, in_features, input_shape)
        resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        pooled_shape = ShapeSpec(channels=in_channels, width=resolution, height=resolution)
        box_heads, box_predictors, proposal_matchers = [], [], []
        for match_iou, bbox_reg_weights in zip(cascade_ious, cascade_bbox_reg_weights):
            box_head = build_box_head(cfg, pooled_shape)
            box_heads.append(box_head)
            box_predictors.append(
                FastRCNNOutputLayers(
                    cfg,
                    box_head.output_shape,
                    box2box_transform=Box2BoxTransform(weights=bbox_reg_weights),
                )
            )
            proposal_matchers.append(Matcher([match_iou], [0, 1], allow_low_quality_matches=False))
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_heads": box_heads,
            "box_predictors": box_predictors,
            "proposal_matchers": proposal_matchers,
        }

    def forward(self, images, features, proposals, targets=None):
        del images
        if self.training:
            if not targets:
                raise ValueError("'targets' argument is required during training")
            proposals = self.label_and_sample_proposals(proposals, targets)
            losses = self._forward_box(features, proposals, targets)
            # The mask/keypoint heads train on the proposals of the first stage.
            losses.update(self._forward_mask(features, proposals))
            losses.update(self._forward_keypoint(features, proposals))
            return proposals, losses
        pred_instances = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, pred_instances), {}

    def _forward_box(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> Any:
        features_list = [features[f] for f in self.box_in_features]
        head_outputs = []  # (predictor, predictions, proposals) of each stage
        prev_pred_boxes = None
        image_sizes = [x.image_size for x in proposals]
        for k in range(self.num_cascade_stages):
            if k > 0:
                # The previous stage's boxes are this stage's proposals.
                proposals = self._create_proposals_from_boxes(prev_pred_boxes, image_sizes)
                if self.training:
                    proposals = self._match_and_label_boxes(proposals, k, targets)
            predictions = self._run_stage(features_list, proposals, k)
            prev_pred_boxes = self.box_predictor[k].predict_boxes(predictions, proposals)
            head_outputs.append((self.box_predictor[k], predictions, proposals))

        if self.training:
            losses = {}
            for stage, (predictor, predictions, stage_proposals) in enumerate(head_outputs):
                stage_losses = predictor.losses(predictions, stage_proposals)
                losses.update({f"{k}_stage{stage}": v for k, v in stage_losses.items()})
            return losses
        scores_per_stage = [h[0].predict_probs(h[1], h[2]) for h in head_outputs]
        scores = [
            sum(list(scores_per_image)) * (1.0 / self.num_cascade_stages)
            for scores_per_image in zip(*scores_per_stage)
        ]
        predictor, predictions, proposals = head_outputs[-1]
        boxes = predictor.predict_boxes(predictions, proposals)
        pred_instances, _ = fast_rcnn_inference(
            boxes,
            scores,
            image_sizes,
            predictor.test_score_thresh,
            predictor.test_nms_thresh,
            predictor.test_topk_per_image,
        )
        return pred_instances

    @torch.no_grad()
    def _match_and_label_boxes(
        self, proposals: list[Instances], stage: int, targets: list[Instances]
    ) -> list[Instances]:
        """Match the proposals of a stage with the ground truth (no sampling): sets
        "gt_classes" and "gt_boxes" on them."""
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            match_quality_matrix = pairwise_iou(
                targets_per_image.gt_boxes, proposals_per_image.proposal_boxes
            )
            matched_idxs, proposal_labels = self.proposal_matchers[stage](match_quality_matrix)
            if len(targets_per_image) > 0:
                gt_classes = targets_per_image.gt_classes[matched_idxs]
                gt_classes[proposal_labels == 0] = self.num_classes
                gt_boxes = targets_per_image.gt_boxes[matched_idxs]
            else:
                gt_classes = torch.zeros_like(matched_idxs) + self.num_classes
                gt_boxes = Boxes(
                    targets_per_image.gt_boxes.tensor.new_zeros((len(proposals_per_image), 4))
                )
            proposals_per_image.gt_classes = gt_classes
            proposals_per_image.gt_boxes = gt_boxes
        return proposals

    def _run_stage(
        self, features: list[torch.Tensor], proposals: list[Instances], stage: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        box_features = self.box_pooler(features, [x.proposal_boxes for x in proposals])
        # The features are shared by all stages: scale their gradient so that the
        # backbone receives the average of the stages' gradients.
        if self.training:
            box_features = _ScaleGradient.apply(box_features, 1.0 / self.num_cascade_stages)
        box_features = self.box_head[stage](box_features)
        return self.box_predictor[stage](box_features)

    def _create_proposals_from_boxes(
        self, boxes: list[torch.Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[Instances]:
        proposals = []
        for boxes_per_image, image_size in zip(boxes, image_sizes):
            boxes_per_image = Boxes(boxes_per_image.detach())
            boxes_per_image.clip(image_size)
            if self.training:
                # Empty boxes would make the box regression targets infinite.
                boxes_per_image = boxes_per_image[boxes_per_image.nonempty()]
            prop = Instances(image_size)
            prop.proposal_boxes = boxes_per_image
            proposals.append(prop)
        return proposals
