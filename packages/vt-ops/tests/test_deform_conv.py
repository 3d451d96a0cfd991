import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import vt_ops

# the oracle; torch builds without a matching torchvision skip these tests
torchvision = pytest.importorskip("torchvision")


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def make_inputs(
    n=2,
    c=4,
    h=7,
    w=8,
    out=6,
    kernel=(3, 3),
    stride=(1, 1),
    padding=(1, 1),
    dilation=(1, 1),
    groups=1,
    dg=1,
    modulated=False,
    offset_scale=2.0,
    dtype=torch.float32,
    generator=None,
):
    """Random (input, offset, weight, bias, mask) for one configuration."""
    kh, kw = kernel
    oh = out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = out_size(w, kw, stride[1], padding[1], dilation[1])

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

    x = randn(n, c, h, w)
    offset = randn(n, 2 * dg * kh * kw, oh, ow) * offset_scale
    weight = randn(out, c // groups, kh, kw)
    bias = randn(out)
    mask = (
        torch.rand(n, dg * kh * kw, oh, ow, generator=generator, dtype=torch.float64).to(dtype)
        if modulated
        else None
    )
    return x, offset, weight, bias, mask


def torchvision_deform(x, offset, weight, bias, mask, stride, padding, dilation):
    return torchvision.ops.deform_conv2d(
        x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask
    )


# (n, c, h, w, out, kernel, stride, padding, dilation, groups, deformable_groups)
CONFIGS = [
    (2, 4, 7, 8, 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
    (1, 6, 9, 9, 4, (3, 3), (2, 2), (0, 0), (1, 1), 2, 3),
    (2, 8, 10, 7, 6, (3, 2), (1, 2), (2, 1), (2, 1), 2, 4),
    (3, 4, 6, 11, 8, (1, 3), (2, 1), (0, 2), (1, 3), 4, 2),
    (2, 3, 5, 5, 2, (1, 1), (1, 1), (0, 0), (1, 1), 1, 1),
    (1, 8, 12, 12, 8, (5, 5), (1, 1), (2, 2), (1, 1), 8, 8),
]
CONFIG_IDS = [f"cfg{i}" for i in range(len(CONFIGS))]


def config_inputs(cfg, modulated, dtype=torch.float32):
    n, c, h, w, out, kernel, stride, padding, dilation, groups, dg = cfg
    tensors = make_inputs(
        n, c, h, w, out, kernel, stride, padding, dilation, groups, dg, modulated, dtype=dtype
    )
    params = dict(stride=stride, padding=padding, dilation=dilation)
    return tensors, params, groups, dg


@pytest.mark.parametrize("modulated", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_forward_and_gradients_match_torchvision(cfg, modulated):
    (x, offset, weight, bias, mask), params, groups, dg = config_inputs(cfg, modulated)
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask) if t is not None]
    ours = vt_ops.deform_conv2d(x, offset, weight, bias, groups=groups, deformable_groups=dg,
                                mask=mask, **params)  # fmt: skip
    ref = torchvision_deform(x, offset, weight, bias, mask, **params)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    grad_out = torch.randn_like(ref)
    ours_grads = torch.autograd.grad(ours, leaves, grad_out)
    ref_grads = torch.autograd.grad(ref, leaves, grad_out)
    names = ["input", "offset", "weight", "bias", "mask"]
    for name, a, b in zip(names, ours_grads, ref_grads):
        assert a.abs().sum() > 0, name
        torch.testing.assert_close(
            a, b, atol=1e-4, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}"
        )


GRADCHECK_CONFIGS = [
    (1, 3, 5, 6, 2, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
    (1, 4, 6, 5, 4, (3, 2), (1, 2), (2, 1), (2, 1), 2, 2),
]


@pytest.mark.parametrize("modulated", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("cfg", GRADCHECK_CONFIGS, ids=["basic", "groups"])
def test_gradcheck_float64_every_input(cfg, modulated):
    (x, offset, weight, bias, mask), params, groups, dg = config_inputs(
        cfg, modulated, dtype=torch.float64
    )
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask) if t is not None]

    def fn(x, offset, weight, bias, mask=None):
        return vt_ops.deform_conv2d(x, offset, weight, bias, groups=groups, deformable_groups=dg,
                                    mask=mask, **params)  # fmt: skip

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-5)


