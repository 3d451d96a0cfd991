import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_modeling import (
    META_ARCH_REGISTRY,
    PanopticFPN,
    build_model,
    combine_semantic_and_instance_outputs,
    get_cfg,
)
from vt_structures import Boxes, Instances, PolygonMasks


def instances(masks, scores, classes):
    masks = torch.as_tensor(masks, dtype=torch.bool)
    inst = Instances(tuple(masks.shape[1:]))
    inst.pred_masks = masks
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor(classes)
    inst.pred_boxes = Boxes(torch.zeros(len(scores), 4))
    return inst


def box_mask(h, w, y0, y1, x0, x1):
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def check_consistent(panoptic_seg, segments_info):
    """Ids 1..n in order, each segment's area is its pixel count, no other ids."""
    assert panoptic_seg.dtype == torch.int32
    ids = [s["id"] for s in segments_info]
    assert ids == list(range(1, len(segments_info) + 1))
    assert set(panoptic_seg.unique().tolist()) <= {0, *ids}
    for s in segments_info:
        assert s["area"] == (panoptic_seg == s["id"]).sum().item() > 0


def test_overlap_threshold_drops_or_trims_an_instance():
    h, w = 10, 10
    a = box_mask(h, w, 0, 5, 0, 5)  # 25 px
    b = box_mask(h, w, 0, 5, 2, 7)  # 25 px, 15 of them under a
    inst = instances(torch.stack([b, a]), [0.8, 0.9], [3, 4])
    sem = torch.zeros(h, w, dtype=torch.long)

    pan, info = combine_semantic_and_instance_outputs(inst, sem, 0.5, 0, 0.5)
    check_consistent(pan, info)
    # a (higher score) first; b overlaps a by 15/25 = 0.6 > 0.5: dropped
    assert info == [
        {"id": 1, "isthing": True, "score": pytest.approx(0.9), "category_id": 4,
         "instance_id": 1, "area": 25}
    ]  # fmt: skip
    assert torch.equal(pan == 1, a)

    pan, info = combine_semantic_and_instance_outputs(inst, sem, 0.7, 0, 0.5)
    check_consistent(pan, info)
    assert [(s["instance_id"], s["area"]) for s in info] == [(1, 25), (0, 10)]
    # b keeps only the pixels a left free
    assert torch.equal(pan == 2, b & ~a)


def test_score_threshold_and_empty_masks():
    h, w = 8, 8
    masks = torch.stack(
        [box_mask(h, w, 0, 4, 0, 4), box_mask(h, w, 4, 8, 4, 8), torch.zeros(h, w, dtype=bool)]
    )
    inst = instances(masks, [0.6, 0.4, 0.9], [1, 2, 3])
    pan, info = combine_semantic_and_instance_outputs(
        inst, torch.zeros(h, w, dtype=torch.long), 0.5, 0, 0.5
    )
    check_consistent(pan, info)
    # the empty mask (0.9) and the instance under the score threshold (0.4) are dropped
    assert [s["instance_id"] for s in info] == [0]
    pan, info = combine_semantic_and_instance_outputs(
        inst, torch.zeros(h, w, dtype=torch.long), 0.5, 0, 0.3
    )
    assert [s["instance_id"] for s in info] == [0, 1]


def test_stuff_fills_free_pixels_above_the_area_threshold():
    h, w = 10, 10
    sem = torch.zeros(h, w, dtype=torch.long)
    sem[:, 5:] = 1  # 50 px of stuff 1, 20 of which an instance takes
    sem[8:, :3] = 2  # 6 px of stuff 2
    sem[:2, :2] = 3  # 4 px of stuff 3
    thing = box_mask(h, w, 0, 2, 5, 10)  # 10 px on stuff 1
    thing |= box_mask(h, w, 2, 4, 5, 10)
    inst = instances(thing[None], [0.9], [7])

    pan, info = combine_semantic_and_instance_outputs(inst, sem, 0.5, 5, 0.5)
    check_consistent(pan, info)
    # class 0 ("things") never becomes stuff; stuff 3 (4 px < 5) is dropped
    assert [(s["isthing"], s["category_id"], s["area"]) for s in info] == [
        (True, 7, 20),
        (False, 1, 30),
        (False, 2, 6),
    ]
    assert "score" not in info[1] and "instance_id" not in info[1]
    assert torch.equal(pan == 2, (sem == 1) & ~thing)
    assert (pan[sem == 0] == 0).all() and (pan[sem == 3] == 0).all()

    pan, info = combine_semantic_and_instance_outputs(inst, sem, 0.5, 6.5, 0.5)
    assert [s["category_id"] for s in info] == [7, 1]


