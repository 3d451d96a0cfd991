import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_layers import paste_mask_in_image_old, paste_masks_in_image, paste_masks_in_image_fast
from vt_structures import Boxes


def reference_soft_paste(
    masks: np.ndarray, boxes: np.ndarray, img_h: int, img_w: int
) -> np.ndarray:
    """Bilinear value of each mask at every image pixel centre, zero outside the mask (float64).

    The mask exactly covers its box: mask cell (i, j) has its centre at
    (y0 + (i + 0.5) * h / Hm, x0 + (j + 0.5) * w / Wm).
    """
    n, hm, wm = masks.shape
    out = np.zeros((n, img_h, img_w))
    cy = np.arange(img_h) + 0.5
    cx = np.arange(img_w) + 0.5
    for k in range(n):
        x0, y0, x1, y1 = boxes[k].astype(np.float64)
        v = (cy - y0) / (y1 - y0) * hm - 0.5  # mask row coordinate of each image row
        u = (cx - x0) / (x1 - x0) * wm - 0.5
        padded = np.pad(masks[k].astype(np.float64), 1)  # zeros outside the mask
        v0, u0 = np.floor(v), np.floor(u)
        fv, fu = v - v0, u - u0
        for dv, wv in ((0, 1 - fv), (1, fv)):
            for du, wu in ((0, 1 - fu), (1, fu)):
                rows = np.clip(v0 + dv + 1, 0, hm + 1).astype(int)
                cols = np.clip(u0 + du + 1, 0, wm + 1).astype(int)
                # indices clipped onto the zero border are outside the mask
                inside_r = (v0 + dv >= -1) & (v0 + dv <= hm)
                inside_c = (u0 + du >= -1) & (u0 + du <= wm)
                vals = padded[rows][:, cols] * (inside_r[:, None] & inside_c[None, :])
                out[k] += wv[:, None] * wu[None, :] * vals
    return out


def _random_case(n, img_h, img_w, mask_size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, mask_size, mask_size, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([img_w, img_h]) * 1.1 - 10
    wh = torch.rand(n, 2, generator=g) * torch.tensor([img_w, img_h]) * 0.6 + 0.3
    boxes = torch.cat([xy, xy + wh], 1)
    return masks, boxes


def _assert_binary_matches(out, soft_ref, threshold, tol=1e-4):
    expected = soft_ref >= threshold
    differ = out.numpy() != expected
    # float32 vs float64: only values within tol of the threshold may flip
    assert not np.any(differ & (np.abs(soft_ref - threshold) > tol)), int(differ.sum())


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.0])
def test_paste_matches_reference(threshold):
    masks, boxes = _random_case(12, 60, 80)
    boxes[0] = torch.tensor([10.0, 5.0, 10.4, 5.3])  # smaller than a pixel
    boxes[1] = torch.tensor([-30.0, -20.0, -5.0, -2.0])  # outside the image
    boxes[2] = torch.tensor([0.0, 0.0, 80.0, 60.0])  # the whole image
    out = paste_masks_in_image(masks, boxes, (60, 80), threshold=threshold)
    assert out.dtype == torch.bool and out.shape == (12, 60, 80)
    ref = reference_soft_paste(masks.numpy(), boxes.numpy(), 60, 80)
    if threshold > 0:
        _assert_binary_matches(out, ref, threshold)
    else:  # zero threshold: every pixel within a pixel of the box is set (bilinear support)
        _assert_binary_matches(out, ref, threshold, tol=0)
    assert not out[1].any()


@settings(max_examples=40, deadline=None)
@given(
    x0=st.floats(-30, 60),
    y0=st.floats(-30, 40),
    w=st.floats(0.05, 70),
    h=st.floats(0.05, 50),
    m=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_paste_property_against_reference(x0, y0, w, h, m, seed):
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(1, m, m, generator=g)
    boxes = torch.tensor([[x0, y0, x0 + w, y0 + h]], dtype=torch.float32)
    out = paste_masks_in_image(masks, boxes, (30, 40))
    ref = reference_soft_paste(masks.numpy(), boxes.double().numpy(), 30, 40)
    _assert_binary_matches(out, ref, 0.5, tol=1e-3)


def test_paste_soft_values_uint8():
    masks, boxes = _random_case(5, 40, 30)
    out = paste_masks_in_image(masks, boxes, (40, 30), threshold=-1)
    assert out.dtype == torch.uint8
    ref = reference_soft_paste(masks.numpy(), boxes.numpy(), 40, 30) * 255
    # truncation of float32 vs float64 products: at most one level apart
    assert np.abs(out.numpy().astype(np.float64) - np.floor(ref)).max() <= 1


def test_paste_constant_mask_fills_its_box():
    masks = torch.ones(1, 28, 28)
    boxes = torch.tensor([[10.0, 20.0, 30.0, 25.0]])
    out = paste_masks_in_image(masks, boxes, (40, 50))
    expected = torch.zeros(40, 50, dtype=torch.bool)
    expected[20:25, 10:30] = True  # pixel centres inside the box, +- half a mask cell
    assert torch.equal(out[0], expected)


def test_paste_boxes_object_empty_and_errors():
    masks, boxes = _random_case(3, 20, 20)
    assert torch.equal(
        paste_masks_in_image(masks, Boxes(boxes), (20, 20)),
        paste_masks_in_image(masks, boxes, (20, 20)),
    )
    empty = paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (7, 9))
    assert empty.shape == (0, 7, 9) and empty.dtype == torch.bool
    with pytest.raises(ValueError, match="masks"):
        paste_masks_in_image(torch.zeros(3, 1, 28, 28), boxes, (20, 20))
    with pytest.raises(ValueError, match="boxes"):
        paste_masks_in_image(masks, boxes[:2], (20, 20))
    with pytest.raises(ValueError, match="boxes"):
        paste_masks_in_image(masks, torch.zeros(3, 5), (20, 20))


