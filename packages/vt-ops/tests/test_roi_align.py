import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vt_ops

# the oracle; torch builds without a matching torchvision skip these tests
torchvision = pytest.importorskip("torchvision")


def random_rois(k, n, height, width, scale=1.0, dtype=torch.float32, generator=None):
    """K x 5 (batch, x1, y1, x2, y2) boxes in image coordinates, some crossing the border."""
    size = torch.tensor([width, height], dtype=torch.float64) / scale
    xy = (torch.rand(k, 2, generator=generator, dtype=torch.float64) * 1.2 - 0.1) * size
    wh = torch.rand(k, 2, generator=generator, dtype=torch.float64) * size / 2
    batch = torch.randint(0, n, (k, 1), generator=generator).to(torch.float64)
    return torch.cat([batch, xy, xy + wh], dim=1).to(dtype)


def xyxy_to_rotated(rois):
    """K x 5 (batch, x1, y1, x2, y2) -> K x 6 (batch, cx, cy, w, h, angle=0)."""
    b, x1, y1, x2, y2 = rois.unbind(1)
    return torch.stack([b, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0 * b], dim=1)


def bilinear_reference(img, y, x):
    """img (C, H, W) at continuous (y, x): zero beyond one pixel outside, clamped at the edge."""
    _, height, width = img.shape
    if y < -1 or y > height or x < -1 or x > width:
        return img.new_zeros(img.shape[0])
    y, x = min(max(y, 0.0), height - 1.0), min(max(x, 0.0), width - 1.0)
    y0, x0 = math.floor(y), math.floor(x)
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    ly, lx = y - y0, x - x0
    return (
        img[:, y0, x0] * (1 - ly) * (1 - lx)
        + img[:, y0, x1] * (1 - ly) * lx
        + img[:, y1, x0] * ly * (1 - lx)
        + img[:, y1, x1] * ly * lx
    )


def roi_align_rotated_reference(x, rois, output_size, spatial_scale, sampling_ratio):
    """Slow, obviously-correct ROIAlignRotated (differentiable through torch indexing).

    The box frame has its width axis along (cos a, -sin a) and its height axis
    along (sin a, cos a) in (x, y) image coordinates: a counter-clockwise turn
    on screen, y pointing down. Pixel i is sampled at i + 0.5.
    """
    ph_count, pw_count = output_size
    out = []
    for b, cx, cy, w, h, angle in rois.tolist():
        cx, cy = cx * spatial_scale - 0.5, cy * spatial_scale - 0.5
        w, h = w * spatial_scale, h * spatial_scale
        a = math.radians(angle)
        width_axis, height_axis = (math.cos(a), -math.sin(a)), (math.sin(a), math.cos(a))
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(h / ph_count)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(w / pw_count)
        bins = []
        for ph in range(ph_count):
            for pw in range(pw_count):
                acc = x.new_zeros(x.shape[1])
                for iy in range(gh):
                    for ix in range(gw):
                        u = -w / 2 + (pw + (ix + 0.5) / gw) * w / pw_count
                        v = -h / 2 + (ph + (iy + 0.5) / gh) * h / ph_count
                        px = cx + u * width_axis[0] + v * height_axis[0]
                        py = cy + u * width_axis[1] + v * height_axis[1]
                        acc = acc + bilinear_reference(x[int(b)], py, px)
                bins.append(acc / max(gh * gw, 1))
        out.append(torch.stack(bins, dim=1).reshape(x.shape[1], ph_count, pw_count))
    if not out:
        return x.new_zeros((0, x.shape[1], ph_count, pw_count))
    return torch.stack(out)