def test_gradcheck_near_and_beyond_the_border():
    # Offsets that push samples partly or fully outside the image.
    x, offset, weight, bias, mask = make_inputs(1, 2, 4, 4, 2, modulated=True, dtype=torch.float64)
    offset = offset * 3 + 0.37
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask)]

    def fn(x, offset, weight, bias, mask):
        return vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_zero_offsets_equal_conv2d(cfg):
    (x, offset, weight, bias, _), params, groups, dg = config_inputs(cfg, modulated=False)
    offset = torch.zeros_like(offset)
    ones = torch.ones(offset.shape[0], offset.shape[1] // 2, *offset.shape[2:])
    expected = F.conv2d(x, weight, bias, groups=groups, **params)
    for mask in (None, ones):
        ours = vt_ops.deform_conv2d(x, offset, weight, bias, groups=groups, deformable_groups=dg,
                                    mask=mask, **params)  # fmt: skip
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_integer_offsets_shift_the_image_with_zero_fill():
    x, offset, weight, bias, _ = make_inputs(2, 3, 8, 9, 5, padding=(0, 0))
    offset = torch.zeros_like(offset)
    offset[:, 0::2] = 2.0  # dy = +2: sample two rows down
    offset[:, 1::2] = -1.0  # dx = -1: one column left
    shifted = F.pad(x, (1, 0, 0, 2))[
        :, :, 2:, :-1
    ]  # shifted[y, x] = x[y + 2, x - 1], zeros outside
    expected = F.conv2d(shifted, weight, bias)
    torch.testing.assert_close(vt_ops.deform_conv2d(x, offset, weight, bias), expected)


@pytest.mark.parametrize("shift", [1e4, -1e4, 7.5, -6.5])
def test_offsets_outside_the_image_read_zeros(shift):
    x, offset, weight, bias, mask = make_inputs(2, 4, 5, 6, 3, padding=(0, 0), modulated=True)
    offset = torch.full_like(offset, shift)  # every sample outside (5x6 image, 3x3 kernel)
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask)]
    out = vt_ops.deform_conv2d(x, offset, weight, bias, mask=mask)
    torch.testing.assert_close(out, bias.detach()[None, :, None, None].expand_as(out))
    torch.testing.assert_close(out, torchvision_deform(x, offset, weight, bias, mask, 1, 0, 1))
    grads = torch.autograd.grad(out.sum(), leaves)
    for name, g in zip(["input", "offset", "weight", "mask"], [grads[0], *grads[1:3], grads[4]]):
        assert torch.count_nonzero(g) == 0, name


def test_numpy_in_numpy_out():
    (x, offset, weight, bias, mask), params, groups, dg = config_inputs(CONFIGS[2], True)
    expected = torchvision_deform(x, offset, weight, bias, mask, **params).numpy()
    for dtype in (np.float32, np.float64):
        arrays = [t.numpy().astype(dtype) for t in (x, offset, weight, bias, mask)]
        out = vt_ops.deform_conv2d(*arrays[:4], groups=groups, deformable_groups=dg,
                                   mask=arrays[4], **params)  # fmt: skip
        assert isinstance(out, np.ndarray) and out.dtype == dtype
        np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype):
    x, offset, weight, bias, mask = (
        t.to(dtype) for t in make_inputs(2, 4, 6, 6, 3, modulated=True, offset_scale=1.0)
    )
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask)]
    out = vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    assert out.dtype == dtype
    ref_leaves = [t.detach().float().requires_grad_() for t in leaves]
    ref = torchvision_deform(*ref_leaves[:4], ref_leaves[4], 1, 1, 1)
    torch.testing.assert_close(out, ref.to(dtype), atol=1e-2, rtol=1e-2)
    grad = torch.randn_like(ref)
    grads = torch.autograd.grad(out, leaves, grad.to(dtype))
    ref_grads = torch.autograd.grad(ref, ref_leaves, grad.to(dtype).float())
    for g, r in zip(grads, ref_grads):
        assert g.dtype == dtype
        torch.testing.assert_close(g, r.to(dtype), atol=0.05, rtol=0.02)


