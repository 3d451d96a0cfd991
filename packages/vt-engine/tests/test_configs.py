"""The shipped configs: each loads, builds its model, trains a few iterations through the
Runner with finite losses, evaluates, and evaluates again from its checkpoint with
``vt-eval``; the data path they rely on (semantic maps and keypoint flips in the mapper,
the semantic and keypoint evaluation glue) checked on hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from vt_engine import (
    Config,
    DetectionDatasetMapper,
    DetectionModel,
    Hook,
    MetadataCatalog,
    Runner,
    cli,
    coco_category_subset,
    create_keypoint_hflip_indices,
    find_latest_checkpoint,
    keypoint_hflip_indices,
    load_coco_json,
    load_sem_seg,
    merge_to_panoptic,
    panoptic_stuff_label_map,
    read_sem_seg,
)
from vt_engine.configs import config_path
from vt_engine.configs._common import shapes_dataset
from vt_metrics import CocoMetric
from vt_modeling import PanopticFPN
from vt_structures import Boxes, BoxMode, Instances
from vt_structures.transforms import RandomFlip, ResizeShortestEdge

NEW_CONFIGS = [
    "retinanet_shapes",
    "fcos_shapes",
    "sem_seg_fpn_shapes",
    "keypoint_rcnn_shapes",
    "panoptic_fpn_shapes",
]
EXPECTED_METRICS = {
    "retinanet_shapes": ["coco/bbox_mAP", "coco/bbox_mAP_50"],
    "fcos_shapes": ["coco/bbox_mAP", "coco/bbox_mAP_50"],
    "sem_seg_fpn_shapes": ["mIoU", "mAcc", "aAcc"],
    "keypoint_rcnn_shapes": ["coco/bbox_mAP", "coco/keypoints_AP", "coco/keypoints_AP50"],
    "panoptic_fpn_shapes": [
        "coco/bbox_mAP",
        "coco/bbox_mAP_50",
        "coco/segm_mAP",
        "coco/segm_mAP_50",
        "mIoU",
    ],
}


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    """The configs read a tiny copy of the embedded dataset."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VT_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        mp.setenv("VT_SHAPES_NUM_TRAIN", "8")
        mp.setenv("VT_SHAPES_NUM_VAL", "4")
        mp.setenv("VT_SHAPES_IMAGE_SIZE", "64")
        yield


@pytest.mark.parametrize("name", ["mask_rcnn_shapes", *NEW_CONFIGS])
def test_config_loads_and_builds_its_model(tiny_shapes, name):
    cfg = Config.fromfile(config_path(name))
    model = cfg["model"]
    assert isinstance(model, DetectionModel)
    assert sum(p.numel() for p in model.parameters()) < 3_000_000  # CPU-sized
    assert cfg["work_dir"].endswith(name)
    batch = next(iter(cfg["train_dataloader"]))
    assert batch[0]["image"].shape[0] == 3
    if name in ("sem_seg_fpn_shapes", "panoptic_fpn_shapes"):
        assert batch[0]["sem_seg"].shape == batch[0]["image"].shape[1:]
    if name == "panoptic_fpn_shapes":
        assert isinstance(model.model, PanopticFPN)
        assert model.model.sem_seg_head.predictor.out_channels == 3  # things, wall, floor
        # stuff targets: 0 (things), 1 (wall), 2 (floor); every image has wall and floor
        for sample in batch:
            assert set(sample["sem_seg"].unique().tolist()) <= {0, 1, 2}
            assert sample["instances"].has("gt_masks")
    if name != "sem_seg_fpn_shapes":
        assert all(len(b["instances"]) > 0 or "instances" in b for b in batch)


