"""vt_modeling: the detectron2.modeling API."""

from __future__ import annotations

from vt_modeling.anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator
from vt_modeling.backbone import (
    FPN,
    Backbone,
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    DeformBottleneckBlock,
    LastLevelMaxPool,
    LastLevelP6P7,
    ResNet,
    ResNetBlockBase,
    build_resnet_backbone,
    build_resnet_fpn_backbone,
    build_retinanet_resnet_fpn_backbone,
    make_stage,
)
from vt_modeling.box_regression import (
    Box2BoxTransform,
    Box2BoxTransformLinear,
    Box2BoxTransformRotated,
)
from vt_modeling.config import (
    CfgNode,
    UnknownKeyError,
    check_keys,
    check_kwargs,
    configurable,
    get_cfg,
)
from vt_modeling.export import ExportableDetector, export_detector
from vt_modeling.matcher import Matcher
from vt_modeling.meta_arch import GeneralizedRCNN, ProposalNetwork
from vt_modeling.meta_arch.dense_detector import DenseDetector
from vt_modeling.meta_arch.fcos import FCOS, FCOSHead
from vt_modeling.meta_arch.mmdet_wrapper import MMDetBackbone, MMDetDetector
from vt_modeling.meta_arch.panoptic_fpn import PanopticFPN, combine_semantic_and_instance_outputs
from vt_modeling.meta_arch.retinanet import RetinaNet, RetinaNetHead
from vt_modeling.meta_arch.semantic_seg import SemanticSegmentor, SemSegFPNHead
from vt_modeling.pixel_sampler import (
    PIXEL_SAMPLERS,
    BasePixelSampler,
    OHEMPixelSampler,
    build_pixel_sampler,
)
from vt_modeling.poolers import ROIPooler
from vt_modeling.postprocessing import detector_postprocess, sem_seg_postprocess
from vt_modeling.proposal_generator import RPN, RRPN, StandardRPNHead
from vt_modeling.registries import (
    ANCHOR_GENERATOR_REGISTRY,
    BACKBONE_REGISTRY,
    META_ARCH_REGISTRY,
    PROPOSAL_GENERATOR_REGISTRY,
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_KEYPOINT_HEAD_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    RPN_HEAD_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    build_anchor_generator,
    build_backbone,
    build_box_head,
    build_keypoint_head,
    build_mask_head,
    build_model,
    build_proposal_generator,
    build_roi_heads,
    build_rpn_head,
    build_sem_seg_head,
)
from vt_modeling.registry import Registry
from vt_modeling.roi_heads import (
    BaseKeypointRCNNHead,
    BaseMaskRCNNHead,
    CascadeROIHeads,
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    KRCNNConvDeconvUpsampleHead,
    MaskRCNNConvUpsampleHead,
    Res5ROIHeads,
    ROIHeads,
    RotatedFastRCNNOutputLayers,
    RROIHeads,
    StandardROIHeads,
    fast_rcnn_inference,
)
from vt_modeling.sampling import subsample_labels
from vt_modeling.test_time_augmentation import DatasetMapperTTA, GeneralizedRCNNWithTTA
from vt_modeling.utils import EventStorage, get_event_storage

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # config and registries
    "CfgNode",
    "Registry",
    "UnknownKeyError",
    "check_keys",
    "check_kwargs",
    "configurable",
    "get_cfg",
    "ANCHOR_GENERATOR_REGISTRY",
    "BACKBONE_REGISTRY",
    "META_ARCH_REGISTRY",
    "PROPOSAL_GENERATOR_REGISTRY",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_KEYPOINT_HEAD_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "RPN_HEAD_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
    "build_anchor_generator",
    "build_backbone",
    "build_box_head",
    "build_keypoint_head",
    "build_mask_head",
    "build_model",
    "build_proposal_generator",
    "build_roi_heads",
    "build_rpn_head",
    "build_sem_seg_head",
    # backbones
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "FPN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "ResNet",
    "ResNetBlockBase",
    "build_resnet_backbone",
    "build_resnet_fpn_backbone",
    "build_retinanet_resnet_fpn_backbone",
    "make_stage",
    # anchors, box coding, matching, sampling, pooling, postprocessing
    "DefaultAnchorGenerator",
    "RotatedAnchorGenerator",
    "Box2BoxTransform",
    "Box2BoxTransformLinear",
    "Box2BoxTransformRotated",
    "Matcher",
    "subsample_labels",
    "ROIPooler",
    "detector_postprocess",
    "sem_seg_postprocess",
    # R-CNN
    "GeneralizedRCNN",
    "ProposalNetwork",
    "RPN",
    "StandardRPNHead",
    "ROIHeads",
    "StandardROIHeads",
    "Res5ROIHeads",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "fast_rcnn_inference",
    "BaseMaskRCNNHead",
    "MaskRCNNConvUpsampleHead",
    "BaseKeypointRCNNHead",
    "KRCNNConvDeconvUpsampleHead",
    # rotated R-CNN
    "RRPN",
    "RROIHeads",
    "RotatedFastRCNNOutputLayers",
    # Cascade R-CNN and test-time augmentation
    "CascadeROIHeads",
    "DatasetMapperTTA",
    "GeneralizedRCNNWithTTA",
    # dense (one-stage) detectors
    "DenseDetector",
    "RetinaNet",
    "RetinaNetHead",
    "FCOS",
    "FCOSHead",
    # export
    "ExportableDetector",
    "export_detector",
    # semantic segmentation
    "SemanticSegmentor",
    "SemSegFPNHead",
    "PIXEL_SAMPLERS",
    "BasePixelSampler",
    "OHEMPixelSampler",
    "build_pixel_sampler",
    # panoptic segmentation
    "PanopticFPN",
    "combine_semantic_and_instance_outputs",
    # mmdetection wrappers
    "MMDetBackbone",
    "MMDetDetector",
    # training events
    "EventStorage",
    "get_event_storage",
]