def test_mixed_dtypes_promote_and_gradients_keep_their_dtype():
    x, offset, weight, bias, _ = make_inputs(1, 2, 5, 5, 2)
    x = x.half().requires_grad_()
    weight = weight.double().requires_grad_()
    out = vt_ops.deform_conv2d(x, offset, weight, bias, padding=1)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert x.grad.dtype == torch.float16 and weight.grad.dtype == torch.float64


@pytest.mark.parametrize("max_column_bytes", [1, 13000])  # one image per chunk; two (6 KB each)
def test_chunked_batch_equals_one_chunk(max_column_bytes, monkeypatch):
    x, offset, weight, bias, mask = make_inputs(5, 4, 6, 7, 3, modulated=True)
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask)]
    whole = vt_ops.deform_conv2d(*leaves[:4], padding=1, mask=mask)
    chunked = vt_ops.deform_conv2d(*leaves[:4], padding=1, mask=mask,
                                   max_column_bytes=max_column_bytes)  # fmt: skip
    torch.testing.assert_close(chunked, whole)
    grad = torch.randn_like(whole)
    for a, b in zip(
        torch.autograd.grad(chunked, leaves, grad), torch.autograd.grad(whole, leaves, grad)
    ):
        torch.testing.assert_close(a, b)
    monkeypatch.setenv("VT_OPS_DEFORM_MAX_COLUMN_BYTES", str(max_column_bytes))
    torch.testing.assert_close(vt_ops.deform_conv2d(*leaves[:4], padding=1, mask=mask), whole)
    monkeypatch.setenv("VT_OPS_DEFORM_MAX_COLUMN_BYTES", "lots")
    with pytest.raises(ValueError, match="VT_OPS_DEFORM_MAX_COLUMN_BYTES"):
        vt_ops.deform_conv2d(*leaves[:4], padding=1, mask=mask)


def test_non_contiguous_inputs():
    x, offset, weight, bias, mask = make_inputs(2, 4, 6, 6, 4, modulated=True)
    x_nc = torch.stack([x, x], dim=-1)[..., 0]
    w_nc = weight.transpose(2, 3).contiguous().transpose(2, 3)
    assert not x_nc.is_contiguous() and not w_nc.is_contiguous()
    torch.testing.assert_close(
        vt_ops.deform_conv2d(x_nc, offset, w_nc, bias, padding=1, mask=mask),
        torchvision_deform(x, offset, weight, bias, mask, 1, 1, 1),
        atol=1e-4,
        rtol=1e-4,
    )


def test_empty_batch():
    x, offset, weight, bias, mask = make_inputs(0, 4, 6, 6, 3, modulated=True)
    x.requires_grad_()
    out = vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    assert out.shape == (0, 3, 6, 6)
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert vt_ops.deform_conv2d(x.detach().numpy(), offset.numpy(), weight.numpy(),
                                padding=1).shape == (0, 3, 6, 6)  # fmt: skip


def test_only_requested_gradients_are_computed():
    x, offset, weight, bias, mask = make_inputs(1, 4, 6, 6, 3, modulated=True)
    weight.requires_grad_()
    vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask).sum().backward()
    assert weight.grad is not None and x.grad is None and offset.grad is None