class _RecordLosses(Hook):
    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({k: float(v) for k, v in outputs.items()})


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_config_trains_evaluates_and_reloads(tiny_shapes, tmp_path, name, capsys):
    iters = 3
    cfg = Config.fromfile(config_path(name))
    cfg["work_dir"] = str(tmp_path / "work")
    cfg.merge_from_dotlist([f"train_cfg.max_iters={iters}", f"train_cfg.val_interval={iters}"])
    cfg["default_hooks"]["logger"].interval = 1
    record = _RecordLosses()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(record)
    runner.train()
    assert len(record.losses) == iters
    for losses in record.losses:
        assert losses and all(math.isfinite(v) for v in losses.values()), losses
        assert any(k.startswith("loss_") for k in losses)
    metrics = runner.val()
    for key in EXPECTED_METRICS[name]:
        assert key in metrics and math.isfinite(metrics[key]), (key, metrics)
    if name == "sem_seg_fpn_shapes":
        assert 0 <= metrics["aAcc"] <= 100
    if name == "panoptic_fpn_shapes":
        assert all("loss_sem_seg" in losses and "loss_mask" in losses for losses in record.losses)

    # vt-eval on the saved checkpoint gives the same numbers
    checkpoint = find_latest_checkpoint(cfg["work_dir"])
    assert checkpoint is not None
    capsys.readouterr()
    assert (
        cli.test_main([str(config_path(name)), str(checkpoint), "--work-dir", str(tmp_path)]) == 0
    )
    printed = capsys.readouterr().out
    for key in EXPECTED_METRICS[name]:
        assert f"{key}: {metrics[key]}" in printed, printed


# ----------------------------------------------------------------------------- mapper


def _write_png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def labelled_image(tmp_path):
    """A 4 x 6 image whose red channel is 40 x its label map."""
    labels = np.array(
        [[0, 0, 1, 1, 2, 2], [0, 3, 1, 1, 2, 5], [4, 3, 3, 1, 2, 5], [4, 4, 3, 0, 0, 5]],
        dtype=np.uint8,
    )
    image = np.stack([labels * 40, np.full_like(labels, 7), np.full_like(labels, 9)], axis=2)
    return {
        "file_name": _write_png(tmp_path / "img.png", image),
        "sem_seg_file_name": _write_png(tmp_path / "sem.png", labels),
        "height": 4,
        "width": 6,
    }, labels


