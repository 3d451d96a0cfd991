import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_layers.encoders import (
    BatchBoxBloat,
    BatchIntersectDecode2D,
    BatchIntersectEncode2D,
    BatchIoUEncode2D,
    BatchPeakDetection,
)

# non-symmetric proto shapes, odd and even sizes
PROTOS = {
    "L3x3": [[1, 0, 0], [1, 0, 0], [1, 1, 1]],
    "2x3": [[1, 1, 0], [0, 1, 1]],
    "4x2fuzzy": [[0.2, 1], [1, 0.5], [0.7, 0], [1, 1]],
    "box4x4": np.ones((4, 4)).tolist(),
}


def brute_intersection(mask: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """The seed's definition: proto shape element floor((k-1)/2) sits on the pixel; zeros outside."""
    h, w = mask.shape
    kh, kw = proto.shape
    oy, ox = (kh - 1) // 2, (kw - 1) // 2
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            for i in range(kh):
                for j in range(kw):
                    yy, xx = y + i - oy, x + j - ox
                    if 0 <= yy < h and 0 <= xx < w:
                        out[y, x] += mask[yy, xx] * proto[i, j]
    return out


def brute_bloat_decode(enc: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """The seed's decoding: every pixel bloats to the proto shape at its location, weighted by
    its value, then all bloated masks are summed; the proto shape is L1-normalized."""
    h, w = enc.shape
    kh, kw = proto.shape
    oy, ox = (kh - 1) // 2, (kw - 1) // 2
    p = proto / proto.sum()
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            for i in range(kh):
                for j in range(kw):
                    yy, xx = y + i - oy, x + j - ox
                    if 0 <= yy < h and 0 <= xx < w:
                        out[yy, xx] += enc[y, x] * p[i, j]
    return out


def brute_opening(mask: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """Union of all translates of the proto shape's support that lie inside the (binary) mask."""
    h, w = mask.shape
    kh, kw = proto.shape
    support = proto > 0
    out = np.zeros_like(mask, dtype=bool)
    for y in range(h - kh + 1):
        for x in range(w - kw + 1):
            if np.all(mask[y : y + kh, x : x + kw][support] > 0):
                out[y : y + kh, x : x + kw] |= support
    return out


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))[None, None]


@pytest.mark.parametrize("name", PROTOS)
def test_intersection_encoding_matches_definition(name):
    proto = np.array(PROTOS[name])
    mask = np.random.rand(9, 11) * (np.random.rand(9, 11) > 0.3)
    for normalize_by, div in (("none", 1.0), ("proto_shape", proto.sum()), ("target", mask.sum())):
        enc = BatchIntersectEncode2D(proto_shape=proto, normalize_by=normalize_by)
        torch.testing.assert_close(
            enc(_t(mask))[0, 0],
            torch.as_tensor(brute_intersection(mask, proto) / div),
            atol=1e-6,
            rtol=1e-5,
        )


def test_intersection_of_full_mask_with_box_is_one_inside():
    enc = BatchIntersectEncode2D(kernel_size=(3, 4))
    out = enc(torch.ones(2, 1, 8, 10))
    assert out.shape == (2, 1, 8, 10)
    # pixels whose box lies inside the image: rows 1..6, cols 1..7 (the box hangs right by 2)
    torch.testing.assert_close(out[:, :, 1:7, 1:8], torch.ones(2, 1, 6, 7))
    assert torch.all(out[:, :, 0] < 1) and torch.all(out[:, :, :, -2:] < 1)
    torch.testing.assert_close(out[0, 0, 0, 0], torch.tensor(6 / 12))  # 2 x 3 of 3 x 4 inside


def test_intersection_target_normalization_empty_target_is_zero():
    enc = BatchIntersectEncode2D(kernel_size=(3, 3), normalize_by="target")
    masks = torch.zeros(2, 1, 5, 5)
    masks[1, 0, 2, 2] = 1
    out = enc(masks)
    assert torch.equal(out[0], torch.zeros(1, 5, 5))
    torch.testing.assert_close(out[1, 0, 1:4, 1:4], torch.ones(3, 3))


@pytest.mark.parametrize("name", PROTOS)
def test_iou_encoding_matches_definition(name):
    proto = np.array(PROTOS[name])
    mask = np.random.rand(7, 8) * (np.random.rand(7, 8) > 0.4)
    inter = brute_intersection(mask, proto)
    ref = (inter + 1e-7) / (mask.sum() + proto.sum() - inter + 1e-7)
    out = BatchIoUEncode2D(proto_shape=proto)(_t(mask))[0, 0]
    torch.testing.assert_close(out, torch.as_tensor(ref), atol=1e-6, rtol=1e-5)
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


@pytest.mark.parametrize("name", PROTOS)
def test_iou_is_one_where_the_mask_is_the_proto_shape(name):
    proto = np.array(PROTOS[name])
    kh, kw = proto.shape
    mask = np.zeros((10, 12))
    mask[3 : 3 + kh, 4 : 4 + kw] = proto
    out = BatchIoUEncode2D(proto_shape=proto)(_t(mask))[0, 0]
    centre = (3 + (kh - 1) // 2, 4 + (kw - 1) // 2)
    assert out[centre].item() == pytest.approx(1.0 if name != "4x2fuzzy" else out.max().item())
    assert int(out.argmax()) == centre[0] * 12 + centre[1]


@pytest.mark.parametrize("name", PROTOS)
def test_decoder_kernel_is_rotated_normalized_proto(name):
    proto = np.array(PROTOS[name], dtype=np.float64)
    dec = BatchIntersectDecode2D(proto_shape=proto)
    np.testing.assert_allclose(
        dec.decoding_proto_shape, np.rot90(proto, 2) / np.abs(proto).sum(), rtol=1e-6
    )
    np.testing.assert_allclose(dec.proto_shape, proto / proto.sum(), rtol=1e-6)
    assert dec.kernel_size == proto.shape
    assert dec.decoding_proto_shape.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name", PROTOS)
def test_decoding_matches_bloat_definition(name):
    proto = np.array(PROTOS[name])
    enc = np.random.rand(8, 9)
    out = BatchIntersectDecode2D(proto_shape=proto)(_t(enc))[0, 0]
    torch.testing.assert_close(
        out, torch.as_tensor(brute_bloat_decode(enc, proto)), atol=1e-6, rtol=1e-5
    )


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(PROTOS)),
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(4, 14),
    w=st.integers(4, 14),
    density=st.floats(0.3, 0.95),
)
def test_thresholded_encoding_decodes_to_opening(name, seed, h, w, density):
    """Exact recovery bound: decode(encoding == 1) * area = morphological opening of the mask.

    The recovered mask is always inside the original and equals it exactly when the mask
    is a union of translates of the proto shape.
    """
    proto = (np.array(PROTOS[name]) > 0).astype(np.float64)
    if proto.shape[0] > h or proto.shape[1] > w:
        return
    rng = np.random.default_rng(seed)
    mask = (rng.random((h, w)) < density).astype(np.float64)
    area = proto.sum()
    # intersection encoding (normalized by the proto shape) is 1 exactly where it fits
    fits = BatchIntersectEncode2D(proto_shape=proto)(_t(mask)) > 1 - 1e-6
    # the IoU encoding is increasing in the intersection: equal to |P| / |M| where it fits
    iou = BatchIoUEncode2D(proto_shape=proto, smooth=0)(_t(mask))
    if mask.sum() > 0:
        assert torch.equal(iou > area / mask.sum() - 1e-6, fits)
    recovered = BatchIntersectDecode2D(proto_shape=proto)(fits.double()) * area > 0.5
    opening = brute_opening(mask, proto)
    assert np.array_equal(recovered[0, 0].numpy(), opening)
    assert not np.any(opening & (mask == 0))


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(PROTOS)), seed=st.integers(0, 2**31 - 1))
def test_soft_decoding_error_confined_to_boundary_band(name, seed):
    """Decoding the proto-normalized intersection encoding gives back the mask wherever the
    mask is constant on the window of pixels within kernel reach (the (2k-1)-window); the
    error is at most 1 and confined to a band of width k - 1 along the mask's outline."""
    proto = np.array(PROTOS[name])
    kh, kw = proto.shape
    rng = np.random.default_rng(seed)
    h, w = 16, 18
    mask = np.zeros((h, w))
    for _ in range(2):  # two random rectangles
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        mask[y0 : y0 + rng.integers(2, 10), x0 : x0 + rng.integers(2, 10)] = 1
    enc = BatchIntersectEncode2D(proto_shape=proto)(_t(mask))
    dec = BatchIntersectDecode2D(proto_shape=proto)(enc)[0, 0].numpy()
    padded = np.pad(mask, ((kh, kh), (kw, kw)))  # zeros outside the image
    assert np.all(np.abs(dec - mask) <= 1 + 1e-6)
    for y in range(h):
        for x in range(w):
            win = padded[y + 1 : y + 2 * kh, x + 1 : x + 2 * kw]
            if win.min() == win.max():
                assert dec[y, x] == pytest.approx(mask[y, x], abs=1e-6)