@pytest.mark.parametrize("modulated", [False, True], ids=["v1", "v2"])
def test_torch_compile_fullgraph_forward_and_backward(modulated):
    x, offset, weight, bias, mask = make_inputs(2, 4, 7, 8, 6, modulated=modulated)
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask) if t is not None]

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x, offset, weight, bias, mask):
        return vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask).relu()

    out = f(x, offset, weight, bias, mask)
    ref = torchvision_deform(x, offset, weight, bias, mask, 1, 1, 1).relu()
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    for a, b in zip(torch.autograd.grad(out.sum(), leaves), torch.autograd.grad(ref.sum(), leaves)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_registered_custom_ops_pass_opcheck():
    x, offset, weight, bias, mask = make_inputs(1, 4, 5, 5, 2, modulated=True)
    for t in (x, offset, weight, bias, mask):
        t.requires_grad_()
    args = (x, offset, weight, bias, mask, [1, 1], [1, 1], [1, 1], 1, 1, 2**28)
    torch.library.opcheck(torch.ops.vt_ops.deform_conv2d.default, args)
    torch.library.opcheck(torch.ops.vt_ops.deform_conv2d.default, (*args[:4], None, *args[5:]))
    grad = torch.randn(1, 2, 5, 5)
    bwd_args = (grad, x.detach(), offset.detach(), weight.detach(), mask.detach(), *args[5:])
    torch.library.opcheck(
        torch.ops.vt_ops.deform_conv2d_backward.default, (*bwd_args, True, True, True)
    )
    torch.library.opcheck(
        torch.ops.vt_ops.deform_conv2d_backward.default, (*bwd_args, False, True, False)
    )


def _bad(**changes):
    x, offset, weight, bias, mask = make_inputs(2, 4, 6, 6, 4, modulated=True)
    kwargs = dict(input=x, offset=offset, weight=weight, bias=bias, mask=mask, padding=1)
    kwargs.update(changes)
    return kwargs


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (_bad(input=torch.zeros(4, 6, 6)), ValueError, r"input: expected shape \(\*, \*, \*, \*\)"),
        (_bad(offset=torch.zeros(2, 9, 6, 6)), ValueError, r"offset: expected shape \(2, 18, 6, 6\)"),
        (_bad(offset=torch.zeros(2, 18, 5, 6)), ValueError, "offset: expected shape"),
        (_bad(offset=torch.zeros(3, 18, 6, 6)), ValueError, "offset: expected shape"),
        (_bad(mask=torch.zeros(2, 18, 6, 6)), ValueError, r"mask: expected shape \(2, 9, 6, 6\)"),
        (_bad(weight=torch.zeros(4, 3, 3, 3)), ValueError, r"weight: expected shape \(\*, 4, \*, \*\)"),
        (_bad(weight=torch.zeros(4, 4, 3)), ValueError, "weight: expected shape"),
        (_bad(bias=torch.zeros(5)), ValueError, r"bias: expected shape \(4\)"),
        (_bad(groups=3, weight=torch.zeros(3, 1, 3, 3)), ValueError, "input: 4 channels are not divisible by groups=3"),
        (_bad(groups=2, weight=torch.zeros(3, 2, 3, 3), bias=None), ValueError, "weight: 3 output channels"),
        (_bad(deformable_groups=3), ValueError, "not divisible by deformable_groups=3"),
        (_bad(deformable_groups=2), ValueError, r"offset: expected shape \(2, 36, 6, 6\)"),
        (_bad(groups=0), ValueError, "groups: expected an int >= 1"),
        (_bad(groups=1.0), TypeError, "groups: expected an int"),
        (_bad(stride=0), ValueError, "stride: expected an int >= 1"),
        (_bad(padding=(1, 1, 1)), ValueError, "padding: expected an int or a pair"),
        (_bad(padding=-1), ValueError, "padding: expected an int >= 0"),
        (_bad(dilation=(1, 0)), ValueError, "dilation: expected an int >= 1"),
        (_bad(padding=0, input=torch.zeros(2, 4, 2, 2)), ValueError, "input: spatial size 2x2 is too small"),
        (_bad(offset=torch.zeros(2, 18, 6, 6, dtype=torch.int64)), TypeError, "offset: expected a floating dtype"),
        (_bad(mask=torch.ones(2, 9, 6, 6, dtype=torch.bool)), TypeError, "mask: expected a floating dtype"),
        (_bad(input=torch.zeros(2, 4, 6, 6, dtype=torch.int32)), TypeError, "input: expected a floating dtype"),
        (_bad(weight=np.zeros((4, 4, 3, 3), np.float32)), TypeError, "weight must be an array of the same library"),
        (_bad(offset=[[0.0]]), TypeError, "offset: expected a numpy array"),
        (_bad(max_column_bytes=0), ValueError, "max_column_bytes: expected an int >= 1"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        vt_ops.deform_conv2d(**kwargs)


def test_bad_numpy_input_names_the_argument():
    kwargs = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in _bad().items()}
    kwargs["mask"] = kwargs["mask"][:, :4]
    with pytest.raises(ValueError, match="mask: expected shape"):
        vt_ops.deform_conv2d(**kwargs)


@st.composite
def configs(draw):
    groups = draw(st.sampled_from([1, 2]))
    dg = draw(st.sampled_from([1, 2]))
    c = groups * dg * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = []
    for i in range(2):
        least = dilation[i] * (kernel[i] - 1) + 1 - 2 * padding[i]
        size.append(draw(st.integers(max(1, least), max(1, least) + 6)))
    return dict(
        n=draw(st.integers(1, 3)),
        c=c,
        h=size[0],
        w=size[1],
        out=groups * draw(st.integers(1, 3)),
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        dg=dg,
        modulated=draw(st.booleans()),
        offset_scale=draw(st.sampled_from([0.0, 0.5, 3.0, 20.0])),
    )


@settings(max_examples=60, deadline=None)
@given(cfg=configs(), seed=st.integers(0, 2**31 - 1))
def test_property_matches_torchvision_on_random_configs(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    x, offset, weight, bias, mask = make_inputs(**cfg, generator=g)
    params = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"])
    leaves = [t.requires_grad_() for t in (x, offset, weight, bias, mask) if t is not None]
    ours = vt_ops.deform_conv2d(x, offset, weight, bias, groups=cfg["groups"],
                                deformable_groups=cfg["dg"], mask=mask, **params)  # fmt: skip
    ref = torchvision_deform(x, offset, weight, bias, mask, **params)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    grad = torch.randn(ref.shape, generator=g)
    for a, b in zip(
        torch.autograd.grad(ours, leaves, grad), torch.autograd.grad(ref, leaves, grad)
    ):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("modulated", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_cuda_matches_cpu(cfg, modulated, dtype):
    (x, offset, weight, bias, mask), params, groups, dg = config_inputs(cfg, modulated, dtype)
    cpu = [t.requires_grad_() for t in (x, offset, weight, bias, mask) if t is not None]
    gpu = [t.detach().cuda().requires_grad_() for t in cpu]

    def run(x, offset, weight, bias, mask=None):
        return vt_ops.deform_conv2d(x, offset, weight, bias, groups=groups, deformable_groups=dg,
                                    mask=mask, **params)  # fmt: skip

    out_cpu, out_gpu = run(*cpu), run(*gpu)
    assert out_gpu.is_cuda
    tol = dict(atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, **tol)
    grad = torch.randn_like(out_cpu)
    for a, b in zip(
        torch.autograd.grad(out_gpu, gpu, grad.cuda()), torch.autograd.grad(out_cpu, cpu, grad)
    ):
        torch.testing.assert_close(a.cpu(), b, **tol)
    torch.testing.assert_close(
        out_gpu, torchvision_deform(*gpu[:4], gpu[4] if modulated else None, **params), **tol
    )


@pytest.mark.cuda
def test_cuda_gradcheck_float64():
    x, offset, weight, bias, mask = (
        t.cuda().requires_grad_()
        for t in make_inputs(1, 4, 5, 6, 2, groups=2, dg=2, modulated=True, dtype=torch.float64)
    )

    def fn(x, offset, weight, bias, mask):
        return vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, groups=2,
                                    deformable_groups=2, mask=mask)  # fmt: skip

    assert torch.autograd.gradcheck(fn, (x, offset, weight, bias, mask), eps=1e-6, atol=1e-5)
