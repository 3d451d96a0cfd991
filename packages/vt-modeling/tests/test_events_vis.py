import math
import statistics

import numpy as np
import pytest
import torch

from vt_modeling import EventStorage, build_model, get_cfg, get_event_storage
from vt_modeling.roi_heads.mask_head import mask_rcnn_loss
from vt_modeling.utils import HistoryBuffer, convert_image_to_rgb, draw_boxes
from vt_structures import BitMasks, Boxes, Instances, PolygonMasks

GT_BOXES = [[10.0, 12, 50, 60], [60.5, 20.2, 110, 80.7]]
GT_COLOR = (0, 255, 0)
PROPOSAL_COLOR = (255, 128, 0)


def reference_outline(h, w, boxes, line_width=2):
    """Pixels (as a bool[H, W]) on the outlines of ``boxes``: inside the box's pixel
    range (rounded outward, clipped) and within ``line_width`` of one of its sides."""
    rows, cols = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, r0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        c1, r1 = min(math.ceil(x1), w), min(math.ceil(y1), h)
        inside = (cols >= c0) & (cols < c1) & (rows >= r0) & (rows < r1)
        near = (
            (cols < c0 + line_width)
            | (cols >= c1 - line_width)
            | (rows < r0 + line_width)
            | (rows >= r1 - line_width)
        )
        out |= inside & near
    return out


# -- EventStorage ------------------------------------------------------------------------


def test_get_event_storage_needs_a_context():
    with pytest.raises(RuntimeError, match=r"with EventStorage\(\.\.\.\)"):
        get_event_storage()
    with EventStorage(5) as outer:
        assert get_event_storage() is outer and outer.iter == 5
        with EventStorage() as inner:
            assert get_event_storage() is inner
        assert get_event_storage() is outer
    with pytest.raises(RuntimeError):
        get_event_storage()


def test_event_storage_scalars_history_and_smoothing():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    with EventStorage(10) as storage:
        for v in values:
            storage.put_scalar("loss", torch.tensor(v))
            storage.put_scalars(lr=0.1 * v, smoothing_hint=False)
            storage.step()
        with storage.name_scope("mask_rcnn"):
            storage.put_scalar("accuracy", 0.5)
    assert storage.iter == storage.iteration == 17
    history = storage.history("loss")
    assert history.values() == [(v, 10 + i) for i, v in enumerate(values)]
    assert history.latest() == 2.0
    assert history.median(4) == statistics.median(values[-4:])
    assert history.avg(3) == pytest.approx(statistics.fmean(values[-3:]))
    assert history.global_avg() == pytest.approx(statistics.fmean(values))
    assert storage.latest()["loss"] == (2.0, 16)
    assert storage.latest()["mask_rcnn/accuracy"] == (0.5, 17)
    smoothed = storage.latest_with_smoothing_hint(window_size=3)
    assert smoothed["loss"] == (statistics.median(values[-3:]), 16)
    assert smoothed["lr"] == (pytest.approx(0.2), 16)  # not smoothed
    assert storage.smoothing_hints() == {"loss": True, "lr": False, "mask_rcnn/accuracy": True}
    assert set(storage.histories()) == {"loss", "lr", "mask_rcnn/accuracy"}
    with pytest.raises(KeyError, match="nope"):
        storage.history("nope")
    with pytest.raises(ValueError, match="smoothing_hint"):
        storage.put_scalar("lr", 1.0, smoothing_hint=True)


def test_history_buffer_keeps_the_last_values():
    buf = HistoryBuffer(max_length=3)
    for i, v in enumerate([1.0, 2.0, 3.0, 10.0]):
        buf.update(v)
        assert buf.values()[-1] == (v, i)
    assert buf.values() == [(2.0, 1), (3.0, 2), (10.0, 3)]
    assert buf.median(100) == 3.0
    assert buf.global_avg() == 4.0  # all values, including the dropped one
    with pytest.raises(ValueError, match="max_length"):
        HistoryBuffer(0)
    with pytest.raises(ValueError, match="empty"):
        HistoryBuffer().latest()


def test_event_storage_images():
    storage = EventStorage(3)
    img = torch.rand(3, 4, 5, requires_grad=True)
    storage.put_image("a", img)
    storage.iter = 7
    storage.put_image("b", np.zeros((3, 2, 2), dtype=np.uint8))
    (name_a, img_a, it_a), (name_b, _, it_b) = storage.vis_data
    assert (name_a, it_a, name_b, it_b) == ("a", 3, "b", 7)
    assert torch.equal(img_a, img.detach()) and not img_a.requires_grad
    storage.clear_images()
    assert storage.vis_data == []
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        storage.put_image("c", torch.zeros(4, 4, 3))
    with pytest.raises(TypeError, match="uint8 or float"):
        storage.put_image("c", torch.zeros(3, 4, 4, dtype=torch.int32))
    with pytest.raises(TypeError, match="img_tensor"):
        storage.put_image("c", [[0]])


