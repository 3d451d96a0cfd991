import math

import numpy as np
import pytest
import shapely
import torch
import torchvision.ops as tvops
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from vt_structures import (
    BitMasks,
    Boxes,
    PolygonMasks,
    ROIMasks,
    paste_masks_in_image,
    polygon_area,
    polygons_to_bitmask,
    rasterize_polygons_within_box,
)
from vt_structures.masks import _roi_align_masks


def star_polygon(rng, cx, cy, r_min, r_max, k):
    """A random simple polygon: k vertices at sorted angles around (cx, cy)."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, k))
    radii = rng.uniform(r_min, r_max, k)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).reshape(-1)


def centers_inside(polygons, h, w):
    """Oracle: pixels whose centers shapely finds inside the union of the polygons."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    union = shapely.union_all([Polygon(p.reshape(-1, 2)) for p in polygons])
    return shapely.contains_xy(union, xs, ys)


def random_polygon_masks(rng, n, h, w):
    return [
        [
            star_polygon(
                rng, rng.uniform(0, w), rng.uniform(0, h), 1, min(h, w) / 3, rng.integers(3, 12)
            )
            for _ in range(rng.integers(1, 3))
        ]
        for _ in range(n)
    ]


# ---------------------------------------------------------------- rasterisation


def test_square_polygon_fills_its_pixels():
    m = polygons_to_bitmask([[0, 0, 10, 0, 10, 10, 0, 10]], 12, 15)
    expected = np.zeros((12, 15), bool)
    expected[:10, :10] = True
    assert (m == expected).all()
    m = polygons_to_bitmask([np.array([[2.0, 3], [6, 3], [6, 5], [2, 5]])], 8, 8)
    assert m.sum() == 8 and m[3:5, 2:6].all()


@pytest.mark.parametrize("seed", range(5))
def test_polygons_to_bitmask_matches_shapely(seed):
    rng = np.random.default_rng(seed)
    h, w = 40, 57
    for polys in random_polygon_masks(rng, 10, h, w):
        # disjoint or overlapping polygons of one instance: the mask is their union
        assert (polygons_to_bitmask(polys, h, w) == centers_inside(polys, h, w)).all()


def test_polygon_outside_the_image_and_clipped():
    assert not polygons_to_bitmask([[-10, -10, -1, -10, -1, -1]], 5, 5).any()
    m = polygons_to_bitmask([[-5, -5, 3, -5, 3, 3, -5, 3]], 5, 5)
    assert m.sum() == 9 and m[:3, :3].all()
    assert polygons_to_bitmask([], 3, 4).shape == (3, 4)


def test_polygon_bad_input():
    with pytest.raises(ValueError, match=r"polygons\[0\]: a polygon needs an even number >= 6"):
        polygons_to_bitmask([[0, 0, 1, 1]], 4, 4)
    with pytest.raises(ValueError, match="finite"):
        polygons_to_bitmask([[0, 0, 1, float("nan"), 1, 1]], 4, 4)
    with pytest.raises(ValueError, match=r"polygons\[1\]\[0\]"):
        PolygonMasks([[[0, 0, 1, 0, 1, 1]], [[0, 0, 1, 0, 1]]])
    with pytest.raises(ValueError, match="list of lists"):
        PolygonMasks(np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"polygons\[0\]: expected a list of polygons"):
        PolygonMasks([np.zeros(6)])


def test_rasterize_within_box_is_crop_then_resize():
    rng = np.random.default_rng(1)
    for polys in random_polygon_masks(rng, 8, 60, 60):
        # a box of integer corners and side = mask size: the crop of the full-resolution mask
        full = polygons_to_bitmask(polys, 80, 80)
        x0, y0 = rng.integers(0, 40, 2)
        crop = rasterize_polygons_within_box(polys, np.array([x0, y0, x0 + 28, y0 + 28]), 28)
        assert crop.dtype == torch.bool and torch.equal(
            crop, torch.from_numpy(full[y0 : y0 + 28, x0 : x0 + 28])
        )
        # halving the resolution: the same as rasterising polygons scaled by 1/2
        half = rasterize_polygons_within_box(polys, np.array([x0, y0, x0 + 56, y0 + 56]), 28)
        scaled = [(p.reshape(-1, 2) - (x0, y0)) / 2 for p in polys]
        assert torch.equal(half, torch.from_numpy(polygons_to_bitmask(scaled, 28, 28)))


