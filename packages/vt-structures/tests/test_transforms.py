import math

import numpy as np
import pytest
import shapely
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry import box as shapely_box

from vt_structures import (
    BitMasks,
    Boxes,
    Keypoints,
    PolygonMasks,
    RotatedBoxes,
    polygons_to_bitmask,
)
from vt_structures.transforms import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    TransformList,
    VFlipTransform,
    clip_polygon,
)

H, W = 24, 32


def rotated_polygon(cx, cy, w, h, a):
    t = math.radians(a)
    u = np.array([math.cos(t), -math.sin(t)]) * w / 2
    v = np.array([math.sin(t), math.cos(t)]) * h / 2
    c = np.array([cx, cy])
    return Polygon([c + u + v, c - u + v, c - u - v, c + u - v])


def star(rng, cx, cy, r, k):
    a = np.sort(rng.uniform(0, 2 * math.pi, k))
    rr = rng.uniform(r / 3, r, k)
    return np.stack([cx + rr * np.cos(a), cy + rr * np.sin(a)], 1)


@st.composite
def transforms_on(draw, h=H, w=W, depth=4):
    """A random TransformList starting from an image of (h, w), with the sizes chained."""
    ts = []
    for _ in range(draw(st.integers(1, depth))):
        kind = draw(st.sampled_from(["resize", "hflip", "vflip", "crop", "pad", "noop"]))
        if kind == "resize":
            nh, nw = draw(st.integers(1, 64)), draw(st.integers(1, 64))
            ts.append(ResizeTransform(h, w, nh, nw))
            h, w = nh, nw
        elif kind == "hflip":
            ts.append(HFlipTransform(w))
        elif kind == "vflip":
            ts.append(VFlipTransform(h))
        elif kind == "crop":
            x0, y0 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
            cw, ch = draw(st.integers(1, w - x0)), draw(st.integers(1, h - y0))
            ts.append(CropTransform(x0, y0, cw, ch, orig_w=w, orig_h=h))
            h, w = ch, cw
        elif kind == "pad":
            p = [draw(st.integers(0, 8)) for _ in range(4)]
            ts.append(PadTransform(*p, orig_w=w, orig_h=h))
            h, w = h + p[1] + p[3], w + p[0] + p[2]
        else:
            ts.append(NoOpTransform())
    return TransformList(ts), (h, w)


points = st.lists(st.tuples(st.floats(-50, 80), st.floats(-50, 80)), min_size=1, max_size=10)


@settings(max_examples=200, deadline=None)
@given(tr=transforms_on(), pts=points)
def test_inverse_undoes_coords_boxes_keypoints(tr, pts):
    t, _ = tr
    coords = np.array(pts, dtype=np.float64)
    np.testing.assert_allclose(t.inverse().apply_coords(t.apply_coords(coords)), coords, atol=1e-4)
    ct = torch.tensor(pts, dtype=torch.float64)
    torch.testing.assert_close(t.inverse().apply_coords(t.apply_coords(ct)), ct, atol=1e-4, rtol=0)
    boxes = np.concatenate([coords.min(0), coords.max(0) + 1])[None]
    np.testing.assert_allclose(t.inverse().apply_box(t.apply_box(boxes)), boxes, atol=1e-4)
    kps = torch.cat([ct, torch.full((len(pts), 1), 2.0, dtype=torch.float64)], 1)[None]
    flip = list(range(len(pts)))[::-1]
    back = t.inverse().apply_keypoints(t.apply_keypoints(kps, flip), flip)
    torch.testing.assert_close(back, kps, atol=1e-4, rtol=0)


@settings(max_examples=100, deadline=None)
@given(tr=transforms_on(), data=st.data())
def test_numpy_and_tensor_images_agree_and_sizes_chain(tr, data):
    t, (h, w) = tr
    img = np.random.default_rng(data.draw(st.integers(0, 99))).integers(
        0, 256, (H, W, 3), dtype=np.uint8
    )
    out = t.apply_image(img)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    out_t = t.apply_image(torch.from_numpy(img).permute(2, 0, 1))
    assert out_t.shape == (3, h, w) and out_t.dtype == torch.uint8
    assert np.abs(out_t.permute(1, 2, 0).numpy().astype(int) - out.astype(int)).max() <= 1
    seg = img[..., 0]
    seg_out = t.apply_segmentation(seg)
    assert seg_out.shape == (h, w) and set(np.unique(seg_out)) <= set(np.unique(seg)) | {0}


