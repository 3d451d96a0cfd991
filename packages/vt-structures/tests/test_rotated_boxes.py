import math

import numpy as np
import pytest
import torch
import torchvision.ops as tvops
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry import box as shapely_box

from vt_structures import Boxes, RotatedBoxes, pairwise_iou_rotated, scale_rotated_boxes


def polygon(cx, cy, w, h, a):
    """A rotated box as a shapely polygon: the w side along (cos, -sin), h side along (sin, cos)."""
    t = math.radians(a)
    u = np.array([math.cos(t), -math.sin(t)]) * w / 2
    v = np.array([math.sin(t), math.cos(t)]) * h / 2
    c = np.array([cx, cy])
    return Polygon([c + u + v, c - u + v, c - u - v, c + u - v])


def test_area_centers_nonempty(make_rotated_boxes):
    t = make_rotated_boxes(12, dtype=torch.float64)
    r = RotatedBoxes(t)
    torch.testing.assert_close(
        r.area(), torch.tensor([polygon(*x).area for x in t.tolist()], dtype=torch.float64)
    )
    torch.testing.assert_close(r.get_centers(), t[:, :2])
    r2 = RotatedBoxes(torch.tensor([[5.0, 5, 0, 3, 10], [5, 5, 2, 2, 0], [1, 1, 3, 0.5, 45]]))
    assert r2.nonempty().tolist() == [False, True, True]
    assert r2.nonempty(threshold=1.0).tolist() == [False, True, False]
    assert "RotatedBoxes(" in repr(r2)


def test_normalize_angles():
    r = RotatedBoxes(torch.tensor([[0, 0, 1, 1, a] for a in (-540.0, -180, 179, 180, 190, 725)]))
    r.normalize_angles()
    assert r.tensor[:, 4].tolist() == [-180, -180, 179, -180, -170, 5]


def test_clip_only_nearly_horizontal_boxes():
    t = torch.tensor(
        [
            [5.0, 5, 20, 4, 0.5],  # crosses the left and right edges, clipped to x in [0, 10]
            [5.0, 5, 20, 4, 30],  # rotated: untouched
            [2.0, 9, 2, 6, -360],  # angle normalises to 0: clipped to y in [6, 10]
        ]
    )
    r = RotatedBoxes(t.clone())
    r.clip((10, 10))
    torch.testing.assert_close(r.tensor[0], torch.tensor([5.0, 5, 10, 4, 0.5]))
    torch.testing.assert_close(r.tensor[1], t[1])
    torch.testing.assert_close(r.tensor[2], torch.tensor([2.0, 8, 2, 4, 0]))
    r = RotatedBoxes(t.clone())
    r.clip((10, 10), clip_angle_threshold=45)
    assert r.tensor[1, 2] == 10  # now clipped


def test_inside_box_matches_corners(make_rotated_boxes):
    t = make_rotated_boxes(200, size=60, dtype=torch.float64)
    image = (50, 70)  # (h, w)
    for thr in (0, 5):
        inside = RotatedBoxes(t).inside_box(image, boundary_threshold=thr)
        for row, ok in zip(t.tolist(), inside.tolist()):
            minx, miny, maxx, maxy = polygon(*row).bounds
            expected = (
                minx >= -thr and miny >= -thr and maxx < image[1] + thr and maxy < image[0] + thr
            )
            assert ok == expected


@settings(max_examples=100, deadline=None)
@given(
    box=st.tuples(
        st.floats(-100, 100),
        st.floats(-100, 100),
        st.floats(0.1, 50),
        st.floats(0.1, 50),
        st.floats(-180, 180),
    ),
    s=st.floats(0.1, 10),
)
def test_uniform_scale_maps_the_polygon(box, s):
    """Scaling by s (both axes) gives exactly the polygon scaled about the origin."""
    out = scale_rotated_boxes(torch.tensor([box], dtype=torch.float64), s, s)[0].tolist()
    expected = affinity.scale(polygon(*box), s, s, origin=(0, 0))
    got = polygon(*out)
    # Hausdorff distance: overlay operations are not robust for nearly equal polygons.
    assert got.hausdorff_distance(expected) < 1e-6 * max(abs(c) for c in (*expected.bounds, 1))


@pytest.mark.parametrize("angle", [0.0, 90.0, -90.0, 180.0])
def test_anisotropic_scale_of_axis_aligned_boxes(angle):
    r = RotatedBoxes(torch.tensor([[10.0, 20, 4, 6, angle]], dtype=torch.float64))
    r.scale(2.0, 0.5)
    expected = affinity.scale(polygon(10, 20, 4, 6, angle), 2.0, 0.5, origin=(0, 0))
    assert polygon(*r.tensor[0].tolist()).hausdorff_distance(expected) < 1e-9


def test_indexing_and_cat(make_rotated_boxes):
    t = make_rotated_boxes(7)
    r = RotatedBoxes(t)
    assert isinstance(r[2], RotatedBoxes) and r[2].tensor.shape == (1, 5)
    assert torch.equal(r[torch.tensor([1, 1, 4])].tensor, t[[1, 1, 4]])
    assert torch.equal(r[t[:, 2] > 10].tensor, t[t[:, 2] > 10])
    assert torch.equal(RotatedBoxes.cat([r[:3], r[3:]]).tensor, t)
    assert RotatedBoxes.cat([]).tensor.shape == (0, 5)
    assert isinstance(r.to("cpu"), RotatedBoxes) and isinstance(r.clone(), RotatedBoxes)
    assert len(list(r)) == 7
    with pytest.raises(
        ValueError, match=r"tensor: expected a tensor of shape \(N, 5\), got \(3, 4\)"
    ):
        RotatedBoxes(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="boxes2: expected RotatedBoxes"):
        pairwise_iou_rotated(r, Boxes(torch.zeros(1, 4)))


def test_pairwise_iou_rotated_matches_shapely(make_rotated_boxes, make_boxes):
    """vt_ops.box_iou_rotated through RotatedBoxes: shapely oracle, and angle 0 = axis-aligned."""
    t1 = make_rotated_boxes(15, dtype=torch.float64)
    t2 = make_rotated_boxes(11, dtype=torch.float64)
    iou = pairwise_iou_rotated(RotatedBoxes(t1), RotatedBoxes(t2))
    p1 = [polygon(*x) for x in t1.tolist()]
    p2 = [polygon(*x) for x in t2.tolist()]
    expected = torch.tensor(
        [[a.intersection(b).area / a.union(b).area for b in p2] for a in p1], dtype=torch.float64
    )
    torch.testing.assert_close(iou, expected, atol=1e-4, rtol=0)

    xyxy = make_boxes(10)
    as_rotated = torch.cat([tvops.box_convert(xyxy, "xyxy", "cxcywh"), torch.zeros(10, 1)], 1)
    torch.testing.assert_close(
        pairwise_iou_rotated(RotatedBoxes(as_rotated), RotatedBoxes(as_rotated)),
        tvops.box_iou(xyxy, xyxy),
        atol=1e-4,
        rtol=0,
    )
    assert shapely_box(0, 0, 1, 1).area == 1  # the oracle's own sanity
