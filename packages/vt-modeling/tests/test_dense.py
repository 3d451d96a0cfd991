import math

import pytest
import torch
from vt_modeling_toys import tiny_resnet_fpn

from vt_modeling import (
    FCOS,
    META_ARCH_REGISTRY,
    Box2BoxTransform,
    DefaultAnchorGenerator,
    DenseDetector,
    FCOSHead,
    Matcher,
    RetinaNet,
    RetinaNetHead,
    build_model,
    get_cfg,
)
from vt_structures import Boxes, Instances, pairwise_iou

IMAGE_SIZE = (96, 128)
GT_BOXES = torch.tensor([[10.0, 12, 50, 60], [60, 20, 110, 80]])
GT_CLASSES = torch.tensor([0, 2])


def dense_cfg(arch, depth=18, num_classes=3):
    """A small config for the RetinaNet/FCOS meta-architectures (ResNet-FPN, P3-P7)."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = arch
    cfg.MODEL.BACKBONE.NAME = "build_retinanet_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.RETINANET.NUM_CLASSES = num_classes
    cfg.MODEL.FCOS.NUM_CLASSES = num_classes
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [
        [x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]
    ]
    return cfg


def small_cfg(arch):
    cfg = dense_cfg(arch)
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    # Random weights: GroupNorm and scaled pixels keep the predictions in range.
    cfg.MODEL.RESNETS.NORM = "GN"
    cfg.MODEL.PIXEL_STD = [57.0, 57.0, 57.0]
    cfg.MODEL.RETINANET.NUM_CONVS = 1
    cfg.MODEL.FCOS.NUM_CONVS = 1
    cfg.MODEL.FCOS.NORM = ""  # GroupNorm needs more than the 1x1 P7 of these small images
    return cfg


def training_input(image_size=IMAGE_SIZE):
    h, w = image_size
    image = torch.zeros(3, h, w)
    for (x0, y0, x1, y1), cls in zip(GT_BOXES.int().tolist(), GT_CLASSES.tolist()):
        image[cls, y0:y1, x0:x1] = 255.0  # the class is the colour
    inst = Instances(image_size)
    inst.gt_boxes = Boxes(GT_BOXES.clone())
    inst.gt_classes = GT_CLASSES.clone()
    return {"image": image, "instances": inst, "height": h, "width": w}


def empty_input():
    empty = Instances(IMAGE_SIZE)
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    return {"image": torch.rand(3, *IMAGE_SIZE) * 255, "instances": empty}


FEATURES = ["p3", "p4", "p5", "p6", "p7"]


def tiny_retinanet(num_classes=3, **kwargs):
    backbone = tiny_resnet_fpn(p3_to_p7=True)
    shapes = [backbone.output_shape()[f] for f in FEATURES]
    anchor_generator = DefaultAnchorGenerator(
        sizes=[[16], [32], [64], [128], [256]],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[s.stride for s in shapes],
    )
    head = RetinaNetHead(
        input_shape=shapes, num_classes=num_classes, num_anchors=3, conv_dims=[32, 32]
    )
    return RetinaNet(
        backbone=backbone,
        head=head,
        head_in_features=FEATURES,
        anchor_generator=anchor_generator,
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        anchor_matcher=Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True),
        num_classes=num_classes,
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
        **kwargs,
    )


def tiny_fcos(num_classes=3, **kwargs):
    backbone = tiny_resnet_fpn(p3_to_p7=True)
    shapes = [backbone.output_shape()[f] for f in FEATURES]
    head = FCOSHead(input_shape=shapes, num_classes=num_classes, conv_dims=[32, 32], norm="")
    return FCOS(
        backbone=backbone,
        head=head,
        num_classes=num_classes,
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
        **kwargs,
    )


@pytest.fixture(scope="module", params=["RetinaNet", "FCOS"])
def model(request):
    torch.manual_seed(0)
    return build_model(small_cfg(request.param))


def expected_losses(model):
    if isinstance(model, FCOS):
        return {"loss_cls", "loss_box_reg", "loss_centerness"}
    return {"loss_cls", "loss_box_reg"}


def test_registered_and_built_from_config(model):
    assert META_ARCH_REGISTRY.get(type(model).__name__) is type(model)
    assert isinstance(model, DenseDetector)
    assert model.head_in_features == FEATURES
    assert model.num_classes == 3
    if isinstance(model, RetinaNet):
        assert model.test_score_thresh == 0.05 and model.test_nms_thresh == 0.5
        assert model.head.cls_score.out_channels == 9 * 3
    else:
        assert model.test_score_thresh == 0.2 and model.test_nms_thresh == 0.6
        assert model.center_sampling_radius == 1.5
        assert model.head.cls_score.out_channels == 3
    assert model.max_detections_per_image == 100


def test_training_returns_the_losses_with_gradients(model):
    model.train()
    model.zero_grad()
    losses = model([training_input(), training_input()])
    assert set(losses) == expected_losses(model)
    assert all(v.dim() == 0 and torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name in ("cls_score", "bbox_pred", "cls_subnet", "bbox_subnet"):
        grads = [p.grad for p in getattr(model.head, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_empty_ground_truth_trains(model):
    model.train()
    losses = model([empty_input()])
    assert set(losses) == expected_losses(model)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box_reg"] == 0 and losses["loss_cls"] > 0
    sum(losses.values()).backward()


def test_inference_at_the_requested_output_size(model):
    model.eval()
    model.test_score_thresh = 0.0
    inputs = [
        {"image": torch.rand(3, *IMAGE_SIZE) * 255, "height": 192, "width": 256},
        {"image": torch.rand(3, 64, 80) * 255},
    ]
    with torch.no_grad():
        outputs = model(inputs)
    model.test_score_thresh = 0.05 if isinstance(model, RetinaNet) else 0.2
    assert len(outputs) == 2
    for out, size in zip(outputs, [(192, 256), (64, 80)]):
        inst = out["instances"]
        assert inst.image_size == size
        assert 0 < len(inst) <= 100
        boxes = inst.pred_boxes.tensor
        assert boxes.shape == (len(inst), 4)
        assert (boxes[:, 0::2] <= size[1]).all() and (boxes[:, 1::2] <= size[0]).all()
        assert inst.scores.shape == (len(inst),)
        assert (inst.scores[:-1] >= inst.scores[1:]).all()
        assert inst.pred_classes.dtype == torch.int64 and inst.pred_classes.max() < 3


def test_inference_thresholds_and_limits(model):
    model.eval()
    image = [{"image": torch.rand(3, *IMAGE_SIZE) * 255}]
    saved = (model.test_score_thresh, model.max_detections_per_image)
    bias = model.head.bbox_pred.bias.detach().clone()
    try:
        # boxes of a few strides: none is empty at the output resolution
        torch.nn.init.constant_(model.head.bbox_pred.bias, 1.0)
        model.test_score_thresh = 1.1  # nothing passes
        with torch.no_grad():
            (out,) = model(image)
        assert len(out["instances"]) == 0
        assert out["instances"].pred_boxes.tensor.shape == (0, 4)
        model.test_score_thresh, model.max_detections_per_image = 0.0, 7
        with torch.no_grad():
            (out,) = model(image)
        assert len(out["instances"]) == 7
    finally:
        model.test_score_thresh, model.max_detections_per_image = saved
        with torch.no_grad():
            model.head.bbox_pred.bias.copy_(bias)


def test_training_needs_instances(model):
    model.train()
    with pytest.raises(ValueError, match="instances"):
        model([{"image": torch.rand(3, *IMAGE_SIZE)}])


@pytest.mark.parametrize("arch", ["RetinaNet", "FCOS"])
def test_explicit_arguments_build_the_same_model(arch):
    torch.manual_seed(0)
    cfg_model = build_model(small_cfg(arch))
    cls = {"RetinaNet": RetinaNet, "FCOS": FCOS}[arch]
    kwargs = cls.from_config(small_cfg(arch))
    model = cls(**kwargs)
    assert model.state_dict().keys() == cfg_model.state_dict().keys()
    assert cls(small_cfg(arch), test_score_thresh=0.3).test_score_thresh == 0.3


def test_tiny_models_train_from_explicit_modules():
    torch.manual_seed(0)
    for model in (tiny_retinanet(box_reg_loss_type="giou"), tiny_fcos()):
        model.train()
        losses = model([training_input()])
        assert set(losses) == expected_losses(model)
        assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("loss_type", ["smooth_l1", "giou", "diou", "ciou"])
def test_retinanet_box_loss_types(loss_type):
    torch.manual_seed(0)
    model = tiny_retinanet(box_reg_loss_type=loss_type, smooth_l1_beta=0.1)
    model.train()
    losses = model([training_input()])
    assert torch.isfinite(losses["loss_box_reg"]) and losses["loss_box_reg"] > 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        tiny_retinanet(box_reg_loss_type="l2")
    with pytest.raises(ValueError, match="head_in_features"):
        FCOS(
            backbone=tiny_resnet_fpn(p3_to_p7=True),
            head=torch.nn.Identity(),
            head_in_features=["p9"],
            num_classes=3,
            pixel_mean=[0.0] * 3,
            pixel_std=[1.0] * 3,
        )


def test_retinanet_state_dict_matches_detectron2():
    """detectron2's R50-FPN RetinaNet (COCO) keys and shapes of the head."""
    cfg = dense_cfg("RetinaNet", depth=50, num_classes=80)
    model = build_model(cfg)
    head = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("head.")}
    expected = {}
    for subnet in ("cls_subnet", "bbox_subnet"):
        for i in (0, 2, 4, 6):
            expected[f"head.{subnet}.{i}.weight"] = (256, 256, 3, 3)
            expected[f"head.{subnet}.{i}.bias"] = (256,)
    expected["head.cls_score.weight"] = (9 * 80, 256, 3, 3)
    expected["head.cls_score.bias"] = (9 * 80,)
    expected["head.bbox_pred.weight"] = (9 * 4, 256, 3, 3)
    expected["head.bbox_pred.bias"] = (9 * 4,)
    assert head == expected
    state = model.state_dict()
    assert state["backbone.fpn_lateral3.weight"].shape == (256, 512, 1, 1)
    assert state["backbone.top_block.p6.weight"].shape == (256, 2048, 3, 3)
    assert "pixel_mean" not in state
    # the prior probability initialises the classifier bias
    bias = model.head.cls_score.bias
    assert torch.allclose(bias, torch.full_like(bias, -math.log((1 - 0.01) / 0.01)))