def test_box_bloat_and_peak_detection():
    masks = torch.zeros(1, 1, 7, 8)
    masks[0, 0, 2, 3] = 0.8
    masks[0, 0, 3, 4] = 0.5
    masks[0, 0, 6, 7] = 0.3
    bloated = BatchBoxBloat((3, 3))(masks)[0, 0]
    expected = torch.zeros(7, 8)
    expected[5:7, 6:8] = 0.3
    expected[2:5, 3:6] = 0.5
    expected[1:4, 2:5] = 0.8  # the larger value is up front
    torch.testing.assert_close(bloated, expected)
    peaks = BatchPeakDetection((3, 3))(masks)[0, 0]
    expected_peaks = torch.zeros(7, 8)
    expected_peaks[2, 3] = 0.8
    expected_peaks[6, 7] = 0.3  # 0.5 is next to 0.8: not a peak
    torch.testing.assert_close(peaks, expected_peaks)
    # even window: hangs to the bottom/right like the encoders
    bloated = BatchBoxBloat((2, 2))(masks)[0, 0]
    assert bloated[2, 3] == 0.8 and bloated[1, 2] == 0.8 and bloated[3, 4] == 0.5


def test_settings_repr_and_reconstruction():
    enc = BatchIntersectEncode2D(kernel_size=(3, 5), normalize_by="target")
    assert enc.settings == {"kernel_size": (3, 5), "normalize_by": "target"}
    assert repr(enc) == "BatchIntersectEncode2D(kernel_size=(3, 5), normalize_by='target')"
    proto = PROTOS["2x3"]
    iou = BatchIoUEncode2D(proto_shape=proto, smooth=1e-3)
    assert iou.settings == {"proto_shape": proto, "smooth": 1e-3}
    assert (
        repr(iou)
        == "BatchIoUEncode2D(proto_shape=[[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], smooth=0.001)"
    )
    assert repr(BatchBoxBloat(3)) == "BatchBoxBloat(kernel_size=(3, 3))"
    dec = BatchIntersectDecode2D(proto_shape=PROTOS["L3x3"])
    again = BatchIntersectDecode2D(**dec.settings)
    np.testing.assert_allclose(again.decoding_proto_shape, dec.decoding_proto_shape, rtol=1e-6)
    assert not any(p.requires_grad for m in (enc, iou, dec) for p in m.parameters())
    assert not enc.training


