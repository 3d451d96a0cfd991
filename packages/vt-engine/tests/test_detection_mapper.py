import numpy as np
import pytest
import torch

from vt_engine.datasets import load_coco_json
from vt_engine.detection import DetectionDatasetMapper, DetectionModel, MapDataset
from vt_engine.synthetic_shapes import synthetic_shapes
from vt_structures import PolygonMasks
from vt_structures.transforms import RandomFlip, ResizeShortestEdge


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    data = synthetic_shapes(
        tmp_path_factory.mktemp("shapes"), num_train=6, num_val=2, image_size=96, progress=False
    )
    return load_coco_json(
        data.instances_json("train"), data.image_dir("train"), dataset_name="shapes_mapper_test"
    )


def test_mapper_builds_instances_consistent_with_the_annotations(records):
    mapper = DetectionDatasetMapper(
        True, augmentations=[], use_instance_mask=True, use_keypoint=False
    )
    out = mapper(records[0])
    image, inst = out["image"], out["instances"]
    assert image.dtype == torch.uint8 and image.shape == (3, 96, 96)
    anns = [a for a in records[0]["annotations"] if not a.get("iscrowd", 0)]
    assert len(inst) == len(anns)
    x, y, w, h = anns[0]["bbox"]
    torch.testing.assert_close(
        inst.gt_boxes.tensor[0], torch.tensor([x, y, x + w, y + h]), atol=1e-4, rtol=0
    )
    assert isinstance(inst.gt_masks, PolygonMasks)
    # the rasterised polygon lies inside its box
    mask = inst.gt_masks[:1].crop_and_resize(inst.gt_boxes.tensor[:1], 28)
    assert mask.float().mean() > 0.3
    assert "annotations" not in out and "annotations" in records[0]  # input not modified


def test_mapper_flip_and_resize_move_boxes_masks_and_keypoints(records):
    rec = next(r for r in records if any("keypoints" in a for a in r["annotations"]))
    plain = DetectionDatasetMapper(True, augmentations=[], use_instance_mask=True)(rec)["instances"]
    mapper = DetectionDatasetMapper(
        True,
        augmentations=[RandomFlip(1.0), ResizeShortestEdge(192)],
        use_instance_mask=True,
        use_keypoint=False,
    )
    out = mapper(rec)
    assert out["image"].shape == (3, 192, 192)
    flipped = out["instances"].gt_boxes.tensor
    expected = plain.gt_boxes.tensor.clone()
    expected[:, [0, 2]] = 96 - plain.gt_boxes.tensor[:, [2, 0]]
    torch.testing.assert_close(flipped, expected * 2, atol=1e-3, rtol=0)
    area = out["instances"].gt_masks.area()
    torch.testing.assert_close(area, plain.gt_masks.area() * 4, rtol=1e-3, atol=1e-2)


def test_mapper_keypoints_need_flip_indices(records):
    rec = next(r for r in records if any("keypoints" in a for a in r["annotations"]))
    # only the annotations of the keypoint category carry keypoints
    rec = {**rec, "annotations": [a for a in rec["annotations"] if "keypoints" in a]}
    mapper = DetectionDatasetMapper(True, augmentations=[RandomFlip(1.0)], use_keypoint=True)
    with pytest.raises(ValueError, match="flip_indices"):
        mapper(rec)
    mapper = DetectionDatasetMapper(
        True, augmentations=[RandomFlip(1.0)], use_keypoint=True, keypoint_flip_indices=[0, 2, 1]
    )
    kps = mapper(rec)["instances"].gt_keypoints.tensor
    original = np.asarray(rec["annotations"][0]["keypoints"], dtype=np.float32).reshape(-1, 3)
    if original[1, 2] > 0:
        assert abs(kps[0, 2, 0].item() - (96 - original[1, 0])) < 1e-3  # base_left -> base_right


def test_eval_mapper_drops_annotations_and_map_dataset(records):
    dataset = MapDataset(records, DetectionDatasetMapper(False, augmentations=[]))
    assert len(dataset) == len(records)
    item = dataset[1]
    assert (
        "instances" not in item
        and "annotations" not in item
        and item["image_id"] == records[1]["image_id"]
    )
    with pytest.raises(ValueError, match="image_format"):
        DetectionDatasetMapper(False, augmentations=[], image_format="HSV")


def test_detection_model_adapter_modes():
    class Echo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, batched_inputs):
            if self.training:
                return {"loss_x": self.w * len(batched_inputs)}
            return [{"instances": i} for i in range(len(batched_inputs))]

    model = DetectionModel(Echo())
    batch = [{"image_id": 7, "height": 5, "width": 6, "image": torch.zeros(3, 5, 6)}]
    data = model.data_preprocessor(batch, True)
    model.train()
    assert model(**data, mode="loss")["loss_x"].item() == 1
    model.eval()
    (pred,) = model(**data, mode="predict")
    assert pred == {"image_id": 7, "img_id": 7, "height": 5, "width": 6, "instances": 0}
    with pytest.raises(RuntimeError, match="training mode"):
        model(**data, mode="loss")
    with pytest.raises(ValueError, match="mode"):
        model(**data, mode="nope")
