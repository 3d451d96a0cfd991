import math

import numpy as np
import pytest
import torch
import torchvision.ops as tvops
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from vt_structures import (
    Boxes,
    BoxMode,
    RotatedBoxes,
    matched_pairwise_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)

coord = st.floats(-1e3, 1e3, allow_nan=False, width=32)
size = st.floats(0, 1e3, allow_nan=False, width=32)


def rotated_corners(cx, cy, w, h, a):
    """Corners of a rotated box: the w side along (cos, -sin), the h side along (sin, cos)."""
    t = math.radians(a)
    u = np.array([math.cos(t), -math.sin(t)]) * w / 2
    v = np.array([math.sin(t), math.cos(t)]) * h / 2
    c = np.array([cx, cy])
    return [c + u + v, c - u + v, c - u - v, c + u - v]


# ---------------------------------------------------------------- BoxMode


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(coord, coord, size, size), min_size=0, max_size=8))
def test_convert_round_trip_xywh(rows):
    xywh = torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)
    xyxy = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    torch.testing.assert_close(xyxy, tvops.box_convert(xywh, "xywh", "xyxy"))
    back = BoxMode.convert(xyxy, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    torch.testing.assert_close(back, xywh, atol=1e-9, rtol=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(coord, coord, size, size), min_size=1, max_size=8))
def test_convert_xywh_xywha_round_trip(rows):
    xywh = torch.tensor(rows, dtype=torch.float64)
    xywha = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    cxcywh = tvops.box_convert(xywh, "xywh", "cxcywh")
    torch.testing.assert_close(xywha[:, :4], cxcywh)
    assert (xywha[:, 4] == 0).all()
    torch.testing.assert_close(
        BoxMode.convert(xywha, BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS), xywh, atol=1e-9, rtol=0
    )
    torch.testing.assert_close(
        BoxMode.convert(xywha, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS),
        tvops.box_convert(xywh, "xywh", "xyxy"),
        atol=1e-9,
        rtol=0,
    )


def test_convert_xywha_to_xyxy_is_the_enclosing_box(make_rotated_boxes):
    rb = make_rotated_boxes(20, dtype=torch.float64)
    out = BoxMode.convert(rb, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    expected = [Polygon(rotated_corners(*r.tolist())).bounds for r in rb]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))


