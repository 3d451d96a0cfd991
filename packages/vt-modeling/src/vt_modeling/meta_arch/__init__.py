"""Meta-architectures: whole models built from backbones and heads."""

from __future__ import annotations

from vt_modeling.meta_arch.rcnn import GeneralizedRCNN, ProposalNetwork

__all__ = ["GeneralizedRCNN", "ProposalNetwork"]