# --- roi_align against torchvision ---------------------------------------------------------


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.25])
def test_roi_align_matches_torchvision(aligned, sampling_ratio, spatial_scale):
    x = torch.randn(2, 5, 24, 31)
    rois = random_rois(40, 2, 24, 31, spatial_scale)
    args = ((7, 6), spatial_scale, sampling_ratio, aligned)
    xg = x.clone().requires_grad_()
    ours = vt_ops.roi_align(xg, rois, *args)
    xr = x.clone().requires_grad_()
    ref = torchvision.ops.roi_align(xr, rois, *args)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(ref)
    ours.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(xg.grad, xr.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_float64_matches_torchvision(aligned):
    x = torch.randn(3, 4, 17, 13, dtype=torch.float64)
    rois = random_rois(30, 3, 17, 13, dtype=torch.float64)
    torch.testing.assert_close(
        vt_ops.roi_align(x, rois, 5, 1.0, 0, aligned),
        torchvision.ops.roi_align(x, rois, 5, 1.0, 0, aligned),
    )


def test_box_list_equals_batch_index_column():
    x = torch.randn(3, 4, 20, 20)
    per_image = [random_rois(n, 1, 20, 20)[:, 1:] for n in (3, 0, 5)]
    rois = torch.cat(
        [torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(per_image)]
    )
    torch.testing.assert_close(
        vt_ops.roi_align(x, per_image, 4, 1.0, 2, True),
        vt_ops.roi_align(x, rois, 4, 1.0, 2, True),
    )
    torch.testing.assert_close(
        vt_ops.roi_align(x, per_image, 4), torchvision.ops.roi_align(x, per_image, 4)
    )


def test_numpy_in_numpy_out():
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    rois = random_rois(10, 2, 16, 16, dtype=torch.float64)
    ours = vt_ops.roi_align(x.numpy(), rois.numpy(), 3, 0.5, 2, True)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, torchvision.ops.roi_align(x, rois, 3, 0.5, 2, True).numpy())
    per_image = [rois[rois[:, 0] == i, 1:].numpy() for i in range(2)]
    assert vt_ops.roi_align(x.numpy(), per_image, 3).shape == (10, 3, 3, 3)


# --- hand-checkable cases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aligned", "expected"),
    [
        # bin centres at 1.5 and 2.5 along each axis of the ramp 5 * y + x
        (False, [[9.0, 10.0], [14.0, 15.0]]),
        # the half-pixel shift moves them to 1.0 and 2.0
        (True, [[6.0, 7.0], [11.0, 12.0]]),
    ],
)
def test_ramp_image_textbook_values(aligned, expected):
    ramp = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)  # value 5 * y + x
    boxes = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]])
    out = vt_ops.roi_align(ramp, boxes, 2, 1.0, 2, aligned)
    torch.testing.assert_close(out[0, 0], torch.tensor(expected))


@pytest.mark.parametrize("sampling_ratio", [2, 4])
def test_twice_resized_image_gives_same_result(sampling_ratio):
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(40.0), indexing="ij")
    image = torch.stack([3 * ys + 2 * xs + 1, ys - 0.5 * xs])[None]  # linear: resizing is exact
    big = torch.nn.functional.interpolate(image, scale_factor=2, mode="bilinear")
    boxes = torch.tensor([[0, 4.0, 5.0, 20.5, 17.25], [0, 10.0, 3.0, 31.0, 28.0]])
    small_out = vt_ops.roi_align(image, boxes, 7, 1.0, sampling_ratio, True)
    big_out = vt_ops.roi_align(
        big, boxes * torch.tensor([1, 2, 2, 2, 2]), 7, 1.0, sampling_ratio, True
    )
    torch.testing.assert_close(big_out, small_out, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        vt_ops.roi_align(big, boxes, 7, 2.0, sampling_ratio, True), small_out, atol=1e-4, rtol=0
    )


def test_empty_boxes_give_zeros_and_zero_gradient():
    x = torch.randn(1, 3, 10, 10, requires_grad=True)
    boxes = torch.tensor([[0, 4.0, 4.0, 4.0, 4.0], [0, 50.0, 50.0, 60.0, 60.0]])  # empty; outside
    out = vt_ops.roi_align(x, boxes, 3, 1.0, 0, True)
    assert torch.equal(out, torch.zeros(2, 3, 3, 3))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("fn", ["roi_align", "roi_pool"])
def test_no_rois_give_empty_output(fn):
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    out = getattr(vt_ops, fn)(x, torch.zeros(0, 5), (4, 5))
    assert out.shape == (0, 3, 4, 5)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    rotated = vt_ops.roi_align_rotated(x.detach().numpy(), np.zeros((0, 6), np.float32), 2)
    assert rotated.shape == (0, 3, 2, 2)
    assert vt_ops.roi_align(x.detach(), [torch.zeros(0, 4), torch.zeros(0, 4)], 2).shape == (
        0,
        3,
        2,
        2,
    )