def test_convert_keeps_the_container_type():
    box = [1.0, 2.0, 3.0, 4.0]
    assert BoxMode.convert(box, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [1.0, 2.0, 4.0, 6.0]
    out = BoxMode.convert(tuple(box), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert out == (1.0, 2.0, 4.0, 6.0)
    arr = np.array([box, box], dtype=np.float32)
    out = BoxMode.convert(arr, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, [[1, 2, 2, 2]] * 2)
    assert (arr == np.array([box, box])).all()  # input untouched
    t = torch.tensor(box)
    out = BoxMode.convert(t, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    assert out.shape == (4,) and out.tolist() == [1.0, 2.0, 2.0, 2.0]
    assert BoxMode.convert(t, BoxMode.XYXY_ABS, BoxMode.XYXY_ABS) is not t
    ints = torch.tensor([[0, 0, 4, 6]])
    assert BoxMode.convert(ints, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS).dtype == torch.int64


@pytest.mark.parametrize("mode", [BoxMode.XYXY_REL, BoxMode.XYWH_REL])
def test_convert_relative_modes_raise(mode):
    with pytest.raises(ValueError, match=r"from_mode.*relative"):
        BoxMode.convert([0, 0, 1, 1], mode, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match=r"to_mode.*relative"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_ABS, mode)


def test_convert_bad_input():
    with pytest.raises(ValueError, match="box"):
        BoxMode.convert([0, 0, 1], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(ValueError, match=r"\(k, 5\)"):
        BoxMode.convert(torch.zeros(2, 4), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    with pytest.raises(TypeError, match="box"):
        BoxMode.convert("0 0 1 1", BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(ValueError, match="from_mode: expected a BoxMode, got 7"):
        BoxMode.convert([0, 0, 1, 1], 7, BoxMode.XYXY_ABS)
    flipped = np.arange(8.0).reshape(2, 4)[::-1]  # negative strides
    np.testing.assert_allclose(
        BoxMode.convert(flipped, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS), [[4, 5, 10, 12], [0, 1, 2, 4]]
    )


# ---------------------------------------------------------------- Boxes


def test_boxes_basics(make_boxes):
    t = make_boxes(10)
    b = Boxes(t)
    assert len(b) == 10 and b.device == torch.device("cpu")
    torch.testing.assert_close(b.area(), tvops.box_area(t))
    torch.testing.assert_close(b.get_centers(), tvops.box_convert(t, "xyxy", "cxcywh")[:, :2])
    assert [x.tolist() for x in b] == t.tolist()
    assert b.to(torch.float64).tensor.dtype == torch.float64
    c = b.clone()
    c.tensor[0, 0] = -5
    assert b.tensor[0, 0] != -5
    assert Boxes(torch.tensor([[0, 0, 2, 2]])).tensor.dtype == torch.float32
    assert Boxes([]).tensor.shape == (0, 4)
    assert Boxes(np.zeros((3, 4))).tensor.shape == (3, 4)
    assert "Boxes(" in repr(b)


def test_boxes_clip_nonempty_inside_scale():
    b = Boxes(torch.tensor([[-5.0, -5, 5, 5], [8, 1, 30, 12], [3, 3, 3, 9], [2, 2, 4, 3]]))
    inside = b.inside_box((10, 20))
    assert inside.tolist() == [False, False, True, True]
    assert b.inside_box((10, 20), boundary_threshold=6).tolist() == [True, False, True, True]
    b.clip((10, 20))
    assert b.tensor.tolist() == [[0, 0, 5, 5], [8, 1, 20, 10], [3, 3, 3, 9], [2, 2, 4, 3]]
    assert b.nonempty().tolist() == [True, True, False, True]
    assert b.nonempty(threshold=1.0).tolist() == [True, True, False, False]
    b.scale(2.0, 0.5)
    assert b.tensor[1].tolist() == [16, 0.5, 40, 5]
    with pytest.raises(ValueError, match="infinite or NaN"):
        Boxes(torch.tensor([[0, 0, float("nan"), 1]])).clip((10, 10))


def test_boxes_bad_shapes():
    with pytest.raises(
        ValueError, match=r"tensor: expected a tensor of shape \(N, 4\), got \(2, 3\)"
    ):
        Boxes(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="tensor"):
        Boxes(torch.zeros(4))
    with pytest.raises(TypeError, match="tensor"):
        Boxes("boxes")


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 12), data=st.data())
def test_boxes_indexing_matches_the_tensor(n, data):
    t = torch.arange(n * 4, dtype=torch.float32).reshape(n, 4)
    b = Boxes(t)
    mask = torch.tensor(
        data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=torch.bool
    )
    assert torch.equal(b[mask].tensor, t[mask])
    idx = data.draw(st.lists(st.integers(0, n - 1), max_size=10)) if n else []
    assert torch.equal(b[torch.tensor(idx, dtype=torch.long)].tensor, t[idx])
    start = data.draw(st.integers(-n - 1, n + 1))
    assert torch.equal(b[start:].tensor, t[start:])
    if n:
        i = data.draw(st.integers(-n, n - 1))
        assert torch.equal(b[i].tensor, t[i : i + 1] if i != -1 else t[-1:])
        with pytest.raises(IndexError, match="out of range"):
            b[n]
    # cat of the two halves of a split gives back the boxes
    k = data.draw(st.integers(0, n))
    assert torch.equal(Boxes.cat([b[:k], b[k:]]).tensor, t)


def test_boxes_bad_index_and_cat():
    b = Boxes(torch.zeros(3, 4))
    with pytest.raises(IndexError, match=r"bool mask must have shape \(3,\)"):
        b[torch.tensor([True, False])]
    assert len(Boxes.cat([])) == 0
    r = RotatedBoxes(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="every element must be a Boxes, got RotatedBoxes"):
        Boxes.cat([b, r])
    with pytest.raises(TypeError, match="RotatedBoxes, got Boxes"):
        RotatedBoxes.cat([r, b])
    with pytest.raises(TypeError, match="boxes_list"):
        Boxes.cat(b)


# ---------------------------------------------------------------- pairwise functions


def test_pairwise_iou_ioa_match_oracles(make_boxes):
    t1, t2 = make_boxes(30), make_boxes(20)
    b1, b2 = Boxes(t1), Boxes(t2)
    torch.testing.assert_close(pairwise_iou(b1, b2), tvops.box_iou(t1, t2))
    inter = pairwise_intersection(b1, b2)
    union = tvops.box_area(t1)[:, None] + tvops.box_area(t2)[None] - inter
    torch.testing.assert_close(inter / union, tvops.box_iou(t1, t2))
    torch.testing.assert_close(pairwise_ioa(b1, b2), inter / tvops.box_area(t2)[None])
    assert pairwise_iou(b1, Boxes(torch.zeros(0, 4))).shape == (30, 0)


def test_pairwise_type_errors(make_boxes):
    with pytest.raises(TypeError, match="boxes2: expected Boxes"):
        pairwise_iou(Boxes(make_boxes(2)), make_boxes(2))
    with pytest.raises(TypeError, match="boxes1"):
        pairwise_ioa(make_boxes(2), Boxes(make_boxes(2)))


def test_matched_pairwise_iou(make_boxes):
    t1, t2 = make_boxes(25), make_boxes(25)
    expected = tvops.box_iou(t1, t2).diagonal()
    torch.testing.assert_close(matched_pairwise_iou(Boxes(t1), Boxes(t2)), expected)
    empty = Boxes(torch.tensor([[1.0, 1, 1, 1]]))
    assert matched_pairwise_iou(empty, empty).tolist() == [0.0]
    with pytest.raises(ValueError, match="same length, got 25 and 3"):
        matched_pairwise_iou(Boxes(t1), Boxes(t2[:3]))


def test_pairwise_point_box_distance():
    points = torch.tensor([[5.0, 5.0], [0.0, 20.0]])
    boxes = Boxes(torch.tensor([[0.0, 0, 10, 10], [4, 1, 6, 8]]))
    d = pairwise_point_box_distance(points, boxes)
    assert d.shape == (2, 2, 4)
    assert d[0, 0].tolist() == [5, 5, 5, 5]
    assert d[0, 1].tolist() == [1, 4, 1, 3]
    assert d[1, 0].tolist() == [0, 20, 10, -10]
    inside = (d > 0).all(dim=2)
    assert inside.tolist() == [[True, True], [False, False]]
    with pytest.raises(ValueError, match=r"points: expected shape \(\*, 2\)"):
        pairwise_point_box_distance(torch.zeros(3, 3), boxes)
