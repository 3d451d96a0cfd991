"""FCOS: A Simple and Strong Anchor-free Object Detector."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import ShapeSpec, sigmoid_focal_loss
from vt_modeling.anchor_generator import DefaultAnchorGenerator
from vt_modeling.backbone import Backbone
from vt_modeling.box_regression import Box2BoxTransformLinear, _dense_box_regression_loss
from vt_modeling.config import configurable
from vt_modeling.meta_arch.dense_detector import DenseDetector
from vt_modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead
from vt_modeling.registries import META_ARCH_REGISTRY, build_backbone
from vt_structures import Boxes, ImageList, Instances, pairwise_point_box_distance

__all__ = ["FCOS", "FCOSHead"]


@META_ARCH_REGISTRY.register()
class FCOS(DenseDetector):
    """Implement FCOS in "FCOS: A Simple and Strong Anchor-free Object Detector"
    (https://arxiv.org/abs/2006.09214)."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: list[str] | None = None,
        box2box_transform: Box2BoxTransformLinear | None = None,
        num_classes: int,
        center_sampling_radius: float = 1.5,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        test_score_thresh: float = 0.2,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.6,
        max_detections_per_image: int = 100,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
    ):
        """
        Args:
            backbone: a backbone module, must follow the Backbone interface.
            head (nn.Module): a module that predicts logits, box regressions and
                centerness for each level from a list of per-level features.
            head_in_features (list[str] or None): names of the input feature maps used
                in head; all backbone outputs by increasing stride when None.
            box2box_transform (Box2BoxTransformLinear or None): defaults to
                ``Box2BoxTransformLinear(normalize_by_size=True)``.
            num_classes (int): number of classes.
            center_sampling_radius (float): radius of the "center" of a ground-truth box,
                in units of the anchor stride, within which all anchor points are
                labelled positive.
            focal_loss_alpha (float): alpha of the focal loss.
            focal_loss_gamma (float): gamma of the focal loss.
            test_score_thresh (float): same as in :class:`RetinaNet`.
            test_topk_candidates (int): same as in :class:`RetinaNet`.
            test_nms_thresh (float): same as in :class:`RetinaNet`.
            max_detections_per_image (int): same as in :class:`RetinaNet`.
            pixel_mean: see :class:`DenseDetector`.
            pixel_std: see :class:`DenseDetector`.
        """
        super().__init__(
            backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std
        )
        if num_classes <= 0:
            raise ValueError(f"num_classes: expected a positive number, got {num_classes}")
        self.num_classes = num_classes
        # One anchor point per location, represented by a box whose size is the stride.
        feature_shapes = backbone.output_shape()
        fpn_strides = [feature_shapes[k].stride for k in self.head_in_features]
        self.anchor_generator = DefaultAnchorGenerator(
            sizes=[[k] for k in fpn_strides], aspect_ratios=[1.0], strides=fpn_strides
        )
        # Regression targets are distances normalized by the anchor stride (= its size).
        if box2box_transform is None:
            box2box_transform = Box2BoxTransformLinear(normalize_by_size=True)
        self.box2box_transform = box2box_transform
        self.center_sampling_radius = float(center_sampling_radius)
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        backbone = build_backbone(cfg)
        backbone_shape = backbone.output_shape()
        feature_shapes = [backbone_shape[f] for f in cfg.MODEL.FCOS.IN_FEATURES]
        return {
            "backbone": backbone,
            "head": FCOSHead(cfg, feature_shapes),
            "head_in_features": cfg.MODEL.FCOS.IN_FEATURES,
            "num_classes": cfg.MODEL.FCOS.NUM_CLASSES,
            "center_sampling_radius": cfg.MODEL.FCOS.CENTER_SAMPLING_RADIUS,
            "focal_loss_alpha": cfg.MODEL.FCOS.FOCAL_LOSS_ALPHA,
            "focal_loss_gamma": cfg.MODEL.FCOS.FOCAL_LOSS_GAMMA,
            "test_score_thresh": cfg.MODEL.FCOS.SCORE_THRESH_TEST,
            "test_topk_candidates": cfg.MODEL.FCOS.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": cfg.MODEL.FCOS.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def forward_training(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: list[list[torch.Tensor]],
        gt_instances: list[Instances],
    ) -> dict[str, torch.Tensor]:
        pred_logits, pred_anchor_deltas, pred_centerness = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4, 1]
        )
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(
            anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes, pred_centerness
        )

    @torch.no_grad()
    def _match_anchors(self, gt_boxes: Boxes, anchors: list[Boxes]) -> torch.Tensor:
        """Match ground-truth boxes to anchor points with the FCOS rules.

        Returns:
            Tensor[G, R]: positive where the anchor may match the box, larger for
            smaller boxes (an anchor goes to the smallest of its candidate boxes).
        """
        num_anchors_per_level = [len(x) for x in anchors]
        all_anchors = Boxes.cat(anchors)  # Rx4
        anchor_centers = all_anchors.get_centers()  # Rx2
        anchor_sizes = all_anchors.tensor[:, 2] - all_anchors.tensor[:, 0]  # R

        lower_bound = anchor_sizes * 4
        lower_bound[: num_anchors_per_level[0]] = 0
        upper_bound = anchor_sizes * 8
        upper_bound[-num_anchors_per_level[-1] :] = float("inf")

        # Center sampling: the anchor point is close enough to the box center.
        gt_centers = gt_boxes.get_centers()
        center_dists = (anchor_centers[None, :, :] - gt_centers[:, None, :]).abs_()
        sampling_regions = self.center_sampling_radius * anchor_sizes[None, :]
        match_quality_matrix = center_dists.max(dim=2).values < sampling_regions

        pairwise_dist = pairwise_point_box_distance(anchor_centers, gt_boxes)
        pairwise_dist = pairwise_dist.permute(1, 0, 2)  # (G, R, 4)
        # The anchor point lies inside the box.
        match_quality_matrix &= pairwise_dist.min(dim=2).values > 0
        # Each level is responsible for a range of box sizes.
        pairwise_dist = pairwise_dist.max(dim=2).values
        match_quality_matrix &= (pairwise_dist > lower_bound[None, :]) & (
            pairwise_dist < upper_bound[None, :]
        )
        # Match the box with the smallest area when several match.
        gt_areas = gt_boxes.area()  # (G, )
        match_quality_matrix = match_quality_matrix.to(torch.float32)
        match_quality_matrix *= 1e8 - gt_areas[:, None]
        return match_quality_matrix

    @torch.no_grad()
    def label_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Same interface as :meth:`RetinaNet.label_anchors`, but implemented with the
        FCOS anchor matching rule. Unlike RetinaNet, there are no ignored anchors.
        """
        gt_labels, matched_gt_boxes = [], []
        for inst in gt_instances:
            if len(inst) > 0:
                match_quality_matrix = self._match_anchors(inst.gt_boxes, anchors)
                # Equivalent to Matcher(thresholds=[1e-5], labels=[0, 1]).
                match_quality, matched_idxs = match_quality_matrix.max(dim=0)
                matched_idxs[match_quality < 1e-5] = -1
                matched_gt_boxes_i = inst.gt_boxes.tensor[matched_idxs.clip(min=0)]
                gt_labels_i = inst.gt_classes[matched_idxs.clip(min=0)]
                gt_labels_i[matched_idxs < 0] = self.num_classes
            else:
                all_anchors = Boxes.cat(anchors).tensor
                matched_gt_boxes_i = torch.zeros_like(all_anchors)
                gt_labels_i = torch.full(
                    (all_anchors.shape[0],),
                    fill_value=self.num_classes,
                    dtype=torch.long,
                    device=all_anchors.device,
                )
            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched_gt_boxes_i)
        return gt_labels, matched_gt_boxes

    def losses(
        self,
        anchors: list[Boxes],
        pred_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
        pred_centerness: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Almost identical to :meth:`RetinaNet.losses`, with an extra "loss_centerness"
        in the returned dict; the box loss is the GIoU loss.

        Args:
            anchors (list[Boxes]): the anchors of each feature level.
            pred_logits (list[Tensor[N, Hi*Wi, K]]): class logits of each level.
            gt_labels (list[Tensor[R]]): per image, see :meth:`label_anchors`.
            pred_anchor_deltas (list[Tensor[N, Hi*Wi, 4]]): box regressions of each level.
            gt_boxes (list[Tensor[R, 4]]): per image, see :meth:`label_anchors`.
            pred_centerness (list[Tensor[N, Hi*Wi, 1]]): centerness logits of each level.

        Returns:
            dict[str, Tensor]: "loss_cls", "loss_box_reg" and "loss_centerness", scalars.
        """
        gt_labels_all = torch.stack(gt_labels)  # (N, R)
        pos_mask = (gt_labels_all >= 0) & (gt_labels_all != self.num_classes)
        num_pos_anchors = pos_mask.sum().item()
        normalizer = self._ema_update("loss_normalizer", max(num_pos_anchors, 1), 300)

        # no loss for the last (background) class
        gt_labels_target = F.one_hot(gt_labels_all, num_classes=self.num_classes + 1)[:, :, :-1]
        loss_cls = sigmoid_focal_loss(
            torch.cat(pred_logits, dim=1),
            gt_labels_target.to(pred_logits[0].dtype),
            alpha=self.focal_loss_alpha,
            gamma=self.focal_loss_gamma,
            reduction="sum",
        )
        loss_box_reg = _dense_box_regression_loss(
            anchors,
            self.box2box_transform,
            pred_anchor_deltas,
            gt_boxes,
            pos_mask,
            box_reg_loss_type="giou",
        )
        ctrness_targets = self.compute_ctrness_targets(anchors, gt_boxes)  # (N, R)
        pred_ctrness = torch.cat(pred_centerness, dim=1).squeeze(dim=2)  # (N, R)
        ctrness_loss = F.binary_cross_entropy_with_logits(
            pred_ctrness[pos_mask], ctrness_targets[pos_mask], reduction="sum"
        )
        return {
            "loss_cls": loss_cls / normalizer,
            "loss_box_reg": loss_box_reg / normalizer,
            "loss_centerness": ctrness_loss / normalizer,
        }

    def compute_ctrness_targets(
        self, anchors: list[Boxes], gt_boxes: list[torch.Tensor]
    ) -> torch.Tensor:
        """The centerness target of every anchor point:
        ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` with (l, t, r, b) its
        distances to the sides of its matched box.

        Args:
            anchors (list[Boxes]): the anchors of each feature level.
            gt_boxes (list[Tensor[R, 4]]): per image, the matched box of every anchor.

        Returns:
            Tensor[N, R]: the targets; meaningful only for anchors inside their box.
        """
        all_anchors = Boxes.cat(anchors).tensor  # Rx4
        if len(gt_boxes) == 0:
            return all_anchors.new_zeros((0, all_anchors.shape[0]))
        reg_targets = torch.stack(
            [self.box2box_transform.get_deltas(all_anchors, m) for m in gt_boxes], dim=0
        )  # NxRx4
        left_right = reg_targets[:, :, [0, 2]]
        top_bottom = reg_targets[:, :, [1, 3]]
        ctrness = (left_right.min(dim=-1).values / left_right.max(dim=-1).values) * (
            top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values
        )
        return torch.sqrt(ctrness)

    def forward_inference(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: list[list[torch.Tensor]],
    ) -> list[Instances]:
        pred_logits, pred_anchor_deltas, pred_centerness = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4, 1]
        )
        anchors = self.anchor_generator(features)
        results = []
        for img_idx, image_size in enumerate(images.image_sizes):
            # The geometric mean of class and centerness scores (eqn. 4 of the paper).
            scores_per_image = [
                torch.sqrt(x[img_idx].sigmoid() * y[img_idx].sigmoid())
                for x, y in zip(pred_logits, pred_centerness)
            ]
            deltas_per_image = [x[img_idx] for x in pred_anchor_deltas]
            results.append(
                self.inference_single_image(anchors, scores_per_image, deltas_per_image, image_size)
            )
        return results

    def inference_single_image(
        self,
        anchors: list[Boxes],
        box_cls: list[torch.Tensor],
        box_delta: list[torch.Tensor],
        image_size: tuple[int, int],
    ) -> Instances:
        """Identical to :meth:`RetinaNet.inference_single_image`.

        Args:
            anchors (list[Boxes]): the anchor points of each feature level.
            box_cls (list[Tensor[Hi*Wi, K]]): the scores of each level.
            box_delta (list[Tensor[Hi*Wi, 4]]): the box regressions of each level.
            image_size (tuple[int, int]): the (height, width) of the image.

        Returns:
            Instances: "pred_boxes", "scores" and "pred_classes" of the detections.
        """
        return RetinaNet.inference_single_image(self, anchors, box_cls, box_delta, image_size)


