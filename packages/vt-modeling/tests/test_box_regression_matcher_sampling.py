import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_modeling.box_regression import (
    Box2BoxTransform,
    Box2BoxTransformLinear,
    Box2BoxTransformRotated,
)
from vt_modeling.matcher import Matcher
from vt_modeling.sampling import subsample_labels


def random_boxes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 200
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100 + 1
    return torch.cat([xy, xy + wh], 1)


def test_box2box_round_trip():
    t = Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))
    src, dst = random_boxes(100, 0), random_boxes(100, 1)
    deltas = t.get_deltas(src, dst)
    torch.testing.assert_close(t.apply_deltas(deltas, src), dst, atol=1e-5, rtol=0)


def test_box2box_known_delta_and_multiple_classes():
    t = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    src = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    dst = torch.tensor([[5.0, 0.0, 15.0, 40.0]])
    torch.testing.assert_close(
        t.get_deltas(src, dst), torch.tensor([[0.5, 0.5, 0.0, math.log(2.0)]])
    )
    deltas = torch.zeros(1, 8)  # two classes, identity
    torch.testing.assert_close(t.apply_deltas(deltas, src), src.repeat(1, 2))


def test_box2box_scale_clamp():
    t = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0), scale_clamp=math.log(4.0))
    src = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    out = t.apply_deltas(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), src)
    torch.testing.assert_close(out, torch.tensor([[-15.0, -15.0, 25.0, 25.0]]))  # width 40 = 4 x 10


def test_box2box_rejects_empty_sources():
    with pytest.raises(ValueError, match="src_boxes"):
        Box2BoxTransform((1, 1, 1, 1)).get_deltas(
            torch.tensor([[0.0, 0, 0, 5]]), torch.tensor([[0.0, 0, 1, 1]])
        )
    with pytest.raises(ValueError, match="weights: expected 4"):
        Box2BoxTransform((1, 1, 1))


@settings(max_examples=50, deadline=None)
@given(st.floats(-720, 720), st.floats(-720, 720))
def test_rotated_round_trip_with_angle_wrap(a_src, a_dst):
    t = Box2BoxTransformRotated(weights=(10.0, 10.0, 5.0, 5.0, 1.0))
    src = torch.tensor([[50.0, 60.0, 20.0, 10.0, a_src]], dtype=torch.float64)
    dst = torch.tensor([[55.0, 58.0, 30.0, 12.0, a_dst]], dtype=torch.float64)
    deltas = t.get_deltas(src, dst)
    assert -math.pi <= deltas[0, 4] < math.pi
    out = t.apply_deltas(deltas, src)
    torch.testing.assert_close(out[:, :4], dst[:, :4], atol=1e-6, rtol=0)
    wrapped = (a_dst + 180.0) % 360.0 - 180.0
    diff = (out[0, 4].item() - wrapped + 180.0) % 360.0 - 180.0
    assert abs(diff) < 1e-6 and -180.0 <= out[0, 4] < 180.0


def test_linear_round_trip_and_negative_clamp():
    t = Box2BoxTransformLinear(normalize_by_size=True)
    anchors = torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 8.0, 16.0, 16.0]])
    targets = torch.tensor([[-4.0, -2.0, 10.0, 12.0], [5.0, 6.0, 30.0, 20.0]])
    deltas = t.get_deltas(anchors, targets)
    torch.testing.assert_close(deltas[0], torch.tensor([8.0, 6.0, 6.0, 8.0]) / 8)
    torch.testing.assert_close(t.apply_deltas(deltas, anchors), targets)
    collapsed = t.apply_deltas(-torch.ones(2, 4), anchors)  # negative distances clamp to 0
    torch.testing.assert_close(collapsed[:, :2], collapsed[:, 2:])


def test_matcher_thresholds_and_labels():
    matcher = Matcher([0.3, 0.7], [0, -1, 1])
    iou = torch.tensor([[0.1, 0.5, 0.9, 0.0], [0.2, 0.4, 0.95, 0.29]])
    matches, labels = matcher(iou)
    assert matches.tolist() == [1, 0, 1, 1]
    assert labels.tolist() == [0, -1, 1, 0]
    assert labels.dtype == torch.int8 and matches.dtype == torch.int64


def test_matcher_low_quality_matches_include_ties():
    matcher = Matcher([0.5], [0, 1], allow_low_quality_matches=True)
    iou = torch.tensor([[0.4, 0.4, 0.1], [0.0, 0.1, 0.3]])
    matches, labels = matcher(iou)
    # gt0's best quality 0.4 is shared by predictions 0 and 1 (tie): both positive;
    # gt1's best is prediction 2.
    assert labels.tolist() == [1, 1, 1]
    assert matches.tolist() == [0, 0, 1]
    _, plain = Matcher([0.5], [0, 1])(iou)
    assert plain.tolist() == [0, 0, 0]


def test_matcher_empty_and_bad_input():
    matcher = Matcher([0.5], [0, 1])
    matches, labels = matcher(torch.zeros(0, 5))
    assert matches.tolist() == [0] * 5 and labels.tolist() == [0] * 5
    with pytest.raises(ValueError, match="labels"):
        Matcher([0.3, 0.7], [0, 1])
    with pytest.raises(ValueError, match="increasing"):
        Matcher([0.7, 0.3], [0, -1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        matcher(torch.tensor([[-0.1]]))


def test_subsample_labels_fractions():
    torch.manual_seed(0)
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    pos, neg = subsample_labels(labels, 20, 0.25, bg_label=0)
    assert len(pos) == 5 and len(neg) == 15
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 5
    pos, neg = subsample_labels(torch.tensor([1, 0, 0, -1]), 10, 0.5, bg_label=0)
    assert len(pos) == 1 and len(neg) == 2  # too few of both: take all
    with pytest.raises(ValueError, match="positive_fraction"):
        subsample_labels(labels, 10, 1.5, 0)