# --- dtypes, layouts, torch integration ----------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float32(dtype):
    x = torch.randn(1, 8, 20, 20).to(dtype)
    rois = random_rois(12, 1, 20, 20).to(dtype)
    ours = vt_ops.roi_align(x, rois, 7, 1.0, 2, True)
    assert ours.dtype == dtype
    expected = torchvision.ops.roi_align(x.float(), rois.float(), 7, 1.0, 2, True).to(dtype)
    torch.testing.assert_close(ours, expected)
    xg = x.clone().requires_grad_()
    vt_ops.roi_align(xg, rois, 7, 1.0, 2, True).float().sum().backward()
    assert xg.grad.dtype == dtype


def test_float32_boxes_with_half_input():
    x = torch.randn(1, 4, 12, 12).half()
    rois = random_rois(5, 1, 12, 12)
    torch.testing.assert_close(
        vt_ops.roi_align(x, rois, 3, 1.0, 2, True),
        torchvision.ops.roi_align(x.float(), rois, 3, 1.0, 2, True).half(),
    )
    assert vt_ops.roi_pool(x, rois, 3).dtype == torch.float16


def test_channels_last_input():
    x = torch.randn(2, 6, 15, 18)
    rois = random_rois(9, 2, 15, 18)
    xl = x.to(memory_format=torch.channels_last).requires_grad_()
    out = vt_ops.roi_align(xl, rois, 4, 1.0, 2, True)
    torch.testing.assert_close(out, torchvision.ops.roi_align(x, rois, 4, 1.0, 2, True))
    out.sum().backward()
    assert xl.grad.shape == x.shape


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_gradcheck_float64(aligned, sampling_ratio):
    x = torch.randn(2, 2, 7, 8, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.3, 1.2, 5.1, 6.4], [1, 2.0, 0.5, 7.9, 4.1], [1, -1.5, 4.0, 3.0, 9.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(
        lambda t: vt_ops.roi_align(t, rois, (3, 2), 1.0, sampling_ratio, aligned), (x,)
    )
    out = vt_ops.roi_align(x, rois, 2, 1.0, sampling_ratio, aligned)
    out.sum().backward()
    assert rois.grad is None  # boxes get no gradient


def test_cpu_backward_is_deterministic_across_thread_counts():
    x = torch.randn(2, 24, 30, 30, requires_grad=True)
    rois = random_rois(200, 2, 30, 30)
    grad = torch.randn(200, 24, 7, 7)
    results = []
    try:
        for threads in (1, 2, 3, 1):
            vt_ops.set_num_threads(threads)
            x.grad = None
            vt_ops.roi_align(x, rois, 7, 1.0, 2, True).backward(grad)
            results.append(x.grad.clone())
    finally:
        vt_ops.set_num_threads(0)
    for r in results[1:]:
        assert torch.equal(r, results[0])


def test_torch_compile_fullgraph_with_backward():
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    boxes = [random_rois(5, 1, 16, 16)[:, 1:], random_rois(3, 1, 16, 16)[:, 1:]]

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(feat, b0, b1):
        return vt_ops.roi_align(feat, [b0, b1], 3, 1.0, 2, True).square().sum()

    loss = f(x, *boxes)
    loss.backward()
    xr = x.detach().clone().requires_grad_()
    torchvision.ops.roi_align(xr, boxes, 3, 1.0, 2, True).square().sum().backward()
    torch.testing.assert_close(
        loss, torchvision.ops.roi_align(x, boxes, 3, 1.0, 2, True).square().sum()
    )
    torch.testing.assert_close(x.grad, xr.grad)


def test_registered_as_torch_custom_ops():
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    rois = random_rois(6, 2, 9, 11, dtype=torch.float64)
    ops = torch.ops.vt_ops
    torch.library.opcheck(
        ops.roi_align.default, (x.requires_grad_(), rois, 1.0, 2, 3, 2, True, False)
    )
    rot = xyxy_to_rotated(rois)
    torch.library.opcheck(ops.roi_align.default, (x, rot, 0.5, 2, 2, 0, True, True))
    torch.library.opcheck(
        ops.roi_align_backward.default,
        (torch.randn(6, 3, 2, 3, dtype=torch.float64), rois, 1.0, [2, 3, 9, 11], 2, True, False),
    )


# --- roi_align_rotated ---------------------------------------------------------------------


@pytest.mark.parametrize("sampling_ratio", [0, 1, 2])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5])
def test_rotated_angle_zero_equals_aligned_roi_align(sampling_ratio, spatial_scale):
    x = torch.randn(2, 4, 21, 19, dtype=torch.float64)
    rois = random_rois(25, 2, 21, 19, spatial_scale, dtype=torch.float64)
    torch.testing.assert_close(
        vt_ops.roi_align_rotated(x, xyxy_to_rotated(rois), 5, spatial_scale, sampling_ratio),
        torchvision.ops.roi_align(x, rois, 5, spatial_scale, sampling_ratio, aligned=True),
    )