def test_fcos_state_dict_names_and_norm():
    torch.manual_seed(0)
    model = build_model(dense_cfg("FCOS"))  # FCOS.NORM is "GN"
    keys = {k for k in model.state_dict() if k.startswith("head.")}
    assert {"head.ctrness.weight", "head.ctrness.bias", "head.cls_score.weight"} <= keys
    assert "head.cls_subnet.1.weight" in keys  # GroupNorm after the first conv
    assert model.head.ctrness.out_channels == 1 and model.head.bbox_pred.out_channels == 4


def test_retinanet_head_batch_norm_per_level():
    shapes = tiny_resnet_fpn(p3_to_p7=True).output_shape()
    head = RetinaNetHead(
        input_shape=[shapes[f] for f in FEATURES[:2]],
        num_classes=2,
        num_anchors=1,
        conv_dims=[32],
        norm="BN",
    )
    head.train()
    features = [torch.randn(2, 32, 8, 8), torch.randn(2, 32, 4, 4) * 5 + 3]
    head(features)
    bn = head.cls_subnet[1]
    assert len(bn) == 2
    # each level keeps its own statistics, the affine transform is shared
    assert not torch.allclose(bn[0].running_mean, bn[1].running_mean)
    assert bn.weight.shape == (32,)


def anchors_of(boxes):
    return [Boxes(torch.tensor(boxes, dtype=torch.float32))]


