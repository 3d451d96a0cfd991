"""The extension points of vt_modeling: one Registry each, with its ``build_*`` function.

Each docstring states what a registered object is called with and must return.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vt_layers import ShapeSpec
from vt_modeling.registry import Registry

__all__ = [
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
]


def _registry(name: str, doc: str) -> Registry:
    registry = Registry(name)
    registry.__doc__ = doc
    return registry


META_ARCH_REGISTRY = _registry(
    "META_ARCH",
    """Registry for meta-architectures, i.e. the whole model.

The registered object will be called with ``obj(cfg)`` and expected to return a ``nn.Module``.""",
)
BACKBONE_REGISTRY = _registry(
    "BACKBONE",
    """Registry for backbones, which extract feature maps from images.

The registered object will be called with ``obj(cfg, input_shape)``: a CfgNode and a
:class:`vt_layers.ShapeSpec` of the input. It must return a ``Backbone``.""",
)
PROPOSAL_GENERATOR_REGISTRY = _registry(
    "PROPOSAL_GENERATOR",
    """Registry for proposal generators, which produce object proposals from feature maps.

The registered object will be called with ``obj(cfg, input_shape)`` and return a ``nn.Module``.""",
)
RPN_HEAD_REGISTRY = _registry(
    "RPN_HEAD",
    """Registry for RPN heads, which take feature maps and perform objectness
classification and bounding box regression for anchors.

The registered object will be called with ``obj(cfg, input_shape)`` and return a ``nn.Module``.""",
)
ANCHOR_GENERATOR_REGISTRY = _registry(
    "ANCHOR_GENERATOR",
    """Registry for modules that create object detection anchors for feature maps.

The registered object will be called with ``obj(cfg, input_shape)``.""",
)
ROI_HEADS_REGISTRY = _registry(
    "ROI_HEADS",
    """Registry for ROI heads in a generalized R-CNN model.

ROIHeads take feature maps and region proposals, and perform per-region computation.
The registered object will be called with ``obj(cfg, input_shape)`` and is expected to
return an ``ROIHeads``.""",
)
ROI_BOX_HEAD_REGISTRY = _registry(
    "ROI_BOX_HEAD",
    """Registry for box heads, which make box predictions from per-region features.

The registered object will be called with ``obj(cfg, input_shape)``.""",
)
ROI_MASK_HEAD_REGISTRY = _registry(
    "ROI_MASK_HEAD",
    """Registry for mask heads, which predict instance masks given per-region features.

The registered object will be called with ``obj(cfg, input_shape)``.""",
)
ROI_KEYPOINT_HEAD_REGISTRY = _registry(
    "ROI_KEYPOINT_HEAD",
    """Registry for keypoint heads, which make keypoint predictions from per-region features.

The registered object will be called with ``obj(cfg, input_shape)``.""",
)
SEM_SEG_HEADS_REGISTRY = _registry(
    "SEM_SEG_HEADS",
    """Registry for semantic segmentation heads, which make semantic segmentation
predictions from feature maps.

The registered object will be called with ``obj(cfg, input_shape)``.""",
)


def build_model(cfg: Any) -> nn.Module:
    """Build the whole model architecture, defined by ``cfg.MODEL.META_ARCHITECTURE``,
    on ``cfg.MODEL.DEVICE``. It does not load any weights from ``cfg``."""
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    return model.to(torch.device(cfg.MODEL.DEVICE))


def build_backbone(cfg: Any, input_shape: ShapeSpec | None = None) -> nn.Module:
    """Build a backbone from ``cfg.MODEL.BACKBONE.NAME``.

    Returns:
        an instance of ``Backbone``
    """
    from vt_modeling.backbone.backbone import Backbone

    if input_shape is None:
        input_shape = ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg, input_shape)
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"{cfg.MODEL.BACKBONE.NAME} returned {type(backbone).__name__}, not a Backbone"
        )
    return backbone


def build_proposal_generator(cfg: Any, input_shape: dict[str, ShapeSpec]) -> nn.Module | None:
    """Build a proposal generator from ``cfg.MODEL.PROPOSAL_GENERATOR.NAME``.

    The name can be "PrecomputedProposals" to use no proposal generator (returns None).
    """
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name == "PrecomputedProposals":
        return None
    return PROPOSAL_GENERATOR_REGISTRY.get(name)(cfg, input_shape)


def build_rpn_head(cfg: Any, input_shape: list[ShapeSpec]) -> nn.Module:
    """Build an RPN head defined by ``cfg.MODEL.RPN.HEAD_NAME``."""
    return RPN_HEAD_REGISTRY.get(cfg.MODEL.RPN.HEAD_NAME)(cfg, input_shape)


def build_anchor_generator(cfg: Any, input_shape: list[ShapeSpec]) -> nn.Module:
    """Build an anchor generator from ``cfg.MODEL.ANCHOR_GENERATOR.NAME``."""
    return ANCHOR_GENERATOR_REGISTRY.get(cfg.MODEL.ANCHOR_GENERATOR.NAME)(cfg, input_shape)


def build_roi_heads(cfg: Any, input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Build ROIHeads defined by ``cfg.MODEL.ROI_HEADS.NAME``."""
    return ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)(cfg, input_shape)


def build_box_head(cfg: Any, input_shape: ShapeSpec) -> nn.Module:
    """Build a box head defined by ``cfg.MODEL.ROI_BOX_HEAD.NAME``."""
    return ROI_BOX_HEAD_REGISTRY.get(cfg.MODEL.ROI_BOX_HEAD.NAME)(cfg, input_shape)


def build_mask_head(cfg: Any, input_shape: ShapeSpec) -> nn.Module:
    """Build a mask head defined by ``cfg.MODEL.ROI_MASK_HEAD.NAME``."""
    return ROI_MASK_HEAD_REGISTRY.get(cfg.MODEL.ROI_MASK_HEAD.NAME)(cfg, input_shape)


def build_keypoint_head(cfg: Any, input_shape: ShapeSpec) -> nn.Module:
    """Build a keypoint head from ``cfg.MODEL.ROI_KEYPOINT_HEAD.NAME``."""
    return ROI_KEYPOINT_HEAD_REGISTRY.get(cfg.MODEL.ROI_KEYPOINT_HEAD.NAME)(cfg, input_shape)


def build_sem_seg_head(cfg: Any, input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Build a semantic segmentation head from ``cfg.MODEL.SEM_SEG_HEAD.NAME``."""
    return SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(cfg, input_shape)
