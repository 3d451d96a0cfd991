import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from shapely.geometry import Polygon

import vt_ops


def rotated_polygon(box) -> Polygon:
    """The region of (cx, cy, w, h, angle): angle in degrees, counter-clockwise on screen (y down)."""
    cx, cy, w, h, angle = (float(v) for v in box)
    t = np.deg2rad(angle)
    c, s = np.cos(t), np.sin(t)
    local = [(w / 2, h / 2), (w / 2, -h / 2), (-w / 2, -h / 2), (-w / 2, h / 2)]
    return Polygon([(cx + dx * c + dy * s, cy - dx * s + dy * c) for dx, dy in local])


def shapely_iou(boxes1, boxes2) -> np.ndarray:
    p1 = [rotated_polygon(b) for b in np.asarray(boxes1, dtype=np.float64)]
    p2 = [rotated_polygon(b) for b in np.asarray(boxes2, dtype=np.float64)]
    out = np.zeros((len(p1), len(p2)))
    for i, a in enumerate(p1):
        for j, b in enumerate(p2):
            inter = a.intersection(b).area
            out[i, j] = inter / (a.area + b.area - inter) if inter > 0 else 0.0
    return out


def random_rotated(n: int, size: float = 100.0, dtype=np.float64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.uniform(0, size, (n, 2)),
            rng.uniform(1, size / 3, (n, 2)),
            rng.uniform(-360, 360, (n, 1)),
        ],
        axis=1,
    ).astype(dtype)


def to_rotated(xyxy: torch.Tensor, angle: float = 0.0) -> torch.Tensor:
    ctr = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return torch.cat([ctr, wh, torch.full_like(ctr[:, :1], angle)], dim=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_shapely(dtype):
    a, b = random_rotated(60, dtype=dtype, seed=1), random_rotated(45, dtype=dtype, seed=2)
    ours = vt_ops.box_iou_rotated(a, b)
    assert isinstance(ours, np.ndarray) and ours.dtype == dtype and ours.shape == (60, 45)
    expected = shapely_iou(a, b)
    assert (expected > 0).sum() > 100  # the case exercises real overlaps
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.diag(vt_ops.box_iou_rotated(a, a)), 1.0, atol=1e-5)


def test_torch_matches_numpy():
    a = random_rotated(30, seed=3)
    out = vt_ops.box_iou_rotated(torch.from_numpy(a), torch.from_numpy(a))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy(), vt_ops.box_iou_rotated(a, a))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_angle_zero_equals_axis_aligned(make_boxes, dtype):
    a, b = make_boxes(80, dtype=dtype), make_boxes(70, dtype=dtype)
    ours = vt_ops.box_iou_rotated(to_rotated(a), to_rotated(b))
    torch.testing.assert_close(ours, vt_ops.box_iou(a, b))


def test_quarter_turn_swaps_width_and_height(make_boxes):
    a, b = make_boxes(40, dtype=torch.float64), make_boxes(30, dtype=torch.float64)
    ra, rb = to_rotated(a), to_rotated(b)
    turned_a = torch.cat([ra[:, :2], ra[:, 3:4], ra[:, 2:3], torch.full_like(ra[:, :1], 90)], 1)
    turned_b = torch.cat([rb[:, :2], rb[:, 3:4], rb[:, 2:3], torch.full_like(rb[:, :1], -270)], 1)
    torch.testing.assert_close(vt_ops.box_iou_rotated(turned_a, turned_b), vt_ops.box_iou(a, b))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_return_their_dtype(dtype):
    a = torch.from_numpy(random_rotated(20, seed=4)).to(dtype)
    out = vt_ops.box_iou_rotated(a, a)
    assert out.dtype == dtype
    torch.testing.assert_close(out, vt_ops.box_iou_rotated(a.float(), a.float()).to(dtype))


def test_empty_degenerate_and_nan():
    assert vt_ops.box_iou_rotated(np.zeros((0, 5)), np.zeros((3, 5))).shape == (0, 3)
    boxes = torch.tensor(
        [[5, 5, 0, 4, 30], [5, 5, 4, -1, 0], [5, 5, 4, 4, 10], [5, 5, 4, 4, float("nan")]],
        dtype=torch.float64,
    )
    iou = vt_ops.box_iou_rotated(boxes, boxes)
    assert (iou[:2, :3] == 0).all() and (iou[:3, :2] == 0).all()  # empty boxes overlap nothing
    assert iou[2, 2] == pytest.approx(1.0)
    assert torch.isnan(iou[3]).all() and torch.isnan(iou[:, 3]).all()