# -- drawing -------------------------------------------------------------------------------


def test_draw_boxes_matches_the_reference_outline():
    image = torch.randint(0, 200, (3, 40, 50), dtype=torch.uint8)
    boxes = torch.tensor(
        [[5.0, 6, 20, 30], [2.3, 3.7, 9.1, 8.2], [-5, 30, 80, 60], [10, 10, 10, 20]]
    )
    out = draw_boxes(image, boxes, color=(1, 2, 3), line_width=2)
    outline = torch.from_numpy(reference_outline(40, 50, boxes.tolist()))
    assert torch.equal(
        out[:, outline],
        torch.tensor([[1], [2], [3]], dtype=torch.uint8).expand(3, int(outline.sum())),
    )
    assert torch.equal(out[:, ~outline], image[:, ~outline])
    # The first box's outline, by hand: columns 5, 6, 18, 19 and rows 6, 7, 28, 29.
    assert out[1, 6, 5] == 2 and out[1, 29, 19] == 2 and out[1, 15, 12] == image[1, 15, 12]
    assert torch.equal(draw_boxes(image, torch.zeros(0, 4)), image)


def test_draw_boxes_and_convert_image_errors():
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    with pytest.raises(TypeError, match="uint8"):
        draw_boxes(image.float(), torch.zeros(0, 4))
    with pytest.raises(ValueError, match="boxes"):
        draw_boxes(image, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="finite"):
        draw_boxes(image, torch.tensor([[0.0, 0, float("nan"), 1]]))
    with pytest.raises(ValueError, match="line_width"):
        draw_boxes(image, torch.zeros(0, 4), line_width=0)
    with pytest.raises(ValueError, match="format"):
        convert_image_to_rgb(image, "CMYK")
    with pytest.raises(ValueError, match="channels"):
        convert_image_to_rgb(image, "L")


def test_convert_image_to_rgb():
    bgr = torch.tensor([10.0, 20.0, 300.0]).view(3, 1, 1).expand(3, 2, 2)
    rgb = convert_image_to_rgb(bgr, "BGR")
    assert rgb.dtype == torch.uint8 and rgb[:, 0, 0].tolist() == [255, 20, 10]
    assert torch.equal(convert_image_to_rgb(bgr, "RGB"), convert_image_to_rgb(bgr, None))
    gray = convert_image_to_rgb(torch.full((1, 2, 3), 7.0), "L")
    assert gray.shape == (3, 2, 3) and (gray == 7).all()
    # YUV with no chroma is gray.
    yuv = torch.tensor([0.5, 0.0, 0.0]).view(3, 1, 1)
    assert convert_image_to_rgb(yuv, "YUV-BT.601").flatten().tolist() == [128, 128, 128]


# -- mask_rcnn_loss ------------------------------------------------------------------------


def mask_loss_inputs():
    torch.manual_seed(0)
    inst = Instances((32, 32))
    inst.proposal_boxes = Boxes(torch.tensor([[2.0, 2, 20, 20], [8, 4, 30, 28], [0, 0, 16, 16]]))
    inst.gt_classes = torch.tensor([1, 0, 1])
    masks = torch.zeros(3, 32, 32, dtype=torch.bool)
    masks[0, 4:18, 4:12] = True
    masks[1, 10:20, 10:28] = True
    masks[2, 0:8, 0:8] = True
    inst.gt_masks = BitMasks(masks)
    logits = torch.randn(3, 2, 6, 6)
    return logits, inst


def test_mask_rcnn_loss_puts_mask_images_and_accuracy():
    logits, inst = mask_loss_inputs()
    gt = inst.gt_masks.crop_and_resize(inst.proposal_boxes.tensor, 6).float()
    pred = logits[torch.arange(3), inst.gt_classes]
    with EventStorage(4) as storage:
        loss = mask_rcnn_loss(logits, [inst], vis_period=2)
    torch.testing.assert_close(loss, torch.nn.functional.binary_cross_entropy_with_logits(pred, gt))
    assert [name for name, _, _ in storage.vis_data] == [
        f"Left: mask prediction;   Right: mask GT ({i})" for i in range(3)
    ]
    for i, (_, img, it) in enumerate(storage.vis_data):
        assert it == 4 and img.shape == (3, 6, 12)
        assert torch.equal(img[0], img[2])  # gray
        torch.testing.assert_close(img[0, :, :6], pred[i].sigmoid())
        assert torch.equal(img[0, :, 6:], gt[i])
    # The scalars, against numpy.
    p, g = pred.numpy() > 0, gt.numpy() > 0.5
    wrong = p != g
    latest = storage.latest()
    assert latest["mask_rcnn/accuracy"] == (pytest.approx(1 - wrong.mean()), 4)
    assert latest["mask_rcnn/false_positive"][0] == pytest.approx((wrong & ~g).sum() / (~g).sum())
    assert latest["mask_rcnn/false_negative"][0] == pytest.approx((wrong & g).sum() / g.sum())
    # Not a visualisation iteration: scalars only.
    with EventStorage(5) as storage:
        mask_rcnn_loss(logits, [inst], vis_period=2)
    assert storage.vis_data == [] and "mask_rcnn/accuracy" in storage.latest()