def test_paste_fast_errors():
    masks, boxes = _random_case(3, 20, 20)
    with pytest.raises(ValueError, match=r"masks must have shape \(N, Hmask, Wmask\)"):
        paste_masks_in_image_fast(torch.zeros(3, 1, 28, 28), boxes, (20, 20))
    with pytest.raises(ValueError, match="got 3 masks but 2 boxes"):
        paste_masks_in_image_fast(masks, boxes[:2], (20, 20))
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        paste_masks_in_image_fast(masks, torch.zeros(3, 5), (20, 20))
    with pytest.raises(TypeError, match="boxes must be"):
        paste_masks_in_image_fast(masks, [[0, 0, 1, 1]] * 3, (20, 20))
    with pytest.raises(ValueError, match="image_shape"):
        paste_masks_in_image_fast(masks, boxes, (20, 20, 3))
    assert torch.equal(
        paste_masks_in_image_fast(masks, Boxes(boxes), (20, 20)),
        paste_masks_in_image_fast(masks, boxes, (20, 20)),
    )


def test_paste_fast_exact_on_integer_boxes():
    mask = (torch.rand(6, 9) > 0.5).float()
    box = torch.tensor([3.0, 2.0, 11.0, 7.0])  # 9 x 6 pixel samples: no resampling
    out = paste_mask_in_image_old(mask, box, 12, 15)
    expected = torch.zeros(12, 15, dtype=torch.bool)
    expected[2:8, 3:12] = mask > 0.5
    assert torch.equal(out, expected)
    # clipped at the image border
    out = paste_mask_in_image_old(mask, torch.tensor([-2.0, -1.0, 6.0, 4.0]), 12, 15)
    assert torch.equal(out[0:5, 0:7], mask[1:, 2:] > 0.5) and not out[5:].any()
    soft = paste_mask_in_image_old(mask, box, 12, 15, threshold=-1)
    assert soft.dtype == torch.uint8 and soft.max() == 255


def test_paste_fast_agrees_with_accurate_on_large_boxes():
    # smooth masks (a disc) on boxes of 40+ pixels: differences only along the outline
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    disc = (xx**2 + yy**2 < 0.6).float()
    masks = disc.expand(4, 28, 28).clone()
    boxes = torch.tensor(
        [
            [5.3, 7.1, 60.2, 52.8],
            [30.0, 10.5, 90.7, 70.1],
            [0.0, 0.0, 45.5, 45.5],
            [50.0, 40.0, 99.0, 79.0],
        ]
    )
    fast = paste_masks_in_image_fast(masks, boxes, (80, 100))
    accurate = paste_masks_in_image(masks, boxes, (80, 100))
    inter = (fast & accurate).sum((1, 2)).float()
    union = (fast | accurate).sum((1, 2)).float()
    assert torch.all(inter / union > 0.93)
    assert paste_masks_in_image_fast(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 6)).shape == (
        0,
        5,
        6,
    )


@pytest.mark.cuda
def test_paste_cuda_equals_cpu():
    masks, boxes = _random_case(30, 120, 160)
    cpu = paste_masks_in_image(masks, boxes, (120, 160))
    gpu = paste_masks_in_image(masks.cuda(), boxes.cuda(), (120, 160))
    assert gpu.device.type == "cuda"
    ref = reference_soft_paste(masks.numpy(), boxes.numpy(), 120, 160)
    _assert_binary_matches(gpu.cpu(), ref, 0.5)
    assert (cpu != gpu.cpu()).sum() <= 2  # float rounding at the threshold only
