"""vt_metrics: segmentation, depth and COCO metrics without torch."""

from __future__ import annotations

from vt_metrics.coco import COCOEvalResult, COCOEvaluator

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # COCO evaluation
    "COCOEvalResult",
    "COCOEvaluator",
]
