import pytest
import torch
from vt_modeling_toys import tiny_rcnn

from vt_modeling import (
    GeneralizedRCNN,
    build_model,
    get_cfg,
)
from vt_structures import BitMasks, Boxes, Instances, Keypoints, PolygonMasks, pairwise_iou


def mask_rcnn_cfg(depth=50, num_classes=3):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 2000
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 4
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    return cfg


def square_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def training_input(image_size=(96, 128), with_keypoints=False):
    h, w = image_size
    image = torch.zeros(3, h, w)
    boxes = torch.tensor([[10.0, 12, 50, 60], [60, 20, 110, 80]])
    for x0, y0, x1, y1 in boxes.int().tolist():
        image[:, y0:y1, x0:x1] = 255.0
    inst = Instances(image_size)
    inst.gt_boxes = Boxes(boxes)
    inst.gt_classes = torch.tensor([0, 2])
    inst.gt_masks = PolygonMasks([square_polygon(*b) for b in boxes.tolist()])
    if with_keypoints:
        kp = torch.zeros(2, 17, 3)
        kp[:, :, 0] = (boxes[:, 0:1] + boxes[:, 2:3]) / 2
        kp[:, :, 1] = (boxes[:, 1:2] + boxes[:, 3:4]) / 2
        kp[:, :, 2] = 2
        inst.gt_keypoints = Keypoints(kp)
    return {"image": image, "instances": inst, "height": h, "width": w}


@pytest.fixture(scope="module")
def mask_rcnn():
    torch.manual_seed(0)
    cfg = mask_rcnn_cfg()
    # Random weights: GroupNorm keeps activations (and so the predictions) in range.
    cfg.MODEL.RESNETS.NORM = "GN"
    return build_model(cfg)


def test_mask_rcnn_training_returns_the_losses(mask_rcnn):
    mask_rcnn.train()
    losses = mask_rcnn([training_input(), training_input()])
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert mask_rcnn.roi_heads.mask_head.predictor.weight.grad is not None


def test_mask_rcnn_inference_fields_at_output_resolution(mask_rcnn):
    mask_rcnn.eval()
    mask_rcnn.roi_heads.box_predictor.test_score_thresh = 0.0
    inputs = [{"image": torch.rand(3, 96, 128) * 255, "height": 192, "width": 256}]
    with torch.no_grad():
        (out,) = mask_rcnn(inputs)
    inst = out["instances"]
    assert inst.image_size == (192, 256)
    assert len(inst) > 0
    assert inst.pred_boxes.tensor.shape[1] == 4 and inst.scores.shape == (len(inst),)
    assert inst.pred_classes.dtype == torch.int64 and inst.pred_classes.max() < 3
    assert inst.pred_masks.shape == (len(inst), 192, 256) and inst.pred_masks.dtype == torch.bool


def test_inference_with_detected_instances_and_no_postprocess(mask_rcnn):
    mask_rcnn.eval()
    given = Instances((96, 128))
    given.pred_boxes = Boxes(torch.tensor([[10.0, 10, 40, 40]]))
    given.pred_classes = torch.tensor([1])
    given.scores = torch.tensor([0.9])
    with torch.no_grad():
        (res,) = mask_rcnn.inference(
            [{"image": torch.rand(3, 96, 128)}], detected_instances=[given], do_postprocess=False
        )
    assert res.pred_masks.shape == (1, 1, 28, 28)


def test_empty_ground_truth_trains(mask_rcnn):
    mask_rcnn.train()
    empty = Instances((96, 128))
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    empty.gt_masks = PolygonMasks([])
    losses = mask_rcnn([{"image": torch.rand(3, 96, 128), "instances": empty}])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"] == 0


def test_no_detections_give_empty_fields_of_the_right_shapes(mask_rcnn):
    mask_rcnn.eval()
    mask_rcnn.roi_heads.box_predictor.test_score_thresh = 1.1  # nothing passes
    with torch.no_grad():
        (out,) = mask_rcnn([{"image": torch.rand(3, 96, 128)}])
    mask_rcnn.roi_heads.box_predictor.test_score_thresh = 0.05
    inst = out["instances"]
    assert len(inst) == 0
    assert inst.pred_boxes.tensor.shape == (0, 4)
    assert inst.pred_masks.shape == (0, 96, 128)


