"""vt_structures: detection data structures with detectron2 semantics."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
