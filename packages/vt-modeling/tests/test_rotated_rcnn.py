import math

import pytest
import torch
from vt_modeling_toys import tiny_rcnn

from vt_layers import ShapeSpec
from vt_modeling import (
    RPN,
    RRPN,
    Box2BoxTransform,
    Box2BoxTransformRotated,
    DefaultAnchorGenerator,
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    Matcher,
    ROIPooler,
    RotatedAnchorGenerator,
    RotatedFastRCNNOutputLayers,
    RROIHeads,
    StandardROIHeads,
    StandardRPNHead,
    fast_rcnn_inference,
    get_cfg,
)
from vt_modeling.proposal_generator import find_top_rpn_proposals, find_top_rrpn_proposals
from vt_modeling.roi_heads import fast_rcnn_inference_rotated
from vt_structures import Boxes, ImageList, Instances, RotatedBoxes, pairwise_iou_rotated

NUM_CLASSES = 2
H, W = 96, 128
# Two rotated rectangles (cx, cy, w, h, angle degrees counter-clockwise), one per class.
GT_BOXES = [[36.0, 40.0, 50.0, 20.0, 30.0], [88.0, 56.0, 44.0, 24.0, -45.0]]


def rotated_cfg():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.ANCHOR_GENERATOR.ANGLES = [[-60, -30, 0, 30, 60, 90]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 600
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 600
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 200
    cfg.MODEL.ROI_HEADS.NAME = "RROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0, 1.0)
    return cfg


def rotated_rect_mask(h, w, box):
    """Pixels whose center lies in the rotated rectangle (the width side points to
    (cos a, -sin a) in image coordinates)."""
    cx, cy, bw, bh, a = box
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
    u = (xs - cx) * c - (ys - cy) * s
    v = (xs - cx) * s + (ys - cy) * c
    return (u.abs() <= bw / 2) & (v.abs() <= bh / 2)


def training_input():
    """An image with the two GT_BOXES drawn in class-specific colours."""
    image = torch.zeros(3, H, W)
    for k, box in enumerate(GT_BOXES):
        mask = rotated_rect_mask(H, W, box)
        image[k][mask] = 255.0
        image[2][mask] = 255.0
    inst = Instances((H, W))
    inst.gt_boxes = RotatedBoxes(torch.tensor(GT_BOXES))
    inst.gt_classes = torch.tensor([0, 1])
    return {"image": image, "instances": inst, "height": H, "width": W}


def xyxy_to_rotated(t):
    """Axis-aligned (x1, y1, x2, y2) boxes as rotated boxes with angle 0."""
    return torch.stack(
        [
            (t[..., 0] + t[..., 2]) / 2,
            (t[..., 1] + t[..., 3]) / 2,
            t[..., 2] - t[..., 0],
            t[..., 3] - t[..., 1],
            torch.zeros_like(t[..., 0]),
        ],
        dim=-1,
    )


def random_xyxy(shape, size=100.0):
    xy = torch.rand(*shape, 2, dtype=torch.float64) * size
    wh = torch.rand(*shape, 2, dtype=torch.float64) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=-1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_rcnn(rotated_cfg())


def test_build_from_config():
    cfg = rotated_cfg()
    model = tiny_rcnn(cfg)
    rpn, roi_heads = model.proposal_generator, model.roi_heads
    assert type(rpn) is RRPN and type(roi_heads) is RROIHeads
    assert isinstance(rpn.anchor_generator, RotatedAnchorGenerator)
    assert isinstance(rpn.box2box_transform, Box2BoxTransformRotated)
    assert rpn.box2box_transform.weights == (1.0,) * 5
    # 6 angles x 3 aspect ratios per location, 5 deltas each
    assert rpn.rpn_head.anchor_deltas.out_channels == 18 * 5
    assert rpn.pre_nms_topk == {True: 600, False: 600}
    assert type(roi_heads.box_predictor) is RotatedFastRCNNOutputLayers
    assert roi_heads.box_predictor.box2box_transform.weights == (10.0, 10.0, 5.0, 5.0, 1.0)
    assert roi_heads.box_predictor.bbox_pred.out_features == NUM_CLASSES * 5
    assert roi_heads.box_pooler.level_poolers[0].__class__.__name__ == "ROIAlignRotated"
    assert not roi_heads.mask_on and not roi_heads.keypoint_on


@pytest.mark.parametrize(
    "change, error, match",
    [
        (
            lambda c: setattr(c.MODEL.RPN, "BBOX_REG_WEIGHTS", (1.0, 1.0, 1.0, 1.0)),
            ValueError,
            "MODEL.RPN.BBOX_REG_WEIGHTS",
        ),
        (
            lambda c: setattr(c.MODEL.ROI_BOX_HEAD, "BBOX_REG_WEIGHTS", (10.0, 10.0, 5.0, 5.0)),
            ValueError,
            "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS",
        ),
        (
            lambda c: setattr(c.MODEL.ROI_BOX_HEAD, "POOLER_TYPE", "ROIAlignV2"),
            ValueError,
            "POOLER_TYPE",
        ),
        (lambda c: setattr(c.MODEL, "MASK_ON", True), ValueError, "MASK_ON"),
        (lambda c: setattr(c.MODEL, "KEYPOINT_ON", True), ValueError, "KEYPOINT_ON"),
        (
            lambda c: setattr(c.MODEL.ANCHOR_GENERATOR, "NAME", "DefaultAnchorGenerator"),
            ValueError,
            "anchor_generator",
        ),
        (
            lambda c: setattr(c.MODEL.RPN, "BBOX_REG_LOSS_TYPE", "giou"),
            ValueError,
            "box_reg_loss_type",
        ),
        (
            lambda c: setattr(c.MODEL.ROI_BOX_HEAD, "BBOX_REG_LOSS_TYPE", "giou"),
            ValueError,
            "box_reg_loss_type",
        ),
    ],
)
def test_config_errors(change, error, match):
    cfg = rotated_cfg()
    change(cfg)
    with pytest.raises(error, match=match):
        tiny_rcnn(cfg)


def test_training_losses_are_finite_and_decrease():
    torch.manual_seed(0)
    model = tiny_rcnn(rotated_cfg())
    model.train()
    data = [training_input()]
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    history = []
    for _ in range(10):
        losses = model(data)
        assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
        assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
        history.append({k: v.item() for k, v in losses.items()})
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    # The ROI box loss grows at first, as the proposals improve and more of them are
    # foreground; the overfit test below shows the boxes being learnt.
    assert history[-1]["loss_rpn_cls"] < history[0]["loss_rpn_cls"]
    for key in ("loss_rpn_loc", "loss_cls"):
        assert history[-1][key] < 0.9 * history[0][key], key


def test_inference_returns_rotated_boxes(model):
    model.eval()
    model.roi_heads.box_predictor.test_score_thresh = 0.0
    image = training_input()["image"]
    with torch.no_grad():
        (plain,) = model([{"image": image}])
        (scaled,) = model([{"image": image, "height": 2 * H, "width": 2 * W}])
        proposals, _ = model.proposal_generator(
            model.preprocess_image([{"image": image}]), model.backbone(image[None])
        )
    model.roi_heads.box_predictor.test_score_thresh = 0.05
    inst = plain["instances"]
    assert len(inst) > 0
    assert isinstance(inst.pred_boxes, RotatedBoxes) and inst.pred_boxes.tensor.shape == (
        len(inst),
        5,
    )
    assert inst.scores.shape == (len(inst),) and bool((inst.scores[:-1] >= inst.scores[1:]).all())
    assert inst.pred_classes.dtype == torch.int64
    assert 0 <= int(inst.pred_classes.min()) and int(inst.pred_classes.max()) < NUM_CLASSES
    angles = inst.pred_boxes.tensor[:, 4]
    assert bool(((angles >= -180) & (angles < 180)).all())
    # At twice the resolution: the same detections, centers and sizes doubled.
    big = scaled["instances"]
    assert big.image_size == (2 * H, 2 * W)
    torch.testing.assert_close(big.scores, inst.scores)
    expected = inst.pred_boxes.tensor * torch.tensor([2.0, 2.0, 2.0, 2.0, 1.0])
    torch.testing.assert_close(big.pred_boxes.tensor, expected, rtol=1e-4, atol=1e-3)
    assert isinstance(proposals[0].proposal_boxes, RotatedBoxes)
    assert len(proposals[0]) <= 200


def test_no_detections_give_empty_rotated_fields(model):
    model.eval()
    model.roi_heads.box_predictor.test_score_thresh = 1.1
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, H, W) * 255}])
    model.roi_heads.box_predictor.test_score_thresh = 0.05
    inst = out["instances"]
    assert len(inst) == 0
    assert isinstance(inst.pred_boxes, RotatedBoxes) and inst.pred_boxes.tensor.shape == (0, 5)
    assert inst.scores.shape == (0,) and inst.pred_classes.shape == (0,)


