import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vt_ops

# the oracle; torch builds without a matching torchvision skip these tests
torchvision = pytest.importorskip("torchvision")


def random_rois(k, n, height, width, scale=1.0, dtype=torch.float32, generator=None):
    """K x 5 (batch, x1, y1, x2, y2) boxes, some crossing the border, some inverted."""
    size = torch.tensor([width, height], dtype=torch.float64) / scale
    xy = (torch.rand(k, 2, generator=generator, dtype=torch.float64) * 1.2 - 0.1) * size
    wh = (torch.rand(k, 2, generator=generator, dtype=torch.float64) - 0.1) * size / 2
    batch = torch.randint(0, n, (k, 1), generator=generator).to(torch.float64)
    return torch.cat([batch, xy, xy + wh], dim=1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.125])
@pytest.mark.parametrize("output_size", [1, (7, 7), (3, 5)])
def test_roi_pool_matches_torchvision(dtype, spatial_scale, output_size):
    x = torch.randn(2, 6, 20, 27, dtype=dtype)
    rois = random_rois(50, 2, 20, 27, spatial_scale, dtype=dtype)
    xg = x.clone().requires_grad_()
    ours = vt_ops.roi_pool(xg, rois, output_size, spatial_scale)
    xr = x.clone().requires_grad_()
    ref = torchvision.ops.roi_pool(xr, rois, output_size, spatial_scale)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    grad = torch.randn_like(ref)
    ours.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(xg.grad, xr.grad)


def test_hand_checked_maxima():
    ramp = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)  # value 5 * y + x
    out = vt_ops.roi_pool(ramp, torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]]), 2)
    # 3 x 3 pixel window split into bins [1, 3) x [1, 3), [1, 3) x [2, 4), ...
    torch.testing.assert_close(out[0, 0], torch.tensor([[12.0, 13.0], [17.0, 18.0]]))
    outside = vt_ops.roi_pool(ramp, torch.tensor([[0, 20.0, 20.0, 30.0, 30.0]]), 2)
    assert torch.equal(outside, torch.zeros(1, 1, 2, 2))


def test_gradient_goes_to_the_maximum():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 2, 1] = 5.0
    x.requires_grad_()
    vt_ops.roi_pool(
        x, torch.tensor([[0, 0.0, 0.0, 3.0, 3.0], [0, 1.0, 1.0, 2.0, 2.0]]), 1
    ).sum().backward()
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 2, 1] = 2.0  # the maximum of both boxes
    assert torch.equal(x.grad, expected)


def test_gradcheck_float64():
    x = torch.randn(2, 3, 8, 9, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.3, 1.2, 5.1, 6.4], [1, 2.0, 0.5, 7.9, 4.1], [1, -1.5, 4.0, 3.0, 9.0]],
        dtype=torch.float64,
    )
    assert torch.autograd.gradcheck(lambda t: vt_ops.roi_pool(t, rois, (3, 2), 1.0), (x,))


def test_numpy_half_and_list_inputs():
    x = torch.randn(2, 4, 12, 12)
    rois = random_rois(8, 2, 12, 12)
    expected = torchvision.ops.roi_pool(x, rois, 3)
    np.testing.assert_array_equal(vt_ops.roi_pool(x.numpy(), rois.numpy(), 3), expected.numpy())
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.argsort(rois[:, 0], stable=True)
    torch.testing.assert_close(vt_ops.roi_pool(x, per_image, 3), expected[order])
    half = vt_ops.roi_pool(x.half(), rois.half(), 3)
    assert half.dtype == torch.float16
    torch.testing.assert_close(
        half, torchvision.ops.roi_pool(x.half().float(), rois.half().float(), 3).half()
    )


def test_channels_last_and_compile():
    x = torch.randn(2, 5, 10, 11).to(memory_format=torch.channels_last).requires_grad_()
    rois = random_rois(6, 2, 10, 11)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(feat, boxes):
        return vt_ops.roi_pool(feat, boxes, 2, 1.0).sum()

    f(x, rois).backward()
    xr = x.detach().contiguous().requires_grad_()
    torchvision.ops.roi_pool(xr, rois, 2, 1.0).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)


def test_registered_as_torch_custom_ops():
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    rois = random_rois(6, 2, 9, 11, dtype=torch.float64)
    torch.library.opcheck(torch.ops.vt_ops.roi_pool.default, (x, rois, 1.0, 2, 3))
    out, argmax = torch.ops.vt_ops.roi_pool(x.detach(), rois, 1.0, 2, 3)
    assert argmax.dtype == torch.int32 and argmax.shape == out.shape
    torch.library.opcheck(
        torch.ops.vt_ops.roi_pool_backward.default,
        (torch.randn_like(out), rois, argmax, [2, 3, 9, 11]),
    )


def test_cpu_backward_is_deterministic_across_thread_counts():
    x = torch.randn(1, 16, 12, 12, requires_grad=True)
    rois = random_rois(300, 1, 12, 12)
    grad = torch.randn(300, 16, 2, 2)
    results = []
    try:
        for threads in (1, 2, 3):
            vt_ops.set_num_threads(threads)
            x.grad = None
            vt_ops.roi_pool(x, rois, 2).backward(grad)
            results.append(x.grad.clone())
    finally:
        vt_ops.set_num_threads(0)
    assert all(torch.equal(r, results[0]) for r in results)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    k=st.integers(0, 6),
    out_h=st.integers(1, 4),
    out_w=st.integers(1, 4),
    scale=st.sampled_from([1.0, 0.5, 0.25, 2.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_matches_torchvision(n, c, h, w, k, out_h, out_w, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    rois = random_rois(k, n, h, w, scale, dtype=torch.float64, generator=gen)
    xg = x.clone().requires_grad_()
    ours = vt_ops.roi_pool(xg, rois, (out_h, out_w), scale)
    xr = x.clone().requires_grad_()
    ref = torchvision.ops.roi_pool(xr, rois, (out_h, out_w), scale)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    if k:
        grad = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
        ours.backward(grad)
        ref.backward(grad)
        torch.testing.assert_close(xg.grad, xr.grad)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    x = torch.randn(2, 16, 40, 50, dtype=dtype)
    rois = random_rois(300, 2, 40, 50, 0.5, dtype=dtype)
    grad = torch.randn(300, 16, 7, 7, dtype=dtype)
    results = {}
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_()
        out = vt_ops.roi_pool(xd, rois.to(device), 7, 0.5)
        out.backward(grad.to(device))
        results[device] = (out.cpu(), xd.grad.cpu())
    torch.testing.assert_close(results["cuda"][0], results["cpu"][0], rtol=0, atol=0)
    torch.testing.assert_close(results["cuda"][1], results["cpu"][1])