def test_no_instances():
    sem = torch.tensor([[0, 1], [1, 1]])
    inst = instances(torch.zeros(0, 2, 2), [], [])
    pan, info = combine_semantic_and_instance_outputs(inst, sem, 0.5, 0, 0.5)
    assert pan.tolist() == [[0, 1], [1, 1]]
    assert info == [{"id": 1, "isthing": False, "category_id": 1, "area": 3}]


def test_bad_inputs():
    inst = instances(torch.zeros(1, 4, 4), [0.9], [0])
    with pytest.raises(TypeError, match="semantic_results"):
        combine_semantic_and_instance_outputs(inst, torch.zeros(4, 4), 0.5, 0, 0.5)
    with pytest.raises(ValueError, match="semantic_results"):
        combine_semantic_and_instance_outputs(inst, torch.zeros(1, 4, 4, dtype=int), 0.5, 0, 0.5)
    with pytest.raises(ValueError, match="pred_masks"):
        combine_semantic_and_instance_outputs(inst, torch.zeros(4, 5, dtype=int), 0.5, 0, 0.5)
    inst.remove("pred_masks")
    with pytest.raises(ValueError, match="pred_masks"):
        combine_semantic_and_instance_outputs(inst, torch.zeros(4, 4, dtype=int), 0.5, 0, 0.5)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 5),
    seed=st.integers(0, 2**16),
    density=st.sampled_from([0.1, 0.3, 0.6]),
    overlap=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    stuff_area=st.integers(0, 12),
    score_thresh=st.sampled_from([0.0, 0.5]),
)
def test_combine_properties(n, seed, density, overlap, stuff_area, score_thresh):
    h, w = 6, 7
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, h, w, generator=g) < density
    # ties in the scores are broken by index, as a stable sort does
    scores = torch.randint(0, 4, (n,), generator=g).div(4).tolist()
    sem = torch.randint(0, 4, (h, w), generator=g)
    inst = instances(masks, scores, list(range(n)))
    pan, info = combine_semantic_and_instance_outputs(inst, sem, overlap, stuff_area, score_thresh)
    check_consistent(pan, info)

    things = [s for s in info if s["isthing"]]
    stuff = [s for s in info if not s["isthing"]]
    assert info == things + stuff
    # things by decreasing score, each inside its own mask
    assert [s["score"] for s in things] == sorted((s["score"] for s in things), reverse=True)
    taken = torch.zeros(h, w, dtype=torch.bool)
    kept = {s["instance_id"]: s for s in things}
    for i in sorted(range(n), key=lambda i: -scores[i]):
        mask = masks[i]
        area = int(mask.sum())
        covered = int((mask & taken).sum())
        should_keep = scores[i] >= score_thresh and covered < area and covered / area <= overlap
        assert (i in kept) == should_keep
        if should_keep:
            seg = pan == kept[i]["id"]
            assert torch.equal(seg, mask & ~taken)
            assert kept[i]["category_id"] == i
            taken |= seg
    # stuff: each class but 0 on the free pixels, when large enough
    for label in range(1, 4):
        free = (sem == label) & ~taken
        segs = [s for s in stuff if s["category_id"] == label]
        if free.sum() >= stuff_area and free.any():
            assert len(segs) == 1 and torch.equal(pan == segs[0]["id"], free)
        else:
            assert segs == []


def panoptic_cfg():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "PanopticFPN"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "GN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 100
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    # class 0: all things; 1, 2: stuff
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 3
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT = 16
    cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = 0.0
    return cfg


