"""RetinaNet: Focal Loss for Dense Object Detection."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import ShapeSpec, batched_nms, get_norm, sigmoid_focal_loss
from vt_modeling.backbone import Backbone
from vt_modeling.box_regression import Box2BoxTransform, _dense_box_regression_loss
from vt_modeling.config import configurable
from vt_modeling.matcher import Matcher
from vt_modeling.meta_arch.dense_detector import DenseDetector
from vt_modeling.registries import META_ARCH_REGISTRY, build_anchor_generator, build_backbone
from vt_structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = ["RetinaNet", "RetinaNetHead"]


@META_ARCH_REGISTRY.register()
class RetinaNet(DenseDetector):
    """Implement RetinaNet in "Focal Loss for Dense Object Detection"
    (https://arxiv.org/abs/1708.02002)."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: list[str],
        anchor_generator: nn.Module,
        box2box_transform: Box2BoxTransform,
        anchor_matcher: Matcher,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.5,
        max_detections_per_image: int = 100,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
        vis_period: int = 0,
        input_format: str = "BGR",
    ):
        """
        Args:
            backbone: a backbone module, must follow the Backbone interface.
            head (nn.Module): a module that predicts logits and regression deltas for each
                level from a list of per-level features.
            head_in_features (list[str]): names of the input feature maps used in head.
            anchor_generator (nn.Module): a module that creates anchors from a list of
                features, usually a DefaultAnchorGenerator.
            box2box_transform (Box2BoxTransform): the transform from anchor boxes to
                instance boxes.
            anchor_matcher (Matcher): labels the anchors by matching them with ground truth.
            num_classes (int): number of classes; also the label of background anchors.
            focal_loss_alpha (float): alpha of the focal loss.
            focal_loss_gamma (float): gamma of the focal loss.
            smooth_l1_beta (float): beta of the smooth L1 box loss.
            box_reg_loss_type (str): "smooth_l1", "giou", "diou" or "ciou".
            test_score_thresh (float): inference class score threshold; only anchors with
                a score above it are considered.
            test_topk_candidates (int): number of top candidates per level kept before NMS.
            test_nms_thresh (float): overlap threshold of the non-maximum suppression
                (suppress boxes with IoU >= this threshold).
            max_detections_per_image (int): maximum number of detections returned per
                image (100 is the COCO limit).
            pixel_mean: see :class:`DenseDetector`.
            pixel_std: see :class:`DenseDetector`.
            vis_period (int): the period to run visualization (unused).
            input_format (str): the meaning of the channels of the input, e.g. "BGR".
        """
        super().__init__(
            backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std
        )
        if num_classes <= 0:
            raise ValueError(f"num_classes: expected a positive number, got {num_classes}")
        if box_reg_loss_type not in ("smooth_l1", "giou", "diou", "ciou"):
            raise ValueError(
                "box_reg_loss_type: expected 'smooth_l1', 'giou', 'diou' or 'ciou', "
                f"got {box_reg_loss_type!r}"
            )
        self.num_classes = num_classes
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.anchor_matcher = anchor_matcher
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_type = box_reg_loss_type
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image
        self.vis_period = vis_period
        self.input_format = input_format

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        backbone = build_backbone(cfg)
        backbone_shape = backbone.output_shape()
        feature_shapes = [backbone_shape[f] for f in cfg.MODEL.RETINANET.IN_FEATURES]
        return {
            "backbone": backbone,
            "head": RetinaNetHead(cfg, feature_shapes),
            "anchor_generator": build_anchor_generator(cfg, feature_shapes),
            "box2box_transform": Box2BoxTransform(weights=cfg.MODEL.RETINANET.BBOX_REG_WEIGHTS),
            "anchor_matcher": Matcher(
                cfg.MODEL.RETINANET.IOU_THRESHOLDS,
                cfg.MODEL.RETINANET.IOU_LABELS,
                allow_low_quality_matches=True,
            ),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "num_classes": cfg.MODEL.RETINANET.NUM_CLASSES,
            "head_in_features": cfg.MODEL.RETINANET.IN_FEATURES,
            "focal_loss_alpha": cfg.MODEL.RETINANET.FOCAL_LOSS_ALPHA,
            "focal_loss_gamma": cfg.MODEL.RETINANET.FOCAL_LOSS_GAMMA,
            "smooth_l1_beta": cfg.MODEL.RETINANET.SMOOTH_L1_LOSS_BETA,
            "box_reg_loss_type": cfg.MODEL.RETINANET.BBOX_REG_LOSS_TYPE,
            "test_score_thresh": cfg.MODEL.RETINANET.SCORE_THRESH_TEST,
            "test_topk_candidates": cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": cfg.MODEL.RETINANET.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "vis_period": cfg.VIS_PERIOD,
            "input_format": cfg.INPUT.FORMAT,
        }

    def forward_training(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: list[list[torch.Tensor]],
        gt_instances: list[Instances],
    ) -> dict[str, torch.Tensor]:
        pred_logits, pred_anchor_deltas = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4]
        )
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes)

    def losses(
        self,
        anchors: list[Boxes],
        pred_logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            anchors (list[Boxes]): a list of #feature level Boxes.
            pred_logits (list[Tensor[N, Hi*Wi*Ai, K]]): class logits of each level.
            gt_labels (list[Tensor[R]]): per image, see :meth:`label_anchors`.
            pred_anchor_deltas (list[Tensor[N, Hi*Wi*Ai, 4]]): box deltas of each level.
            gt_boxes (list[Tensor[R, 4]]): per image, see :meth:`label_anchors`.

        Returns:
            dict[str, Tensor]: "loss_cls" and "loss_box_reg", scalars.
        """
        gt_labels_all = torch.stack(gt_labels)  # (N, R)
        valid_mask = gt_labels_all >= 0
        pos_mask = valid_mask & (gt_labels_all != self.num_classes)
        num_pos_anchors = pos_mask.sum().item()
        normalizer = self._ema_update("loss_normalizer", max(num_pos_anchors, 1), 100)

        # no loss for the last (background) class
        gt_labels_target = F.one_hot(gt_labels_all[valid_mask], num_classes=self.num_classes + 1)[
            :, :-1
        ]
        loss_cls = sigmoid_focal_loss(
            torch.cat(pred_logits, dim=1)[valid_mask],
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
            box_reg_loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        return {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box_reg / normalizer}

    @torch.no_grad()
    def label_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            anchors (list[Boxes]): the anchors of each feature level.
            gt_instances (list[Instances]): the ground truth of each image, with
                "gt_boxes" and "gt_classes".

        Returns:
            list[Tensor[R]]: per image, the label of every anchor (R anchors over all
            levels), in {-1, 0, ..., K}: -1 ignore, K background.
            list[Tensor[R, 4]]: per image, the matched ground-truth box of every anchor;
            undefined for anchors not labelled foreground.
        """
        all_anchors = Boxes.cat(anchors)  # Rx4
        gt_labels = []
        matched_gt_boxes = []
        for gt_per_image in gt_instances:
            match_quality_matrix = pairwise_iou(gt_per_image.gt_boxes, all_anchors)
            matched_idxs, anchor_labels = self.anchor_matcher(match_quality_matrix)
            del match_quality_matrix
            if len(gt_per_image) > 0:
                matched_gt_boxes_i = gt_per_image.gt_boxes.tensor[matched_idxs]
                gt_labels_i = gt_per_image.gt_classes[matched_idxs]
                gt_labels_i[anchor_labels == 0] = self.num_classes
                gt_labels_i[anchor_labels == -1] = -1
            else:
                matched_gt_boxes_i = torch.zeros_like(all_anchors.tensor)
                gt_labels_i = torch.zeros_like(matched_idxs) + self.num_classes
            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched_gt_boxes_i)
        return gt_labels, matched_gt_boxes

    def forward_inference(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: list[list[torch.Tensor]],
    ) -> list[Instances]:
        pred_logits, pred_anchor_deltas = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4]
        )
        anchors = self.anchor_generator(features)
        results = []
        for img_idx, image_size in enumerate(images.image_sizes):
            scores_per_image = [x[img_idx].sigmoid() for x in pred_logits]
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
        """Single-image inference: threshold the scores, keep the top candidates of each
        level and apply non-maximum suppression.

        Args:
            anchors (list[Boxes]): the anchors of each feature level.
            box_cls (list[Tensor[Hi*Wi*A, K]]): the class scores of each level.
            box_delta (list[Tensor[Hi*Wi*A, 4]]): the box deltas of each level.
            image_size (tuple[int, int]): the (height, width) of the image.

        Returns:
            Instances: "pred_boxes", "scores" and "pred_classes" of the detections.
        """
        pred = self._decode_multi_level_predictions(
            anchors,
            box_cls,
            box_delta,
            self.test_score_thresh,
            self.test_topk_candidates,
            image_size,
        )
        keep = batched_nms(
            pred.pred_boxes.tensor, pred.scores, pred.pred_classes, self.test_nms_thresh
        )
        return pred[keep[: self.max_detections_per_image]]


