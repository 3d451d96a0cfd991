"""vt_modeling: the detectron2.modeling API."""

from __future__ import annotations

from vt_modeling.config import CfgNode, configurable, get_cfg
from vt_modeling.registry import Registry

__version__ = "0.1.0"

__all__ = ["CfgNode", "Registry", "__version__", "configurable", "get_cfg"]