@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_rotated_matches_slow_reference(sampling_ratio):
    x = torch.randn(2, 3, 12, 14, dtype=torch.float64)
    k = 8
    rois = torch.cat(
        [
            torch.randint(0, 2, (k, 1)).double(),
            torch.rand(k, 2, dtype=torch.float64) * torch.tensor([14.0, 12.0]),
            torch.rand(k, 2, dtype=torch.float64) * 8,
            torch.rand(k, 1, dtype=torch.float64) * 360 - 180,
        ],
        dim=1,
    )
    xg = x.clone().requires_grad_()
    ours = vt_ops.roi_align_rotated(xg, rois, (3, 2), 1.0, sampling_ratio)
    xr = x.clone().requires_grad_()
    ref = roi_align_rotated_reference(xr, rois, (3, 2), 1.0, sampling_ratio)
    torch.testing.assert_close(ours, ref)
    grad = torch.randn_like(ref)
    ours.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(xg.grad, xr.grad)


def test_rotating_image_by_90_degrees_rotates_the_box():
    # rot90 maps continuous (y, x) of the image to (W - x, y); a box (cx, cy, w, h, a)
    # becomes (cy, W - cx, w, h, a + 90) and samples the same points.
    x = torch.randn(1, 3, 30, 26, dtype=torch.float64)
    width = x.shape[3]
    k = 10
    centres = 10 + torch.rand(k, 2, dtype=torch.float64) * 6
    rois = torch.cat(
        [
            torch.zeros(k, 1, dtype=torch.float64),
            centres,
            2 + torch.rand(k, 2, dtype=torch.float64) * 6,
            torch.rand(k, 1, dtype=torch.float64) * 360,
        ],
        dim=1,
    )
    turned = rois.clone()
    turned[:, 1], turned[:, 2], turned[:, 5] = rois[:, 2], width - rois[:, 1], rois[:, 5] + 90
    out = vt_ops.roi_align_rotated(x, rois, 4, 1.0, 2)
    out_turned = vt_ops.roi_align_rotated(torch.rot90(x, 1, dims=(2, 3)), turned, 4, 1.0, 2)
    torch.testing.assert_close(out_turned, out)


def test_rotated_gradcheck_float64():
    x = torch.randn(1, 2, 8, 9, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 4.0, 4.2, 5.0, 3.1, 30.0], [0, 2.5, 6.0, 4.0, 6.0, -115.0]], dtype=torch.float64
    )
    assert torch.autograd.gradcheck(lambda t: vt_ops.roi_align_rotated(t, rois, 2, 1.0, 2), (x,))
    assert torch.autograd.gradcheck(lambda t: vt_ops.roi_align_rotated(t, rois, 3, 0.7, 0), (x,))


def test_rotated_list_of_boxes():
    x = torch.randn(2, 3, 10, 10)
    boxes = [torch.tensor([[5.0, 5.0, 4.0, 2.0, 45.0]]), torch.tensor([[3.0, 4.0, 2.0, 2.0, 10.0]])]
    rois = torch.tensor([[0, 5.0, 5.0, 4.0, 2.0, 45.0], [1, 3.0, 4.0, 2.0, 2.0, 10.0]])
    torch.testing.assert_close(
        vt_ops.roi_align_rotated(x, boxes, 2, 1.0, 2), vt_ops.roi_align_rotated(x, rois, 2, 1.0, 2)
    )


