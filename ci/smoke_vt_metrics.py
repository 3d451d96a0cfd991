"""vt-metrics without torch: imports and evaluates numpy arrays."""

import sys

import numpy as np

import vt_metrics
import vt_ops

boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], dtype=np.float32)
np.testing.assert_allclose(vt_ops.box_iou(boxes, boxes), [[1, 25 / 175], [25 / 175, 1]], rtol=1e-6)

# IoUMetric on numpy label maps against a numpy reference.
rng = np.random.default_rng(0)
num_classes, ignore_index = 6, 255
label = rng.integers(0, num_classes, (4, 64, 80)).astype(np.uint8)
label[:, :3] = ignore_index
pred = np.where(rng.random(label.shape) < 0.7, label, rng.integers(0, num_classes, label.shape))
pred[label == ignore_index] = 0
metric = vt_metrics.IoUMetric(iou_metrics=["mIoU", "mDice", "mFscore"])
metric.dataset_meta = {"classes": [f"class{i}" for i in range(num_classes)]}
metric.process(
    {}, [{"pred_sem_seg": {"data": p}, "gt_sem_seg": {"data": g}} for p, g in zip(pred, label)]
)
results = metric.evaluate(len(pred))

keep = label != ignore_index
area_label = np.bincount(label[keep], minlength=num_classes)
area_pred = np.bincount(pred[keep], minlength=num_classes)
intersect = np.bincount(label[keep][pred[keep] == label[keep]], minlength=num_classes)
expected = {
    "aAcc": intersect.sum() / area_label.sum(),
    "mIoU": np.mean(intersect / (area_label + area_pred - intersect)),
    "mAcc": np.mean(intersect / area_label),
    "mDice": np.mean(2 * intersect / (area_label + area_pred)),
    "mPrecision": np.mean(intersect / area_pred),
}
for key, value in expected.items():
    assert results[key] == round(float(value) * 100, 2), (key, results[key], value)

assert "torch" not in sys.modules, "vt_metrics imported torch"
print("vt-metrics", vt_metrics.__version__, "evaluates IoUMetric on numpy arrays without torch")

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
