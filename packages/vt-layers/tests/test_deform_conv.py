import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import DeformConv, ModulatedDeformConv

tv_ops = pytest.importorskip("torchvision.ops")

CONFIGS = [
    # kernel, stride, padding, dilation, groups, deformable_groups
    ((3, 3), 1, 1, 1, 1, 1),
    ((3, 2), 2, (1, 0), 1, 2, 2),
    (3, 1, 2, 2, 1, 4),
]


def _inputs(module, n=2, h=9, w=8, dtype=torch.float64):
    x = torch.randn(n, module.in_channels, h, w, dtype=dtype)
    kh, kw = module.kernel_size
    ho = (h + 2 * module.padding[0] - module.dilation[0] * (kh - 1) - 1) // module.stride[0] + 1
    wo = (w + 2 * module.padding[1] - module.dilation[1] * (kw - 1) - 1) // module.stride[1] + 1
    dg = module.deformable_groups
    offset = torch.randn(n, 2 * dg * kh * kw, ho, wo, dtype=dtype) * 2
    mask = torch.rand(n, dg * kh * kw, ho, wo, dtype=dtype)
    return x, offset, mask


def test_state_dict_names_and_repr():
    dc = DeformConv(8, 16, 3, padding=1, deformable_groups=2)
    assert set(dc.state_dict()) == {"weight"}
    assert dc.weight.shape == (16, 8, 3, 3) and dc.bias is None
    mdc = ModulatedDeformConv(8, 16, 3, groups=2, norm=nn.GroupNorm(4, 16))
    assert set(mdc.state_dict()) == {"weight", "bias", "norm.weight", "norm.bias"}
    assert mdc.weight.shape == (16, 4, 3, 3) and torch.equal(mdc.bias, torch.zeros(16))
    assert repr(dc).startswith(
        "DeformConv(in_channels=8, out_channels=16, kernel_size=(3, 3), stride=(1, 1), "
        "padding=(1, 1), dilation=(1, 1), groups=1, deformable_groups=2, bias=False"
    )
    with pytest.raises(ValueError, match="not divisible by groups"):
        DeformConv(6, 16, 3, groups=4)
    with pytest.raises(ValueError, match="deformable_groups"):
        ModulatedDeformConv(6, 16, 3, deformable_groups=4)


@pytest.mark.vt_ops_kernel("deform_conv2d")
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "groups", "dg"), CONFIGS)
def test_deform_conv_matches_torchvision(kernel, stride, padding, dilation, groups, dg):
    m = DeformConv(4, 6, kernel, stride, padding, dilation, groups, dg).double()
    x, offset, _ = _inputs(m)
    ref = tv_ops.deform_conv2d(x, offset, m.weight, None, m.stride, m.padding, m.dilation)
    torch.testing.assert_close(m(x, offset), ref)


@pytest.mark.vt_ops_kernel("deform_conv2d")
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "groups", "dg"), CONFIGS)
def test_modulated_deform_conv_matches_torchvision(kernel, stride, padding, dilation, groups, dg):
    m = ModulatedDeformConv(4, 6, kernel, stride, padding, dilation, groups, dg).double()
    with torch.no_grad():
        m.bias.normal_()
    x, offset, mask = _inputs(m)
    ref = tv_ops.deform_conv2d(x, offset, m.weight, m.bias, m.stride, m.padding, m.dilation, mask)
    torch.testing.assert_close(m(x, offset, mask), ref)


@pytest.mark.vt_ops_kernel("deform_conv2d")
def test_zero_offsets_are_a_convolution_and_norm_activation_apply():
    norm = nn.BatchNorm2d(6).double().eval()
    m = DeformConv(4, 6, 3, padding=1, norm=norm, activation=F.relu).double()
    x, offset, _ = _inputs(m)
    ref = F.relu(norm(F.conv2d(x, m.weight, None, padding=1)))
    torch.testing.assert_close(m(x, torch.zeros_like(offset)), ref)


@pytest.mark.vt_ops_kernel("deform_conv2d")
def test_deform_conv_gradcheck():
    m = ModulatedDeformConv(2, 2, 3, padding=1, deformable_groups=2).double()
    x, offset, mask = _inputs(m, n=1, h=4, w=5)
    # keep sampling points away from integer coordinates, where bilinear is not differentiable
    offset = offset.round() + 0.3
    x.requires_grad_(True)
    offset.requires_grad_(True)
    mask.requires_grad_(True)

    weight = m.weight.detach().clone().requires_grad_(True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def f(x, offset, mask, weight, bias):
        return torch.func.functional_call(m, {"weight": weight, "bias": bias}, (x, offset, mask))

    assert torch.autograd.gradcheck(f, (x, offset, mask, weight, bias), eps=1e-6, atol=1e-5)
    out = m(x, offset, mask)
    out.sum().backward()
    assert m.weight.grad is not None and m.bias.grad is not None


def test_empty_input_gives_empty_output_and_backward():
    for m in (
        DeformConv(4, 6, 3, stride=2, padding=1),
        ModulatedDeformConv(4, 6, 3, stride=2, padding=1),
    ):
        x = torch.zeros(0, 4, 9, 8, requires_grad=True)
        offset = torch.zeros(0, 18, 5, 4)
        args = (x, offset) if isinstance(m, DeformConv) else (x, offset, torch.zeros(0, 9, 5, 4))
        out = m(*args)
        assert out.shape == (0, 6, 5, 4)
        out.sum().backward()
        assert x.grad.shape == x.shape
        assert torch.equal(m.weight.grad, torch.zeros_like(m.weight))


@pytest.mark.cuda
@pytest.mark.vt_ops_kernel("deform_conv2d")
def test_deform_conv_cuda_equals_cpu():
    m = ModulatedDeformConv(8, 8, 3, padding=1, deformable_groups=2)
    x, offset, mask = _inputs(m, n=2, h=12, w=12, dtype=torch.float32)
    cpu = m(x, offset, mask)
    gpu = m.cuda()(x.cuda(), offset.cuda(), mask.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
