"""vt-ops without torch: kernels on numpy arrays agree with numpy references."""

import numpy as np

import vt_ops


def reference_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(inter > 0, inter / union, 0.0)


rng = np.random.default_rng(0)
xy = rng.uniform(0, 100, (300, 2))
boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (300, 2))], axis=1)
iou = vt_ops.box_iou(boxes, boxes[:200])
assert isinstance(iou, np.ndarray) and iou.shape == (300, 200) and iou.dtype == np.float64
np.testing.assert_allclose(iou, reference_iou(boxes, boxes[:200]), rtol=1e-12, atol=1e-12)
print("vt-ops on numpy:", vt_ops.build_info())