def test_touching_and_far_apart_boxes():
    boxes = np.array([[0, 0, 2, 2, 0], [2, 0, 2, 2, 0], [1e6, 1e6, 2, 2, 45]], dtype=np.float64)
    iou = vt_ops.box_iou_rotated(boxes, boxes)
    np.testing.assert_array_equal(iou - np.diag(np.diag(iou)), 0)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((torch.zeros(3, 4), torch.zeros(2, 5)), ValueError, r"boxes1: expected shape \(\*, 5\)"),
        ((torch.zeros(3, 5), torch.zeros(2, 5, 1)), ValueError, "boxes2: expected shape"),
        (
            (torch.zeros(3, 5, dtype=torch.int32), torch.zeros(2, 5)),
            TypeError,
            "boxes1: expected a floating dtype",
        ),
        ((np.zeros((3, 5)), torch.zeros(2, 5)), TypeError, "same library"),
    ],
)
def test_bad_input_names_the_argument(args, error, message):
    with pytest.raises(error, match=message):
        vt_ops.box_iou_rotated(*args)


def test_torch_compile_and_opcheck():
    a = torch.from_numpy(random_rotated(16, dtype=np.float32, seed=5))
    b = torch.from_numpy(random_rotated(9, dtype=np.float32, seed=6))

    @torch.compile(fullgraph=True, backend="eager")
    def f(x, y):
        return vt_ops.box_iou_rotated(x, y).sum(dim=1)

    torch.testing.assert_close(f(a, b), vt_ops.box_iou_rotated(a, b).sum(dim=1))
    torch.library.opcheck(torch.ops.vt_ops.box_iou_rotated.default, (a, b))


# Sides are 0 or at least 0.01: shapely loses subnormal areas.
side = st.one_of(st.just(0.0), st.floats(0.01, 500))
rotated_rows = st.tuples(
    st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), side, side, st.floats(-720, 720)
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(rotated_rows, min_size=1, max_size=6), st.lists(rotated_rows, min_size=1, max_size=6)
)
def test_property_matches_shapely(a, b):
    a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    ours = vt_ops.box_iou_rotated(a, b)
    assert ((ours >= 0) & (ours <= 1)).all()
    np.testing.assert_allclose(ours, shapely_iou(a, b), atol=1e-4, rtol=0)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(0, 5), st.just(5))),
    hnp.arrays(np.float32, st.tuples(st.integers(0, 5), st.just(5))),
)
def test_property_never_crashes(a, b):
    # Any float32 values, NaN and infinity included: a result of the right shape, no crash.
    assert vt_ops.box_iou_rotated(a, b).shape == (len(a), len(b))


def test_nan_box_gives_nan_even_where_the_bounding_box_test_rejects():
    # found by fuzzing: a NaN centre with an empty box passed the disjointness prefilter as 0
    a = np.array([[np.nan, 0, 0, 0, 0], [0, 0, 2, 2, 0]], dtype=np.float32)
    b = np.array([[0, 1, 0, 0, 0], [0, 0, 2, 2, 0], [5, np.nan, 1, 1, 0]], dtype=np.float32)
    out = vt_ops.box_iou_rotated(a, b)
    assert np.isnan(out[0]).all() and np.isnan(out[:, 2]).all()
    np.testing.assert_array_equal(out[1, :2], [0, 1])
    np.testing.assert_array_equal(vt_ops.box_iou_rotated(b, a), out.T)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    a = torch.from_numpy(random_rotated(700, seed=7)).to(dtype)
    b = torch.from_numpy(random_rotated(500, seed=8)).to(dtype)
    ours = vt_ops.box_iou_rotated(a.cuda(), b.cuda())
    assert ours.is_cuda
    torch.testing.assert_close(ours.cpu(), vt_ops.box_iou_rotated(a, b), atol=1e-5, rtol=1e-4)
