"""vt_modeling: the detectron2.modeling API."""

from __future__ import annotations

from vt_modeling.registry import Registry

__version__ = "0.1.0"

__all__ = ["Registry", "__version__"]
