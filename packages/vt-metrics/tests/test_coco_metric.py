import numpy as np
import pytest

from vt_metrics import COCOEvaluator

pytest.importorskip("vt_metrics.base")  # BaseMetric lands with the segmentation metrics
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _samples(dets, cat_ids, with_masks=False):
    """mmdet-style data samples (xyxy boxes, label indices) from COCO results."""
    by_image = {}
    for d in dets:
        by_image.setdefault(d["image_id"], []).append(d)
    samples = []
    for img_id, ds in by_image.items():
        xywh = np.array([d["bbox"] for d in ds], dtype=np.float64)
        pred = {
            "bboxes": np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1),
            "scores": np.array([d["score"] for d in ds]),
            "labels": np.array([cat_ids.index(d["category_id"]) for d in ds]),
        }
        if with_masks:
            pred["masks"] = [d["segmentation"] for d in ds]
        samples.append({"img_id": img_id, "pred_instances": pred})
    return samples


@pytest.mark.parametrize("metric", ["bbox", "segm"])
def test_coco_metric_matches_the_evaluator(coco_data, metric):
    from vt_metrics.coco_metric import CocoMetric

    gt, dets = coco_data(1, segm=metric == "segm")
    if metric == "segm":
        for d in dets:
            d.setdefault("bbox", [0.0, 0.0, 1.0, 1.0])
    cat_ids = sorted(c["id"] for c in gt["categories"])
    metric_obj = CocoMetric(gt, metric, classwise=True)
    samples = _samples(dets, cat_ids, with_masks=metric == "segm")
    metric_obj.process({}, samples[: len(samples) // 2])
    metric_obj.process({}, samples[len(samples) // 2 :])
    out = metric_obj.compute_metrics(metric_obj.results)
    # the xyxy -> xywh round trip may change the last bit of a box
    ref = COCOEvaluator(gt, metric).evaluate(
        [r for per_image in metric_obj.results for r in per_image]
    )
    assert out[f"{metric}_mAP"] == float(f"{ref.stats[0]:.3f}")
    assert out[f"{metric}_mAP_l"] == float(f"{ref.stats[5]:.3f}")
    assert f"{metric}_{gt['categories'][2]['name']}_precision" in out
    np.testing.assert_allclose(
        out[f"{metric}_mAP_50"], COCOEvaluator(gt, metric).evaluate(dets).stats[1], atol=1e-3
    )


def test_coco_metric_format_only(coco_data, tmp_path):
    import json

    from vt_metrics.coco_metric import CocoMetric

    gt, dets = coco_data(2)
    cat_ids = sorted(c["id"] for c in gt["categories"])
    m = CocoMetric(gt, "bbox", format_only=True, outfile_prefix=str(tmp_path / "res"))
    m.process({}, _samples(dets, cat_ids))
    assert m.compute_metrics(m.results) == {}
    written = json.loads((tmp_path / "res.bbox.json").read_text())
    assert len(written) == len(dets)
    with pytest.raises(ValueError, match="outfile_prefix"):
        CocoMetric(gt, "bbox", format_only=True)
    with pytest.raises(ValueError, match="metric"):
        CocoMetric(gt, "mask")


def test_coco_metric_keypoints_with_custom_sigmas(coco_data, reference):
    """Keypoints other than COCO's 17 person keypoints: the sigmas go to the evaluator."""
    from vt_metrics.coco_metric import CocoMetric

    gt, dets = coco_data(4, keypoints=True, n_images=30)
    num_kpts = 3

    def first_keypoints(obj):
        kps = np.asarray(obj["keypoints"], dtype=np.float64).reshape(-1, 3)[:num_kpts]
        obj["keypoints"] = kps.reshape(-1).tolist()
        if "num_keypoints" in obj:
            obj["num_keypoints"] = int((kps[:, 2] > 0).sum())

    for obj in gt["annotations"] + dets:
        first_keypoints(obj)
    sigmas = [0.05, 0.08, 0.08]
    cat_ids = sorted(c["id"] for c in gt["categories"])
    samples = _samples(dets, cat_ids)
    for sample in samples:
        ds = [d for d in dets if d["image_id"] == sample["img_id"]]
        sample["pred_instances"]["keypoints"] = np.array([d["keypoints"] for d in ds]).reshape(
            len(ds), num_kpts, 3
        )
    metric = CocoMetric(gt, "keypoints", kpt_oks_sigmas=sigmas)
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    ref = reference(
        gt,
        [r for per_image in metric.results for r in per_image],
        "keypoints",
        kpt_oks_sigmas=np.array(sigmas),
    )
    assert out["keypoints_AP"] == float(f"{ref.stats[0]:.3f}")
    assert out["keypoints_AP50"] == float(f"{ref.stats[1]:.3f}")
    assert ref.stats[0] > 0
    with pytest.raises(ValueError):  # COCO's 17 sigmas do not fit 3 keypoints
        bad = CocoMetric(gt, "keypoints")
        bad.process({}, samples)
        bad.compute_metrics(bad.results)
