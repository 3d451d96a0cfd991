"""ROI heads of R-CNN models and their box, mask and keypoint heads."""

from __future__ import annotations

from vt_modeling.roi_heads.box_head import FastRCNNConvFCHead
from vt_modeling.roi_heads.cascade_rcnn import CascadeROIHeads
from vt_modeling.roi_heads.fast_rcnn import (
    FastRCNNOutputLayers,
    fast_rcnn_inference,
    fast_rcnn_inference_single_image,
)
from vt_modeling.roi_heads.keypoint_head import (
    BaseKeypointRCNNHead,
    KRCNNConvDeconvUpsampleHead,
    keypoint_rcnn_inference,
    keypoint_rcnn_loss,
)
from vt_modeling.roi_heads.mask_head import (
    BaseMaskRCNNHead,
    MaskRCNNConvUpsampleHead,
    mask_rcnn_inference,
    mask_rcnn_loss,
)
from vt_modeling.roi_heads.roi_heads import (
    Res5ROIHeads,
    ROIHeads,
    StandardROIHeads,
    select_foreground_proposals,
    select_proposals_with_visible_keypoints,
)
from vt_modeling.roi_heads.rotated_fast_rcnn import (
    RotatedFastRCNNOutputLayers,
    RROIHeads,
    fast_rcnn_inference_rotated,
    fast_rcnn_inference_single_image_rotated,
)

__all__ = [
    "BaseKeypointRCNNHead",
    "BaseMaskRCNNHead",
    "CascadeROIHeads",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "KRCNNConvDeconvUpsampleHead",
    "MaskRCNNConvUpsampleHead",
    "ROIHeads",
    "Res5ROIHeads",
    "RROIHeads",
    "RotatedFastRCNNOutputLayers",
    "StandardROIHeads",
    "fast_rcnn_inference",
    "fast_rcnn_inference_rotated",
    "fast_rcnn_inference_single_image",
    "fast_rcnn_inference_single_image_rotated",
    "keypoint_rcnn_inference",
    "keypoint_rcnn_loss",
    "mask_rcnn_inference",
    "mask_rcnn_loss",
    "select_foreground_proposals",
    "select_proposals_with_visible_keypoints",
]
