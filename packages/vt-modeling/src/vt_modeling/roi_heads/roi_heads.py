"""ROI heads: per-region computation of R-CNN models."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from vt_layers import ShapeSpec, nonzero_tuple
from vt_modeling.backbone.resnet import BottleneckBlock, ResNet
from vt_modeling.config import configurable
from vt_modeling.matcher import Matcher
from vt_modeling.poolers import ROIPooler
from vt_modeling.proposal_generator.proposal_utils import add_ground_truth_to_proposals
from vt_modeling.registries import (
    ROI_HEADS_REGISTRY,
    build_box_head,
    build_keypoint_head,
    build_mask_head,
)
from vt_modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from vt_modeling.sampling import subsample_labels
from vt_structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = [
    "ROIHeads",
    "Res5ROIHeads",
    "StandardROIHeads",
    "select_foreground_proposals",
    "select_proposals_with_visible_keypoints",
]


def select_foreground_proposals(
    proposals: list[Instances], bg_label: int
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Keep the proposals whose ``gt_classes`` are foreground (not -1, not ``bg_label``).

    Returns:
        list[Instances]: the foreground proposals of each image.
        list[Tensor]: per image, the boolean mask of the kept proposals.
    """
    if not isinstance(proposals, (list, tuple)) or (
        proposals and not proposals[0].has("gt_classes")
    ):
        raise ValueError("proposals: expected a list of Instances with 'gt_classes'")
    fg_proposals, fg_selection_masks = [], []
    for proposals_per_image in proposals:
        gt_classes = proposals_per_image.gt_classes
        fg_selection_mask = (gt_classes != -1) & (gt_classes != bg_label)
        fg_idxs = fg_selection_mask.nonzero().squeeze(1)
        fg_proposals.append(proposals_per_image[fg_idxs])
        fg_selection_masks.append(fg_selection_mask)
    return fg_proposals, fg_selection_masks


def select_proposals_with_visible_keypoints(proposals: list[Instances]) -> list[Instances]:
    """Keep the proposals containing at least one visible keypoint of their ground truth.

    Args:
        proposals (list[Instances]): with "proposal_boxes" and "gt_keypoints".
    """
    ret = []
    for proposals_per_image in proposals:
        if len(proposals_per_image) == 0:
            ret.append(proposals_per_image)
            continue
        gt_keypoints = proposals_per_image.gt_keypoints.tensor
        vis_mask = gt_keypoints[:, :, 2] >= 1
        xs, ys = gt_keypoints[:, :, 0], gt_keypoints[:, :, 1]
        boxes = proposals_per_image.proposal_boxes.tensor.unsqueeze(dim=1)  # R x 1 x 4
        kp_in_box = (
            (xs >= boxes[:, :, 0])
            & (xs <= boxes[:, :, 2])
            & (ys >= boxes[:, :, 1])
            & (ys <= boxes[:, :, 3])
        )
        selection = nonzero_tuple((kp_in_box & vis_mask).any(dim=1))[0]
        ret.append(proposals_per_image[selection])
    return ret


