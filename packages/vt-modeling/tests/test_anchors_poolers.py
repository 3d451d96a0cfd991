import math

import pytest
import torch

from vt_layers import ShapeSpec
from vt_modeling import get_cfg
from vt_modeling.anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator
from vt_modeling.poolers import ROIPooler, assign_boxes_to_levels, convert_boxes_to_pooler_format
from vt_modeling.postprocessing import detector_postprocess, sem_seg_postprocess
from vt_modeling.registries import build_anchor_generator
from vt_structures import Boxes, Instances, RotatedBoxes


def cell(w, h):
    return [-w / 2, -h / 2, w / 2, h / 2]


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_default_anchors_known_values(offset):
    gen = DefaultAnchorGenerator(
        sizes=[[32]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[4], offset=offset
    )
    assert gen.num_anchors == [3]
    (anchors,) = gen([torch.zeros(1, 1, 2, 3)])
    assert isinstance(anchors, Boxes) and anchors.tensor.shape == (2 * 3 * 3, 4)
    w_half, h_half = math.sqrt(2) * 32, 32 / math.sqrt(2)  # ratio 0.5: w = 32 * sqrt(2), h = w / 2
    base = torch.tensor([cell(w_half, h_half), cell(32, 32), cell(h_half, w_half)])
    expected = []
    for y in range(2):
        for x in range(3):
            shift = torch.tensor([x * 4 + offset * 4, y * 4 + offset * 4] * 2)
            expected.append(base + shift)
    torch.testing.assert_close(anchors.tensor, torch.cat(expected))


def test_anchor_generator_from_config_broadcasts_sizes():
    cfg = get_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128]]
    shapes = [ShapeSpec(stride=s) for s in (4, 8, 16)]
    gen = build_anchor_generator(cfg, shapes)
    feats = [torch.zeros(1, 1, 8 // k, 8 // k) for k in (1, 2, 4)]
    anchors = gen(feats)
    assert [len(a) for a in anchors] == [64 * 3, 16 * 3, 4 * 3]
    assert torch.allclose(
        anchors[1].tensor[1, 2:] - anchors[1].tensor[1, :2], torch.tensor([64.0, 64.0])
    )
    with pytest.raises(ValueError, match="sizes"):
        DefaultAnchorGenerator(sizes=[[32], [64]], aspect_ratios=[1.0], strides=[4, 8, 16])


def test_rotated_anchors_at_angle_zero_match_axis_aligned():
    kwargs = dict(sizes=[[32, 64]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[8], offset=0.5)
    (rot,) = RotatedAnchorGenerator(angles=[[0.0]], **kwargs)([torch.zeros(1, 1, 3, 2)])
    (axis,) = DefaultAnchorGenerator(**kwargs)([torch.zeros(1, 1, 3, 2)])
    assert isinstance(rot, RotatedBoxes)
    cx, cy, w, h, a = rot.tensor.unbind(1)
    torch.testing.assert_close(
        torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), axis.tensor
    )
    assert (a == 0).all()
    gen = RotatedAnchorGenerator(angles=[[-30, 0, 30]], **kwargs)
    assert gen.num_anchors == [2 * 3 * 3]


def test_assign_boxes_to_levels_follows_fpn_equation():
    boxes = [
        Boxes(
            torch.tensor([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448], [0, 0, 10, 10.0]])
        )
    ]
    levels = assign_boxes_to_levels(
        boxes, min_level=2, max_level=5, canonical_box_size=224, canonical_level=4
    )
    assert levels.tolist() == [4 - 2, 3 - 2, 5 - 2, 0]


def test_single_level_pooler_equals_roi_align():
    torchvision = pytest.importorskip("torchvision")
    feat = torch.rand(2, 4, 32, 32)
    boxes = [
        Boxes(torch.tensor([[1.0, 2, 20, 25], [0, 0, 31, 31]])),
        Boxes(torch.tensor([[5.0, 5, 9, 12]])),
    ]
    pooler = ROIPooler(7, scales=[0.5], sampling_ratio=2, pooler_type="ROIAlignV2")
    out = pooler([feat], boxes)
    rois = convert_boxes_to_pooler_format(boxes)
    assert rois[:, 0].tolist() == [0, 0, 1]
    torch.testing.assert_close(out, torchvision.ops.roi_align(feat, rois, 7, 0.5, 2, aligned=True))


def test_multi_level_pooler_uses_the_assigned_level():
    torchvision = pytest.importorskip("torchvision")
    feats = [torch.rand(1, 3, 64 // 2**k, 64 // 2**k) for k in range(4)]  # strides 4, 8, 16, 32
    boxes = [Boxes(torch.tensor([[0, 0, 30, 30], [0, 0, 120, 120], [0, 0, 250, 250.0]]))]
    scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    pooler = ROIPooler(5, scales=scales, sampling_ratio=0, pooler_type="ROIAlign")
    out = pooler(feats, boxes)
    levels = assign_boxes_to_levels(boxes, 2, 5, 224, 4)
    rois = convert_boxes_to_pooler_format(boxes)
    for i, level in enumerate(levels.tolist()):
        expected = torchvision.ops.roi_align(feats[level], rois[i : i + 1], 5, scales[level], 0)
        torch.testing.assert_close(out[i : i + 1], expected)


def test_pooler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Unknown pooler type"):
        ROIPooler(7, [0.25], 0, "ROIMax")
    with pytest.raises(ValueError, match="powers of 2"):
        ROIPooler(7, [0.3], 0, "ROIAlign")
    pooler = ROIPooler(7, [0.25, 0.125], 0, "ROIAlign")
    with pytest.raises(ValueError, match="feature maps"):
        pooler([torch.rand(1, 1, 8, 8)], [Boxes(torch.zeros(0, 4))])


def test_detector_postprocess_scales_clips_and_drops_empty():
    inst = Instances((100, 200))
    inst.pred_boxes = Boxes(
        torch.tensor([[10.0, 10, 50, 40], [190, 90, 250, 120], [250, 0, 260, 10]])
    )
    inst.scores = torch.tensor([0.9, 0.8, 0.7])
    inst.pred_keypoints = torch.tensor([[[20.0, 30, 1]], [[195, 95, 1]], [[255, 5, 1]]])
    out = detector_postprocess(inst, 50, 100)
    assert out.image_size == (50, 100) and len(out) == 2  # the box outside the image is dropped
    torch.testing.assert_close(
        out.pred_boxes.tensor, torch.tensor([[5.0, 5, 25, 20], [95, 45, 100, 50]])
    )
    torch.testing.assert_close(out.pred_keypoints[0, 0, :2], torch.tensor([10.0, 15.0]))


def test_sem_seg_postprocess_crops_padding_and_resizes():
    logits = torch.zeros(3, 8, 8)
    logits[1, :6, :4] = 1.0  # the valid 6x4 region
    out = sem_seg_postprocess(logits, (6, 4), 12, 8)
    assert out.shape == (3, 12, 8)
    assert (out.argmax(0) == 1).all()