class FCOSHead(RetinaNetHead):
    """The head used in FCOS: the RetinaNet head with one anchor point per location and
    a centerness branch on the box subnet."""

    @configurable
    def __init__(self, *, input_shape: list[ShapeSpec], conv_dims: list[int], **kwargs: Any):
        """
        Args:
            input_shape (list[ShapeSpec]): the shapes of the input features.
            conv_dims (list[int]): the output channels of the convolutions of each subnet.
            **kwargs: ``num_classes``, ``norm`` and ``prior_prob`` of :class:`RetinaNetHead`.
        """
        super().__init__(input_shape=input_shape, conv_dims=conv_dims, num_anchors=1, **kwargs)
        # No learnable scale per level as in the original FCOS: it brings nothing once
        # the regression targets are normalized by the stride.
        self.ctrness = nn.Conv2d(conv_dims[-1], 1, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(self.ctrness.weight, std=0.01)
        nn.init.constant_(self.ctrness.bias, 0)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        return {
            "input_shape": input_shape,
            "num_classes": cfg.MODEL.FCOS.NUM_CLASSES,
            "conv_dims": [input_shape[0].channels] * cfg.MODEL.FCOS.NUM_CONVS,
            "prior_prob": cfg.MODEL.FCOS.PRIOR_PROB,
            "norm": cfg.MODEL.FCOS.NORM,
        }

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
        """
        Args:
            features (list[Tensor[N, C, Hi, Wi]]): FPN feature map tensors in high to
                low resolution.

        Returns:
            logits (list[Tensor[N, K, Hi, Wi]]): the classification logits of each level.
            bbox_reg (list[Tensor[N, 4, Hi, Wi]]): the box regressions of each level.
            ctrness (list[Tensor[N, 1, Hi, Wi]]): the centerness logits of each level.
        """
        if len(features) != self._num_features:
            raise ValueError(f"features: expected {self._num_features} levels, got {len(features)}")
        logits = []
        bbox_reg = []
        ctrness = []
        for feature in features:
            logits.append(self.cls_score(self.cls_subnet(feature)))
            bbox_feature = self.bbox_subnet(feature)
            bbox_reg.append(self.bbox_pred(bbox_feature))
            ctrness.append(self.ctrness(bbox_feature))
        return logits, bbox_reg, ctrness