def test_compute_ctrness_targets_hand_made():
    model = tiny_fcos()
    anchors = anchors_of([[0, 0, 8, 8], [8, 0, 16, 8]])
    gt = [
        torch.tensor([[0.0, 0, 8, 8], [0, 0, 20, 16]]),
        torch.tensor([[2.0, 0, 14, 8], [10, 2, 14, 6]]),
    ]
    targets = model.compute_ctrness_targets(anchors, gt)
    # anchor centres (4, 4) and (12, 4); (l, t, r, b) distances to the matched box
    expected = torch.tensor(
        [
            [1.0, math.sqrt((8 / 12) * (4 / 12))],  # (4,4,4,4), (12,4,8,12)
            [math.sqrt(2 / 10), 1.0],  # (2,4,10,4), (2,2,2,2)
        ]
    )
    torch.testing.assert_close(targets, expected)
    # the targets do not depend on the normalisation by the anchor size
    anchors2 = anchors_of([[2, 2, 6, 6], [10, 2, 14, 6]])
    torch.testing.assert_close(model.compute_ctrness_targets(anchors2, gt), expected)
    assert model.compute_ctrness_targets(anchors, []).shape == (0, 2)


def test_fcos_label_anchors_rules():
    model = tiny_fcos(center_sampling_radius=1.0)
    stride = 8
    # one level of 8x8 anchor points of stride 8 (the first level has no lower bound)
    cells = [
        [x * stride, y * stride, (x + 1) * stride, (y + 1) * stride]
        for y in range(8)
        for x in range(8)
    ]
    anchors = anchors_of(cells)
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(torch.tensor([[4.0, 4, 60, 60], [24, 24, 40, 40]]))
    inst.gt_classes = torch.tensor([1, 2])
    (labels,), (matched,) = model.label_anchors(anchors, [inst])
    centers = Boxes(torch.tensor(cells, dtype=torch.float32)).get_centers()
    # positives lie within radius * stride of a box centre (32, 32) and inside the box
    pos = labels != model.num_classes
    assert (labels >= 0).all()  # no ignored anchors
    assert ((centers[pos] - 32).abs().max(dim=1).values < stride).all()
    assert pos.sum() == 4
    # an anchor inside both boxes goes to the smaller one
    assert (labels[pos] == 2).all()
    torch.testing.assert_close(matched[pos], inst.gt_boxes.tensor[1].expand(4, 4))


