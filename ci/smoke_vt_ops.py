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


def reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, idxs=None) -> np.ndarray:
    """Greedy NMS: by decreasing score (ties by index), drop boxes with IoU > threshold."""
    iou = reference_iou(boxes, boxes)
    same = np.ones_like(iou, dtype=bool) if idxs is None else idxs[:, None] == idxs[None, :]
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not any(same[k, i] and iou[k, i] > threshold for k in keep):
            keep.append(int(i))
    return np.array(keep, dtype=np.int64)


rng = np.random.default_rng(0)
xy = rng.uniform(0, 100, (300, 2))
boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (300, 2))], axis=1)
iou = vt_ops.box_iou(boxes, boxes[:200])
assert isinstance(iou, np.ndarray) and iou.shape == (300, 200) and iou.dtype == np.float64
np.testing.assert_allclose(iou, reference_iou(boxes, boxes[:200]), rtol=1e-12, atol=1e-12)

scores = rng.random(300)
classes = rng.integers(0, 5, 300)
keep = vt_ops.nms(boxes, scores, 0.5)
assert isinstance(keep, np.ndarray) and keep.dtype == np.int64 and 0 < len(keep) < 300
np.testing.assert_array_equal(keep, reference_nms(boxes, scores, 0.5))
np.testing.assert_array_equal(
    vt_ops.batched_nms(boxes, scores, classes, 0.5), reference_nms(boxes, scores, 0.5, classes)
)
print("vt-ops on numpy:", vt_ops.build_info())
