import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset
from vt_engine_toys import ToyDataset, ToyModel

from vt_engine import (
    DetectionModel,
    EventStorageHook,
    LoggerHook,
    Runner,
    trivial_batch_collator,
)
from vt_modeling import build_model, get_cfg, get_event_storage
from vt_structures import Boxes, Instances, PolygonMasks

GT_BOX = [20.0, 16, 60, 48]


def pattern(iteration):
    """A uint8[3, 4, 5] image that tells the iteration it was put at."""
    return (torch.arange(60, dtype=torch.int64).view(3, 4, 5) * 3 + iteration).to(torch.uint8)


class ReportingModel(ToyModel):
    """The toy regression model, also reporting an image every second iteration and a
    scalar every iteration through the event storage."""

    def forward(self, inputs, targets=None, index=None, mode="tensor"):
        if mode == "loss":
            storage = get_event_storage()
            if storage.iter % 2 == 0:
                storage.put_image("pattern", pattern(storage.iter))
            storage.put_scalar("toy/iteration", storage.iter * 10)
        return super().forward(inputs, targets, index, mode)


def make_runner(work_dir, model, dataloader, max_iters, hooks=()):
    return Runner(
        model=model,
        work_dir=work_dir,
        train_dataloader=dataloader,
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=10**6),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=1e-3)),
        default_hooks=dict(checkpoint=None, logger=LoggerHook(interval=1, progress_bar=False)),
        custom_hooks=list(hooks),
        visualizer=dict(backends=("local", "tensorboard")),
        randomness=dict(seed=0),
    )


def test_event_storage_reaches_the_visualizer_backends(tmp_path):
    runner = make_runner(
        tmp_path,
        ReportingModel(),
        dict(dataset=ToyDataset(8), batch_size=4, sampler="infinite"),
        max_iters=5,
        hooks=[EventStorageHook()],
    )
    runner.train()
    vis_dir = runner.log_dir / "vis_data"
    # PNG backend: the images of iterations 0, 2 and 4, at their iteration.
    names = sorted(p.name for p in (vis_dir / "vis_image").iterdir())
    assert names == ["pattern_0.png", "pattern_2.png", "pattern_4.png"]
    for it in (0, 2, 4):
        png = np.asarray(Image.open(vis_dir / "vis_image" / f"pattern_{it}.png"))
        assert np.array_equal(png, pattern(it).permute(1, 2, 0).numpy())
    # TensorBoard backend.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(vis_dir))
    acc.Reload()
    assert [e.step for e in acc.Images("pattern")] == [0, 2, 4]
    assert (acc.Images("pattern")[0].height, acc.Images("pattern")[0].width) == (4, 5)
    # The scalars reach the message hub, and through the logger the backends.
    history = runner.message_hub.get_scalar("train/toy/iteration")
    assert len(history) == 5 and history.current() == 40.0
    records = [json.loads(line) for line in (vis_dir / "scalars.json").read_text().splitlines()]
    assert [r["toy/iteration"] for r in records] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert [e.value for e in acc.Scalars("toy/iteration")] == [0.0, 10.0, 20.0, 30.0, 40.0]
    # The storage is closed after training.
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()


def test_without_the_hook_reporting_models_fail_clearly(tmp_path):
    runner = make_runner(
        tmp_path,
        ReportingModel(),
        dict(dataset=ToyDataset(8), batch_size=4, sampler="infinite"),
        max_iters=1,
    )
    with pytest.raises(RuntimeError, match=r"with EventStorage\(\.\.\.\)"):
        runner.train()


class BoxImages(Dataset):
    """Gray images, each with one bright box annotated as ground truth."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        image = torch.full((3, 64, 80), 40, dtype=torch.uint8)
        x0, y0, x1, y1 = (int(v) for v in GT_BOX)
        image[:, y0:y1, x0:x1] = 200
        inst = Instances((64, 80))
        inst.gt_boxes = Boxes(torch.tensor([GT_BOX]))
        inst.gt_classes = torch.tensor([0])
        inst.gt_masks = PolygonMasks([[[x0, y0, x1, y0, x1, y1, x0, y1]]])
        return {"image": image, "instances": inst, "height": 64, "width": 80}


def tiny_rcnn(vis_period):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.VIS_PERIOD = vis_period
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    return build_model(cfg)


def test_rcnn_training_visualisation_reaches_tensorboard(tmp_path):
    torch.manual_seed(0)
    runner = make_runner(
        tmp_path,
        DetectionModel(tiny_rcnn(vis_period=2)),
        dict(
            dataset=BoxImages(), batch_size=2, sampler="infinite", collate_fn=trivial_batch_collator
        ),
        max_iters=3,
        hooks=[EventStorageHook()],
    )
    runner.train()
    name = "Left: GT bounding boxes;  Right: Predicted proposals"
    png = runner.log_dir / "vis_data" / "vis_image" / f"{name}_0.png"
    drawn = np.asarray(Image.open(png))
    assert drawn.shape == (64, 160, 3)  # ground truth | proposals
    left = drawn[:, :80]
    x0, y0, x1, y1 = (int(v) for v in GT_BOX)
    green = np.array([0, 255, 0])
    # The ground-truth box's outline (2 pixels wide) is drawn, the rest is the image.
    for row, col in [(y0, x0), (y0 + 1, x1 - 1), (y1 - 1, x0 + 10), (y0 + 10, x1 - 2)]:
        assert np.array_equal(left[row, col], green), (row, col)
    assert (left[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] == 200).all()
    assert (left[:y0] == 40).all() and (left[y1:] == 40).all()
    # The right panel: proposal outlines (orange) over the image, no ground truth.
    right = drawn[:, 80:]
    orange = (right == [255, 128, 0]).all(axis=-1)
    assert orange.sum() > 50
    assert np.isin(right[~orange], [40, 200]).all()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(runner.log_dir / "vis_data"))
    acc.Reload()
    assert [e.step for e in acc.Images(name)] == [0, 2]
    # The mask head's images (prediction | target, 28 x 56) and accuracy come through too.
    mask_tags = [t for t in acc.Tags()["images"] if t.startswith("Left: mask prediction")]
    assert mask_tags and all(
        (e.height, e.width) == (28, 56) for t in mask_tags for e in acc.Images(t)
    )
    assert len(runner.message_hub.get_scalar("train/mask_rcnn/accuracy")) == 3
    assert len(acc.Scalars("mask_rcnn/accuracy")) == 3
    # The model is handed the storage for the run only.
    assert runner.model.event_storage is None
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()


class Failing(torch.nn.Module):
    """Reports a scalar, then fails at iteration 1."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, batched_inputs):
        storage = get_event_storage()
        storage.put_scalar("seen", storage.iter)
        if storage.iter == 1:
            raise ValueError("boom")
        return {"loss_x": self.w * len(batched_inputs)}


def test_detection_model_opens_the_storage_around_its_forward_only(tmp_path):
    model = DetectionModel(Failing())
    runner = make_runner(
        tmp_path,
        model,
        dict(
            dataset=BoxImages(), batch_size=2, sampler="infinite", collate_fn=trivial_batch_collator
        ),
        max_iters=3,
        hooks=[EventStorageHook()],
    )
    with pytest.raises(ValueError, match="boom"):
        runner.train()
    # The storage was given to the model and opened only around its forward: the
    # failure leaves no storage open.
    assert model.event_storage is not None and model.event_storage.latest()["seen"] == (1.0, 1)
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()
    assert runner.message_hub.get_scalar("train/seen").current() == 0.0
