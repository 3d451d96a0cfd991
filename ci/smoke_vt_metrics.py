"""vt-metrics without torch: imports and works on numpy arrays."""

import numpy as np

import vt_metrics
import vt_ops

boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], dtype=np.float32)
np.testing.assert_allclose(vt_ops.box_iou(boxes, boxes), [[1, 25 / 175], [25 / 175, 1]], rtol=1e-6)
print("vt-metrics", vt_metrics.__version__, "imports without torch")

# COCO bbox evaluation on plain Python data, no torch
from vt_metrics import COCOEvaluator  # noqa: E402

gt = {
    "images": [{"id": 1, "height": 20, "width": 20}],
    "categories": [{"id": 1}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64}],
}
result = COCOEvaluator(gt, "bbox").evaluate(
    [{"image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "score": 0.9}]
)
assert abs(result.stats[0] - 1) < 1e-12, result.stats
print("COCO bbox evaluation runs without torch")
