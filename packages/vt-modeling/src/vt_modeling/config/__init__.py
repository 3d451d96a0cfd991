"""Configuration: detectron2-compatible CfgNode, defaults and ``configurable``."""

from __future__ import annotations

from vt_modeling.config.config import (
    CfgNode,
    UnknownKeyError,
    check_keys,
    check_kwargs,
    configurable,
)

__all__ = ["CfgNode", "UnknownKeyError", "check_keys", "check_kwargs", "configurable", "get_cfg"]


def get_cfg() -> CfgNode:
    """A fresh copy of the default config (detectron2's key tree and values)."""
    from vt_modeling.config.defaults import _C

    return _C.clone()