def test_retinanet_label_anchors_matcher():
    model = tiny_retinanet()
    anchors = anchors_of([[0, 0, 10, 10], [0, 0, 10, 14], [0, 0, 10, 30], [50, 50, 60, 60]])
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(torch.tensor([[0.0, 0, 10, 10], [40, 40, 70, 70]]))
    inst.gt_classes = torch.tensor([1, 0])
    (labels,), (matched,) = model.label_anchors(anchors, [inst])
    # IoU 1 -> positive; 10/14 (>= 0.5) -> positive; 1/3 (< 0.4) -> background;
    # IoU 1/9 is the best match of the second box -> positive (low-quality match)
    assert labels.tolist() == [1, 1, 3, 0]
    torch.testing.assert_close(matched[3], inst.gt_boxes.tensor[1])
    # IoU 100/220 in [0.4, 0.5) and not the best match of the box -> ignored
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(torch.tensor([[0.0, 0, 10, 22]]))
    inst.gt_classes = torch.tensor([2])
    (labels,), _ = model.label_anchors(anchors_of([[0, 0, 10, 10], [0, 0, 10, 20]]), [inst])
    assert labels.tolist() == [-1, 2]


def overfit(model, iterations, lr):
    model.train()
    data = [training_input(), training_input()]
    data[1]["image"] = data[1]["image"].flip(-1)
    data[1]["instances"].gt_boxes.tensor[:, [0, 2]] = IMAGE_SIZE[1] - GT_BOXES[:, [2, 0]]
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(iterations):
        losses = model(data)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        outputs = model([{"image": d["image"]} for d in data])
    for out, d in zip(outputs, data):
        inst, gt = out["instances"], d["instances"]
        for box, cls in zip(gt.gt_boxes, gt.gt_classes):
            same_class = inst[inst.pred_classes == cls]
            assert len(same_class) > 0
            assert pairwise_iou(Boxes(box[None]), same_class.pred_boxes).max() > 0.7
            # the best detection of the class is this box, not a stray one
            best = same_class.pred_boxes[int(same_class.scores.argmax())]
            assert pairwise_iou(Boxes(box[None]), best).item() > 0.7


def test_retinanet_overfits_two_images():
    torch.manual_seed(0)
    overfit(tiny_retinanet(), 150, lr=0.01)


def test_fcos_overfits_two_images():
    torch.manual_seed(0)
    model = tiny_fcos()
    # Box2BoxTransformLinear clamps negative distances to 0, where a point box has no
    # GIoU gradient: start from boxes of one stride on each side, as a short schedule
    # cannot wait for the random initialisation to find them.
    torch.nn.init.constant_(model.head.bbox_pred.bias, 1.0)
    overfit(model, 150, lr=0.005)


def test_retinanet_losses_against_torchvision_and_normalizer_ema():
    import torch.nn.functional as F
    from torchvision.ops import sigmoid_focal_loss as tv_focal_loss

    torch.manual_seed(0)
    model = tiny_retinanet(num_classes=3)
    anchors = anchors_of([[0, 0, 10, 10], [0, 0, 10, 14], [0, 0, 10, 30], [50, 50, 60, 60]])
    # positive (class 1), ignored, background, positive (class 0)
    gt_labels = [torch.tensor([1, -1, 3, 0])]
    gt_boxes = [torch.tensor([[1.0, 0, 11, 12], [0, 0, 1, 1], [0, 0, 1, 1], [48, 50, 62, 61]])]
    logits = [torch.randn(1, 4, 3)]
    deltas = [torch.randn(1, 4, 4)]
    losses = model.losses(anchors, logits, gt_labels, deltas, gt_boxes)
    normalizer = 0.9 * 100 + 0.1 * 2  # EMA of the number of positives, from 100
    valid, pos = [0, 2, 3], [0, 3]
    target = F.one_hot(torch.tensor([1, 3, 0]), 4)[:, :3].float()
    expected_cls = tv_focal_loss(logits[0][0, valid], target, 0.25, 2.0, reduction="sum")
    gt_deltas = model.box2box_transform.get_deltas(anchors[0].tensor[pos], gt_boxes[0][pos])
    expected_box = F.l1_loss(deltas[0][0, pos], gt_deltas, reduction="sum")  # beta 0
    torch.testing.assert_close(losses["loss_cls"], expected_cls / normalizer)
    torch.testing.assert_close(losses["loss_box_reg"], expected_box / normalizer)
    losses = model.losses(anchors, logits, gt_labels, deltas, gt_boxes)
    normalizer = 0.9 * normalizer + 0.1 * 2
    torch.testing.assert_close(losses["loss_cls"], expected_cls / normalizer)


