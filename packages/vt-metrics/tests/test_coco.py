import contextlib
import copy
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vt_metrics import COCOEvaluator

pytest.importorskip("pycocotools")
# pycocotools' own decode() warns under numpy 2
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def assert_same(ours, ref):
    """Every accumulated array and stat equal to pycocotools (exactly: same operations)."""
    np.testing.assert_array_equal(ours.precision, ref.eval["precision"])
    np.testing.assert_array_equal(ours.recall, ref.eval["recall"])
    np.testing.assert_array_equal(ours.scores, ref.eval["scores"])
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
def test_matches_pycocotools(coco_data, reference, iou_type, seed):
    gt, dets = coco_data(
        seed, segm=iou_type == "segm", keypoints=iou_type == "keypoints", n_images=60
    )
    ours = COCOEvaluator(gt, iou_type).evaluate(dets)
    ref = reference(gt, dets, iou_type)
    assert_same(ours, ref)
    assert ours.stats.shape == ((10,) if iou_type == "keypoints" else (12,))
    assert (ours.stats > 0).any()  # the data set exercises true positives


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_class_agnostic_matches_pycocotools(coco_data, reference, iou_type):
    gt, dets = coco_data(3, segm=iou_type == "segm")
    ours = COCOEvaluator(gt, iou_type, use_cats=False).evaluate(dets)
    assert ours.cat_ids == [-1] and ours.precision.shape[2] == 1
    assert_same(ours, reference(gt, dets, iou_type, useCats=0))


@pytest.mark.parametrize(
    "params",
    [
        {"maxDets": [1, 5, 20]},  # stats[0] reads maxDets=100: -1 as pycocotools
        {"maxDets": [100, 3, 50]},  # sorted before use
        {"iouThrs": np.array([0.3, 0.5, 0.75, 0.9]), "recThrs": np.linspace(0, 1, 11)},
        {"recThrs": np.array([0.0, 0.5, 0.2, 1.0])},  # unsorted: pycocotools stops at a miss
    ],
)
def test_parameters_match_pycocotools(coco_data, reference, params):
    gt, dets = coco_data(5, max_dets=40)
    ours = COCOEvaluator(
        gt,
        "bbox",
        max_dets=params.get("maxDets"),
        iou_thresholds=params.get("iouThrs"),
        rec_thresholds=params.get("recThrs"),
    ).evaluate(dets)
    ref_params = dict(params)
    if "maxDets" in ref_params:
        ref_params["maxDets"] = sorted(ref_params["maxDets"])
    assert_same(ours, reference(gt, dets, "bbox", **ref_params))


def test_area_ranges_and_subsets_match_pycocotools(coco_data, reference):
    gt, dets = coco_data(7)
    img_ids = sorted(im["id"] for im in gt["images"])[::2]
    cat_ids = sorted(c["id"] for c in gt["categories"])[1:4]
    ranges = {"all": (0, 1e10), "small": (0, 400), "medium": (400, 5000), "large": (5000, 1e10)}
    ours = COCOEvaluator(gt, "bbox", area_ranges=ranges, img_ids=img_ids, cat_ids=cat_ids).evaluate(
        dets
    )
    ref = reference(
        gt,
        dets,
        "bbox",
        areaRng=[list(r) for r in ranges.values()],
        imgIds=img_ids,
        catIds=cat_ids,
    )
    assert ours.img_ids == img_ids and ours.cat_ids == cat_ids
    assert_same(ours, ref)


def test_box_evaluation_of_mask_results(coco_data, reference):
    # results with masks only: loadRes derives their boxes and areas from the masks
    gt, dets = coco_data(2, segm=True)
    assert "bbox" not in dets[0]
    assert_same(COCOEvaluator(gt, "bbox").evaluate(dets), reference(gt, dets, "bbox"))


def test_annotation_id_zero_follows_pycocotools(coco_data, reference):
    # pycocotools records the matched ground-truth id and treats id 0 as "no match"
    gt, dets = coco_data(11, zero_id=True)
    assert gt["annotations"][0]["id"] == 0
    assert_same(COCOEvaluator(gt, "bbox").evaluate(dets), reference(gt, dets, "bbox"))


def test_crowd_heavy_data_set(coco_data, reference):
    gt, dets = coco_data(2, crowd_p=0.5)
    assert_same(COCOEvaluator(gt, "bbox").evaluate(dets), reference(gt, dets, "bbox"))


# the fixtures are stateless factories, safe to share between examples
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**31),
    n_images=st.integers(1, 12),
    n_cats=st.integers(2, 5),
    max_gts=st.integers(0, 6),
    max_dets=st.integers(1, 15),
    crowd_p=st.sampled_from([0.0, 0.2, 0.6]),
    iou_type=st.sampled_from(["bbox", "segm"]),
)
def test_property_random_data_sets(
    coco_data, reference, seed, n_images, n_cats, max_gts, max_dets, crowd_p, iou_type
):
    gt, dets = coco_data(
        seed,
        n_images=n_images,
        n_cats=n_cats,
        max_gts=max_gts,
        max_dets=max_dets,
        crowd_p=crowd_p,
        segm=iou_type == "segm",
    )
    if not dets:  # pycocotools cannot load an empty result list
        return
    assert_same(COCOEvaluator(gt, iou_type).evaluate(dets), reference(gt, dets, iou_type))


def test_no_detections(coco_data, reference):
    gt, _ = coco_data(1)
    # pycocotools needs one result: give it one of an unknown category (never evaluated)
    stray = [
        {
            "image_id": gt["images"][0]["id"],
            "category_id": 10**6,
            "bbox": [0, 0, 1, 1],
            "score": 1.0,
        }
    ]
    ours = COCOEvaluator(gt, "bbox").evaluate([])
    assert_same(ours, reference(gt, stray, "bbox"))
    assert_same(COCOEvaluator(gt, "bbox").evaluate(stray), reference(gt, stray, "bbox"))