# ---------------------------------------------------------------- PolygonMasks


def test_polygon_masks_area_boxes_nonempty():
    rng = np.random.default_rng(2)
    polys = [*random_polygon_masks(rng, 6, 50, 50), []]
    pm = PolygonMasks(polys)
    expected_area = [sum(Polygon(p.reshape(-1, 2)).area for p in inst) for inst in polys]
    torch.testing.assert_close(pm.area(), torch.tensor(expected_area, dtype=torch.float64))
    boxes = pm.get_bounding_boxes().tensor
    for inst, box in zip(polys[:-1], boxes):
        bounds = shapely.union_all([Polygon(p.reshape(-1, 2)) for p in inst]).bounds
        torch.testing.assert_close(box, torch.tensor(bounds, dtype=torch.float32))
    assert boxes[-1].tolist() == [0, 0, 0, 0]
    assert pm.nonempty().tolist() == [True] * 6 + [False]
    assert polygon_area(np.array([0, 4, 4, 0.0]), np.array([0, 0, 3, 3.0])) == 12


def test_polygon_to_bitmask_to_box_consistency():
    rng = np.random.default_rng(3)
    h, w = 64, 80
    polys = random_polygon_masks(rng, 12, h, w)
    pm = PolygonMasks(polys)
    bm = BitMasks.from_polygon_masks(pm, h, w)
    assert bm.tensor.shape == (12, h, w) and bm.image_size == (h, w)
    poly_boxes = pm.get_bounding_boxes()
    poly_boxes.clip((h, w))
    bit_boxes = bm.get_bounding_boxes().tensor
    keep = bm.nonempty()
    # pixels whose centers are inside lie within the polygon box rounded outwards
    assert (bit_boxes[keep, :2] >= poly_boxes.tensor[keep, :2].floor()).all()
    assert (bit_boxes[keep, 2:] <= poly_boxes.tensor[keep, 2:].ceil()).all()
    # and it is exactly torchvision's masks_to_boxes, whose x2/y2 are the last pixel's index
    tv = tvops.masks_to_boxes(bm.tensor[keep].float())
    torch.testing.assert_close(bit_boxes[keep], tv + torch.tensor([0, 0, 1, 1.0]))
    assert (bm.area() > 0).tolist() == keep.tolist()
    # areas agree up to the boundary pixels
    assert (
        (bm.area().double() - pm.area()).abs()
        <= 2 * (poly_boxes.tensor[:, 2:] - poly_boxes.tensor[:, :2]).sum(1).double() + 4
    ).all()


