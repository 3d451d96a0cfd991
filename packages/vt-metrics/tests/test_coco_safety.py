"""A malformed COCO ground truth gives an error naming the file and the field."""

import json
import re

import pytest

from vt_metrics import COCOEvaluator
from vt_metrics.coco_metric import CocoMetric


def _gt():
    return {
        "images": [{"id": 1, "height": 10, "width": 20}],
        "categories": [{"id": 3, "name": "cat"}],
        "annotations": [
            {
                "id": 11,
                "image_id": 1,
                "category_id": 3,
                "bbox": [1.0, 2.0, 3.0, 4.0],
                "area": 12.0,
                "iscrowd": 0,
                "segmentation": [[1, 2, 4, 2, 4, 6]],
            }
        ],
    }


def _edit(*path, value=None, delete=False):
    def apply(gt):
        target = gt
        for key in path[:-1]:
            target = target[key]
        if delete:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return gt

    return apply


# case: (edit, iou type, error, the field as the message names it)
BAD_GT = {
    "top_level_list": (lambda gt: [gt], "bbox", TypeError, "expected a dict"),
    "no_images": (_edit("images", delete=True), "bbox", ValueError, "missing key 'images'"),
    "no_categories": (
        _edit("categories", delete=True),
        "bbox",
        ValueError,
        "missing key 'categories'",
    ),
    "annotations_not_a_list": (
        _edit("annotations", value={}),
        "bbox",
        TypeError,
        r"\['annotations'\]: expected a list",
    ),
    "image_id_a_string": (
        _edit("images", 0, "id", value="1"),
        "bbox",
        TypeError,
        r"\['images'\]\[0\]\['id'\]",
    ),
    "annotation_without_area": (
        _edit("annotations", 0, "area", delete=True),
        "bbox",
        ValueError,
        r"\['annotations'\]\[0\]: missing key 'area'",
    ),
    "unknown_image_id": (
        _edit("annotations", 0, "image_id", value=99),
        "bbox",
        ValueError,
        r"\['annotations'\]: image ids not in the ground truth images: \[99\]",
    ),
    "unknown_category_id": (
        _edit("annotations", 0, "category_id", value=42),
        "bbox",
        ValueError,
        r"\['annotations'\]: category ids not in the ground truth categories: \[42\]",
    ),
    "bbox_of_3": (
        _edit("annotations", 0, "bbox", value=[1, 2, 3]),
        "bbox",
        ValueError,
        r"\['annotations'\]\[0\]\['bbox'\]: expected 4 numbers, got 3",
    ),
    "segmentation_a_string": (
        _edit("annotations", 0, "segmentation", value="abc"),
        "segm",
        TypeError,
        r"\['annotations'\]\[0\]\['segmentation'\]",
    ),
    "rle_without_counts": (
        _edit("annotations", 0, "segmentation", value={"size": [10, 20]}),
        "segm",
        ValueError,
        r"\['annotations'\]\[0\]\['segmentation'\]: an RLE dict needs",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_GT))
def test_malformed_ground_truth_file_names_file_and_field(tmp_path, case):
    edit, iou_type, error, field = BAD_GT[case]
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(edit(_gt())))
    prefix = re.escape(f"{path}: ground_truth")
    with pytest.raises(error, match=prefix + ".*" + field):
        COCOEvaluator(str(path), iou_type)
    with pytest.raises(error, match=re.escape(f"{path}: ann_file") + ".*" + field):
        CocoMetric(path, iou_type)  # checked when built, not after a validation pass
    # a dict names the argument
    with pytest.raises(error, match=field):
        COCOEvaluator(edit(_gt()), iou_type)


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not a valid JSON file"):
        COCOEvaluator(path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not a valid JSON file"):
        CocoMetric(str(path))
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        COCOEvaluator(tmp_path / "nope.json")


def test_valid_ground_truth_file_still_evaluates(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_gt()))
    det = [{"image_id": 1, "category_id": 3, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.9}]
    assert COCOEvaluator(path).evaluate(det).stats[0] == pytest.approx(1.0)
    metric = CocoMetric(path)
    metric.results = [det]
    assert metric.compute_metrics(metric.results)["bbox_mAP"] == pytest.approx(1.0)