def test_summary_prints_what_pycocotools_prints(coco_data, reference):
    gt, dets = coco_data(4)
    ref = reference(gt, dets, "bbox")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        ref.summarize()
    assert COCOEvaluator(gt, "bbox").evaluate(dets).summary() == out.getvalue().rstrip("\n")


def test_stats_dict_and_per_category_ap(coco_data, reference):
    gt, dets = coco_data(6)
    res = COCOEvaluator(gt, "bbox").evaluate(dets)
    ref = reference(gt, dets, "bbox")
    stats = res.stats_dict()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    assert list(stats) == names
    assert stats["AP50"] == ref.stats[1]
    per_cat = res.per_category_ap()
    for k, cat in enumerate(ref.params.catIds):  # detectron2's per-category table
        p = ref.eval["precision"][:, :, k, 0, -1]
        p = p[p > -1]
        expected = np.mean(p) if p.size else float("nan")
        np.testing.assert_equal(per_cat[cat], expected)
    assert np.isnan(per_cat[gt["categories"][0]["id"]])  # the category without ground truth


def test_json_paths_and_reuse(coco_data, reference, tmp_path):
    gt, dets = coco_data(8)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    evaluator = COCOEvaluator(str(tmp_path / "gt.json"), "bbox")
    first = evaluator.evaluate(tmp_path / "dt.json")
    assert_same(first, reference(gt, dets, "bbox"))
    other = dets[: len(dets) // 2]
    assert_same(evaluator.evaluate(other), reference(gt, other, "bbox"))


def test_numpy_values_in_results(coco_data, reference):
    gt, dets = coco_data(10)
    as_numpy = [
        {
            "image_id": np.int64(d["image_id"]),
            "category_id": np.int32(d["category_id"]),
            "bbox": np.array(d["bbox"]),
            "score": np.float64(d["score"]),
        }
        for d in dets
    ]
    assert_same(COCOEvaluator(gt, "bbox").evaluate(as_numpy), reference(gt, dets, "bbox"))


def test_inputs_are_not_modified(coco_data):
    gt, dets = coco_data(9, segm=True)
    gt_copy, dets_copy = copy.deepcopy(gt), copy.deepcopy(dets)
    COCOEvaluator(gt, "segm").evaluate(dets)
    assert gt == gt_copy and dets == dets_copy


def _small():
    gt = {
        "images": [{"id": 1, "height": 10, "width": 10}],
        "categories": [{"id": 1}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25}
        ],
    }
    det = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    return gt, det


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda gt, d: d.pop("score"), ValueError, r"detections\[0\]: missing key 'score'"),
        (
            lambda gt, d: d.update(bbox=[0, 0, 5]),
            ValueError,
            r"'bbox'\]: expected 4 numbers, got 3",
        ),
        (
            lambda gt, d: d.update(image_id=7),
            ValueError,
            r"image ids not in the ground truth.*\[7\]",
        ),
        (lambda gt, d: d.update(score=float("nan")), ValueError, "must be finite"),
        (lambda gt, d: d.update(score="high"), TypeError, r"'score'\]: expected a number"),
        (lambda gt, d: d.update(image_id=1.5), TypeError, "expected an integer"),
    ],
)
def test_bad_detections_raise_clear_errors(change, error, message):
    gt, det = _small()
    change(gt, det)
    with pytest.raises(error, match=message):
        COCOEvaluator(gt, "bbox").evaluate([det])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda gt: gt.pop("images"), ValueError, "missing key 'images'"),
        (lambda gt: gt["annotations"][0].pop("area"), ValueError, "missing key 'area'"),
        (lambda gt: gt["annotations"][0].update(image_id=3), ValueError, "image ids not in"),
        (lambda gt: gt["annotations"].append(5), TypeError, r"\[1\]: expected a dict"),
        (lambda gt: gt.update(images={}), TypeError, "expected a list"),
    ],
)
def test_bad_ground_truth_raises_clear_errors(change, error, message):
    gt, _ = _small()
    change(gt)
    with pytest.raises(error, match=message):
        COCOEvaluator(gt, "bbox")


def test_bad_arguments():
    gt, det = _small()
    with pytest.raises(ValueError, match="iou_type"):
        COCOEvaluator(gt, "mask")
    with pytest.raises(TypeError, match="ground_truth"):
        COCOEvaluator([gt], "bbox")
    with pytest.raises(ValueError, match="missing key 'segmentation'"):
        COCOEvaluator(gt, "segm")
    gt["annotations"][0]["segmentation"] = [[0, 0, 5, 0, 5, 5]]
    no_size = copy.deepcopy(gt)
    del no_size["images"][0]["height"]
    with pytest.raises(ValueError, match="polygons need the image height and width"):
        COCOEvaluator(no_size, "segm")
    with pytest.raises(ValueError, match=r"detections\[0\]: missing key 'segmentation'"):
        COCOEvaluator(gt, "segm").evaluate([det])


def test_runs_without_torch():
    code = (
        "import sys, vt_metrics;"
        "from vt_metrics import COCOEvaluator;"
        "gt={'images':[{'id':1}],'categories':[{'id':1}],'annotations':"
        "[{'id':1,'image_id':1,'category_id':1,'bbox':[0,0,5,5],'area':25}]};"
        "r=COCOEvaluator(gt).evaluate([{'image_id':1,'category_id':1,'bbox':[0,0,5,5],'score':1}]);"
        "assert abs(r.stats[0] - 1) < 1e-12, r.stats;"
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