@pytest.mark.parametrize("is_train", [True, False])
def test_mapper_sem_seg_follows_the_image_under_flip(labelled_image, is_train):
    record, labels = labelled_image
    out = DetectionDatasetMapper(is_train, augmentations=[RandomFlip(1.0)])(record)
    expected = labels[:, ::-1]
    assert out["sem_seg"].dtype == torch.int64
    np.testing.assert_array_equal(out["sem_seg"].numpy(), expected)
    np.testing.assert_array_equal(out["image"][0].numpy() // 40, expected)


def test_mapper_sem_seg_follows_the_image_under_resize_and_flip(labelled_image):
    record, labels = labelled_image
    mapper = DetectionDatasetMapper(
        True, augmentations=[ResizeShortestEdge(8, interp="nearest"), RandomFlip(1.0)]
    )
    out = mapper(record)
    # doubling with nearest neighbour: each pixel becomes a 2 x 2 block
    expected = labels.repeat(2, axis=0).repeat(2, axis=1)[:, ::-1]
    assert out["sem_seg"].shape == (8, 12) and out["image"].shape == (3, 8, 12)
    np.testing.assert_array_equal(out["sem_seg"].numpy(), expected)
    np.testing.assert_array_equal(out["image"][0].numpy() // 40, expected)


def test_mapper_sem_seg_bad_inputs(labelled_image, tmp_path):
    record, labels = labelled_image
    mapper = DetectionDatasetMapper(False, augmentations=[])
    rgb = _write_png(tmp_path / "rgb.png", np.zeros((4, 6, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="single-channel"):
        mapper({**record, "sem_seg_file_name": rgb})
    small = _write_png(tmp_path / "small.png", labels[:3])
    with pytest.raises(ValueError, match="3x6 but the image is 4x6"):
        mapper({**record, "sem_seg_file_name": small})
    np.testing.assert_array_equal(read_sem_seg(record["sem_seg_file_name"]), labels)


def _triangle_record(tmp_path, keypoints):
    return {
        "file_name": _write_png(tmp_path / "tri.png", np.zeros((10, 8, 3), dtype=np.uint8)),
        "height": 10,
        "width": 8,
        "annotations": [
            {
                "bbox": [1.0, 1.0, 5.0, 5.0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "keypoints": keypoints,
                "iscrowd": 0,
            }
        ],
    }


def test_keypoint_hflip_indices_from_a_flip_map():
    names = ["apex", "base_left", "base_right"]
    assert keypoint_hflip_indices(names, [("base_left", "base_right")]) == [0, 2, 1]
    assert keypoint_hflip_indices(names, []) == [0, 1, 2]
    five = ["nose", "l_eye", "r_eye", "l_ear", "r_ear"]
    pairs = [("l_eye", "r_eye"), ("r_ear", "l_ear")]
    assert keypoint_hflip_indices(five, pairs) == [0, 2, 1, 4, 3]
    with pytest.raises(ValueError, match="flip_map"):
        keypoint_hflip_indices(names, [("base_left", "tip")])
    with pytest.raises(ValueError, match="more than one pair"):
        keypoint_hflip_indices(names, [("apex", "base_left"), ("base_left", "base_right")])
    MetadataCatalog.get("kpt_flip_test").set(
        keypoint_names=names, keypoint_flip_map=[("base_left", "base_right")]
    )
    assert create_keypoint_hflip_indices("kpt_flip_test") == [0, 2, 1]
    MetadataCatalog.get("kpt_flip_test_2").set(keypoint_names=names, keypoint_flip_map=[])
    with pytest.raises(ValueError, match="different keypoint flip maps"):
        create_keypoint_hflip_indices(["kpt_flip_test", "kpt_flip_test_2"])


def test_mapper_flipped_keypoints_swap_left_and_right_and_mirror_x(tmp_path):
    # apex, base_left, base_right (continuous coordinates), image width 8
    record = _triangle_record(tmp_path, [3.5, 1.5, 2, 1.5, 5.5, 2, 5.5, 5.5, 1])
    names = ["apex", "base_left", "base_right"]
    mapper = DetectionDatasetMapper(
        True,
        augmentations=[RandomFlip(1.0)],
        use_keypoint=True,
        keypoint_flip_indices=keypoint_hflip_indices(names, [("base_left", "base_right")]),
    )
    kps = mapper(record)["instances"].gt_keypoints.tensor[0]
    expected = torch.tensor(
        [
            [8 - 3.5, 1.5, 2],  # the apex stays the apex, mirrored
            [8 - 5.5, 5.5, 1],  # the new base_left is the mirrored base_right
            [8 - 1.5, 5.5, 2],
        ]
    )
    torch.testing.assert_close(kps, expected)
    unflipped = DetectionDatasetMapper(True, augmentations=[], use_keypoint=True)(record)
    torch.testing.assert_close(
        unflipped["instances"].gt_keypoints.tensor[0],
        torch.tensor([[3.5, 1.5, 2], [1.5, 5.5, 2], [5.5, 5.5, 1]]),
    )


def test_mapper_unlabeled_keypoints_stay_unlabeled_when_flipped(tmp_path):
    record = _triangle_record(tmp_path, [3.5, 1.5, 2, 0, 0, 0, 5.5, 5.5, 2])
    mapper = DetectionDatasetMapper(
        True, augmentations=[RandomFlip(1.0)], use_keypoint=True, keypoint_flip_indices=[0, 2, 1]
    )
    kps = mapper(record)["instances"].gt_keypoints.tensor[0]
    torch.testing.assert_close(kps[2], torch.zeros(3))  # base_right <- unlabeled base_left
    torch.testing.assert_close(kps[1], torch.tensor([8 - 5.5, 5.5, 2]))


# ----------------------------------------------------------------------------- evaluation glue


class _Fixed(torch.nn.Module):
    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, batched_inputs):
        return self.outputs


def test_prediction_samples_for_iou_metric(labelled_image):
    record, labels = labelled_image
    logits = torch.zeros(6, 4, 6)
    logits[1] = 1.0  # predicts class 1 everywhere
    model = DetectionModel(_Fixed([{"sem_seg": logits}])).eval()
    inp = DetectionDatasetMapper(False, augmentations=[])(record)
    (sample,) = model(**model.data_preprocessor([inp]), mode="predict")
    np.testing.assert_array_equal(sample["pred_sem_seg"]["data"].numpy(), np.ones((1, 4, 6)))
    np.testing.assert_array_equal(sample["gt_sem_seg"]["data"].numpy(), labels[None])
    assert sample["img_path"] == record["file_name"]
    # a test-time resize: the ground truth comes from the original label map
    inp = DetectionDatasetMapper(False, augmentations=[ResizeShortestEdge(8)])(record)
    (sample,) = model(**model.data_preprocessor([inp]), mode="predict")
    np.testing.assert_array_equal(sample["gt_sem_seg"]["data"].numpy(), labels[None])


def test_prediction_keypoints_are_in_coco_pixel_indices():
    inst = Instances((10, 10))
    inst.pred_boxes = Boxes(torch.tensor([[1.0, 1.0, 6.0, 6.0]]))
    inst.scores = torch.tensor([0.9])
    inst.pred_classes = torch.tensor([0])
    inst.pred_keypoints = torch.tensor([[[3.5, 1.5, 0.8], [1.5, 5.5, 0.7]]])
    model = DetectionModel(_Fixed([{"instances": inst}])).eval()
    (sample,) = model([{"image_id": 3, "image": torch.zeros(3, 10, 10)}], mode="predict")
    torch.testing.assert_close(
        sample["pred_instances"]["keypoints"], torch.tensor([[[3.0, 1.0, 0.8], [1.0, 5.0, 0.7]]])
    )
    torch.testing.assert_close(inst.pred_keypoints[0, 0, 0], torch.tensor(3.5))  # not modified


def test_keypoint_config_scores_its_ground_truth_as_perfect(tiny_shapes):
    """The keypoint config's data and evaluation agree on coordinates: the mapped ground
    truth, returned as predictions, scores AP 1 (a 0.5 px convention slip would not)."""

    cfg = Config.fromfile(config_path("keypoint_rcnn_shapes"))
    records = cfg["train_dataloader"].dataset.items
    mapper = DetectionDatasetMapper(True, augmentations=[], use_keypoint=True)
    outputs, inputs = [], []
    for record in records:
        gt = mapper(record)["instances"]
        pred = Instances(gt.image_size)
        pred.pred_boxes = gt.gt_boxes
        pred.scores = torch.ones(len(gt))
        pred.pred_classes = gt.gt_classes
        pred.pred_keypoints = gt.gt_keypoints.tensor.clone()
        outputs.append({"instances": pred})
        inputs.append({"image_id": record["image_id"], "image": torch.zeros(3, 1, 1)})
    assert sum(len(o["instances"]) for o in outputs) > 0
    model = DetectionModel(_Fixed(outputs)).eval()
    subset = coco_category_subset(shapes_dataset().instances_json("train"), ["triangle"])
    metric = CocoMetric(subset, ["bbox", "keypoints"], kpt_oks_sigmas=cfg["kpt_oks_sigmas"])
    metric.process({}, model(inputs, mode="predict"))
    results = metric.compute_metrics(metric.results)
    assert results["bbox_mAP"] == 1.0 and results["keypoints_AP"] == 1.0, results


# ----------------------------------------------------------------------------- dataset helpers


def _coco():
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "categories": [
            {"id": 1, "name": "circle"},
            {"id": 3, "name": "triangle", "keypoints": ["apex", "base_left", "base_right"]},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "bbox": [1, 1, 4, 4],
                "area": 8,
                "keypoints": [2, 1, 2, 1, 4, 2, 4, 4, 2],
                "num_keypoints": 3,
            },
        ],
    }


def test_coco_category_subset_loads_as_a_one_class_dataset(tmp_path):
    subset = coco_category_subset(_coco(), ["triangle"])
    assert [c["name"] for c in subset["categories"]] == ["triangle"]
    assert [a["id"] for a in subset["annotations"]] == [2] and len(subset["images"]) == 1
    (record,) = load_coco_json(subset, tmp_path, "subset_test")
    (ann,) = record["annotations"]
    assert ann["category_id"] == 0 and ann["keypoints"][:3] == [2.5, 1.5, 2]
    assert MetadataCatalog.get("subset_test").keypoint_names == ["apex", "base_left", "base_right"]
    with pytest.raises(ValueError, match="category_names"):
        coco_category_subset(_coco(), ["square"])


def test_merge_to_panoptic_adds_the_semantic_maps(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "sem").mkdir()
    for name in ("a", "b"):
        _write_png(tmp_path / "img" / f"{name}.png", np.zeros((2, 2, 3), dtype=np.uint8))
        _write_png(tmp_path / "sem" / f"{name}.png", np.zeros((2, 2), dtype=np.uint8))
    sem = load_sem_seg(tmp_path / "sem", tmp_path / "img", "png", "png")
    dets = [{"file_name": str(tmp_path / "img" / "b.png"), "annotations": [], "image_id": 2}]
    (merged,) = merge_to_panoptic(dets, sem)
    assert merged["sem_seg_file_name"] == str(tmp_path / "sem" / "b.png")
    assert merged["image_id"] == 2 and "sem_seg_file_name" not in dets[0]
    with pytest.raises(ValueError, match="no entry"):
        merge_to_panoptic([{"file_name": "c.png"}], sem)


# ----------------------------------------------------------------------------- panoptic


def test_panoptic_stuff_label_map_on_a_hand_built_case(labelled_image):
    # label map classes: 0 wall, 1 floor, 2..5 the shapes
    classes = ["wall", "floor", "circle", "rectangle", "triangle", "star"]
    table = panoptic_stuff_label_map(classes, ["wall", "floor"])
    assert table.shape == (256,) and table.dtype == np.int64
    assert table[:6].tolist() == [1, 2, 0, 0, 0, 0] and (table[6:] == 255).all()
    # the stuff order sets the targets; a class neither stuff nor thing cannot exist
    assert panoptic_stuff_label_map(classes, ["floor"], ignore_value=-1)[:3].tolist() == [0, 1, 0]
    record, labels = labelled_image
    labels = labels.copy()
    labels[0, 0] = 255  # an ignored pixel stays ignored
    _write_png(record["sem_seg_file_name"], labels)
    mapper = DetectionDatasetMapper(False, augmentations=[RandomFlip(1.0)], sem_seg_label_map=table)
    out = mapper(record)
    expected = np.array(
        [[255, 1, 2, 2, 0, 0], [1, 0, 2, 2, 0, 0], [0, 0, 0, 2, 0, 0], [0, 0, 0, 1, 1, 0]]
    )[:, ::-1]
    np.testing.assert_array_equal(out["sem_seg"].numpy(), expected)
    for bad, match in [
        (dict(stuff_classes=["sky"]), "stuff_classes"),
        (dict(stuff_classes=[]), "stuff_classes"),
        (dict(stuff_classes=["wall", "wall"]), "distinct"),
        (dict(stuff_classes=["wall"], ignore_value=1), "ignore_value"),
    ]:
        with pytest.raises(ValueError, match=match):
            panoptic_stuff_label_map(classes, **bad)
    with pytest.raises(ValueError, match="not all in the table of 2 labels"):
        DetectionDatasetMapper(False, augmentations=[], sem_seg_label_map=[0, 1])(record)
    with pytest.raises(ValueError, match="sem_seg_label_map"):
        DetectionDatasetMapper(False, augmentations=[], sem_seg_label_map=[[0, 1]])


def test_prediction_samples_of_a_panoptic_output(labelled_image):
    """A Panoptic FPN output feeds COCO (its instances) and IoU (its semantic logits, the
    ground truth relabelled as in training) and keeps its panoptic map."""
    record, labels = labelled_image
    table = panoptic_stuff_label_map(
        ["wall", "floor", "circle", "rectangle", "triangle", "star"], ["wall", "floor"]
    )
    inst = Instances((4, 6))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0]]))
    inst.scores = torch.tensor([0.9])
    inst.pred_classes = torch.tensor([2])
    inst.pred_masks = torch.zeros(1, 4, 6, dtype=torch.bool)
    logits = torch.zeros(3, 4, 6)
    logits[2] = 1.0  # floor everywhere
    panoptic = torch.full((4, 6), 2, dtype=torch.int32)
    segments_info = [{"id": 2, "isthing": False, "category_id": 2, "area": 24}]
    out = {"instances": inst, "sem_seg": logits, "panoptic_seg": (panoptic, segments_info)}
    model = DetectionModel(_Fixed([out])).eval()
    for augmentations in ([], [ResizeShortestEdge(8)]):  # same size, or from the file
        mapper = DetectionDatasetMapper(False, augmentations=augmentations, sem_seg_label_map=table)
        inp = {**mapper(record), "image_id": 7}
        (sample,) = model(**model.data_preprocessor([inp]), mode="predict")
        assert sample["img_id"] == 7
        torch.testing.assert_close(sample["pred_instances"]["labels"], torch.tensor([2]))
        assert sample["pred_instances"]["masks"].shape == (1, 4, 6)
        np.testing.assert_array_equal(sample["pred_sem_seg"]["data"].numpy(), np.full((1, 4, 6), 2))
        np.testing.assert_array_equal(sample["gt_sem_seg"]["data"].numpy(), table[labels][None])
        torch.testing.assert_close(sample["pred_panoptic_seg"]["data"], panoptic[None])
        assert sample["pred_panoptic_seg"]["segments_info"] == segments_info
