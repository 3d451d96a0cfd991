import json

import numpy as np
import pytest
import torch
from PIL import Image
from vt_engine_toys import PixelAccuracy, SegSample, ToySegDataset, ToySegModel

from vt_engine import (
    LocalVisBackend,
    Runner,
    SegVisualizationHook,
    TensorboardVisBackend,
    Visualizer,
)


def gray(h=20, w=24, value=100):
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_draw_bboxes_outline_only():
    vis = Visualizer()
    vis.set_image(np.zeros((20, 20, 3), np.uint8))
    img = vis.draw_bboxes(
        torch.tensor([[2.0, 3.0, 10.0, 12.0]]), edge_colors=(255, 0, 0), line_widths=1, alpha=1.0
    ).get_image()
    assert (
        tuple(img[7, 2]) == (255, 0, 0)
        and tuple(img[3, 6]) == (255, 0, 0)
        and tuple(img[12, 10]) == (255, 0, 0)
    )
    assert tuple(img[7, 6]) == (0, 0, 0) and tuple(img[15, 15]) == (0, 0, 0)
    with pytest.raises(ValueError, match="x1 <= x2"):
        vis.draw_bboxes([[5, 5, 1, 1]])
    with pytest.raises(ValueError, match="edge_colors"):
        vis.draw_bboxes([[1, 1, 5, 5], [2, 2, 6, 6]], edge_colors=["red"])


def test_draw_binary_masks_blends_exactly():
    vis = Visualizer()
    vis.set_image(gray())
    mask = np.zeros((20, 24), bool)
    mask[:10] = True
    img = vis.draw_binary_masks(mask, colors=(200, 0, 0), alphas=0.5).get_image()
    assert (img[:10] == [150, 50, 50]).all() and (img[10:] == 100).all()
    with pytest.raises(ValueError, match="binary_masks"):
        vis.draw_binary_masks(np.zeros((1, 5, 5), bool))


def test_draw_sem_seg_uses_palette_and_ignores_255():
    vis = Visualizer(
        dataset_meta={"classes": ("road", "car"), "palette": [(0, 0, 200), (200, 200, 0)]}
    )
    vis.set_image(gray())
    seg = np.zeros((20, 24), np.int64)
    seg[:, 12:] = 1
    seg[:5] = 255
    img = vis.draw_sem_seg(torch.from_numpy(seg)[None], alpha=0.5, with_labels=False).get_image()
    assert (img[5:, :12] == [50, 50, 150]).all() and (img[5:, 12:] == [150, 150, 50]).all()
    assert (img[:5] == 100).all()
    labelled = Visualizer(dataset_meta=vis.dataset_meta)
    labelled.set_image(gray())
    out = labelled.draw_sem_seg(seg, alpha=0.5).get_image()
    assert (out != img).any()  # class names were written


def test_draw_panoptic_and_keypoints_and_instances():
    vis = Visualizer(
        dataset_meta={"classes": ("person", "sky"), "palette": [(220, 20, 60), (70, 130, 180)]}
    )
    vis.set_image(gray(30, 30))
    pan = np.zeros((30, 30), np.int64)
    pan[:10] = 1  # sky (stuff)
    pan[15:25, 5:15] = 2  # a person
    info = [
        {"id": 1, "category_id": 1, "isthing": False},
        {"id": 2, "category_id": 0, "isthing": True},
    ]
    img = vis.draw_panoptic(pan, info, alpha=1.0).get_image()
    # (pixels away from the class names written at each segment's median point)
    assert tuple(img[1, 28]) == (70, 130, 180)  # stuff: class colour
    assert (img[23, 6] != 100).any() and tuple(img[15, 10]) == (255, 255, 255)  # thing + contour
    assert tuple(img[28, 2]) == (100, 100, 100)  # id 0: no segment

    vis.set_image(gray(30, 30))
    kpts = torch.tensor([[[5.0, 5.0, 1.0], [20.0, 20.0, 0.0]]])
    img = vis.draw_keypoints(kpts, colors=(255, 0, 0), radius=1).get_image()
    assert tuple(img[5, 5]) == (255, 0, 0) and tuple(img[20, 20]) == (100, 100, 100)

    vis.set_image(gray(30, 30))
    inst = {
        "bboxes": torch.tensor([[2.0, 2.0, 12.0, 12.0]]),
        "labels": torch.tensor([0]),
        "scores": torch.tensor([0.9]),
    }
    img = vis.draw_instances(inst).get_image()
    assert (img != 100).any()
    vis.set_image(gray(30, 30))
    assert (vis.draw_instances({**inst, "scores": torch.tensor([0.1])}).get_image() == 100).all()


