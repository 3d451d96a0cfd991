"""Meta-architectures: whole models built from backbones and heads."""

from __future__ import annotations

from vt_modeling.meta_arch.dense_detector import DenseDetector
from vt_modeling.meta_arch.fcos import FCOS, FCOSHead
from vt_modeling.meta_arch.mmdet_wrapper import MMDetBackbone, MMDetDetector
from vt_modeling.meta_arch.panoptic_fpn import PanopticFPN, combine_semantic_and_instance_outputs
from vt_modeling.meta_arch.rcnn import GeneralizedRCNN, ProposalNetwork
from vt_modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead
from vt_modeling.meta_arch.semantic_seg import SemanticSegmentor, SemSegFPNHead

__all__ = [
    "GeneralizedRCNN",
    "ProposalNetwork",
    # dense (one-stage) detectors
    "DenseDetector",
    "FCOS",
    "FCOSHead",
    "RetinaNet",
    "RetinaNetHead",
    # semantic segmentation
    "SemanticSegmentor",
    "SemSegFPNHead",
    # panoptic segmentation
    "PanopticFPN",
    "combine_semantic_and_instance_outputs",
    # mmdetection wrappers
    "MMDetBackbone",
    "MMDetDetector",
]
