import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    FrozenBatchNorm2d,
    Linear,
    ShapeSpec,
    cat,
    cross_entropy,
    empty_input_loss_func_wrapper,
    interpolate,
    move_device_like,
    nonzero_tuple,
    shapes_to_tensor,
)


def test_conv2d_norm_then_activation():
    norm = nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2)
    conv = Conv2d(3, 4, 3, padding=1, bias=False, norm=norm, activation=F.relu)
    assert conv.norm is norm and conv.activation is F.relu
    x = torch.randn(2, 3, 8, 8)
    ref = F.relu(norm(F.conv2d(x, conv.weight, None, padding=1)))
    torch.testing.assert_close(conv(x), ref)


def test_conv2d_is_nn_conv2d_without_extras():
    torch.manual_seed(1)
    ours = Conv2d(3, 5, (3, 2), stride=2, padding=1, dilation=2, padding_mode="reflect")
    ref = nn.Conv2d(3, 5, (3, 2), stride=2, padding=1, dilation=2, padding_mode="reflect")
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 11, 9)
    torch.testing.assert_close(ours(x), ref(x))
    assert set(ours.state_dict()) == {"weight", "bias"}


@pytest.mark.parametrize(
    "norm",
    [lambda c: nn.BatchNorm2d(c), lambda c: nn.GroupNorm(2, c), FrozenBatchNorm2d, None],
    ids=["BN", "GN", "FrozenBN", "none"],
)
def test_conv2d_empty_input_forward_backward(norm):
    conv = Conv2d(3, 4, 3, padding=1, norm=norm(4) if norm else None, activation=F.relu).train()
    x = torch.zeros(0, 3, 7, 7, requires_grad=True)
    y = conv(x)
    assert y.shape == (0, 4, 7, 7)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert conv.weight.grad is not None and torch.equal(
        conv.weight.grad, torch.zeros_like(conv.weight)
    )
    if isinstance(conv.norm, nn.BatchNorm2d):
        # no sample: statistics stay finite and unchanged
        assert torch.equal(conv.norm.running_mean, torch.zeros(4))


def test_conv2d_empty_input_with_sync_bn_raises():
    conv = Conv2d(3, 4, 1, norm=nn.SyncBatchNorm(4)).train()
    with pytest.raises(ValueError, match="SyncBatchNorm does not support empty inputs"):
        conv(torch.zeros(0, 3, 2, 2))


def test_aliases_are_torch_layers():
    assert BatchNorm2d is nn.BatchNorm2d
    assert ConvTranspose2d is nn.ConvTranspose2d
    assert Linear is nn.Linear
    assert interpolate is F.interpolate
    assert ConvTranspose2d(2, 3, 2, stride=2)(torch.zeros(0, 2, 4, 4)).shape == (0, 3, 8, 8)
    assert Linear(4, 2)(torch.zeros(0, 4)).shape == (0, 2)


def test_cat():
    a = torch.randn(2, 3)
    assert cat([a]) is a
    b = torch.randn(1, 3)
    torch.testing.assert_close(cat([a, b]), torch.cat([a, b]))
    torch.testing.assert_close(cat((a, a), dim=1), torch.cat([a, a], 1))
    with pytest.raises(TypeError, match="list or tuple"):
        cat(a)


def test_nonzero_tuple():
    x = torch.tensor([[0, 1, 0], [2, 0, 3]])
    for ours, ref in zip(nonzero_tuple(x), torch.nonzero(x, as_tuple=True)):
        assert torch.equal(ours, ref)
    assert [t.tolist() for t in nonzero_tuple(torch.tensor(5))] == [[0]]
    assert [t.tolist() for t in nonzero_tuple(torch.tensor(0))] == [[]]


def test_cross_entropy_matches_torch_and_is_zero_on_empty():
    logits = torch.randn(6, 4, requires_grad=True)
    target = torch.randint(0, 4, (6,))
    torch.testing.assert_close(cross_entropy(logits, target), F.cross_entropy(logits, target))
    torch.testing.assert_close(
        cross_entropy(logits, target, reduction="none", label_smoothing=0.1),
        F.cross_entropy(logits, target, reduction="none", label_smoothing=0.1),
    )
    empty = torch.zeros(0, 4, requires_grad=True)
    loss = cross_entropy(empty, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert empty.grad.shape == (0, 4)
    assert torch.isnan(F.cross_entropy(empty, torch.zeros(0, dtype=torch.long)))


def test_empty_input_loss_func_wrapper():
    l1 = empty_input_loss_func_wrapper(F.l1_loss)
    assert l1.__name__ == "l1_loss"
    assert l1(torch.zeros(0), torch.zeros(0)).item() == 0.0
    a, b = torch.randn(5), torch.randn(5)
    torch.testing.assert_close(l1(a, b), F.l1_loss(a, b))


def test_shapes_to_tensor_and_move_device_like():
    t = shapes_to_tensor([3, 4])
    assert t.dtype == torch.int64 and t.tolist() == [3, 4]
    t = shapes_to_tensor([torch.tensor(5), torch.tensor(6)])
    assert t.tolist() == [5, 6]
    src = torch.arange(3)
    assert move_device_like(src, torch.zeros(1)).device == torch.device("cpu")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_shapes_to_tensor_under_tracing():
    def f(x):
        return shapes_to_tensor([x.shape[0], x.shape[1]]) * 2

    traced = torch.jit.trace(f, torch.zeros(2, 3))
    assert traced(torch.zeros(4, 5)).tolist() == [8, 10]


def test_shape_spec():
    s = ShapeSpec(channels=256, stride=4)
    assert (s.channels, s.height, s.width, s.stride) == (256, None, None, 4)
    assert ShapeSpec() == ShapeSpec(None, None, None, None)
    assert ShapeSpec(1, 2, 3, 4) == ShapeSpec(channels=1, height=2, width=3, stride=4)