def test_empty_ground_truth_trains(model):
    model.train()
    empty = Instances((H, W))
    empty.gt_boxes = RotatedBoxes(torch.zeros(0, 5))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    losses = model([{"image": torch.rand(3, H, W) * 255, "instances": empty}])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_rpn_loc"] == 0 and losses["loss_box_reg"] == 0
    assert losses["loss_rpn_cls"] > 0 and losses["loss_cls"] > 0
    sum(losses.values()).backward()


def test_axis_aligned_ground_truth_is_rejected(model):
    model.train()
    item = training_input()
    item["instances"].gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 40.0]] * 2))
    with pytest.raises(TypeError, match=r"gt_boxes.*RotatedBoxes"):
        model([item])
    features = model.backbone(item["image"][None])
    proposals = Instances((H, W))
    proposals.proposal_boxes = RotatedBoxes(torch.tensor([[30.0, 30.0, 20.0, 10.0, 0.0]]))
    proposals.objectness_logits = torch.zeros(1)
    images = ImageList(item["image"][None], [(H, W)])
    with pytest.raises(TypeError, match=r"gt_boxes.*RotatedBoxes.*got Boxes"):
        model.roi_heads(images, features, [proposals], [item["instances"]])
    axis_proposals = Instances((H, W))
    axis_proposals.proposal_boxes = Boxes(torch.tensor([[10.0, 10.0, 30.0, 20.0]]))
    axis_proposals.objectness_logits = torch.zeros(1)
    model.eval()
    with pytest.raises(TypeError, match=r"proposal_boxes.*RotatedBoxes"):
        model.roi_heads(images, features, [axis_proposals])