def test_dtypes_and_devices():
    enc = BatchIoUEncode2D(kernel_size=(3, 3))
    masks = torch.rand(2, 1, 6, 6) > 0.5
    out = enc(masks)
    assert out.dtype == torch.float32
    torch.testing.assert_close(enc(masks.double()), out.double(), atol=1e-6, rtol=1e-5)


def test_mask_validation_errors():
    enc = BatchIntersectEncode2D(kernel_size=(3, 4))
    with pytest.raises(ValueError, match=r"shape \(batch_size, 1, height, width\)"):
        enc(torch.zeros(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"shape \(batch_size, 1, height, width\)"):
        enc(torch.zeros(5, 5))
    with pytest.raises(ValueError, match="smaller than the kernel size"):
        enc(torch.zeros(1, 1, 5, 3))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        enc(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="smaller than the kernel size"):
        BatchPeakDetection((4, 4))(torch.zeros(1, 1, 3, 9))


def test_constructor_errors():
    with pytest.raises(ValueError, match="either kernel_size or proto_shape"):
        BatchIoUEncode2D()
    with pytest.raises(ValueError, match="normalize_by"):
        BatchIntersectEncode2D(kernel_size=3, normalize_by="area")
    with pytest.raises(ValueError, match="2-D"):
        BatchIntersectDecode2D(proto_shape=[1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        BatchIntersectDecode2D(proto_shape=[[1, -1], [0, 1]])
    with pytest.raises(ValueError, match="positive sum"):
        BatchIoUEncode2D(proto_shape=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="positive ints"):
        BatchBoxBloat((0, 3))