def test_keypoint_rcnn_losses_and_outputs():
    cfg = mask_rcnn_cfg(depth=18, num_classes=3)
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.KEYPOINT_ON = True
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (64, 64)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    losses = model([training_input(with_keypoints=True)])
    assert set(losses) == {
        "loss_cls",
        "loss_box_reg",
        "loss_keypoint",
        "loss_rpn_cls",
        "loss_rpn_loc",
    }
    assert torch.isfinite(losses["loss_keypoint"]) and losses["loss_keypoint"] > 0
    model.eval()
    model.roi_heads.box_predictor.test_score_thresh = 0.0
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 96, 128) * 255}])
    inst = out["instances"]
    assert inst.pred_keypoints.shape == (len(inst), 17, 3)


def expected_mask_rcnn_head_shapes(num_classes=3):
    """detectron2's R50-FPN Mask R-CNN keys and shapes outside the backbone."""
    shapes = {
        "proposal_generator.rpn_head.conv.weight": (256, 256, 3, 3),
        "proposal_generator.rpn_head.conv.bias": (256,),
        "proposal_generator.rpn_head.objectness_logits.weight": (3, 256, 1, 1),
        "proposal_generator.rpn_head.objectness_logits.bias": (3,),
        "proposal_generator.rpn_head.anchor_deltas.weight": (12, 256, 1, 1),
        "proposal_generator.rpn_head.anchor_deltas.bias": (12,),
        "roi_heads.box_head.fc1.weight": (1024, 256 * 7 * 7),
        "roi_heads.box_head.fc1.bias": (1024,),
        "roi_heads.box_head.fc2.weight": (1024, 1024),
        "roi_heads.box_head.fc2.bias": (1024,),
        "roi_heads.box_predictor.cls_score.weight": (num_classes + 1, 1024),
        "roi_heads.box_predictor.cls_score.bias": (num_classes + 1,),
        "roi_heads.box_predictor.bbox_pred.weight": (num_classes * 4, 1024),
        "roi_heads.box_predictor.bbox_pred.bias": (num_classes * 4,),
        "roi_heads.mask_head.deconv.weight": (256, 256, 2, 2),
        "roi_heads.mask_head.deconv.bias": (256,),
        "roi_heads.mask_head.predictor.weight": (num_classes, 256, 1, 1),
        "roi_heads.mask_head.predictor.bias": (num_classes,),
    }
    for i in range(1, 5):
        shapes[f"roi_heads.mask_head.mask_fcn{i}.weight"] = (256, 256, 3, 3)
        shapes[f"roi_heads.mask_head.mask_fcn{i}.bias"] = (256,)
    return shapes


def test_mask_rcnn_state_dict_matches_detectron2(mask_rcnn):
    state = mask_rcnn.state_dict()
    heads = {k: tuple(v.shape) for k, v in state.items() if not k.startswith("backbone.")}
    assert heads == expected_mask_rcnn_head_shapes()
    assert state["backbone.fpn_lateral2.weight"].shape == (256, 256, 1, 1)
    assert state["backbone.fpn_lateral5.weight"].shape == (256, 2048, 1, 1)
    assert state["backbone.bottom_up.res5.2.conv3.weight"].shape == (2048, 512, 1, 1)
    # pixel statistics are not part of detectron2 checkpoints
    assert "pixel_mean" not in state


def tiny_mask_rcnn(num_classes=3, num_keypoints=0):
    """A Mask R-CNN with a 4-stage, one-block-per-stage ResNet of 16-128 channels,
    built from explicit modules; the heads come from the config. With ``num_keypoints``
    a Keypoint R-CNN instead (keypoint head, no mask head)."""
    cfg = mask_rcnn_cfg(num_classes=num_classes)
    if num_keypoints:
        cfg.MODEL.MASK_ON = False
        cfg.MODEL.KEYPOINT_ON = True
        cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = num_keypoints
        cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (32, 32, 32)
        cfg.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 200
    return tiny_rcnn(cfg)