def test_mask_rcnn_loss_without_storage():
    logits, inst = mask_loss_inputs()
    assert torch.isfinite(mask_rcnn_loss(logits, [inst]))  # vis_period=0 needs no storage
    with pytest.raises(RuntimeError, match="EventStorage"):
        mask_rcnn_loss(logits, [inst], vis_period=1)


# -- GeneralizedRCNN.visualize_training ----------------------------------------------------


def training_input(h=96, w=128):
    image = torch.zeros(3, h, w)
    image[2] = 60.0  # BGR input: a red-ish background once converted to RGB
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor(GT_BOXES))
    inst.gt_classes = torch.tensor([0, 1])
    inst.gt_masks = PolygonMasks(
        [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in GT_BOXES]
    )
    return {"image": image, "instances": inst}


@pytest.fixture(scope="module")
def vis_model():
    """A small Mask R-CNN (R18-FPN) from the config with VIS_PERIOD = 2, in training."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.VIS_PERIOD = 2
    cfg.INPUT.FORMAT = "BGR"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 100
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    torch.manual_seed(0)
    return build_model(cfg).train()


def test_visualize_training_every_vis_period(vis_model, monkeypatch):
    model = vis_model
    assert model.vis_period == 2 and model.roi_heads.mask_head.vis_period == 2
    seen = []
    original = type(model).visualize_training

    def spy(self, batched_inputs, proposals):
        seen.append([p.proposal_boxes.tensor.clone() for p in proposals])
        return original(self, batched_inputs, proposals)

    monkeypatch.setattr(type(model), "visualize_training", spy)
    inputs = [training_input(), training_input()]
    with EventStorage(3) as storage:
        losses = model(inputs)
    assert seen == [] and storage.vis_data == []  # 3 % 2 != 0
    assert "mask_rcnn/accuracy" in storage.latest()
    assert all(torch.isfinite(v) for v in losses.values())
    with EventStorage(4) as storage:
        model(inputs)
    assert len(seen) == 1
    boxes_images = [d for d in storage.vis_data if d[0].startswith("Left: GT bounding boxes")]
    mask_images = [d for d in storage.vis_data if d[0].startswith("Left: mask prediction")]
    assert len(boxes_images) == 1  # the first image of the batch only
    assert len(mask_images) > 0 and all(img.shape == (3, 28, 56) for _, img, _ in mask_images)
    (name, vis, it) = boxes_images[0]
    assert name == "Left: GT bounding boxes;  Right: Predicted proposals" and it == 4
    assert vis.dtype == torch.uint8 and vis.shape == (3, 96, 256)
    background = torch.tensor([60, 0, 0], dtype=torch.uint8).view(3, 1)  # BGR -> RGB
    left, right = vis[:, :, :128], vis[:, :, 128:]
    gt_outline = torch.from_numpy(reference_outline(96, 128, GT_BOXES))
    assert torch.equal(
        left[:, gt_outline],
        torch.tensor(GT_COLOR).view(3, 1).expand_as(left[:, gt_outline]).to(torch.uint8),
    )
    assert torch.equal(left[:, ~gt_outline], background.expand(3, int((~gt_outline).sum())))
    # The right panel: the 20 top-scoring proposals of the first image.
    proposals = seen[0][0]
    assert len(proposals) > 20
    prop_outline = torch.from_numpy(reference_outline(96, 128, proposals[:20].tolist()))
    color = torch.tensor(PROPOSAL_COLOR, dtype=torch.uint8).view(3, 1)
    assert torch.equal(right[:, prop_outline], color.expand(3, int(prop_outline.sum())))
    assert torch.equal(right[:, ~prop_outline], background.expand(3, int((~prop_outline).sum())))
    extra = torch.from_numpy(reference_outline(96, 128, proposals[20:].tolist()))
    assert (extra & ~prop_outline).any()  # the other proposals would have drawn more


def test_vis_period_needs_an_event_storage(vis_model):
    with pytest.raises(RuntimeError, match="EventStorage"):
        vis_model([training_input()])