def panoptic_input(h=64, w=80):
    image = torch.zeros(3, h, w)
    sem_seg = torch.ones(h, w, dtype=torch.long)
    sem_seg[h // 2 :] = 2
    boxes = torch.tensor([[8.0, 8, 32, 30], [40, 36, 70, 60]])
    for x0, y0, x1, y1 in boxes.int().tolist():
        image[:, y0:y1, x0:x1] = 255.0
        sem_seg[y0:y1, x0:x1] = 0
    sem_seg[:2] = 255  # ignored
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(boxes)
    inst.gt_classes = torch.tensor([0, 1])
    inst.gt_masks = PolygonMasks(
        [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in boxes.tolist()]
    )
    return {"image": image, "instances": inst, "sem_seg": sem_seg}


@pytest.fixture(scope="module")
def panoptic_model():
    torch.manual_seed(0)
    return build_model(panoptic_cfg())


def test_cfg_defaults_are_detectron2s():
    panoptic = get_cfg().MODEL.PANOPTIC_FPN
    assert panoptic.INSTANCE_LOSS_WEIGHT == 1.0
    assert panoptic.COMBINE.ENABLED is True
    assert panoptic.COMBINE.OVERLAP_THRESH == 0.5
    assert panoptic.COMBINE.STUFF_AREA_LIMIT == 4096
    assert panoptic.COMBINE.INSTANCES_CONFIDENCE_THRESH == 0.5


def test_registered_and_built_from_cfg(panoptic_model):
    assert META_ARCH_REGISTRY.get("PanopticFPN") is PanopticFPN
    assert isinstance(panoptic_model, PanopticFPN)
    assert panoptic_model.combine_overlap_thresh == 0.5
    assert panoptic_model.combine_stuff_area_thresh == 16
    assert panoptic_model.combine_instances_score_thresh == 0.0
    assert panoptic_model.sem_seg_head.ignore_value == 255


def test_trains_with_finite_losses(panoptic_model):
    model = panoptic_model
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    batch = [panoptic_input(), panoptic_input(48, 64)]
    for _ in range(2):
        losses = model(batch)
        assert set(losses) == {
            "loss_sem_seg", "loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg",
            "loss_mask",
        }  # fmt: skip
        assert all(math.isfinite(v.item()) for v in losses.values())
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert model.sem_seg_head.predictor.weight.grad.abs().sum() > 0


def test_inference_outputs(panoptic_model):
    model = panoptic_model
    model.eval()
    batch = [panoptic_input(), {**panoptic_input(48, 64), "height": 96, "width": 128}]
    with torch.no_grad():
        outputs = model(batch)
        raw_instances, raw_sem_seg = model.inference(batch, do_postprocess=False)
    assert len(raw_instances) == 2 and raw_sem_seg.shape == (2, 3, 64, 96)
    for out, (h, w) in zip(outputs, [(64, 80), (96, 128)]):
        assert set(out) == {"sem_seg", "instances", "panoptic_seg"}
        assert out["sem_seg"].shape == (3, h, w) and out["sem_seg"].dtype == torch.float32
        assert out["instances"].image_size == (h, w)
        assert out["instances"].pred_masks.shape[1:] == (h, w)
        pan, info = out["panoptic_seg"]
        assert pan.shape == (h, w) and pan.dtype == torch.int32
        check_consistent(pan, info)
        # the combination of this image's own predictions
        expected = combine_semantic_and_instance_outputs(
            out["instances"], out["sem_seg"].argmax(0), 0.5, 16, 0.0
        )
        assert torch.equal(pan, expected[0]) and info == expected[1]
        assert any(s["isthing"] for s in info) and any(not s["isthing"] for s in info)
        assert all(s["area"] >= 16 for s in info if not s["isthing"])


def test_instance_loss_weight_scales_the_roi_losses():
    cfg = panoptic_cfg()
    cfg.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT = 0.5
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 2.0
    model = build_model(cfg)
    assert model.roi_heads.box_predictor.loss_weight == {"loss_cls": 0.5, "loss_box_reg": 1.0}
    assert model.roi_heads.mask_head.loss_weight == 0.5


def test_training_needs_sem_seg_and_a_proposal_generator(panoptic_model):
    model = panoptic_model
    model.train()
    batch = [panoptic_input()]
    del batch[0]["sem_seg"]
    with pytest.raises(ValueError, match="sem_seg"):
        model(batch)
    with pytest.raises(ValueError, match="proposal_generator"):
        PanopticFPN(
            backbone=model.backbone,
            proposal_generator=None,
            roi_heads=model.roi_heads,
            sem_seg_head=model.sem_seg_head,
            pixel_mean=[0.0, 0.0, 0.0],
            pixel_std=[1.0, 1.0, 1.0],
        )