def test_fcos_losses_against_torchvision():
    import torch.nn.functional as F
    from torchvision.ops import generalized_box_iou_loss
    from torchvision.ops import sigmoid_focal_loss as tv_focal_loss

    torch.manual_seed(0)
    model = tiny_fcos(num_classes=3)
    anchors = anchors_of([[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16]])
    gt_labels = [torch.tensor([2, 3, 0])]  # no ignored anchors in FCOS
    gt_boxes = [torch.tensor([[1.0, 2, 9, 7], [0, 0, 1, 1], [-2, 9, 12, 13]])]
    logits, deltas = [torch.randn(1, 3, 3)], [torch.randn(1, 3, 4).abs()]
    ctr = [torch.randn(1, 3, 1)]
    losses = model.losses(anchors, logits, gt_labels, deltas, gt_boxes, ctr)
    normalizer = 0.9 * 300 + 0.1 * 2
    target = F.one_hot(gt_labels[0], 4)[:, :3].float()
    expected_cls = tv_focal_loss(logits[0][0], target, 0.25, 2.0, reduction="sum")
    pos = [0, 2]
    centers = torch.tensor([[4.0, 4], [4, 12]])
    stride = 8.0
    d = deltas[0][0, pos] * stride  # (l, t, r, b) in pixels
    pred = torch.cat([centers - d[:, :2], centers + d[:, 2:]], dim=1)
    expected_box = generalized_box_iou_loss(pred, gt_boxes[0][pos], reduction="sum")
    g = gt_boxes[0][pos]
    lr = torch.stack([centers[:, 0] - g[:, 0], g[:, 2] - centers[:, 0]], dim=1)
    tb = torch.stack([centers[:, 1] - g[:, 1], g[:, 3] - centers[:, 1]], dim=1)
    ctr_target = torch.sqrt(
        lr.min(1).values / lr.max(1).values * tb.min(1).values / tb.max(1).values
    )
    expected_ctr = F.binary_cross_entropy_with_logits(
        ctr[0][0, pos, 0], ctr_target, reduction="sum"
    )
    torch.testing.assert_close(losses["loss_cls"], expected_cls / normalizer)
    torch.testing.assert_close(losses["loss_box_reg"], expected_box / normalizer)
    torch.testing.assert_close(losses["loss_centerness"], expected_ctr / normalizer)


def test_fcos_scores_are_the_geometric_mean_of_class_and_centerness():
    torch.manual_seed(0)
    model = tiny_fcos(num_classes=2, test_score_thresh=0.0, test_nms_thresh=1.0)
    model.eval()
    images = model.preprocess_image([{"image": torch.rand(3, 64, 64) * 255}])
    features = [torch.zeros(1, 32, 1, 1)]
    logits = [torch.tensor([[[[2.0]], [[-1.0]]]])]  # (1, K=2, 1, 1)
    box = [torch.ones(1, 4, 1, 1)]
    ctrness = [torch.tensor([[[[0.5]]]])]
    anchor_generator = model.anchor_generator
    model.anchor_generator = DefaultAnchorGenerator(sizes=[[8]], aspect_ratios=[1.0], strides=[8])
    try:
        (inst,) = model.forward_inference(images, features, [logits, box, ctrness])
    finally:
        model.anchor_generator = anchor_generator
    expected = torch.sqrt(
        torch.sigmoid(torch.tensor([2.0, -1.0])) * torch.sigmoid(torch.tensor(0.5))
    )
    torch.testing.assert_close(inst.scores, expected)
    assert inst.pred_classes.tolist() == [0, 1]
    # one anchor of size 8 centred at (4, 4), one stride on each side
    torch.testing.assert_close(inst.pred_boxes.tensor, torch.tensor([[-4.0, -4, 12, 12]] * 2))
