"""Rotated R-CNN ROI heads: Fast R-CNN box head and predictor on rotated boxes."""

from __future__ import annotations

from typing import Any

import torch

from vt_layers import ROIAlignRotated, ShapeSpec
from vt_modeling.box_regression import Box2BoxTransformRotated
from vt_modeling.config import configurable
from vt_modeling.proposal_generator.rrpn import (
    _check_rotated_boxes,
    _check_rotated_weights,
    _pairwise_iou_rotated_gt,
)
from vt_modeling.registries import ROI_HEADS_REGISTRY
from vt_modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers, _fast_rcnn_inference_single_image
from vt_modeling.roi_heads.roi_heads import StandardROIHeads
from vt_structures import ImageList, Instances, RotatedBoxes

__all__ = [
    "RROIHeads",
    "RotatedFastRCNNOutputLayers",
    "fast_rcnn_inference_rotated",
    "fast_rcnn_inference_single_image_rotated",
]


def fast_rcnn_inference_rotated(
    boxes: list[torch.Tensor],
    scores: list[torch.Tensor],
    image_shapes: list[tuple[int, int]],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Per image: threshold the class scores, apply rotated NMS per class and keep the
    top-k.

    Args:
        boxes (list[Tensor[Ri, K*5 or 5]]): predicted rotated boxes per class (or
            class-agnostic), (cx, cy, w, h, angle degrees).
        scores (list[Tensor[Ri, K+1]]): class probabilities; the last is background.
        image_shapes (list[tuple]): (h, w) of each image.
        score_thresh (float): only detections above this score are kept.
        nms_thresh (float): rotated IoU threshold of NMS, in [0, 1].
        topk_per_image (int): keep the top-k detections; < 0 keeps all.

    Returns:
        instances (list[Instances]): per image, "pred_boxes" (RotatedBoxes), "scores",
            "pred_classes".
        kept_indices (list[Tensor]): per image, the index of the input region of each
            detection.
    """
    results = [
        fast_rcnn_inference_single_image_rotated(
            b, s, shape, score_thresh, nms_thresh, topk_per_image
        )
        for b, s, shape in zip(boxes, scores, image_shapes)
    ]
    return [r[0] for r in results], [r[1] for r in results]


def fast_rcnn_inference_single_image_rotated(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> tuple[Instances, torch.Tensor]:
    """:func:`fast_rcnn_inference_rotated` for one image."""
    return _fast_rcnn_inference_single_image(
        boxes,
        scores,
        image_shape,
        score_thresh,
        nms_thresh,
        topk_per_image,
        RotatedBoxes,
    )


class RotatedFastRCNNOutputLayers(FastRCNNOutputLayers):
    """:class:`FastRCNNOutputLayers` for rotated boxes: 5 box deltas per class
    (``Box2BoxTransformRotated``) and rotated NMS at inference.

    It takes the arguments of :class:`FastRCNNOutputLayers`; ``box_reg_loss_type``
    must be "smooth_l1".
    """

    _box2box_transform_type = Box2BoxTransformRotated

    @configurable
    def __init__(self, input_shape: ShapeSpec | int, **kwargs: Any):
        """
        Args:
            input_shape (ShapeSpec): shape of the input feature to this module.
            **kwargs: the other arguments of :class:`FastRCNNOutputLayers`, with a
                ``Box2BoxTransformRotated`` as ``box2box_transform``.
        """
        if not isinstance(kwargs.get("box2box_transform"), Box2BoxTransformRotated):
            raise TypeError(
                "box2box_transform: RotatedFastRCNNOutputLayers expects a "
                f"Box2BoxTransformRotated, got {type(kwargs.get('box2box_transform')).__name__}"
            )
        loss_type = kwargs.get("box_reg_loss_type", "smooth_l1")
        if loss_type != "smooth_l1":
            raise ValueError(
                f"box_reg_loss_type: rotated boxes support only 'smooth_l1', got '{loss_type}'"
            )
        super().__init__(input_shape, **kwargs)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        _check_rotated_weights(
            cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS, "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS"
        )
        return super().from_config(cfg, input_shape)

    def inference(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> tuple[list[Instances], list[torch.Tensor]]:
        """
        Returns:
            list[Instances]: detections per image; see :func:`fast_rcnn_inference_rotated`.
            list[Tensor]: the index of the proposal of each detection.
        """
        return fast_rcnn_inference_rotated(
            self.predict_boxes(predictions, proposals),
            self.predict_probs(predictions, proposals),
            [x.image_size for x in proposals],
            self.test_score_thresh,
            self.test_nms_thresh,
            self.test_topk_per_image,
        )


@ROI_HEADS_REGISTRY.register()
class RROIHeads(StandardROIHeads):
    """The ROI heads of rotated R-CNN: :class:`StandardROIHeads` with a box branch only,
    rotated proposals and ground truth (``RotatedBoxes``) matched by rotated IoU, an
    ``ROIAlignRotated`` pooler and :class:`RotatedFastRCNNOutputLayers`.

    It takes the arguments of :class:`StandardROIHeads` but the mask and keypoint ones
    and ``train_on_pred_boxes``.
    """

    _pairwise_iou = staticmethod(_pairwise_iou_rotated_gt)
    _box_predictor_type = RotatedFastRCNNOutputLayers

    @configurable
    def __init__(self, **kwargs: Any):
        """
        Args:
            **kwargs: the arguments of :class:`StandardROIHeads`: no mask or keypoint
                branch, ``train_on_pred_boxes`` False, a box pooler of ROIAlignRotated
                and a box predictor with a ``Box2BoxTransformRotated``.
        """
        super().__init__(**kwargs)
        if self.mask_on or self.keypoint_on:
            raise ValueError(
                "mask_in_features, keypoint_in_features: RROIHeads has no mask or keypoint "
                "branch (MODEL.MASK_ON and MODEL.KEYPOINT_ON must be False)"
            )
        if self.train_on_pred_boxes:
            raise ValueError("train_on_pred_boxes: not supported by RROIHeads")
        poolers = getattr(self.box_pooler, "level_poolers", ())
        if not poolers or not all(isinstance(p, ROIAlignRotated) for p in poolers):
            raise ValueError("box_pooler: RROIHeads needs an ROIPooler of type 'ROIAlignRotated'")
        transform = getattr(self.box_predictor, "box2box_transform", None)
        if not isinstance(transform, Box2BoxTransformRotated):
            raise TypeError(
                "box_predictor: RROIHeads needs a predictor with a Box2BoxTransformRotated "
                f"(e.g. RotatedFastRCNNOutputLayers), got {type(transform).__name__}"
            )

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        if cfg.MODEL.MASK_ON or cfg.MODEL.KEYPOINT_ON:
            raise ValueError(
                "MODEL.MASK_ON, MODEL.KEYPOINT_ON: RROIHeads has no mask or keypoint branch"
            )
        if cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE != "ROIAlignRotated":
            raise ValueError(
                "MODEL.ROI_BOX_HEAD.POOLER_TYPE: RROIHeads needs 'ROIAlignRotated', got "
                f"'{cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE}'"
            )
        return super().from_config(cfg, input_shape)

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """As :meth:`StandardROIHeads.forward`, with ``proposal_boxes`` and
        ``gt_boxes`` as RotatedBoxes; detections have ``pred_boxes`` as RotatedBoxes."""
        for p in proposals:
            _check_rotated_boxes(p.proposal_boxes, "proposals.proposal_boxes")
        if self.training and targets:
            for t in targets:
                _check_rotated_boxes(t.gt_boxes, "targets.gt_boxes")
        return super().forward(images, features, proposals, targets)
