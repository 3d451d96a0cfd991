"""vt-metrics without torch: imports and works on numpy arrays."""

import numpy as np

import vt_metrics
import vt_ops

boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], dtype=np.float32)
np.testing.assert_allclose(vt_ops.box_iou(boxes, boxes), [[1, 25 / 175], [25 / 175, 1]], rtol=1e-6)
print("vt-metrics", vt_metrics.__version__, "imports without torch")
