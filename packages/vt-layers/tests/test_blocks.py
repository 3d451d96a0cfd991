import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import (
    ASPP,
    CNNBlockBase,
    Conv2d,
    DepthwiseSeparableConv2d,
    FrozenBatchNorm2d,
    get_norm,
)


class _Block(CNNBlockBase):
    def __init__(self):
        super().__init__(3, 8, 2)
        self.conv = Conv2d(3, 8, 3, stride=2, padding=1, bias=False, norm=get_norm("BN", 8))
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.conv(x))


def test_cnn_block_base_attributes_and_freeze():
    block = _Block()
    assert (block.in_channels, block.out_channels, block.stride) == (3, 8, 2)
    with torch.no_grad():
        block.bn.running_mean.normal_()
        block.conv.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    ref = block.eval()(x)
    assert block.freeze() is block
    assert all(not p.requires_grad for p in block.parameters())
    assert isinstance(block.bn, FrozenBatchNorm2d)
    assert isinstance(block.conv.norm, FrozenBatchNorm2d)
    # frozen in train mode too: the same function as the eval-mode block
    torch.testing.assert_close(block.train()(x), ref)


def test_depthwise_separable_conv2d():
    m = DepthwiseSeparableConv2d(
        4, 6, kernel_size=3, padding=2, dilation=2, norm2="BN", activation2=F.relu
    )
    assert m.depthwise.groups == 4 and m.depthwise.bias is not None
    assert m.pointwise.bias is None and isinstance(m.pointwise.norm, nn.BatchNorm2d)
    assert set(m.state_dict()) >= {
        "depthwise.weight",
        "depthwise.bias",
        "pointwise.weight",
        "pointwise.norm.weight",
    }
    m.eval()
    x = torch.randn(2, 4, 9, 9)
    y = F.conv2d(x, m.depthwise.weight, m.depthwise.bias, padding=2, dilation=2, groups=4)
    ref = F.relu(m.pointwise.norm(F.conv2d(y, m.pointwise.weight)))
    torch.testing.assert_close(m(x), ref)
    assert m(x).shape == (2, 6, 9, 9)


def test_aspp_state_dict_names_and_output():
    m = ASPP(8, 4, [1, 2, 3], norm="BN", activation=nn.ReLU(), dropout=0.1)
    keys = set(m.state_dict())
    assert {
        "convs.0.weight",
        "convs.0.norm.weight",
        "convs.3.norm.running_var",
        "convs.4.1.weight",
        "convs.4.1.bias",
        "project.weight",
        "project.norm.bias",
    } <= keys
    assert "convs.0.bias" not in keys  # followed by a norm
    m.eval()
    x = torch.randn(2, 8, 10, 12)
    y = m(x)
    assert y.shape == (2, 4, 10, 12)
    # the same computation spelled out
    branches = [m.convs[i](x) for i in range(4)]
    pooled = F.relu(m.convs[4][1](x.mean(dim=(2, 3), keepdim=True)))
    branches.append(pooled.expand(-1, -1, 10, 12))
    torch.testing.assert_close(y, m.project(torch.cat(branches, 1)))


def test_aspp_pool_kernel_size_equals_global_pooling_at_training_size():
    torch.manual_seed(0)
    glob = ASPP(6, 3, [1, 2, 4], norm="", activation=F.relu)
    fixed = ASPP(6, 3, [1, 2, 4], norm="", activation=F.relu, pool_kernel_size=(8, 8))
    fixed.load_state_dict(glob.state_dict())
    x = torch.randn(1, 6, 8, 8)
    torch.testing.assert_close(fixed(x), glob(x))
    # larger input: a sliding 8x8 window, output still the input's size
    assert fixed(torch.randn(1, 6, 16, 24)).shape == (1, 3, 16, 24)
    with pytest.raises(ValueError, match="pool_kernel_size"):
        fixed(torch.randn(1, 6, 12, 8))


def test_aspp_dropout_and_depthwise():
    m = ASPP(
        4,
        4,
        [1, 2, 3],
        norm="BN",
        activation=F.relu,
        dropout=0.5,
        use_depthwise_separable_conv=True,
    )
    assert all(isinstance(m.convs[i], DepthwiseSeparableConv2d) for i in (1, 2, 3))
    assert m.convs[2].depthwise.dilation == (2, 2)
    x = torch.randn(2, 4, 6, 6)
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    zeros_eval = (m(x) == 0).sum()
    m.train()
    zeros_train = (m(x) == 0).sum()
    assert zeros_train > zeros_eval + 10  # dropout active in training only
    with pytest.raises(ValueError, match="3 dilations"):
        ASPP(4, 4, [1, 2], norm="", activation=F.relu)