class ROIHeads(nn.Module):
    """Base class of the per-region computation of R-CNN.

    It matches proposals to ground truth and samples them for training (shared by all
    ROI heads); subclasses implement :meth:`forward`.
    """

    # IoU of ground truth and proposals; the rotated variant (RROIHeads) replaces it.
    _pairwise_iou = staticmethod(pairwise_iou)

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
    ):
        """
        Args:
            num_classes (int): number of foreground classes (i.e. background is not included).
            batch_size_per_image (int): number of proposals to sample for training.
            positive_fraction (float): fraction of positive (foreground) proposals to sample.
            proposal_matcher (Matcher): matcher that matches proposals and ground truth.
            proposal_append_gt (bool): whether to include ground truth as proposals as well.
        """
        super().__init__()
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.num_classes = num_classes
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        return {
            "batch_size_per_image": cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION,
            "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "proposal_append_gt": cfg.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT,
            # Matcher assigns each proposal a foreground (1) or background (0) label.
            "proposal_matcher": Matcher(
                cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS,
                cfg.MODEL.ROI_HEADS.IOU_LABELS,
                allow_low_quality_matches=False,
            ),
        }

    def _sample_proposals(
        self, matched_idxs: torch.Tensor, matched_labels: torch.Tensor, gt_classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample proposals and give each one a class: its matched ground truth's class,
        ``num_classes`` for background, -1 for ignored.

        Returns:
            Tensor: indices of the sampled proposals; Tensor: their classes.
        """
        if gt_classes.numel() > 0:
            gt_classes = gt_classes[matched_idxs]
            gt_classes[matched_labels == 0] = self.num_classes
            gt_classes[matched_labels == -1] = -1
        else:
            gt_classes = torch.zeros_like(matched_idxs) + self.num_classes
        fg_idxs, bg_idxs = subsample_labels(
            gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
        )
        sampled_idxs = torch.cat([fg_idxs, bg_idxs], dim=0)
        return sampled_idxs, gt_classes[sampled_idxs]

    @torch.no_grad()
    def label_and_sample_proposals(
        self, proposals: list[Instances], targets: list[Instances]
    ) -> list[Instances]:
        """Match proposals with ground truth, sample them, and attach the matched
        ground-truth fields.

        Args:
            proposals (list[Instances]): per image, "proposal_boxes" and "objectness_logits".
            targets (list[Instances]): per image, "gt_boxes", "gt_classes" and optionally
                other "gt_*" fields (e.g. "gt_masks", "gt_keypoints").

        Returns:
            list[Instances]: per image, ``batch_size_per_image`` sampled proposals with
            "gt_classes" and, for foreground ones, the other "gt_*" fields of their match.
        """
        if self.proposal_append_gt:
            proposals = add_ground_truth_to_proposals(targets, proposals)
        proposals_with_gt = []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            has_gt = len(targets_per_image) > 0
            match_quality_matrix = self._pairwise_iou(
                targets_per_image.gt_boxes, proposals_per_image.proposal_boxes
            )
            matched_idxs, matched_labels = self.proposal_matcher(match_quality_matrix)
            sampled_idxs, gt_classes = self._sample_proposals(
                matched_idxs, matched_labels, targets_per_image.gt_classes
            )
            proposals_per_image = proposals_per_image[sampled_idxs]
            proposals_per_image.gt_classes = gt_classes
            if has_gt:
                sampled_targets = matched_idxs[sampled_idxs]
                for trg_name, trg_value in targets_per_image.get_fields().items():
                    if trg_name.startswith("gt_") and not proposals_per_image.has(trg_name):
                        proposals_per_image.set(trg_name, trg_value[sampled_targets])
            proposals_with_gt.append(proposals_per_image)
        return proposals_with_gt

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """
        Args:
            images (ImageList): the input images.
            features (dict[str,Tensor]): input feature maps.
            proposals (list[Instances]): proposals of each image.
            targets (list[Instances], optional): ground truth, required in training.

        Returns:
            list[Instances]: detections at inference (proposals with ground truth in training).
            dict[str->Tensor]: losses in training, empty at inference.
        """
        raise NotImplementedError


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeads(ROIHeads):
    """The ROIHeads of the C4 models of "Faster R-CNN" and "Mask R-CNN": the box and
    mask heads share the cropping and the per-region res5 stage."""

    @configurable
    def __init__(
        self,
        *,
        in_features: list[str],
        pooler: ROIPooler,
        res5: nn.Module,
        box_predictor: nn.Module,
        mask_head: nn.Module | None = None,
        **kwargs: Any,
    ):
        """
        Args:
            in_features (list[str]): the one feature map to pool from.
            pooler (ROIPooler): pooler to extract region features from the backbone.
            res5 (nn.Sequential): the res5 stage run on each region.
            box_predictor (nn.Module): the box predictor (FastRCNNOutputLayers).
            mask_head (nn.Module): the mask head; None disables masks.
        """
        super().__init__(**kwargs)
        self.in_features = list(in_features)
        self.pooler = pooler
        if isinstance(res5, (list, tuple)):
            res5 = nn.Sequential(*res5)
        self.res5 = res5
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if self.mask_on:
            self.mask_head = mask_head

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        ret = super().from_config(cfg)
        in_features = ret["in_features"] = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        if len(in_features) != 1:
            raise ValueError(
                "MODEL.ROI_HEADS.IN_FEATURES: Res5ROIHeads takes exactly one feature map"
            )
        if cfg.MODEL.KEYPOINT_ON:
            raise ValueError("MODEL.KEYPOINT_ON: Res5ROIHeads has no keypoint head")
        pooler_resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        ret["pooler"] = ROIPooler(
            output_size=pooler_resolution,
            scales=(1.0 / input_shape[in_features[0]].stride,),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE,
        )
        ret["res5"], out_channels = cls._build_res5_block(cfg)
        ret["box_predictor"] = FastRCNNOutputLayers(
            cfg, ShapeSpec(channels=out_channels, height=1, width=1)
        )
        if cfg.MODEL.MASK_ON:
            ret["mask_head"] = build_mask_head(
                cfg,
                ShapeSpec(channels=out_channels, width=pooler_resolution, height=pooler_resolution),
            )
        return ret

    @classmethod
    def _build_res5_block(cls, cfg: Any) -> tuple[nn.Sequential, int]:
        stage_channel_factor = 2**3  # res5 is 8x res2
        r = cfg.MODEL.RESNETS
        bottleneck_channels = r.NUM_GROUPS * r.WIDTH_PER_GROUP * stage_channel_factor
        out_channels = r.RES2_OUT_CHANNELS * stage_channel_factor
        if r.DEFORM_ON_PER_STAGE[-1]:
            raise ValueError("Deformable conv is not supported in the res5 head.")
        blocks = ResNet.make_stage(
            BottleneckBlock,
            3,
            stride_per_block=[2, 1, 1],
            in_channels=out_channels // 2,
            bottleneck_channels=bottleneck_channels,
            out_channels=out_channels,
            num_groups=r.NUM_GROUPS,
            norm=r.NORM,
            stride_in_1x1=r.STRIDE_IN_1X1,
        )
        return nn.Sequential(*blocks), out_channels

    def _shared_roi_transform(
        self, features: list[torch.Tensor], boxes: list[Boxes]
    ) -> torch.Tensor:
        return self.res5(self.pooler(features, boxes))

    def forward(self, images, features, proposals, targets=None):
        del images
        if self.training:
            if not targets:
                raise ValueError("'targets' argument is required during training")
            proposals = self.label_and_sample_proposals(proposals, targets)
        del targets
        box_features = self._shared_roi_transform(
            [features[f] for f in self.in_features], [x.proposal_boxes for x in proposals]
        )
        predictions = self.box_predictor(box_features.mean(dim=[2, 3]))
        if self.training:
            del features
            losses = self.box_predictor.losses(predictions, proposals)
            if self.mask_on:
                proposals, fg_selection_masks = select_foreground_proposals(
                    proposals, self.num_classes
                )
                # The mask head reuses the foreground regions' res5 features.
                mask_features = box_features[torch.cat(fg_selection_masks, dim=0)]
                del box_features
                losses.update(self.mask_head(mask_features, proposals))
            return [], losses
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return self.forward_with_given_boxes(features, pred_instances), {}

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        """Compute the mask predictions of given boxes ("pred_boxes", "pred_classes")."""
        if self.training:
            raise RuntimeError("forward_with_given_boxes is for inference")
        if self.mask_on:
            x = self._shared_roi_transform(
                [features[f] for f in self.in_features], [x.pred_boxes for x in instances]
            )
            return self.mask_head(x, instances)
        return instances


@ROI_HEADS_REGISTRY.register()
class StandardROIHeads(ROIHeads):
    """The ROIHeads of most FPN models: separate box, mask and keypoint heads, each
    with its own pooler, so they can run on different feature maps."""

    # The box predictor built from a config; the rotated variant (RROIHeads) replaces it.
    _box_predictor_type: type[nn.Module] = FastRCNNOutputLayers

    @configurable
    def __init__(
        self,
        *,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: nn.Module,
        mask_in_features: list[str] | None = None,
        mask_pooler: ROIPooler | None = None,
        mask_head: nn.Module | None = None,
        keypoint_in_features: list[str] | None = None,
        keypoint_pooler: ROIPooler | None = None,
        keypoint_head: nn.Module | None = None,
        train_on_pred_boxes: bool = False,
        **kwargs: Any,
    ):
        """
        Args:
            box_in_features (list[str]): feature maps of the box head.
            box_pooler (ROIPooler): pooler of the box head.
            box_head (nn.Module): transforms pooled features into region features.
            box_predictor (nn.Module): predicts classes and boxes from region features.
            mask_in_features (list[str]): feature maps of the mask head; None: no masks.
            mask_pooler (ROIPooler): pooler of the mask head; None passes the feature maps.
            mask_head (nn.Module): the mask head.
            keypoint_in_features (list[str]): feature maps of the keypoint head; None: no keypoints.
            keypoint_pooler (ROIPooler): pooler of the keypoint head.
            keypoint_head (nn.Module): the keypoint head.
            train_on_pred_boxes (bool): train the mask/keypoint heads on the boxes
                predicted by the box head instead of the proposals.
        """
        super().__init__(**kwargs)
        self.in_features = self.box_in_features = list(box_in_features)
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_on = mask_in_features is not None
        if self.mask_on:
            self.mask_in_features = list(mask_in_features)
            self.mask_pooler = mask_pooler
            self.mask_head = mask_head
        self.keypoint_on = keypoint_in_features is not None
        if self.keypoint_on:
            self.keypoint_in_features = list(keypoint_in_features)
            self.keypoint_pooler = keypoint_pooler
            self.keypoint_head = keypoint_head
        self.train_on_pred_boxes = train_on_pred_boxes

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        ret = super().from_config(cfg)
        ret["train_on_pred_boxes"] = cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES
        # Subclasses may disable a head by overriding its _init_* with a non-classmethod.
        if inspect.ismethod(cls._init_box_head):
            ret.update(cls._init_box_head(cfg, input_shape))
        if inspect.ismethod(cls._init_mask_head):
            ret.update(cls._init_mask_head(cfg, input_shape))
        if inspect.ismethod(cls._init_keypoint_head):
            ret.update(cls._init_keypoint_head(cfg, input_shape))
        return ret

    @staticmethod
    def _pooler_args(
        cfg_head: Any, in_features: list[str], input_shape: dict[str, ShapeSpec]
    ) -> tuple[ROIPooler | None, int]:
        channels = {input_shape[f].channels for f in in_features}
        if len(channels) != 1:
            raise ValueError(
                f"ROI head input features must have the same channels, got {sorted(channels)}"
            )
        if not cfg_head.POOLER_TYPE:
            return None, channels.pop()
        pooler = ROIPooler(
            output_size=cfg_head.POOLER_RESOLUTION,
            scales=tuple(1.0 / input_shape[k].stride for k in in_features),
            sampling_ratio=cfg_head.POOLER_SAMPLING_RATIO,
            pooler_type=cfg_head.POOLER_TYPE,
        )
        return pooler, channels.pop()

    @classmethod
    def _init_box_head(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        box_pooler, in_channels = cls._pooler_args(cfg.MODEL.ROI_BOX_HEAD, in_features, input_shape)
        resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        box_head = build_box_head(
            cfg, ShapeSpec(channels=in_channels, height=resolution, width=resolution)
        )
        box_predictor = cls._box_predictor_type(cfg, box_head.output_shape)
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_head": box_head,
            "box_predictor": box_predictor,
        }

    @classmethod
    def _init_region_head(
        cls, cfg: Any, cfg_head: Any, build_head: Any, input_shape: dict[str, ShapeSpec]
    ) -> tuple[list[str], ROIPooler | None, nn.Module]:
        """Features, pooler and head of a mask or keypoint branch."""
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        pooler, in_channels = cls._pooler_args(cfg_head, in_features, input_shape)
        resolution = cfg_head.POOLER_RESOLUTION
        shape: Any = (
            ShapeSpec(channels=in_channels, width=resolution, height=resolution)
            if pooler is not None
            else {f: input_shape[f] for f in in_features}
        )
        return in_features, pooler, build_head(cfg, shape)

    @classmethod
    def _init_mask_head(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        if not cfg.MODEL.MASK_ON:
            return {}
        features, pooler, head = cls._init_region_head(
            cfg, cfg.MODEL.ROI_MASK_HEAD, build_mask_head, input_shape
        )
        return {"mask_in_features": features, "mask_pooler": pooler, "mask_head": head}

    @classmethod
    def _init_keypoint_head(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        if not cfg.MODEL.KEYPOINT_ON:
            return {}
        features, pooler, head = cls._init_region_head(
            cfg, cfg.MODEL.ROI_KEYPOINT_HEAD, build_keypoint_head, input_shape
        )
        return {"keypoint_in_features": features, "keypoint_pooler": pooler, "keypoint_head": head}

    def forward(self, images, features, proposals, targets=None):
        del images
        if self.training:
            if not targets:
                raise ValueError("'targets' argument is required during training")
            proposals = self.label_and_sample_proposals(proposals, targets)
        del targets
        if self.training:
            losses = self._forward_box(features, proposals)
            # Mask/keypoint heads train on the sampled proposals (or the predicted boxes
            # when train_on_pred_boxes: _forward_box replaced them in place).
            losses.update(self._forward_mask(features, proposals))
            losses.update(self._forward_keypoint(features, proposals))
            return proposals, losses
        pred_instances = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, pred_instances), {}

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        """Run the mask and keypoint heads on given boxes (e.g. the box head's output).

        Args:
            instances (list[Instances]): per image, "pred_boxes" and "pred_classes".

        Returns:
            list[Instances]: the same instances with "pred_masks" / "pred_keypoints".
        """
        if self.training:
            raise RuntimeError("forward_with_given_boxes is for inference")
        if instances and not (instances[0].has("pred_boxes") and instances[0].has("pred_classes")):
            raise ValueError("instances: expected 'pred_boxes' and 'pred_classes'")
        instances = self._forward_mask(features, instances)
        return self._forward_keypoint(features, instances)

    def _forward_box(self, features: dict[str, torch.Tensor], proposals: list[Instances]) -> Any:
        features_list = [features[f] for f in self.box_in_features]
        box_features = self.box_pooler(features_list, [x.proposal_boxes for x in proposals])
        box_features = self.box_head(box_features)
        predictions = self.box_predictor(box_features)
        del box_features
        if self.training:
            losses = self.box_predictor.losses(predictions, proposals)
            if self.train_on_pred_boxes:
                with torch.no_grad():
                    pred_boxes = self.box_predictor.predict_boxes_for_gt_classes(
                        predictions, proposals
                    )
                    for proposals_per_image, boxes_per_image in zip(proposals, pred_boxes):
                        proposals_per_image.proposal_boxes = Boxes(boxes_per_image)
            return losses
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return pred_instances

    def _forward_head(
        self,
        head: nn.Module,
        pooler: ROIPooler | None,
        in_features: list[str],
        features: dict[str, torch.Tensor],
        instances: list[Instances],
    ) -> Any:
        if pooler is not None:
            boxes = [x.proposal_boxes if self.training else x.pred_boxes for x in instances]
            return head(pooler([features[f] for f in in_features], boxes), instances)
        return head({f: features[f] for f in in_features}, instances)

    def _forward_mask(self, features: dict[str, torch.Tensor], instances: list[Instances]) -> Any:
        if not self.mask_on:
            return {} if self.training else instances
        if self.training:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
        return self._forward_head(
            self.mask_head, self.mask_pooler, self.mask_in_features, features, instances
        )

    def _forward_keypoint(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> Any:
        if not self.keypoint_on:
            return {} if self.training else instances
        if self.training:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            instances = select_proposals_with_visible_keypoints(instances)
        return self._forward_head(
            self.keypoint_head, self.keypoint_pooler, self.keypoint_in_features, features, instances
        )