# --- bad input -----------------------------------------------------------------------------

_X = torch.zeros(2, 3, 8, 8)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: vt_ops.roi_align(_X, torch.zeros(3, 4), 2),
            ValueError,
            r"boxes: expected shape \(\*, 5\)",
        ),
        (lambda: vt_ops.roi_align(_X, torch.zeros(3, 6), 2), ValueError, r"boxes: expected shape"),
        (
            lambda: vt_ops.roi_align(_X, [torch.zeros(3, 5)], 2),
            ValueError,
            r"boxes\[0\]: expected shape",
        ),
        (
            lambda: vt_ops.roi_align_rotated(_X, torch.zeros(3, 5), 2),
            ValueError,
            r"rois: expected shape \(\*, 6\)",
        ),
        (
            lambda: vt_ops.roi_align(_X[0], torch.zeros(3, 5), 2),
            ValueError,
            r"input: expected shape \(N, C, H, W\)",
        ),
        (
            lambda: vt_ops.roi_align(_X, torch.tensor([[2.0, 0, 0, 1, 1]]), 2),
            ValueError,
            "batch index",
        ),
        (
            lambda: vt_ops.roi_align(_X, torch.tensor([[-1.0, 0, 0, 1, 1]]), 2),
            ValueError,
            "batch index",
        ),
        (
            lambda: vt_ops.roi_pool(_X, torch.tensor([[5.0, 0, 0, 1, 1]]), 2),
            ValueError,
            "batch index",
        ),
        (
            lambda: vt_ops.roi_align(_X, torch.tensor([[0, 0, float("nan"), 1, 1]]), 2),
            ValueError,
            "finite",
        ),
        (
            lambda: vt_ops.roi_align(_X, torch.tensor([[0, 0, 0, float("inf"), 1]]), 2),
            ValueError,
            "finite",
        ),
        (
            lambda: vt_ops.roi_align_rotated(_X, torch.tensor([[0, 4.0, 4, -1, 1, 0]]), 2),
            ValueError,
            "non-negative",
        ),
        (
            lambda: vt_ops.roi_align(_X, torch.zeros(1, 5), 0),
            ValueError,
            "output_size: expected positive",
        ),
        (lambda: vt_ops.roi_align(_X, torch.zeros(1, 5), (2, -1)), ValueError, "output_size"),
        (lambda: vt_ops.roi_align(_X, torch.zeros(1, 5), 2.5), TypeError, "output_size"),
        (lambda: vt_ops.roi_align(_X, torch.zeros(1, 5), 2, 0.0), ValueError, "spatial_scale"),
        (lambda: vt_ops.roi_align(_X, torch.zeros(1, 5), 2, 1.0, 1.5), TypeError, "sampling_ratio"),
        (
            lambda: vt_ops.roi_align(_X, torch.zeros(1, 5, dtype=torch.float64), 2),
            TypeError,
            "boxes: expected the dtype of input",
        ),
        (
            lambda: vt_ops.roi_align(_X.long(), torch.zeros(1, 5), 2),
            TypeError,
            "input: expected a floating dtype",
        ),
        (lambda: vt_ops.roi_align(_X, np.zeros((1, 5), np.float32), 2), TypeError, "same library"),
        (
            lambda: vt_ops.roi_align(_X.tolist(), torch.zeros(1, 5), 2),
            TypeError,
            "input: expected a numpy array",
        ),
        (
            lambda: vt_ops.roi_align(_X, torch.zeros(1, 5, device="meta"), 2),
            ValueError,
            "boxes is on meta",
        ),
    ],
)
def test_bad_input_raises_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    k=st.integers(0, 6),
    out_h=st.integers(1, 4),
    out_w=st.integers(1, 4),
    sampling_ratio=st.integers(-1, 3),
    scale=st.sampled_from([1.0, 0.5, 0.25, 2.0]),
    aligned=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_matches_torchvision(
    n, c, h, w, k, out_h, out_w, sampling_ratio, scale, aligned, seed
):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    rois = random_rois(k, n, h, w, scale, dtype=torch.float64, generator=gen)
    args = ((out_h, out_w), scale, sampling_ratio, aligned)
    xg = x.clone().requires_grad_()
    ours = vt_ops.roi_align(xg, rois, *args)
    xr = x.clone().requires_grad_()
    ref = torchvision.ops.roi_align(xr, rois, *args)
    torch.testing.assert_close(ours, ref)
    if k:
        grad = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
        ours.backward(grad)
        ref.backward(grad)
        torch.testing.assert_close(xg.grad, xr.grad)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.integers(0, 3),
    out=st.integers(1, 3),
    sampling_ratio=st.integers(0, 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_rotated_matches_reference(h, w, k, out, sampling_ratio, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 2, h, w, generator=gen, dtype=torch.float64)
    u = torch.rand(k, 5, generator=gen, dtype=torch.float64)
    rois = torch.stack(
        [
            0 * u[:, 0],
            u[:, 0] * (w + 4) - 2,
            u[:, 1] * (h + 4) - 2,
            u[:, 2] * 8,
            u[:, 3] * 8,
            u[:, 4] * 720 - 360,
        ],
        dim=1,
    )
    torch.testing.assert_close(
        vt_ops.roi_align_rotated(x, rois, out, 1.0, sampling_ratio),
        roi_align_rotated_reference(x, rois, (out, out), 1.0, sampling_ratio),
    )


# --- CUDA ----------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("aligned", [False, True])
def test_cuda_matches_cpu(dtype, aligned):
    x = torch.randn(2, 16, 40, 50).to(dtype)
    rois = random_rois(300, 2, 40, 50, 0.5).to(dtype)
    grad = torch.randn(300, 16, 7, 7).to(dtype)
    results = {}
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_()
        out = vt_ops.roi_align(xd, rois.to(device), 7, 0.5, 2, aligned)
        out.backward(grad.to(device))
        results[device] = (out.cpu(), xd.grad.cpu())
    tol = {"atol": 1e-2, "rtol": 1e-2} if dtype == torch.float16 else {}
    torch.testing.assert_close(results["cuda"][0], results["cpu"][0], **tol)
    torch.testing.assert_close(results["cuda"][1], results["cpu"][1], **tol)


@pytest.mark.cuda
def test_cuda_rotated_matches_cpu():
    x = torch.randn(2, 8, 40, 50)
    rois = xyxy_to_rotated(random_rois(200, 2, 40, 50))
    rois[:, 5] = torch.rand(200) * 360
    grad = torch.randn(200, 8, 5, 5)
    results = {}
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_()
        out = vt_ops.roi_align_rotated(xd, rois.to(device), 5, 1.0, 0)
        out.backward(grad.to(device))
        results[device] = (out.cpu(), xd.grad.cpu())
    torch.testing.assert_close(results["cuda"][0], results["cpu"][0])
    torch.testing.assert_close(results["cuda"][1], results["cpu"][1])


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 5),
    bad_row=st.integers(0, 4),
    column=st.integers(0, 5),
    value=st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.0, 3.0, 1e9]),
    rotated=st.booleans(),
)
def test_property_bad_rois_raise_value_error(k, bad_row, column, value, rotated):
    x = torch.randn(3, 2, 6, 6)
    rois = torch.tensor([[1.0, 1.0, 1.0, 4.0, 4.0, 10.0]]).repeat(k, 1)
    if not rotated:
        rois = rois[:, :5]
        column = min(column, 4)
    finite = value == value and abs(value) != float("inf")
    if finite and column != 0 and not (rotated and column in (3, 4) and value < 0):
        value = float("nan")  # a finite coordinate is valid; make it invalid
    rois[bad_row % k, column] = value
    fn = vt_ops.roi_align_rotated if rotated else vt_ops.roi_align
    with pytest.raises(ValueError, match=r"finite|batch index|non-negative"):
        fn(x, rois, 2)
    with pytest.raises(ValueError, match=r"finite|batch index|non-negative"):
        fn(x.numpy(), rois.numpy(), 2)