def test_rectangle_polygon_to_bitmask_box_is_the_rounded_box():
    rng = np.random.default_rng(5)
    corners = rng.uniform(0, 30, (20, 2))
    sizes = rng.uniform(2, 20, (20, 2))
    rects = np.concatenate([corners, corners + sizes], 1)
    polys = [[np.array([x0, y0, x1, y0, x1, y1, x0, y1])] for x0, y0, x1, y1 in rects]
    bit_boxes = BitMasks.from_polygon_masks(polys, 50, 50).get_bounding_boxes().tensor
    # the first pixel has its center right of x0: floor(x0 - 0.5) + 1; same for the others
    expected = np.floor(rects - 0.5) + 1
    torch.testing.assert_close(bit_boxes, torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(
        PolygonMasks(polys).get_bounding_boxes().tensor, torch.tensor(rects, dtype=torch.float32)
    )


def test_polygon_masks_indexing_and_cat():
    pm = PolygonMasks([[[i, 0, i + 1, 0, i + 1, 1]] for i in range(5)])
    assert len(pm[2]) == 1 and pm[2].polygons[0][0][0] == 2
    assert [p[0][0] for p in pm[1:4].polygons] == [1, 2, 3]
    assert [p[0][0] for p in pm[[4, 0]].polygons] == [4, 0]
    assert [p[0][0] for p in pm[torch.tensor([True, False, True, False, False])].polygons] == [0, 2]
    assert [p[0][0] for p in pm[torch.tensor([3, 3])].polygons] == [3, 3]
    assert len(PolygonMasks.cat([pm, pm[:2]])) == 7
    assert pm.to("cpu") is pm and pm.device == torch.device("cpu")
    assert repr(pm) == "PolygonMasks(num_instances=5)"
    assert len(list(pm)) == 5
    with pytest.raises(IndexError):
        pm[torch.tensor([0.5])]
    with pytest.raises(IndexError, match="out of range"):
        pm[5]
    with pytest.raises(TypeError, match="PolygonMasks"):
        PolygonMasks.cat([pm, BitMasks(torch.zeros(1, 2, 2))])


# ---------------------------------------------------------------- crop_and_resize


def test_roi_align_of_masks_matches_torchvision():
    masks = (torch.rand(6, 30, 40) > 0.5).float()
    boxes = torch.tensor(
        [
            [0, 0, 40, 30],
            [3.3, 4.1, 20.7, 19.2],
            [-5, -5, 10, 8],
            [30, 20, 55, 45],
            [10, 10, 10.5, 11],
            [1, 2, 39, 29],
        ]
    )
    rois = torch.cat([torch.arange(6.0)[:, None], boxes], 1)
    for size in (7, 14, 28):
        expected = tvops.roi_align(masks[:, None], rois, size, 1.0, 0, aligned=True)[:, 0]
        torch.testing.assert_close(
            _roi_align_masks(masks, boxes, size), expected, atol=1e-5, rtol=0
        )


def test_bitmasks_crop_and_resize():
    rng = np.random.default_rng(4)
    polys = random_polygon_masks(rng, 8, 50, 60)
    bm = BitMasks.from_polygon_masks(polys, 50, 60)
    boxes = bm.get_bounding_boxes().tensor
    rois = torch.cat([torch.arange(8.0)[:, None], boxes], 1)
    soft = tvops.roi_align(bm.tensor[:, None].float(), rois, 28, 1.0, 0, aligned=True)[:, 0]
    out = bm.crop_and_resize(boxes, 28)
    assert out.dtype == torch.bool and out.shape == (8, 28, 28)
    decided = (soft - 0.5).abs() > 1e-4
    assert torch.equal(out[decided], (soft >= 0.5)[decided])
    # polygon masks cropped directly agree with the bitmask crops almost everywhere
    direct = PolygonMasks(polys).crop_and_resize(boxes, 28)
    assert direct.shape == (8, 28, 28) and direct.dtype == torch.bool
    inter = (direct & out).flatten(1).sum(1).float()
    union = (direct | out).flatten(1).sum(1).float()
    iou = inter / union
    assert iou.min() > 0.6 and iou.mean() > 0.85
    empty = BitMasks(torch.zeros(0, 5, 5)).crop_and_resize(torch.zeros(0, 4), 3)
    assert empty.shape == (0, 3, 3) and empty.dtype == torch.bool
    with pytest.raises(ValueError, match="boxes: expected 8 boxes"):
        bm.crop_and_resize(boxes[:3], 28)
    with pytest.raises(ValueError, match="mask_size"):
        bm.crop_and_resize(boxes, 0)
    with pytest.raises(ValueError, match=r"boxes: expected shape \(\*, 4\)"):
        PolygonMasks(polys).crop_and_resize(torch.zeros(8, 5), 28)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 4),
    picks=st.lists(st.integers(0, 100), min_size=0, max_size=12),
    keep=st.lists(st.booleans(), min_size=12, max_size=12),
    seed=st.integers(0, 2**16),
)
def test_bitmasks_selection_by_index_equals_the_gathered_tensor(n, picks, keep, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, 20, 24, generator=g) > 0.5
    index = torch.tensor([p % (2 * n) - n for p in picks], dtype=torch.long)  # in [-n, n)
    expected = t[index]
    selected = BitMasks(t)[index]
    assert len(selected) == len(expected) and selected.image_size == (20, 24)
    mask = torch.tensor(keep[: len(index)], dtype=torch.bool)
    boxes = torch.rand(int(mask.sum()), 4, generator=g) * 12
    boxes[:, 2:] += boxes[:, :2] + 1
    # crop_and_resize reads the deferred selection without gathering it
    assert torch.equal(
        selected[mask].crop_and_resize(boxes, 7), BitMasks(expected[mask]).crop_and_resize(boxes, 7)
    )
    assert torch.equal(selected[mask].tensor, expected[mask])
    assert torch.equal(selected.tensor, expected)
    with pytest.raises(IndexError):
        BitMasks(t)[torch.tensor([n])]