def test_find_top_rrpn_proposals_equals_rpn_at_angle_zero():
    """With angle 0, rotated top-k, clipping, size filter and per-level NMS select the
    same proposals as the axis-aligned path."""
    torch.manual_seed(0)
    sizes = [(90, 80), (70, 100)]
    xyxy = [random_xyxy((2, n)) - 10 for n in (300, 120)]
    logits = [torch.randn(2, n, dtype=torch.float64) for n in (300, 120)]
    for training in (True, False):
        args = (sizes, 0.5, 100, 150, 5.0, training)
        expected = find_top_rpn_proposals(xyxy, logits, *args)
        got = find_top_rrpn_proposals([xyxy_to_rotated(p) for p in xyxy], logits, *args)
        for e, g in zip(expected, got):
            assert isinstance(g.proposal_boxes, RotatedBoxes)
            assert 0 < len(g) <= 150
            torch.testing.assert_close(g.objectness_logits, e.objectness_logits)
            torch.testing.assert_close(
                g.proposal_boxes.tensor, xyxy_to_rotated(e.proposal_boxes.tensor)
            )


def test_fast_rcnn_inference_rotated_equals_axis_aligned_at_angle_zero():
    torch.manual_seed(0)
    shapes = [(90, 110), (100, 80)]
    for k in (1, 3):  # class-agnostic and per-class boxes
        xyxy = [random_xyxy((n, k)) - 10 for n in (200, 50)]
        scores = [torch.rand(n, 4, dtype=torch.float64).softmax(-1) for n in (200, 50)]
        expected, expected_idx = fast_rcnn_inference(
            [b.reshape(len(b), -1) for b in xyxy], scores, shapes, 0.2, 0.5, 40
        )
        got, got_idx = fast_rcnn_inference_rotated(
            [xyxy_to_rotated(b).reshape(len(b), -1) for b in xyxy], scores, shapes, 0.2, 0.5, 40
        )
        for e, g, ei, gi in zip(expected, got, expected_idx, got_idx):
            assert isinstance(g.pred_boxes, RotatedBoxes) and len(g) > 0
            torch.testing.assert_close(g.pred_boxes.tensor, xyxy_to_rotated(e.pred_boxes.tensor))
            torch.testing.assert_close(g.scores, e.scores)
            assert torch.equal(g.pred_classes, e.pred_classes) and torch.equal(gi, ei)


