import pytest
import torch
from vt_modeling_toys import tiny_rcnn, tiny_resnet_fpn

from vt_modeling import (
    CascadeROIHeads,
    DatasetMapperTTA,
    GeneralizedRCNNWithTTA,
    StandardROIHeads,
    build_roi_heads,
    get_cfg,
)
from vt_modeling.roi_heads.cascade_rcnn import _ScaleGradient
from vt_structures import Boxes, Instances, PolygonMasks
from vt_structures.transforms import HFlipTransform

NUM_CLASSES = 3


def cascade_cfg():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 200
    cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    return cfg


BOXES = [[10.0, 12, 50, 60], [60, 20, 110, 80]]


def training_input(h=96, w=128):
    image = torch.zeros(3, h, w)
    boxes = torch.tensor(BOXES)
    for x0, y0, x1, y1 in boxes.int().tolist():
        image[:, y0:y1, x0:x1] = 255.0
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(boxes)
    inst.gt_classes = torch.tensor([0, 2])
    inst.gt_masks = PolygonMasks([[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in BOXES])
    return {"image": image, "instances": inst, "height": h, "width": w}


@pytest.fixture(scope="module")
def model():
    """A tiny Cascade Mask R-CNN with random weights, in eval mode, and its config."""
    torch.manual_seed(0)
    cfg = cascade_cfg()
    return cfg, tiny_rcnn(cfg).eval()


def test_cascade_builds_from_config():
    cfg = cascade_cfg()
    model = tiny_rcnn(cfg)
    heads = model.roi_heads
    assert isinstance(heads, CascadeROIHeads)
    assert heads.num_cascade_stages == 3
    assert len(heads.box_head) == len(heads.box_predictor) == 3
    for k in range(3):
        assert heads.box_predictor[k].box2box_transform.weights == tuple(
            cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS[k]
        )
        assert heads.proposal_matchers[k].thresholds[1] == cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS[k]
    assert heads.proposal_matcher is heads.proposal_matchers[0]


def test_cascade_state_dict_names():
    names = set(tiny_rcnn(cascade_cfg()).state_dict())
    for k in range(3):
        assert f"roi_heads.box_head.{k}.fc1.weight" in names
        assert f"roi_heads.box_head.{k}.fc2.bias" in names
        assert f"roi_heads.box_predictor.{k}.cls_score.weight" in names
        assert f"roi_heads.box_predictor.{k}.bbox_pred.weight" in names
    assert "roi_heads.mask_head.predictor.weight" in names
    assert not any(n.startswith("roi_heads.box_head.fc") for n in names)
    # Class-agnostic regression: 4 deltas per region.
    model = tiny_rcnn(cascade_cfg())
    assert model.roi_heads.box_predictor[2].bbox_pred.out_features == 4


@pytest.mark.parametrize(
    "change, match",
    [
        ({"CLS_AGNOSTIC_BBOX_REG": False}, "CLS_AGNOSTIC_BBOX_REG"),
        ({"IOUS": (0.5, 0.6)}, "same length"),
        ({"IOUS": (0.4, 0.6, 0.7)}, "IOU_THRESHOLDS"),
    ],
)
def test_cascade_config_errors(change, match):
    cfg = cascade_cfg()
    for key, value in change.items():
        node = (
            cfg.MODEL.ROI_BOX_HEAD
            if key == "CLS_AGNOSTIC_BBOX_REG"
            else cfg.MODEL.ROI_BOX_CASCADE_HEAD
        )
        setattr(node, key, value)
    with pytest.raises(ValueError, match=match):
        build_roi_heads(cfg, tiny_resnet_fpn().output_shape())


def test_cascade_trains_with_stage_losses():
    torch.manual_seed(0)
    model = tiny_rcnn(cascade_cfg())
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    expected = {f"loss_{n}_stage{k}" for n in ("cls", "box_reg") for k in range(3)}
    expected |= {"loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    for _ in range(3):
        losses = model([training_input(), training_input()])
        assert set(losses) == expected
        assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    # Every stage gets gradients, as does the mask head.
    for k in range(3):
        assert model.roi_heads.box_head[k].fc1.weight.grad.abs().sum() > 0
        assert model.roi_heads.box_predictor[k].cls_score.weight.grad.abs().sum() > 0
    assert model.roi_heads.mask_head.predictor.weight.grad.abs().sum() > 0


def test_scale_gradient():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = _ScaleGradient.apply(x, 1.0 / 3)
    assert torch.equal(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 1.0 / 3))


def test_cascade_inference_fields(model):
    _, model = model
    with torch.no_grad():
        (out,) = model([{"image": training_input()["image"], "height": 192, "width": 256}])
    inst = out["instances"]
    assert inst.image_size == (192, 256)
    assert len(inst) > 0
    assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_masks"}
    assert inst.scores.shape == (len(inst),) and inst.pred_classes.dtype == torch.int64
    assert inst.pred_classes.max() < NUM_CLASSES
    assert inst.pred_masks.shape == (len(inst), 192, 256) and inst.pred_masks.dtype == torch.bool


def test_one_stage_cascade_equals_standard_roi_heads():
    """With one stage and the same weights, the cascade is the standard ROI heads
    (class-agnostic regression)."""
    torch.manual_seed(0)
    cfg = cascade_cfg()
    cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = (0.5,)
    cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = ((10.0, 10.0, 5.0, 5.0),)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    shapes = tiny_resnet_fpn().output_shape()
    cascade = build_roi_heads(cfg, shapes).eval()
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    standard = build_roi_heads(cfg, shapes).eval()
    assert isinstance(standard, StandardROIHeads)
    state = {
        k.replace("box_head.0.", "box_head.").replace("box_predictor.0.", "box_predictor."): v
        for k, v in cascade.state_dict().items()
    }
    standard.load_state_dict(state)
    features = {f"p{i}": torch.randn(1, 32, 64 // 2**i, 64 // 2**i) for i in range(2, 6)}
    proposals = Instances((64, 64))
    xy = torch.rand(30, 2) * 40
    proposals.proposal_boxes = Boxes(torch.cat([xy, xy + 8 + torch.rand(30, 2) * 16], dim=1))
    proposals.objectness_logits = torch.zeros(30)
    with torch.no_grad():
        (a,), _ = cascade(None, features, [proposals])
        (b,), _ = standard(None, features, [proposals])
    assert len(a) == len(b) > 0
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
    torch.testing.assert_close(a.scores, b.scores)
    assert torch.equal(a.pred_classes, b.pred_classes)
    torch.testing.assert_close(a.pred_masks, b.pred_masks)


def test_cascade_inference_averages_stage_scores(model):
    _, model = model
    heads = model.roi_heads
    images = model.preprocess_image([{"image": training_input()["image"]}])
    with torch.no_grad():
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        feats = [features[f] for f in heads.box_in_features]
        probs, props = [], proposals
        for k in range(3):
            predictions = heads._run_stage(feats, props, k)
            probs.append(heads.box_predictor[k].predict_probs(predictions, props)[0])
            stage_boxes = heads.box_predictor[k].predict_boxes(predictions, props)
            if k < 2:
                props = heads._create_proposals_from_boxes(stage_boxes, [props[0].image_size])
        last_boxes = Boxes(stage_boxes[0].clone())
        last_boxes.clip(props[0].image_size)
        mean = sum(probs) / 3
        old = heads.box_predictor[2].test_score_thresh
        heads.box_predictor[2].test_score_thresh = 0.0
        try:
            (inst,) = heads._forward_box(features, proposals)
        finally:
            heads.box_predictor[2].test_score_thresh = old
    assert len(inst) > 0
    assert not torch.allclose(mean, probs[2])  # the average differs from the last stage
    # Each detection is a last-stage box scored with the stage-averaged probability.
    for box, score, cls in zip(inst.pred_boxes.tensor, inst.scores, inst.pred_classes):
        region = (last_boxes.tensor - box).abs().amax(dim=1).argmin()
        torch.testing.assert_close(last_boxes.tensor[region], box)
        torch.testing.assert_close(mean[region, cls], score)


def test_dataset_mapper_tta():
    image = torch.rand(3, 60, 80) * 255
    mapper = DatasetMapperTTA(min_sizes=[30, 90], max_size=1000, flip=True)
    outs = mapper({"image": image, "height": 120, "width": 160, "file_name": "x"})
    assert len(outs) == 4
    sizes = [tuple(o["image"].shape) for o in outs]
    assert sizes == [(3, 30, 40), (3, 30, 40), (3, 90, 120), (3, 90, 120)]
    flips = [any(isinstance(t, HFlipTransform) for t in o["transforms"]) for o in outs]
    assert flips == [False, True, False, True]
    assert all(o["file_name"] == "x" and o["height"] == 120 for o in outs)
    torch.testing.assert_close(outs[1]["image"], outs[0]["image"].flip(-1))
    # The transforms map the original (120 x 160) coordinates to the augmented image.
    box = torch.tensor([[16.0, 12, 48, 60]])
    torch.testing.assert_close(outs[2]["transforms"].apply_box(box), box * 0.75)
    torch.testing.assert_close(
        outs[3]["transforms"].apply_box(box), torch.tensor([[84.0, 9, 108, 45]])
    )
    assert len(DatasetMapperTTA([30, 60, 90], 1000, False)({"image": image})) == 3
    # max_size caps the longer side.
    (capped,) = DatasetMapperTTA([60], 40, False)({"image": image})
    assert tuple(capped["image"].shape[1:]) == (30, 40)


def test_dataset_mapper_tta_from_config_and_errors():
    cfg = get_cfg()
    cfg.TEST.AUG.MIN_SIZES = (20, 40)
    cfg.TEST.AUG.FLIP = False
    mapper = DatasetMapperTTA(cfg)
    assert mapper.min_sizes == [20, 40] and mapper.max_size == 4000 and not mapper.flip
    with pytest.raises(ValueError, match="min_sizes"):
        DatasetMapperTTA([], 100, True)
    with pytest.raises(ValueError, match="image"):
        mapper({"image": torch.zeros(5, 5)})


def test_tta_fields_flip_and_two_scales(model):
    cfg, model = model
    mapper = DatasetMapperTTA(min_sizes=[64, 112], max_size=1000, flip=True)
    tta = GeneralizedRCNNWithTTA(cfg, model, tta_mapper=mapper, batch_size=3)
    with torch.no_grad():
        (out,) = tta([{"image": training_input()["image"], "height": 192, "width": 256}])
    inst = out["instances"]
    assert inst.image_size == (192, 256)
    assert len(inst) > 0
    assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_masks"}
    assert inst.pred_masks.shape == (len(inst), 192, 256) and inst.pred_masks.dtype == torch.bool
    assert (inst.scores[:-1] >= inst.scores[1:]).all()
    boxes = inst.pred_boxes.tensor
    assert (
        (boxes >= 0).all() and (boxes[:, [0, 2]] <= 256).all() and (boxes[:, [1, 3]] <= 192).all()
    )
    # The heads are restored after the box-only pass.
    assert model.roi_heads.mask_on


def test_tta_with_one_identity_augmentation_is_the_plain_model(model):
    """Merging one augmentation by NMS keeps the (already NMS-ed) detections, and the
    masks are the model's masks on those boxes."""
    cfg, model = model
    tta = GeneralizedRCNNWithTTA(cfg, model, DatasetMapperTTA([96], 1000, False))
    inputs = [{"image": training_input()["image"], "height": 192, "width": 256}]
    with torch.no_grad():
        (out,) = tta(inputs)
        (plain,) = model(inputs)
    a, b = out["instances"], plain["instances"]
    assert len(a) == len(b) > 0
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
    torch.testing.assert_close(a.scores, b.scores)
    assert torch.equal(a.pred_classes, b.pred_classes)
    assert torch.equal(a.pred_masks, b.pred_masks)


def test_tta_of_a_flipped_augmentation_is_the_mirrored_plain_model(model):
    """With the flipped image as the only augmentation, TTA is the plain model run on the
    flipped image with its boxes and masks mirrored back."""
    cfg, model = model
    flip_only = DatasetMapperTTA([96], 1000, True)

    def mapper(d):
        return flip_only(d)[1:]

    tta = GeneralizedRCNNWithTTA(cfg, model, tta_mapper=mapper)
    image = training_input()["image"]
    with torch.no_grad():
        (out,) = tta([{"image": image}])
        (plain,) = model([{"image": image.flip(-1)}])
    a, b = out["instances"], plain["instances"]
    assert len(a) == len(b) > 0
    mirrored = b.pred_boxes.tensor[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1, -1, 1])
    mirrored[:, [0, 2]] += 128
    torch.testing.assert_close(a.pred_boxes.tensor, mirrored)
    torch.testing.assert_close(a.scores, b.scores)
    assert torch.equal(a.pred_classes, b.pred_classes)
    assert torch.equal(a.pred_masks, b.pred_masks.flip(-1))


def test_tta_of_a_flipped_image_is_mirrored(model):
    cfg, model = model
    cfg = cfg.clone()
    cfg.TEST.AUG.MIN_SIZES = (96,)
    cfg.TEST.AUG.FLIP = True
    tta = GeneralizedRCNNWithTTA(cfg, model)
    image = training_input()["image"]
    with torch.no_grad():
        a, b = tta([{"image": image}, {"image": image.flip(-1)}])
    a, b = a["instances"], b["instances"]
    assert a.image_size == b.image_size == (96, 128)
    assert len(a) == len(b) > 0
    mirrored = b.pred_boxes.tensor[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1, -1, 1])
    mirrored[:, [0, 2]] += 128
    order_a, order_b = a.scores.argsort(), b.scores.argsort()
    torch.testing.assert_close(a.scores[order_a], b.scores[order_b], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        a.pred_boxes.tensor[order_a], mirrored[order_b], atol=1e-2, rtol=1e-4
    )
    assert torch.equal(a.pred_classes[order_a], b.pred_classes[order_b])
    assert (a.pred_masks[order_a] != b.pred_masks[order_b].flip(-1)).float().mean() < 0.01


def test_tta_errors(model):
    cfg, model = model
    with pytest.raises(TypeError, match="GeneralizedRCNN"):
        GeneralizedRCNNWithTTA(cfg, torch.nn.Linear(1, 1))
    bad = cfg.clone()
    bad.MODEL.LOAD_PROPOSALS = True
    with pytest.raises(ValueError, match="LOAD_PROPOSALS"):
        GeneralizedRCNNWithTTA(bad, model)
    with pytest.raises(ValueError, match="batch_size"):
        GeneralizedRCNNWithTTA(cfg, model, batch_size=0)


def test_tta_without_detections(model):
    cfg, model = model
    predictor = model.roi_heads.box_predictor[2]
    old, predictor.test_score_thresh = predictor.test_score_thresh, 1.1
    try:
        tta = GeneralizedRCNNWithTTA(cfg, model, DatasetMapperTTA([64, 96], 1000, True))
        with torch.no_grad():
            (out,) = tta([{"image": training_input()["image"]}])
    finally:
        predictor.test_score_thresh = old
    inst = out["instances"]
    assert len(inst) == 0 and inst.image_size == (96, 128)
    assert inst.pred_masks.shape == (0, 96, 128)


# -- keypoints -----------------------------------------------------------------------------

NUM_KEYPOINTS = 5
# keypoint 0 is central, 1 <-> 2 and 3 <-> 4 are left/right pairs
KEYPOINT_FLIP_INDICES = [0, 2, 1, 4, 3]


@pytest.fixture(scope="module")
def keypoint_model():
    """A tiny Keypoint R-CNN (5 keypoints) with random weights, in eval mode, and its
    config."""
    torch.manual_seed(0)
    cfg = cascade_cfg()
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.KEYPOINT_ON = True
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = NUM_KEYPOINTS
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (32, 32)
    cfg.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION = 7
    cfg.TEST.DETECTIONS_PER_IMAGE = 10
    model = tiny_rcnn(cfg).eval()
    assert model.roi_heads.keypoint_on
    return cfg, model


def keypoint_image():
    image = training_input()["image"]
    # Break the left/right symmetry of the objects so that mirrored images differ.
    image[:, 20:40, 15:25] = 90.0
    return image


def test_tta_keypoints_with_one_identity_augmentation_are_the_plain_model(keypoint_model):
    cfg, model = keypoint_model
    tta = GeneralizedRCNNWithTTA(cfg, model, DatasetMapperTTA([96], 1000, False))
    inputs = [{"image": keypoint_image()}]
    with torch.no_grad():
        (out,) = tta(inputs)
        (plain,) = model(inputs)
    a, b = out["instances"], plain["instances"]
    assert len(a) == len(b) > 0
    assert (
        set(a.get_fields())
        == set(b.get_fields())
        == {
            "pred_boxes",
            "scores",
            "pred_classes",
            "pred_keypoints",
            "pred_keypoint_heatmaps",
        }
    )
    assert a.pred_keypoints.shape == (len(a), NUM_KEYPOINTS, 3)
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
    torch.testing.assert_close(a.pred_keypoint_heatmaps, b.pred_keypoint_heatmaps)
    torch.testing.assert_close(a.pred_keypoints, b.pred_keypoints)


def test_tta_keypoints_of_a_flipped_augmentation_are_mirrored_with_left_and_right_swapped(
    keypoint_model,
):
    """With the flipped image as the only augmentation, the keypoints are those of the
    plain model on the flipped image, mirrored back (x -> W - x) with each keypoint
    taking its mirror's place."""
    cfg, model = keypoint_model
    flip_only = DatasetMapperTTA([96], 1000, True)
    tta = GeneralizedRCNNWithTTA(
        cfg,
        model,
        tta_mapper=lambda d: flip_only(d)[1:],
        keypoint_flip_indices=KEYPOINT_FLIP_INDICES,
    )
    image = keypoint_image()
    with torch.no_grad():
        (out,) = tta([{"image": image}])
        (plain,) = model([{"image": image.flip(-1)}])
    a, b = out["instances"], plain["instances"]
    assert len(a) == len(b) > 0
    expected = b.pred_keypoints[:, KEYPOINT_FLIP_INDICES].clone()
    expected[..., 0] = 128 - expected[..., 0]
    torch.testing.assert_close(a.pred_keypoints, expected)
    torch.testing.assert_close(
        a.pred_keypoint_heatmaps, b.pred_keypoint_heatmaps.flip(-1)[:, KEYPOINT_FLIP_INDICES]
    )
    # The swap matters: without it the keypoints would differ.
    unswapped = b.pred_keypoints.clone()
    unswapped[..., 0] = 128 - unswapped[..., 0]
    assert not torch.allclose(a.pred_keypoints, unswapped)


def test_tta_keypoints_average_heatmaps_of_flip_and_two_scales(keypoint_model):
    cfg, model = keypoint_model
    mapper = DatasetMapperTTA(min_sizes=[64, 112], max_size=1000, flip=True)
    # One image per batch: padding in a batch changes the features, so the reference
    # below runs one image at a time too.
    tta = GeneralizedRCNNWithTTA(
        cfg, model, mapper, batch_size=1, keypoint_flip_indices=KEYPOINT_FLIP_INDICES
    )
    image = keypoint_image()
    with torch.no_grad():
        (out,) = tta([{"image": image, "height": 192, "width": 256}])
    inst = out["instances"]
    assert inst.image_size == (192, 256) and len(inst) > 0
    assert inst.pred_keypoints.shape == (len(inst), NUM_KEYPOINTS, 3)
    # The merged heatmaps are the mean of the heatmaps predicted on the merged boxes in
    # each augmentation, flipped back with left and right swapped.
    augmented = [dict(d) for d in mapper({"image": image, "height": 192, "width": 256})]
    expected = []
    for d in augmented:
        tfm = d.pop("transforms")
        given = Instances(tuple(d["image"].shape[1:]))
        given.pred_boxes = Boxes(tfm.apply_box(inst.pred_boxes.tensor))
        given.pred_classes = inst.pred_classes
        with torch.no_grad():
            (res,) = model.inference([d], [given], do_postprocess=False)
        maps = res.pred_keypoint_heatmaps
        if tfm.reflections % 2:
            maps = maps.flip(-1)[:, KEYPOINT_FLIP_INDICES]
        expected.append(maps)
    mean = torch.stack(expected).mean(0)
    torch.testing.assert_close(inst.pred_keypoint_heatmaps, mean)
    assert not torch.allclose(mean, expected[0])  # the augmentations do differ
    # Keypoints lie in their boxes, in the original (192 x 256) image.
    boxes = inst.pred_boxes.tensor
    xy = inst.pred_keypoints[..., :2]
    assert (xy >= boxes[:, None, :2] - 1e-3).all() and (xy <= boxes[:, None, 2:] + 1e-3).all()
    assert model.roi_heads.keypoint_on


def test_tta_keypoint_flip_indices_errors(keypoint_model):
    cfg, model = keypoint_model
    flip = DatasetMapperTTA([96], 1000, True)
    tta = GeneralizedRCNNWithTTA(cfg, model, tta_mapper=flip)
    with pytest.raises(ValueError, match="keypoint_flip_indices"):
        tta([{"image": keypoint_image()}])
    # Without flips none are needed.
    (out,) = GeneralizedRCNNWithTTA(cfg, model, DatasetMapperTTA([96], 1000, False))(
        [{"image": keypoint_image()}]
    )
    assert out["instances"].has("pred_keypoints")
    for bad in ([0, 1, 2, 3], [0, 1, 1, 3, 4]):
        with pytest.raises(ValueError, match="keypoint_flip_indices"):
            GeneralizedRCNNWithTTA(cfg, model, flip, keypoint_flip_indices=bad)


def test_tta_keypoints_without_detections(keypoint_model):
    cfg, model = keypoint_model
    predictor = model.roi_heads.box_predictor
    old, predictor.test_score_thresh = predictor.test_score_thresh, 1.1
    try:
        tta = GeneralizedRCNNWithTTA(
            cfg,
            model,
            DatasetMapperTTA([64, 96], 1000, True),
            keypoint_flip_indices=KEYPOINT_FLIP_INDICES,
        )
        with torch.no_grad():
            (out,) = tta([{"image": keypoint_image()}])
    finally:
        predictor.test_score_thresh = old
    inst = out["instances"]
    assert len(inst) == 0 and inst.image_size == (96, 128)
    assert inst.pred_keypoints.shape == (0, NUM_KEYPOINTS, 3)
