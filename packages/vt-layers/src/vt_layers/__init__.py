"""vt_layers: the detectron2.layers API over vt-ops kernels."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