def rpn_pair(anchor_boundary_thresh=-1.0):
    """An RPN and an RRPN with anchors at angle 0."""
    sizes, ratios, strides = [[16], [32]], [0.5, 1.0, 2.0], [4, 8]
    common = dict(
        in_features=["p2", "p3"],
        anchor_matcher=Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True),
        batch_size_per_image=32,
        positive_fraction=0.5,
        pre_nms_topk=(200, 100),
        post_nms_topk=(50, 40),
        anchor_boundary_thresh=anchor_boundary_thresh,
    )
    rpn = RPN(
        head=StandardRPNHead(in_channels=8, num_anchors=3),
        anchor_generator=DefaultAnchorGenerator(sizes=sizes, aspect_ratios=ratios, strides=strides),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        **common,
    )
    rrpn = RRPN(
        head=StandardRPNHead(in_channels=8, num_anchors=3, box_dim=5),
        anchor_generator=RotatedAnchorGenerator(
            sizes=sizes, aspect_ratios=ratios, strides=strides, angles=[0.0]
        ),
        box2box_transform=Box2BoxTransformRotated(weights=(1.0, 1.0, 1.0, 1.0, 1.0)),
        **common,
    )
    return rpn, rrpn


@pytest.mark.parametrize("anchor_boundary_thresh", [-1.0, 0.0])
def test_rrpn_explicit_arguments_match_rpn_at_angle_zero(anchor_boundary_thresh):
    rpn, rrpn = rpn_pair(anchor_boundary_thresh)
    features = {"p2": torch.randn(2, 8, 12, 16), "p3": torch.randn(2, 8, 6, 8)}
    gt_xyxy = torch.tensor([[8.0, 6.0, 30.0, 20.0], [30.0, 20.0, 60.0, 44.0]])
    gts, rgts = [], []
    for n in range(2):
        gts.append(Instances((48, 64), gt_boxes=Boxes(gt_xyxy[: n + 1])))
        rgts.append(Instances((48, 64), gt_boxes=RotatedBoxes(xyxy_to_rotated(gt_xyxy[: n + 1]))))
    anchors = rpn.anchor_generator(list(features.values()))
    ranchors = rrpn.anchor_generator(list(features.values()))
    torch.manual_seed(1)
    labels, matched = rpn.label_and_sample_anchors(anchors, gts)
    torch.manual_seed(1)
    rlabels, rmatched = rrpn.label_and_sample_anchors(ranchors, rgts)
    for a, b, c, d in zip(labels, rlabels, matched, rmatched):
        assert torch.equal(a, b) and int((a == 1).sum()) > 0
        torch.testing.assert_close(d[a == 1], xyxy_to_rotated(c[a == 1]))
    if anchor_boundary_thresh >= 0:  # anchors crossing the image border are ignored
        outside = ~RotatedBoxes.cat(ranchors).inside_box((48, 64), anchor_boundary_thresh)
        assert bool(outside.any()) and all(bool((b[outside] == -1).all()) for b in rlabels)

    # Same objectness and equivalent deltas (no angle change): the same proposals.
    with torch.no_grad():
        rrpn.rpn_head.conv.load_state_dict(rpn.rpn_head.conv.state_dict())
        rrpn.rpn_head.objectness_logits.load_state_dict(rpn.rpn_head.objectness_logits.state_dict())
        deltas = torch.randn(3, 4, 8, 1, 1) * 0.2
        rpn.rpn_head.anchor_deltas.weight.copy_(deltas.reshape(12, 8, 1, 1))
        rdeltas = torch.cat([deltas, torch.zeros(3, 1, 8, 1, 1)], dim=1)
        rrpn.rpn_head.anchor_deltas.weight.copy_(rdeltas.reshape(15, 8, 1, 1))
        rpn.rpn_head.objectness_logits.weight.normal_()
        rrpn.rpn_head.objectness_logits.weight.copy_(rpn.rpn_head.objectness_logits.weight)
    rpn.eval()
    rrpn.eval()
    images = ImageList(torch.zeros(2, 3, 48, 64), [(48, 64), (40, 60)])
    with torch.no_grad():
        props, _ = rpn(images, features)
        rprops, _ = rrpn(images, features)
    for p, r in zip(props, rprops):
        assert len(p) == len(r) > 0
        torch.testing.assert_close(r.objectness_logits, p.objectness_logits)
        torch.testing.assert_close(
            r.proposal_boxes.tensor, xyxy_to_rotated(p.proposal_boxes.tensor), atol=1e-4, rtol=1e-5
        )

    rrpn.train()
    losses = rrpn(images, features, rgts)[1]
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_rrpn_explicit_argument_errors():
    rpn, rrpn = rpn_pair()
    kwargs = dict(
        in_features=["p2", "p3"],
        head=rrpn.rpn_head,
        anchor_generator=rrpn.anchor_generator,
        anchor_matcher=rrpn.anchor_matcher,
        box2box_transform=rrpn.box2box_transform,
        batch_size_per_image=32,
        positive_fraction=0.5,
        pre_nms_topk=(200, 100),
        post_nms_topk=(50, 40),
    )
    with pytest.raises(TypeError, match="box2box_transform"):
        RRPN(**{**kwargs, "box2box_transform": rpn.box2box_transform})
    with pytest.raises(ValueError, match="anchor_generator"):
        RRPN(**{**kwargs, "anchor_generator": rpn.anchor_generator})


