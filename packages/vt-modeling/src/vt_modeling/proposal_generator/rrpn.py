"""Rotated Region Proposal Network (RRPN): the RPN for rotated boxes."""

from __future__ import annotations

from typing import Any

import torch

from vt_layers import ShapeSpec
from vt_modeling.box_regression import Box2BoxTransformRotated
from vt_modeling.config import configurable
from vt_modeling.proposal_generator.proposal_utils import _find_top_proposals
from vt_modeling.proposal_generator.rpn import RPN
from vt_modeling.registries import PROPOSAL_GENERATOR_REGISTRY
from vt_structures import Instances, RotatedBoxes, pairwise_iou_rotated

__all__ = ["RRPN", "find_top_rrpn_proposals"]


def find_top_rrpn_proposals(
    proposals: list[torch.Tensor],
    pred_objectness_logits: list[torch.Tensor],
    image_sizes: list[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> list[Instances]:
    """For each feature map, keep the ``pre_nms_topk`` highest scoring rotated proposals,
    then per image clip the nearly horizontal ones to the image, drop small ones, apply
    rotated NMS (independently per level) and keep the ``post_nms_topk`` highest scoring
    ones overall.

    Args:
        proposals (list[Tensor[N, Hi*Wi*A, 5]]): decoded rotated proposals
            (cx, cy, w, h, angle degrees) of each level.
        pred_objectness_logits (list[Tensor[N, Hi*Wi*A]]): their objectness logits.
        image_sizes (list[tuple]): (h, w) of each image.
        nms_thresh (float): rotated IoU threshold of NMS.
        pre_nms_topk (int): proposals kept per level before NMS.
        post_nms_topk (int): proposals kept per image after NMS.
        min_box_size (float): proposals with a side below this are removed.
        training (bool): raise on non-finite predictions instead of dropping them.

    Returns:
        list[Instances]: per image, ``proposal_boxes`` (RotatedBoxes) and
        ``objectness_logits`` sorted by decreasing objectness.
    """
    return _find_top_proposals(
        proposals,
        pred_objectness_logits,
        image_sizes,
        nms_thresh,
        pre_nms_topk,
        post_nms_topk,
        min_box_size,
        training,
        RotatedBoxes,
    )


def _check_rotated_boxes(boxes: Any, name: str) -> None:
    if not isinstance(boxes, RotatedBoxes):
        raise TypeError(
            f"{name}: rotated detectors expect RotatedBoxes (cx, cy, w, h, angle), "
            f"got {type(boxes).__name__}"
        )


def _pairwise_iou_rotated_gt(gt_boxes: Any, boxes: RotatedBoxes) -> torch.Tensor:
    """Rotated IoU of ground truth (N) and anchors or proposals (M): Tensor[N, M]."""
    _check_rotated_boxes(gt_boxes, "gt_boxes")
    return pairwise_iou_rotated(gt_boxes, boxes)


def _check_rotated_weights(weights: Any, name: str) -> None:
    """Name the config key when its box regression weights are not 5 (a common slip:
    the defaults are the 4 axis-aligned ones)."""
    if len(weights) != 5:
        raise ValueError(
            f"{name}: rotated boxes need 5 weights (dx, dy, dw, dh, da), got {tuple(weights)}"
        )


@PROPOSAL_GENERATOR_REGISTRY.register()
class RRPN(RPN):
    """Rotated Region Proposal Network, from "Arbitrary-Oriented Scene Text Detection via
    Rotation Proposals".

    The :class:`RPN` with rotated anchors (``RotatedAnchorGenerator``), rotated box
    deltas (``Box2BoxTransformRotated``), anchors matched to the ground truth
    (``gt_boxes`` as ``RotatedBoxes``) by rotated IoU, and rotated NMS of the proposals.
    It takes the arguments of :class:`RPN`; ``box_reg_loss_type`` must be "smooth_l1".
    Unlike detectron2's RRPN, ``anchor_boundary_thresh`` is supported: an anchor is
    ignored when a corner of its rotated rectangle lies beyond the image by more than
    the threshold.
    """

    _box2box_transform_type = Box2BoxTransformRotated
    _pairwise_iou = staticmethod(_pairwise_iou_rotated_gt)
    _find_top_proposals = staticmethod(find_top_rrpn_proposals)

    @configurable
    def __init__(self, **kwargs: Any):
        """
        Args:
            **kwargs: the arguments of :class:`RPN`.
        """
        super().__init__(**kwargs)
        if not isinstance(self.box2box_transform, Box2BoxTransformRotated):
            raise TypeError(
                "box2box_transform: RRPN expects a Box2BoxTransformRotated, got "
                f"{type(self.box2box_transform).__name__}"
            )
        if getattr(self.anchor_generator, "box_dim", None) != 5:
            raise ValueError(
                "anchor_generator: RRPN expects rotated anchors (box_dim 5, e.g. "
                "RotatedAnchorGenerator)"
            )
        if self.box_reg_loss_type != "smooth_l1":
            raise ValueError(
                f"box_reg_loss_type: RRPN supports only 'smooth_l1', got '{self.box_reg_loss_type}'"
            )

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        _check_rotated_weights(cfg.MODEL.RPN.BBOX_REG_WEIGHTS, "MODEL.RPN.BBOX_REG_WEIGHTS")
        return super().from_config(cfg, input_shape)