# ---------------------------------------------------------------- BitMasks


def test_bitmasks_basics():
    t = torch.rand(5, 6, 7) > 0.6
    t[3] = False
    bm = BitMasks(t.to(torch.uint8))
    assert bm.tensor.dtype == torch.bool and bm.image_size == (6, 7) and len(bm) == 5
    assert bm.nonempty().tolist() == [True, True, True, False, True]
    assert bm.area().tolist() == t.flatten(1).sum(1).tolist()
    assert bm.get_bounding_boxes().tensor[3].tolist() == [0, 0, 0, 0]
    assert torch.equal(bm[1].tensor, t[1:2]) and torch.equal(bm[1:3].tensor, t[1:3])
    assert torch.equal(bm[bm.nonempty()].tensor, t[[0, 1, 2, 4]])
    assert torch.equal(BitMasks.cat([bm[:2], bm[2:]]).tensor, t)
    assert repr(bm) == "BitMasks(num_instances=5)" and len(list(bm)) == 5
    assert bm.to("cpu").device == torch.device("cpu")
    assert BitMasks(np.zeros((2, 3, 3))).tensor.shape == (2, 3, 3)
    assert BitMasks.from_polygon_masks([], 4, 5).tensor.shape == (0, 4, 5)
    with pytest.raises(ValueError, match=r"tensor: expected shape \(N, H, W\), got \(6, 7\)"):
        BitMasks(t[0])
    with pytest.raises(ValueError, match="image sizes differ"):
        BitMasks.cat([bm, BitMasks(torch.zeros(1, 2, 2))])
    with pytest.raises(IndexError, match="out of range"):
        bm[7]


# ---------------------------------------------------------------- pasting


def bilinear_paste_oracle(mask: np.ndarray, box, h: int, w: int) -> np.ndarray:
    """Sample the mask at every pixel center mapped into the box (zero outside), in numpy."""
    m = mask.shape[0]
    x0, y0, x1, y1 = box
    out = np.zeros((h, w))
    padded = np.pad(mask, 1)
    for i in range(h):
        v = (i + 0.5 - y0) / (y1 - y0) * m - 0.5
        for j in range(w):
            u = (j + 0.5 - x0) / (x1 - x0) * m - 0.5
            if not (-1 < u < m and -1 < v < m):
                continue
            iu, iv = math.floor(u), math.floor(v)
            fu, fv = u - iu, v - iv
            p = padded[iv + 1 : iv + 3, iu + 1 : iu + 3]
            out[i, j] = (
                p[0, 0] * (1 - fu) * (1 - fv)
                + p[0, 1] * fu * (1 - fv)
                + p[1, 0] * (1 - fu) * fv
                + p[1, 1] * fu * fv
            )
    return out