def roi_heads_pair():
    """StandardROIHeads and RROIHeads with the same sampling settings."""
    common = dict(
        num_classes=NUM_CLASSES,
        batch_size_per_image=16,
        positive_fraction=0.25,
        proposal_matcher=Matcher([0.5], [0, 1]),
        box_in_features=["p2"],
    )
    head = FastRCNNConvFCHead(
        input_shape=ShapeSpec(channels=8, height=7, width=7),
        conv_dims=[],
        fc_dims=[16],
    )
    axis = StandardROIHeads(
        box_pooler=ROIPooler(7, [0.25], 0, "ROIAlignV2"),
        box_head=head,
        box_predictor=FastRCNNOutputLayers(
            16, box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)), num_classes=2
        ),
        **common,
    )
    rotated = RROIHeads(
        box_pooler=ROIPooler(7, [0.25], 0, "ROIAlignRotated"),
        box_head=head,
        box_predictor=RotatedFastRCNNOutputLayers(
            16,
            box2box_transform=Box2BoxTransformRotated((10.0, 10.0, 5.0, 5.0, 1.0)),
            num_classes=2,
        ),
        **common,
    )
    return axis, rotated


def test_rroi_heads_sampling_matches_standard_at_angle_zero():
    axis, rotated = roi_heads_pair()
    torch.manual_seed(0)
    gt_xyxy = torch.tensor([[8.0, 6.0, 30.0, 20.0], [30.0, 20.0, 60.0, 44.0]])
    near_gt = gt_xyxy.repeat(10, 1) + torch.randn(20, 4) * 2
    prop_xyxy = torch.cat([near_gt, random_xyxy((40,), 60).float()])
    proposals = Instances((48, 64), proposal_boxes=Boxes(prop_xyxy))
    proposals.objectness_logits = torch.randn(len(prop_xyxy))
    rproposals = Instances(
        (48, 64),
        proposal_boxes=RotatedBoxes(xyxy_to_rotated(prop_xyxy)),
        objectness_logits=proposals.objectness_logits,
    )
    gt = Instances((48, 64), gt_boxes=Boxes(gt_xyxy), gt_classes=torch.tensor([0, 1]))
    rgt = Instances(
        (48, 64), gt_boxes=RotatedBoxes(xyxy_to_rotated(gt_xyxy)), gt_classes=torch.tensor([0, 1])
    )
    torch.manual_seed(3)
    (expected,) = axis.label_and_sample_proposals([proposals], [gt])
    torch.manual_seed(3)
    (got,) = rotated.label_and_sample_proposals([rproposals], [rgt])
    assert torch.equal(got.gt_classes, expected.gt_classes)
    assert int((got.gt_classes < NUM_CLASSES).sum()) > 0
    torch.testing.assert_close(
        got.proposal_boxes.tensor, xyxy_to_rotated(expected.proposal_boxes.tensor)
    )
    torch.testing.assert_close(got.gt_boxes.tensor, xyxy_to_rotated(expected.gt_boxes.tensor))

    # Training through the explicit-argument heads gives the box losses.
    rotated.train()
    features = {"p2": torch.randn(1, 8, 12, 16)}
    _, losses = rotated(
        ImageList(torch.zeros(1, 3, 48, 64), [(48, 64)]), features, [rproposals], [rgt]
    )
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box_reg"] > 0


