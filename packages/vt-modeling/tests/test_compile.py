"""torch.compile of the detectors: graph breaks of a Mask R-CNN inference, and the
backbone and heads compiled with fullgraph=True giving the eager outputs.

The "aot_eager" backend traces through dynamo and AOTAutograd (what fullgraph checks)
without a C++ toolchain or inductor's compile time.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_layers import batched_nms
from vt_modeling._masked_nms import masked_batched_nms
from vt_modeling.poolers import assign_boxes_to_levels
from vt_modeling.proposal_generator.proposal_utils import find_top_rpn_proposals
from vt_modeling.roi_heads.fast_rcnn import fast_rcnn_inference_single_image
from vt_structures import Boxes

# Graph breaks of the tiny Mask R-CNN FPN inference below under the default dynamo
# configuration. What is left: the data-dependent output sizes of NMS (one per
# image for the RPN and one for the box head), the removal of empty boxes in
# detector_postprocess and the pasting of the masks. 48 before the changes that
# brought it here.
MAX_GRAPH_BREAKS = 15

IMAGE_SIZE = (3, 128, 160)


def compile_fullgraph(fn):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, backend="aot_eager")


# Both run the whole detector through dynamo: ~30 s each on one core.
@pytest.mark.slow
def test_mask_rcnn_inference_graph_breaks(tiny_mask_rcnn):
    torch._dynamo.reset()
    inputs = [{"image": torch.rand(IMAGE_SIZE) * 255}]
    with torch.no_grad():
        explanation = torch._dynamo.explain(tiny_mask_rcnn)(inputs)
    reasons = "\n".join(r.reason.splitlines()[0] for r in explanation.break_reasons)
    assert explanation.graph_break_count <= MAX_GRAPH_BREAKS, reasons
    assert explanation.graph_count == explanation.graph_break_count + 1


@pytest.mark.slow
def test_mask_rcnn_inference_compiled_equals_eager(tiny_mask_rcnn):
    inputs = [{"image": torch.rand(IMAGE_SIZE) * 255}]
    torch._dynamo.reset()
    compiled = torch.compile(tiny_mask_rcnn, backend="aot_eager")
    with torch.no_grad():
        (expected,) = tiny_mask_rcnn(inputs)
        (actual,) = compiled(inputs)
    expected, actual = expected["instances"], actual["instances"]
    assert len(expected) > 0 and len(actual) == len(expected)
    for name in ["pred_boxes", "scores", "pred_classes", "pred_masks"]:
        a, e = actual.get(name), expected.get(name)
        a, e = getattr(a, "tensor", a), getattr(e, "tensor", e)
        torch.testing.assert_close(a, e, msg=name)


def test_backbone_and_fpn_fullgraph(tiny_mask_rcnn):
    x = torch.randn(2, *IMAGE_SIZE)
    with torch.no_grad():
        expected = tiny_mask_rcnn.backbone(x)
        actual = compile_fullgraph(tiny_mask_rcnn.backbone)(x)
    assert actual.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(actual[k], expected[k])


@pytest.fixture(scope="module")
def features(tiny_mask_rcnn):
    torch.manual_seed(3)
    with torch.no_grad():
        return tiny_mask_rcnn.backbone(torch.randn(1, *IMAGE_SIZE))


def test_rpn_head_and_anchors_fullgraph(tiny_mask_rcnn, features):
    rpn = tiny_mask_rcnn.proposal_generator
    with torch.no_grad():
        expected = rpn._predict(features)
        actual = compile_fullgraph(rpn._predict)(features)
    for a, e in zip(actual, expected):
        for a_i, e_i in zip(a, e):
            torch.testing.assert_close(getattr(a_i, "tensor", a_i), getattr(e_i, "tensor", e_i))


def random_boxes(n, height, width):
    xy = torch.rand(n, 2) * torch.tensor([width, height]) * 0.8
    wh = torch.rand(n, 2) * torch.tensor([width, height]) * 0.5 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_box_pooler_head_and_predictor_fullgraph(tiny_mask_rcnn, features):
    heads = tiny_mask_rcnn.roi_heads
    feats = [features[f] for f in heads.box_in_features]
    # Boxes of every size, so that all the pooler's levels are used.
    boxes = Boxes(random_boxes(64, *IMAGE_SIZE[1:]) * torch.tensor([1, 1, 2, 2]))

    def box_branch(feats, boxes):
        return heads.box_predictor(heads.box_head(heads.box_pooler(feats, [boxes])))

    with torch.no_grad():
        expected = box_branch(feats, boxes)
        actual = compile_fullgraph(box_branch)(feats, boxes)
    pooler = heads.box_pooler
    levels = assign_boxes_to_levels(
        [boxes], pooler.min_level, pooler.max_level, pooler.canonical_box_size, 4
    )
    assert len(levels.unique()) > 1
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e)


def test_mask_pooler_and_head_fullgraph(tiny_mask_rcnn, features):
    heads = tiny_mask_rcnn.roi_heads
    feats = [features[f] for f in heads.mask_in_features]
    boxes = Boxes(random_boxes(16, *IMAGE_SIZE[1:]))

    def mask_branch(feats, boxes):
        return heads.mask_head.layers(heads.mask_pooler(feats, [boxes]))

    with torch.no_grad():
        expected = mask_branch(feats, boxes)
        actual = compile_fullgraph(mask_branch)(feats, boxes)
    torch.testing.assert_close(actual, expected)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 40),
    seed=st.integers(0, 2**16),
    classes=st.integers(1, 3),
    iou=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_masked_nms_equals_nms_of_the_valid_subset(n, seed, classes, iou):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(n, 50, 60) if n else torch.zeros(0, 4)
    scores = torch.rand(n, generator=g).round(decimals=1)  # ties too
    idxs = torch.randint(0, classes, (n,), generator=g)
    valid = torch.rand(n, generator=g) > 0.3
    boxes[~valid] = float("nan")  # invalid candidates may be non-finite
    expected = torch.nonzero(valid)[:, 0][
        batched_nms(boxes[valid], scores[valid], idxs[valid], iou)
    ]
    torch.testing.assert_close(masked_batched_nms(boxes, scores, idxs, valid, iou), expected)


def test_fast_rcnn_inference_drops_non_finite_regions():
    torch.manual_seed(0)
    boxes = random_boxes(20, 60, 80).repeat(1, 2)  # 2 classes
    scores = torch.softmax(torch.randn(20, 3) * 3, dim=1)
    boxes[3, 1] = float("inf")
    scores[7, 0] = float("nan")
    result, kept = fast_rcnn_inference_single_image(boxes, scores, (60, 80), 0.05, 0.5, 100)
    assert len(result) > 0 and 3 not in kept.tolist() and 7 not in kept.tolist()
    # The kept indices are those of the input regions.
    cls = result.pred_classes
    expected = Boxes(boxes.view(20, 2, 4)[kept, cls])
    expected.clip((60, 80))
    torch.testing.assert_close(result.pred_boxes.tensor, expected.tensor)
    torch.testing.assert_close(result.scores, scores[kept, cls])


def test_rpn_proposals_drop_non_finite_at_inference_only():
    torch.manual_seed(0)
    proposals = random_boxes(30, 60, 80)[None]
    logits = torch.randn(1, 30)
    proposals[0, 4] = float("nan")
    logits[0, 9] = float("inf")
    args = ([proposals], [logits], [(60, 80)], 0.7, 100, 100, 0.0)
    (res,) = find_top_rpn_proposals(*args, training=False)
    assert len(res) > 0 and torch.isfinite(res.proposal_boxes.tensor).all()
    assert torch.isfinite(res.objectness_logits).all()
    with pytest.raises(FloatingPointError):
        find_top_rpn_proposals(*args, training=True)


def test_boxes_clip_checks_finite_values_when_compiled():
    def clip(t):
        boxes = Boxes(t)
        boxes.clip((10, 20))
        return boxes.tensor

    compiled = compile_fullgraph(clip)
    t = torch.tensor([[-1.0, 2, 30, 40]])
    torch.testing.assert_close(compiled(t), clip(t))
    with pytest.raises(RuntimeError, match="infinite or NaN"):
        compiled(torch.tensor([[float("nan"), 2, 3, 4]]))
    with pytest.raises(ValueError, match="infinite or NaN"):
        clip(torch.tensor([[float("nan"), 2, 3, 4]]))


@pytest.mark.parametrize("pooler_type", ["ROIAlign", "ROIAlignV2", "ROIPool", "ROIAlignRotated"])
def test_multi_level_pooler_compiled_equals_eager(pooler_type):
    from vt_modeling import ROIPooler
    from vt_structures import RotatedBoxes

    torch.manual_seed(0)
    scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    feats = [torch.randn(2, 3, 256 // int(1 / s), 256 // int(1 / s)) for s in scales]
    pooler = ROIPooler(5, scales, 0, pooler_type, canonical_box_size=64)
    box_lists = []
    for n in (9, 6):
        boxes = random_boxes(n, 256, 256) * torch.tensor([1, 1, 2, 2])
        if pooler_type == "ROIAlignRotated":
            cxcy, wh = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
            boxes = RotatedBoxes(torch.cat([cxcy, wh, torch.rand(n, 1) * 90], dim=1))
        else:
            boxes = Boxes(boxes)
        box_lists.append(boxes)
    expected = pooler(feats, box_lists)
    actual = compile_fullgraph(pooler)(feats, box_lists)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