def test_paste_masks_in_image():
    ones = torch.ones(1, 28, 28)
    pasted = paste_masks_in_image(ones, Boxes(torch.tensor([[2.0, 3, 10, 9]])), (12, 14))
    expected = torch.zeros(1, 12, 14, dtype=torch.bool)
    expected[0, 3:9, 2:10] = True
    assert torch.equal(pasted, expected)

    masks = torch.rand(3, 7, 7, dtype=torch.float64)
    boxes = torch.tensor(
        [[1.3, 2.2, 9.9, 7.1], [-3, -2, 5, 6], [8, 1, 20, 14]], dtype=torch.float64
    )
    soft = paste_masks_in_image(masks.float(), boxes, (13, 15), threshold=-1)
    assert soft.dtype == torch.uint8
    hard = paste_masks_in_image(masks.float(), boxes, (13, 15), threshold=0.5)
    for k in range(3):
        oracle = bilinear_paste_oracle(masks[k].numpy(), boxes[k].tolist(), 13, 15)
        assert np.abs(soft[k].numpy() - np.floor(oracle * 255)).max() <= 1
        decided = np.abs(oracle - 0.5) > 1e-5
        assert (hard[k].numpy()[decided] == (oracle >= 0.5)[decided]).all()
    assert paste_masks_in_image(torch.zeros(0, 5, 5), torch.zeros(0, 4), (3, 4)).shape == (0, 3, 4)
    with pytest.raises(ValueError, match="square"):
        paste_masks_in_image(torch.zeros(1, 5, 6), torch.zeros(1, 4), (3, 4))
    with pytest.raises(ValueError, match="boxes: expected 2 boxes"):
        paste_masks_in_image(torch.zeros(2, 5, 5), torch.zeros(1, 4), (3, 4))


def test_roi_masks():
    masks = torch.rand(4, 14, 14)
    boxes = Boxes(torch.tensor([[0, 0, 10, 10.0], [5, 5, 20, 30], [2, 3, 4, 5], [0, 0, 40, 40]]))
    rm = ROIMasks(masks)
    bm = rm.to_bitmasks(boxes, 32, 24)
    assert isinstance(bm, BitMasks) and bm.image_size == (32, 24)
    assert torch.equal(bm.tensor, paste_masks_in_image(masks, boxes, (32, 24)))
    assert torch.equal(rm[1:3].tensor, masks[1:3]) and len(rm) == 4
    assert torch.equal(rm[torch.tensor([3, 0])].tensor, masks[[3, 0]])
    assert len(ROIMasks.cat([rm, rm[:1]])) == 5
    assert (
        repr(rm) == "ROIMasks(num_instances=4)"
        and rm.to(torch.float64).tensor.dtype == torch.float64
    )
    with pytest.raises(ValueError, match="returns a tensor with shape"):
        rm[0]
    with pytest.raises(ValueError, match=r"tensor: expected shape \(N, M, M\)"):
        ROIMasks(torch.zeros(14, 14))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 6), data=st.data())
def test_bitmask_and_polygon_indexing_agree(n, data):
    polys = [[np.array([i, 0, i + 2, 0, i + 2, 2, i, 2], dtype=np.float64)] for i in range(n)]
    pm = PolygonMasks(polys)
    bm = BitMasks.from_polygon_masks(pm, 4, 10)
    mask = torch.tensor(
        data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=torch.bool
    )
    assert torch.equal(BitMasks.from_polygon_masks(pm[mask], 4, 10).tensor, bm[mask].tensor)
    idx = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=5)) if n else []
    index = torch.tensor(idx, dtype=torch.long)
    assert torch.equal(BitMasks.from_polygon_masks(pm[index], 4, 10).tensor, bm[index].tensor)
    assert torch.equal(pm[index].get_bounding_boxes().tensor, pm.get_bounding_boxes().tensor[index])