def test_overfit_two_images_finds_the_objects():
    """The whole training path is wired: a small Mask R-CNN learns two images."""
    torch.manual_seed(0)
    model = tiny_mask_rcnn()
    model.train()
    data = [training_input(), training_input()]
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    first = None
    for _ in range(120):
        losses = model(data)
        total = sum(losses.values())
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.4 * first
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": data[0]["image"]}])
    inst = out["instances"]
    gt = data[0]["instances"]
    for box, cls in zip(gt.gt_boxes, gt.gt_classes):
        same_class = inst[inst.pred_classes == cls]
        assert len(same_class) > 0
        best = pairwise_iou(Boxes(box[None]), same_class.pred_boxes).max()
        assert best > 0.7
        mask = same_class.pred_masks[pairwise_iou(Boxes(box[None]), same_class.pred_boxes).argmax()]
        x0, y0, x1, y1 = box.int().tolist()
        inside = mask[y0:y1, x0:x1].float().mean()
        outside = mask.sum() - mask[y0:y1, x0:x1].sum()
        assert inside > 0.6 and outside < 0.2 * (x1 - x0) * (y1 - y0)


def triangle_input(triangles, image_size=(96, 128)):
    """An image of filled triangles, each given by its (apex, base_left, base_right)
    corners, with boxes and the corners as keypoints."""
    h, w = image_size
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    image = torch.zeros(3, h, w)
    corners = torch.tensor(triangles, dtype=torch.float32)  # (N, 3, 2)
    for tri in corners:
        signs = []
        for (x0, y0), (x1, y1) in zip(tri, tri.roll(-1, 0)):
            signs.append((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0))
        signs = torch.stack(signs)
        image[:, (signs >= 0).all(0) | (signs <= 0).all(0)] = 255.0
    inst = Instances(image_size)
    inst.gt_boxes = Boxes(torch.cat([corners.min(1).values, corners.max(1).values], dim=1))
    inst.gt_classes = torch.zeros(len(corners), dtype=torch.int64)
    inst.gt_keypoints = Keypoints(torch.cat([corners, torch.full((len(corners), 3, 1), 2.0)], 2))
    return {"image": image, "instances": inst, "height": h, "width": w}


def test_overfit_keypoint_head_finds_the_corners():
    """Keypoint targets (heatmap encoding) and predictions (decoding) agree: a small
    Keypoint R-CNN learns the apex and base corners of tall triangles in any rotation
    (base_left is on the left when looking from the base to the apex)."""
    torch.manual_seed(0)
    model = tiny_mask_rcnn(num_classes=1, num_keypoints=3)
    model.train()
    data = [
        triangle_input([[(30, 10), (15, 60), (45, 60)], [(110, 50), (64, 35), (64, 65)]]),
        triangle_input([[(40, 85), (60, 30), (20, 30)], [(70, 12), (95, 75), (115, 40)]]),
    ]
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for _ in range(150):
        losses = model(data)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    detected = []
    for item in data:
        inst = Instances(item["instances"].image_size)
        inst.pred_boxes = item["instances"].gt_boxes
        inst.pred_classes = item["instances"].gt_classes
        detected.append(inst)
    with torch.no_grad():
        outputs = model.inference(data, detected_instances=detected)
    for item, out in zip(data, outputs):
        pred = out["instances"].pred_keypoints[..., :2]
        error = (pred - item["instances"].gt_keypoints.tensor[..., :2]).norm(dim=-1)
        assert error.max() < 3.0, error


def test_bitmask_targets_train_too(mask_rcnn):
    mask_rcnn.train()
    item = training_input()
    polys = item["instances"].gt_masks
    item["instances"].gt_masks = BitMasks.from_polygon_masks(polys, 96, 128)
    losses = mask_rcnn([item])
    assert torch.isfinite(losses["loss_mask"])


def test_generalized_rcnn_explicit_arguments(mask_rcnn):
    model = GeneralizedRCNN(
        backbone=mask_rcnn.backbone,
        proposal_generator=mask_rcnn.proposal_generator,
        roi_heads=mask_rcnn.roi_heads,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
    )
    assert model.device == torch.device("cpu")
    with pytest.raises(ValueError, match="pixel_mean"):
        GeneralizedRCNN(
            backbone=mask_rcnn.backbone,
            proposal_generator=None,
            roi_heads=mask_rcnn.roi_heads,
            pixel_mean=[0.0, 0.0, 0.0],
            pixel_std=[1.0],
        )
