import itertools
import json
import math

import pytest
import torch

from vt_engine.datasets import (
    AspectRatioGroupedDataset,
    DatasetCatalog,
    MetadataCatalog,
    RepeatFactorTrainingSampler,
    load_coco_json,
    load_coco_panoptic_json,
    load_sem_seg,
    register_coco_instances,
)
from vt_structures import BoxMode

COCO = {
    "images": [
        {"id": 7, "file_name": "b.jpg", "height": 10, "width": 20},
        {"id": 3, "file_name": "a.jpg", "height": 30, "width": 15},
    ],
    "categories": [
        {"id": 18, "name": "dog"},
        {"id": 1, "name": "person", "keypoints": ["nose", "left_eye"], "skeleton": [[1, 2]]},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 3,
            "category_id": 1,
            "bbox": [1, 2, 3, 4],
            "iscrowd": 0,
            "area": 12,
            "segmentation": [[1, 2, 4, 2, 4, 6], [1, 2]],
            "keypoints": [2, 3, 2, 0, 0, 0],
        },
        {
            "id": 2,
            "image_id": 3,
            "category_id": 18,
            "bbox": [5, 5, 2, 2],
            "iscrowd": 1,
            "segmentation": {"size": [30, 15], "counts": "abc"},
        },
        {"id": 3, "image_id": 7, "category_id": 18, "bbox": [0, 0, 1, 1], "segmentation": [[1, 2]]},
    ],
}


@pytest.fixture
def coco_file(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(COCO))
    return path


def test_load_coco_json_detectron2_format(coco_file, tmp_path, caplog):
    name = f"toy_coco_{id(coco_file)}"
    records = load_coco_json(coco_file, tmp_path / "images", dataset_name=name)
    assert [r["image_id"] for r in records] == [3, 7]
    first = records[0]
    assert first["file_name"] == str(tmp_path / "images" / "a.jpg") and (
        first["height"],
        first["width"],
    ) == (30, 15)
    person, dog = first["annotations"]
    assert person["bbox"] == [1, 2, 3, 4] and person["bbox_mode"] == BoxMode.XYWH_ABS
    assert person["category_id"] == 0 and dog["category_id"] == 1  # contiguous, by COCO id
    assert person["segmentation"] == [[1, 2, 4, 2, 4, 6]]  # the 1-point polygon is dropped
    assert person["keypoints"] == [2.5, 3.5, 2, 0.5, 0.5, 0]
    assert dog["iscrowd"] == 1 and dog["segmentation"]["counts"] == "abc"
    assert records[1]["annotations"] == []  # its only annotation had no valid polygon
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["person", "dog"] and meta.keypoint_names == ["nose", "left_eye"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 18: 1}
    raw = load_coco_json(coco_file, tmp_path)
    assert raw[0]["annotations"][0]["category_id"] == 1  # without a name: ids untouched


def test_catalogs_and_register(coco_file, tmp_path):
    name = f"toy_registered_{id(coco_file)}"
    register_coco_instances(name, {"thing_colors": [(1, 2, 3), (4, 5, 6)]}, coco_file, tmp_path)
    assert name in DatasetCatalog.list()
    assert len(DatasetCatalog.get(name)) == 2
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "coco" and meta.thing_classes == ["person", "dog"]
    with pytest.raises(AssertionError, match="already"):
        meta.set(evaluator_type="lvis")
    meta.set(evaluator_type="coco")  # the same value is fine
    with pytest.raises(KeyError, match="already registered"):
        DatasetCatalog.register(name, list)
    with pytest.raises(KeyError, match="not registered"):
        DatasetCatalog.get("nope")
    with pytest.raises(AttributeError, match="keypoint_flip_map"):
        _ = meta.keypoint_flip_map
    with pytest.raises(FileNotFoundError):
        load_coco_json(tmp_path / "missing.json", tmp_path)


def test_load_coco_panoptic_json(tmp_path):
    data = {
        "annotations": [
            {
                "image_id": 5,
                "file_name": "x.png",
                "segments_info": [{"id": 3, "category_id": 1}, {"id": 4, "category_id": 90}],
            }
        ]
    }
    path = tmp_path / "pan.json"
    path.write_text(json.dumps(data))
    meta = {
        "thing_dataset_id_to_contiguous_id": {1: 0},
        "stuff_dataset_id_to_contiguous_id": {90: 3},
    }
    (rec,) = load_coco_panoptic_json(path, tmp_path / "img", tmp_path / "pan", meta)
    assert rec["file_name"].endswith("img/x.jpg") and rec["pan_seg_file_name"].endswith("pan/x.png")
    assert rec["segments_info"] == [
        {"id": 3, "category_id": 0, "isthing": True},
        {"id": 4, "category_id": 3, "isthing": False},
    ]
    with pytest.raises(ValueError, match="neither"):
        load_coco_panoptic_json(
            path, tmp_path, tmp_path, {"thing_dataset_id_to_contiguous_id": {1: 0}}
        )


def test_load_sem_seg_pairs_by_relative_path(tmp_path):
    for sub in ("img/city", "gt/city"):
        (tmp_path / sub).mkdir(parents=True)
    for stem in ("a", "b"):
        (tmp_path / "img/city" / f"{stem}.jpg").touch()
        (tmp_path / "gt/city" / f"{stem}.png").touch()
    recs = load_sem_seg(tmp_path / "gt", tmp_path / "img")
    assert [
        (r["file_name"].rsplit("/", 2)[-2:], r["sem_seg_file_name"].rsplit("/", 1)[-1])
        for r in recs
    ] == [
        (["city", "a.jpg"], "a.png"),
        (["city", "b.jpg"], "b.png"),
    ]
    (tmp_path / "img/city/c.jpg").touch()
    with pytest.raises(ValueError, match="pair up"):
        load_sem_seg(tmp_path / "gt", tmp_path / "img")


def test_repeat_factor_sampler():
    dicts = [{"annotations": [{"category_id": 0}]} for _ in range(9)] + [
        {"annotations": [{"category_id": 1}, {"category_id": 0}]}
    ]
    factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
        dicts, repeat_thresh=0.5
    )
    assert factors[:9].tolist() == [1.0] * 9 and factors[9].item() == pytest.approx(
        math.sqrt(0.5 / 0.1)
    )
    sampler = RepeatFactorTrainingSampler(torch.tensor([1.0, 0.0, 2.5] * 100), seed=0)
    stream = list(itertools.islice(iter(sampler), 3500))  # about 10 passes
    counts = torch.bincount(torch.tensor(stream), minlength=300).float().view(100, 3).sum(0)
    assert counts[1] == 0
    assert counts[2] / counts[0] == pytest.approx(2.5, rel=0.05)
    sampler.set_start_index(10)
    assert list(itertools.islice(iter(sampler), 20)) == stream[10:30]
    with pytest.raises(ValueError, match="repeat_factors"):
        RepeatFactorTrainingSampler(torch.tensor([-1.0]))


def test_aspect_ratio_grouping():
    samples = [
        {"width": w, "height": h, "i": i}
        for i, (w, h) in enumerate([(4, 2), (2, 4), (5, 1), (1, 1), (3, 2), (2, 3)])
    ]
    batches = [[s["i"] for s in b] for b in AspectRatioGroupedDataset(samples, batch_size=2)]
    assert batches == [[0, 2], [1, 3]]  # 4 and 5 wait for partners that never come
    with pytest.raises(ValueError, match="batch_size"):
        AspectRatioGroupedDataset(samples, 0)
