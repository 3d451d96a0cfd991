"""vt_metrics: segmentation, depth and COCO metrics without torch.

Metrics follow mmengine's ``BaseMetric`` contract (``process`` per batch,
``evaluate`` at the end, gathering across torch.distributed ranks when a
process group is initialised) and take numpy arrays, torch tensors or cupy
arrays; torch is never imported by vt_metrics itself.
"""

from __future__ import annotations

from vt_metrics.base import BaseMetric
from vt_metrics.cityscapes_metric import CityscapesMetric
from vt_metrics.coco import COCOEvalResult, COCOEvaluator
from vt_metrics.coco_metric import CocoMetric
from vt_metrics.depth_metric import DepthMetric
from vt_metrics.iou_metric import IoUMetric

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BaseMetric",
    "IoUMetric",
    "CityscapesMetric",
    "DepthMetric",
    # COCO evaluation
    "COCOEvalResult",
    "COCOEvaluator",
    "CocoMetric",
]
