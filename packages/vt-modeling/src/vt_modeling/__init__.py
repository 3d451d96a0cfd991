"""vt_modeling: the detectron2.modeling API."""

from __future__ import annotations

from vt_modeling.box_regression import (
    Box2BoxTransform,
    Box2BoxTransformLinear,
    Box2BoxTransformRotated,
)
from vt_modeling.config import CfgNode, configurable, get_cfg
from vt_modeling.matcher import Matcher
from vt_modeling.registry import Registry
from vt_modeling.sampling import subsample_labels

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # config and registries
    "CfgNode",
    "Registry",
    "configurable",
    "get_cfg",
    # box coding, matching, sampling
    "Box2BoxTransform",
    "Box2BoxTransformLinear",
    "Box2BoxTransformRotated",
    "Matcher",
    "subsample_labels",
]