def test_rroi_heads_explicit_argument_errors():
    axis, rotated = roi_heads_pair()
    kwargs = dict(
        num_classes=NUM_CLASSES,
        batch_size_per_image=16,
        positive_fraction=0.25,
        proposal_matcher=Matcher([0.5], [0, 1]),
        box_in_features=["p2"],
        box_pooler=rotated.box_pooler,
        box_head=rotated.box_head,
        box_predictor=rotated.box_predictor,
    )
    with pytest.raises(ValueError, match="box_pooler"):
        RROIHeads(**{**kwargs, "box_pooler": axis.box_pooler})
    with pytest.raises(TypeError, match="box_predictor"):
        RROIHeads(**{**kwargs, "box_predictor": axis.box_predictor})
    with pytest.raises(ValueError, match="mask"):
        RROIHeads(
            **kwargs,
            mask_in_features=["p2"],
            mask_pooler=rotated.box_pooler,
            mask_head=torch.nn.Identity(),
        )
    with pytest.raises(ValueError, match="train_on_pred_boxes"):
        RROIHeads(**kwargs, train_on_pred_boxes=True)
    with pytest.raises(TypeError, match="box2box_transform"):
        RotatedFastRCNNOutputLayers(
            16, box2box_transform=Box2BoxTransform((1.0, 1.0, 1.0, 1.0)), num_classes=2
        )


def test_overfit_one_image_finds_the_rotated_objects():
    """The whole rotated training path is wired: a tiny rotated R-CNN learns one image
    and detects both rotated rectangles with the right class."""
    torch.manual_seed(0)
    model = tiny_rcnn(rotated_cfg())
    model.train()
    data = [training_input()]
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    history = []
    for _ in range(120):
        losses = model(data)
        total = sum(losses.values())
        history.append(total.item())
        opt.zero_grad()
        total.backward()
        opt.step()
    # the last iterations on average (one iteration's sampled loss is noisy)
    assert sum(history[-10:]) / 10 < 0.6 * history[0]
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": data[0]["image"]}])
    inst = out["instances"]
    gt = data[0]["instances"]
    for box, cls in zip(gt.gt_boxes.tensor, gt.gt_classes):
        same_class = inst[inst.pred_classes == cls]
        assert len(same_class) > 0
        assert pairwise_iou_rotated(RotatedBoxes(box[None]), same_class.pred_boxes).max() > 0.5