class _CycleBatchNormList(nn.ModuleList):
    """One BatchNorm per feature level, used in turn by successive calls, with a shared
    affine transform (detectron2's ``CycleBatchNormList``): the statistics of the levels
    differ, the learned scale and shift do not."""

    def __init__(self, length: int, bn_class: type[nn.Module], num_features: int):
        super().__init__([bn_class(num_features, affine=False) for _ in range(length)])
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self._pos = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ret = self[self._pos](x)
        self._pos = (self._pos + 1) % len(self)
        return ret * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)


class RetinaNetHead(nn.Module):
    """The head used in RetinaNet for object classification and box regression: two
    subnets of convolutions shared by all feature levels."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: list[ShapeSpec],
        num_classes: int,
        num_anchors: int,
        conv_dims: list[int],
        norm: str = "",
        prior_prob: float = 0.01,
    ):
        """
        Args:
            input_shape (list[ShapeSpec]): the shapes of the input features.
            num_classes (int): number of classes.
            num_anchors (int): number of anchors per location (the same on all levels).
            conv_dims (list[int]): the output channels of the convolutions of each subnet.
            norm (str): normalization after every conv of the subnets, see
                :func:`vt_layers.get_norm`; "BN" and "SyncBN" use separate statistics per
                feature level.
            prior_prob (float): prior weight for computing the bias of the classifier.
        """
        super().__init__()
        if not conv_dims:
            raise ValueError("conv_dims: expected at least one convolution")
        if not 0 < prior_prob < 1:
            raise ValueError(f"prior_prob: expected a value in (0, 1), got {prior_prob}")
        self._num_features = len(input_shape)

        def norm_layer(channels: int) -> nn.Module | None:
            if norm in ("BN", "SyncBN"):
                bn_class = nn.BatchNorm2d if norm == "BN" else nn.SyncBatchNorm
                return _CycleBatchNormList(self._num_features, bn_class, channels)
            return get_norm(norm, channels)

        cls_subnet: list[nn.Module] = []
        bbox_subnet: list[nn.Module] = []
        for in_channels, out_channels in zip(
            [input_shape[0].channels, *conv_dims], conv_dims, strict=False
        ):
            for subnet in (cls_subnet, bbox_subnet):
                subnet.append(
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
                )
                if norm:
                    subnet.append(norm_layer(out_channels))
                subnet.append(nn.ReLU())
        self.cls_subnet = nn.Sequential(*cls_subnet)
        self.bbox_subnet = nn.Sequential(*bbox_subnet)
        self.cls_score = nn.Conv2d(
            conv_dims[-1], num_anchors * num_classes, kernel_size=3, stride=1, padding=1
        )
        self.bbox_pred = nn.Conv2d(
            conv_dims[-1], num_anchors * 4, kernel_size=3, stride=1, padding=1
        )

        for modules in [self.cls_subnet, self.bbox_subnet, self.cls_score, self.bbox_pred]:
            for layer in modules.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, mean=0, std=0.01)
                    nn.init.constant_(layer.bias, 0)
        # Use prior in model initialization to improve stability
        bias_value = -(math.log((1 - prior_prob) / prior_prob))
        nn.init.constant_(self.cls_score.bias, bias_value)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        num_anchors = build_anchor_generator(cfg, input_shape).num_cell_anchors
        if len(set(num_anchors)) != 1:
            raise ValueError(
                f"Using different number of anchors between levels is not supported: {num_anchors}"
            )
        return {
            "input_shape": input_shape,
            "num_classes": cfg.MODEL.RETINANET.NUM_CLASSES,
            "conv_dims": [input_shape[0].channels] * cfg.MODEL.RETINANET.NUM_CONVS,
            "prior_prob": cfg.MODEL.RETINANET.PRIOR_PROB,
            "norm": cfg.MODEL.RETINANET.NORM,
            "num_anchors": num_anchors[0],
        }

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
        """
        Args:
            features (list[Tensor[N, C, Hi, Wi]]): FPN feature map tensors in high to
                low resolution.

        Returns:
            logits (list[Tensor[N, A*K, Hi, Wi]]): the classification logits of each level.
            bbox_reg (list[Tensor[N, A*4, Hi, Wi]]): the box deltas of each level.
        """
        if len(features) != self._num_features:
            raise ValueError(f"features: expected {self._num_features} levels, got {len(features)}")
        logits = []
        bbox_reg = []
        for feature in features:
            logits.append(self.cls_score(self.cls_subnet(feature)))
            bbox_reg.append(self.bbox_pred(self.bbox_subnet(feature)))
        return logits, bbox_reg