def test_local_and_tensorboard_backends(tmp_path):
    vis = Visualizer(
        vis_backends=[LocalVisBackend(tmp_path), TensorboardVisBackend(tmp_path / "tb")]
    )
    image = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    vis.add_image("sample", image, step=3)
    vis.add_scalars({"loss": 0.5, "name": "x"}, step=3)
    vis.close()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "vis_image" / "sample_3.png")), image)
    assert json.loads((tmp_path / "scalars.json").read_text()) == {
        "loss": 0.5,
        "name": "x",
        "step": 3,
    }
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert acc.Tags()["images"] == ["sample"] and acc.Images("sample")[0].step == 3
    assert acc.Scalars("loss")[0].value == 0.5


def seg_runner(tmp_path, hook):
    dataset = ToySegDataset(tmp_path)
    loader = dict(dataset=dataset, batch_size=1, shuffle=False)
    return Runner(
        model=ToySegModel(),
        work_dir=tmp_path / "work",
        val_dataloader=loader,
        val_evaluator=PixelAccuracy(),
        test_dataloader=loader,
        test_evaluator=PixelAccuracy(),
        custom_hooks=[hook],
        default_hooks=dict(logger=None),
    )


def test_seg_visualization_hook_draws_every_interval_during_val(tmp_path):
    runner = seg_runner(tmp_path, SegVisualizationHook(draw=True, interval=2))
    metrics = runner.val()
    assert 0 <= metrics["aAcc"] <= 100
    img_dir = runner.log_dir / "vis_data" / "vis_image"
    assert sorted(p.name for p in img_dir.iterdir()) == [
        "val_img_0.png_0.png",
        "val_img_2.png_2.png",
        "val_img_4.png_4.png",
    ]
    drawn = np.asarray(Image.open(img_dir / "val_img_2.png_2.png")).astype(int)
    assert drawn.shape == (8, 16, 3)  # ground truth | prediction
    dataset = runner.val_dataloader.dataset
    original, _, gt = dataset.items[2]
    palette = np.array(dataset.metainfo["palette"])
    expected_gt = np.round(original.numpy() * 0.5 + palette[gt[0].numpy()] * 0.5)
    # pixels of the left panel carry the ground-truth colours, blended at alpha 0.5
    match = np.abs(drawn[:, :8] - expected_gt) <= 1
    assert match.all(axis=-1).mean() > 0.6  # class-name text covers a few pixels
    # the right panel shows the prediction's colours
    pred = runner.model(original.permute(2, 0, 1)[None].float() / 255).argmax(1)[0]
    expected_pred = np.round(original.numpy() * 0.5 + palette[pred.numpy()] * 0.5)
    assert (np.abs(drawn[:, 8:] - expected_pred) <= 1).all(axis=-1).mean() > 0.6


def test_seg_visualization_hook_test_phase_and_draw_false(tmp_path):
    runner = seg_runner(tmp_path, SegVisualizationHook(draw=True))
    runner.test()
    names = sorted(p.name for p in (runner.log_dir / "vis_data" / "vis_image").iterdir())
    assert names == [f"img_{i}.png_{i + 1}.png" for i in range(5)]
    (tmp_path / "q").mkdir()
    quiet = seg_runner(tmp_path / "q", SegVisualizationHook(draw=False))
    quiet.val()
    assert not (quiet.log_dir / "vis_data" / "vis_image").exists()
    with pytest.raises(ValueError, match="backend"):
        SegVisualizationHook(backend_args=dict(backend="petrel"))
    with pytest.raises(ValueError, match="interval"):
        SegVisualizationHook(interval=0)
    sample = SegSample(None, torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="img_path"):
        SegVisualizationHook(draw=True, interval=1).after_test_iter(runner, 0, None, [sample])