def test_box_follows_the_image_content():
    """The transformed box is the bounding box of the transformed box-shaped image region."""
    box = np.array([[4.0, 2.0, 16.0, 10.0]])  # on the grid of every resize below
    img = np.zeros((H, W), np.uint8)
    img[2:10, 4:16] = 1
    for t in [
        HFlipTransform(W),
        VFlipTransform(H),
        CropTransform(2, 1, 20, 15, W, H),
        PadTransform(3, 4, 5, 6, W, H),
        ResizeTransform(H, W, 2 * H, 2 * W),
        ResizeTransform(H, W, H // 2, W // 4, interp="nearest"),
        TransformList(
            [PadTransform(1, 2, 3, 4), HFlipTransform(W + 4), ResizeTransform(H + 6, W + 4, 60, 72)]
        ),
    ]:
        out = t.apply_segmentation(img)
        ys, xs = np.nonzero(out)
        np.testing.assert_allclose(
            t.apply_box(box)[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1e-6
        )
        assert isinstance(t.apply_box(Boxes(torch.tensor(box))), Boxes)


def test_flip_crop_pad_images_exactly():
    img = np.arange(H * W * 2, dtype=np.float32).reshape(H, W, 2)
    assert (HFlipTransform(W).apply_image(img) == img[:, ::-1]).all()
    assert (VFlipTransform(H).apply_image(img) == img[::-1]).all()
    crop = CropTransform(4, 5, 10, 7, W, H)
    assert (crop.apply_image(img) == img[5:12, 4:14]).all()
    pad = PadTransform(1, 2, 3, 4, W, H, pad_value=-1, seg_pad_value=255)
    padded = pad.apply_image(img)
    assert padded.shape == (H + 6, W + 4, 2) and (padded[2:-4, 1:-3] == img).all()
    assert (padded[:2] == -1).all() and (padded[:, -3:] == -1).all()
    assert (pad.apply_segmentation(img[..., 0].astype(np.uint8))[0] == 255).all()
    assert (pad.inverse().apply_image(padded) == img).all()
    assert (crop.inverse().apply_image(crop.apply_image(img))[5:12, 4:14] == img[5:12, 4:14]).all()
    t = torch.from_numpy(img).permute(2, 0, 1)[None]  # NCHW
    assert torch.equal(HFlipTransform(W).apply_image(t), t.flip(-1))
    assert torch.equal(HFlipTransform(W).apply_image(HFlipTransform(W).apply_image(t)), t)


def test_resize_images_like_pil():
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    for nh, nw in [(48, 64), (12, 16), (17, 45)]:
        ours = ResizeTransform(H, W, nh, nw).apply_image(img)
        pil = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
        assert np.abs(ours.astype(int) - pil.astype(int)).max() <= 2
        # nearest: the source pixel is the one containing the output pixel's center
        seg = img[..., 0]
        rows = np.floor((np.arange(nh) + 0.5) * H / nh).astype(int)
        cols = np.floor((np.arange(nw) + 0.5) * W / nw).astype(int)
        ours = ResizeTransform(H, W, nh, nw).apply_segmentation(seg)
        assert (ours == seg[rows][:, cols]).all()
    seg = np.random.default_rng(1).integers(0, 5, (H, W))
    assert (
        ResizeTransform(H, W, 2 * H, 2 * W).apply_segmentation(seg) == seg.repeat(2, 0).repeat(2, 1)
    ).all()
    assert (ResizeTransform(H, W, H // 2, W // 2).apply_segmentation(seg) == seg[1::2, 1::2]).all()
    f = np.full((H, W), 0.25, np.float32)
    np.testing.assert_allclose(ResizeTransform(H, W, 7, 50).apply_image(f), 0.25, rtol=1e-6)
    b = torch.rand(2, H, W) > 0.5
    assert ResizeTransform(H, W, 5, 6).apply_image(b).dtype == torch.bool


@pytest.mark.parametrize("seed", range(3))
def test_crop_clips_polygons_like_shapely(seed):
    rng = np.random.default_rng(seed)
    crop = CropTransform(6, 4, 15, 12, W, H)
    window = shapely_box(6, 4, 21, 16)
    for _ in range(20):
        p = star(rng, rng.uniform(0, W), rng.uniform(0, H), rng.uniform(2, 15), rng.integers(3, 10))
        out = crop.apply_polygons([p])
        inter = Polygon(p).intersection(window)
        assert sum(Polygon(q).area for q in out) == pytest.approx(inter.area, abs=1e-6)
        if out:
            assert out[0].min() >= -1e-9 and out[0][:, 0].max() <= 15 + 1e-9
            # rasterising the clipped polygon = cropping the rasterised polygon
            np.testing.assert_array_equal(
                polygons_to_bitmask([q.reshape(-1) for q in out], 12, 15),
                polygons_to_bitmask([p.reshape(-1)], H, W)[4:16, 6:21],
            )
        else:
            assert inter.area == 0
    assert clip_polygon(np.array([[0, 0], [1, 0], [1, 1.0]]), 5, 5, 6, 6).shape == (0, 2)


def test_polygons_and_bitmasks_stay_consistent():
    rng = np.random.default_rng(7)
    polys = [[star(rng, 12, 10, 8, 7).reshape(-1)], [star(rng, 20, 15, 6, 5).reshape(-1)]]
    pm = PolygonMasks(polys)
    bm = BitMasks.from_polygon_masks(pm, H, W)
    for t, (h, w) in [
        (HFlipTransform(W), (H, W)),
        (VFlipTransform(H), (H, W)),
        (CropTransform(3, 2, 20, 18, W, H), (18, 20)),
        (PadTransform(2, 3, 4, 5), (H + 8, W + 6)),
    ]:
        moved_polys = t.apply_polygons(pm)
        assert isinstance(moved_polys, PolygonMasks) and len(moved_polys) == 2
        moved_bits = t.apply_bitmasks(bm)
        assert isinstance(moved_bits, BitMasks) and moved_bits.image_size == (h, w)
        assert torch.equal(BitMasks.from_polygon_masks(moved_polys, h, w).tensor, moved_bits.tensor)
        np.testing.assert_array_equal(
            t.apply_bitmasks(bm.tensor.numpy()), moved_bits.tensor.numpy()
        )


def test_rotated_boxes_follow_their_polygons():
    rb = torch.tensor(
        [[10.0, 8, 6, 3, 30], [20, 12, 4, 9, -75], [5, 5, 2, 2, 0]], dtype=torch.float64
    )
    cases = [
        (HFlipTransform(W), lambda p: affinity.scale(p, -1, 1, origin=(W / 2, 0))),
        (VFlipTransform(H), lambda p: affinity.scale(p, 1, -1, origin=(0, H / 2))),
        (CropTransform(2, 3, 20, 15, W, H), lambda p: affinity.translate(p, -2, -3)),
        (PadTransform(2, 3, 1, 1, W, H), lambda p: affinity.translate(p, 2, 3)),
        (ResizeTransform(H, W, 3 * H, 3 * W), lambda p: affinity.scale(p, 3, 3, origin=(0, 0))),
    ]
    for t, geom in cases:
        out = t.apply_rotated_box(RotatedBoxes(rb))
        assert isinstance(out, RotatedBoxes)
        for row, new in zip(rb.tolist(), out.tensor.tolist()):
            assert rotated_polygon(*new).hausdorff_distance(geom(rotated_polygon(*row))) < 1e-9
        back = t.inverse().apply_rotated_box(t.apply_rotated_box(rb.numpy()))
        assert isinstance(back, np.ndarray)
        np.testing.assert_allclose(back, rb.numpy(), atol=1e-9)


def test_keypoints_flip_indices():
    kps = torch.tensor([[[4.0, 5, 2], [10, 6, 1], [0, 0, 0]]])
    flip = [1, 0, 2]
    out = HFlipTransform(W).apply_keypoints(Keypoints(kps), flip)
    assert isinstance(out, Keypoints)
    assert out.tensor.tolist() == [[[W - 10.0, 6, 1], [W - 4.0, 5, 2], [0, 0, 0]]]
    out = TransformList(
        [HFlipTransform(W), VFlipTransform(H), PadTransform(1, 1, 0, 0)]
    ).apply_keypoints(kps)
    assert out.tolist() == [
        [[W - 3.0, H - 4.0, 2], [W - 9.0, H - 5.0, 1], [0, 0, 0]]
    ]  # 2 mirrors: no swap
    out = PadTransform(1, 1, 0, 0).apply_keypoints(kps.numpy())
    assert isinstance(out, np.ndarray) and out[0, 2].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="flip_indices"):
        HFlipTransform(W).apply_keypoints(kps)
    with pytest.raises(ValueError, match="flip_indices"):
        VFlipTransform(H).apply_keypoints(kps, [0, 1])
    with pytest.raises(ValueError, match=r"keypoints: expected shape \(N, K, 3\)"):
        HFlipTransform(W).apply_keypoints(kps[0], flip)


def test_transform_list_composition():
    a, b = ResizeTransform(H, W, 2 * H, 2 * W), HFlipTransform(2 * W)
    t = a + b
    assert isinstance(t, TransformList) and len(t) == 2 and t[1] is b
    t2 = t + PadTransform(1, 1, 1, 1, 2 * W, 2 * H)
    assert len(t2) == 3 and len(TransformList([t, t2])) == 5
    assert t.inverse() == TransformList([b, a.inverse()])
    assert t.reflections == 1 and t2.inverse().reflections == 1
    coords = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(t.apply_coords(coords), [[2 * W - 2.0, 4.0]])
    np.testing.assert_allclose(TransformList([]).apply_coords(coords), coords)
    assert "ResizeTransform" in repr(t)


def test_bad_arguments():
    with pytest.raises(ValueError, match="new_w: expected an int >= 1, got 0"):
        ResizeTransform(4, 4, 4, 0)
    with pytest.raises(TypeError, match="h: expected an int, got float"):
        ResizeTransform(4.0, 4, 4, 4)
    with pytest.raises(ValueError, match="interp"):
        ResizeTransform(4, 4, 4, 4, interp="lanczos")
    with pytest.raises(ValueError, match=r"img: expected an image of size \(4, 4\), got \(5, 4\)"):
        ResizeTransform(4, 4, 8, 8).apply_image(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="x0"):
        CropTransform(-1, 0, 2, 2)
    with pytest.raises(ValueError, match="orig_w"):
        CropTransform(3, 0, 2, 2, orig_w=4, orig_h=4)
    with pytest.raises(ValueError, match="needs orig_w and orig_h"):
        CropTransform(0, 0, 2, 2).inverse()
    with pytest.raises(ValueError, match="needs orig_w and orig_h"):
        PadTransform(1, 1, 1, 1).inverse()
    with pytest.raises(ValueError, match=r"coords: expected shape \(N, 2\)"):
        HFlipTransform(4).apply_coords(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"box: expected shape \(N, 4\)"):
        HFlipTransform(4).apply_box(np.zeros((3, 5)))
    with pytest.raises(TypeError, match="apply_rotated_box"):
        HFlipTransform(4).apply_box(RotatedBoxes(torch.zeros(1, 5)))
    with pytest.raises(ValueError, match=r"rotated_boxes: expected shape \(N, 5\)"):
        HFlipTransform(4).apply_rotated_box(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="img"):
        HFlipTransform(4).apply_image([[1, 2]])
    with pytest.raises(TypeError, match=r"transforms\[1\]"):
        TransformList([NoOpTransform(), "flip"])
    with pytest.raises(TypeError, match="polygons"):
        HFlipTransform(4).apply_polygons(np.zeros((3, 2)))
    assert shapely.is_valid(shapely_box(0, 0, 1, 1))
