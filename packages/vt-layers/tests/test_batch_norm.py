import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vt_layers import (
    BatchNorm2d,
    FrozenBatchNorm2d,
    LayerNorm,
    NaiveSyncBatchNorm,
    get_norm,
)


def _random_bn(c: int, dtype=torch.float64) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, eps=1e-3).to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.1, 3.0)
    return bn.eval()


@pytest.mark.parametrize("requires_grad", [False, True])
def test_frozen_bn_equals_batchnorm_eval(requires_grad):
    bn = _random_bn(6)
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(bn)
    assert isinstance(frozen, FrozenBatchNorm2d)
    assert frozen.eps == bn.eps
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64, requires_grad=requires_grad)
    torch.testing.assert_close(frozen(x), bn(x))
    if requires_grad:
        frozen(x).sum().backward()
        assert frozen.weight.grad is None  # buffers, not parameters
        assert list(frozen.parameters()) == []


def test_frozen_bn_default_is_identity():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(FrozenBatchNorm2d(3)(x), x)


def test_convert_frozen_batchnorm_in_place_nested():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), _random_bn(4).float(), nn.Sequential(nn.BatchNorm2d(4))
    )
    model.add_module("sync", nn.SyncBatchNorm(4))
    ref = _random_bn(4).float()
    out = FrozenBatchNorm2d.convert_frozen_batchnorm(model)
    assert out is model
    assert isinstance(model[1], FrozenBatchNorm2d)
    assert isinstance(model[2][0], FrozenBatchNorm2d)
    assert isinstance(model.sync, FrozenBatchNorm2d)
    assert isinstance(model[0], nn.Conv2d)
    # converted statistics are copies, not views of the old module
    bn = ref
    frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(bn)
    bn.running_mean.add_(1.0)
    assert not torch.equal(frozen.running_mean, bn.running_mean)


def test_load_checkpoint_with_all_buffers_from_batchnorm():
    bn = _random_bn(5).float()
    frozen = FrozenBatchNorm2d(5, eps=bn.eps)
    result = frozen.load_state_dict(bn.state_dict())  # includes num_batches_tracked
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(frozen(x), bn(x))


def test_load_caffe2_checkpoint_with_only_weight_and_bias():
    weight, bias = torch.rand(4) + 0.5, torch.randn(4)
    frozen = FrozenBatchNorm2d(4)
    result = frozen.load_state_dict({"weight": weight, "bias": bias})
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 4, 3, 3)
    # statistics stay the identity: the affine transform alone
    torch.testing.assert_close(frozen(x), x * weight[:, None, None] + bias[:, None, None])
    # nested, with a prefix
    model = nn.Sequential(FrozenBatchNorm2d(4))
    model.load_state_dict({"0.weight": weight, "0.bias": bias})
    torch.testing.assert_close(model(x), x * weight[:, None, None] + bias[:, None, None])


def test_frozen_bn_repr():
    assert repr(FrozenBatchNorm2d(8, eps=1e-4)) == "FrozenBatchNorm2d(num_features=8, eps=0.0001)"


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("BN", nn.BatchNorm2d),
        ("SyncBN", nn.SyncBatchNorm),
        ("FrozenBN", FrozenBatchNorm2d),
        ("GN", nn.GroupNorm),
        ("nnSyncBN", nn.SyncBatchNorm),
        ("naiveSyncBN", NaiveSyncBatchNorm),
        ("naiveSyncBN_N", NaiveSyncBatchNorm),
        ("LN", LayerNorm),
    ],
)
def test_get_norm_names(name, cls):
    norm = get_norm(name, 64)
    assert type(norm) is cls
    if cls is nn.GroupNorm:
        assert norm.num_groups == 32 and norm.num_channels == 64
    elif cls is LayerNorm:
        assert norm.weight.shape == (64,)
    else:
        assert norm.num_features == 64
    if name == "naiveSyncBN_N":
        assert norm._stats_mode == "N"
    if name == "naiveSyncBN":
        assert norm._stats_mode == ""


def test_get_norm_none_callable_and_errors():
    assert get_norm(None, 8) is None
    assert get_norm("", 8) is None
    norm = get_norm(lambda c: nn.GroupNorm(2, c), 8)
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == 2
    with pytest.raises(ValueError, match="unknown norm 'XN'"):
        get_norm("XN", 8)
    with pytest.raises(TypeError, match="norm must be"):
        get_norm(3, 8)
    assert BatchNorm2d is nn.BatchNorm2d


def test_layer_norm_is_channel_wise_layer_norm():
    ln = LayerNorm(6).double()
    with torch.no_grad():
        ln.weight.uniform_(0.5, 2)
        ln.bias.normal_()
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, eps=1e-6)
    torch.testing.assert_close(ln(x), ref.permute(0, 3, 1, 2))


def test_naive_sync_bn_single_process_is_batchnorm():
    sync = NaiveSyncBatchNorm(3, stats_mode="N")
    bn = nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(sync(x), bn(x))
    torch.testing.assert_close(sync.running_var, bn.running_var)
    with pytest.raises(ValueError, match="stats_mode"):
        NaiveSyncBatchNorm(3, stats_mode="HW")


WORKER = Path(__file__).with_name("naive_sync_bn_worker.py")
# (stats_mode, per-rank batch sizes); the "" mode is exact only for equal sizes.
DIST_CASES = [("", (2, 2)), ("N", (3, 1)), ("N", (2, 0)), ("N", (0, 0)), ("", (0, 0))]


@pytest.fixture(scope="module")
def dist_results(tmp_path_factory):
    """Run every case in one 2-process gloo group; returns {case index: [rank0, rank1]}."""
    tmp = tmp_path_factory.mktemp("naive_sync_bn")
    init_file = tmp / "init"
    cases_file = tmp / "cases.json"
    cases_file.write_text(json.dumps(DIST_CASES))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(rank),
                "2",
                str(init_file),
                str(cases_file),
                str(tmp),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
    return {
        i: [torch.load(tmp / f"case{i}_rank{r}.pt", weights_only=True) for r in range(2)]
        for i in range(len(DIST_CASES))
    }


def _reference(stats_mode, sizes):
    """BatchNorm2d (train) over the concatenated batch, with the worker's data."""
    from naive_sync_bn_worker import make_case

    x, grad_out, weight, bias = make_case(sizes)
    bn = nn.BatchNorm2d(x.shape[1], momentum=0.3).double()
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    x = x.clone().requires_grad_(True)
    out = bn(x)
    (out * grad_out).sum().backward()
    return out.detach(), x.grad, bn


@pytest.mark.parametrize("case", range(4))
def test_naive_sync_bn_two_process_gloo_equals_batchnorm(case, dist_results, monkeypatch):
    monkeypatch.syspath_prepend(str(WORKER.parent))
    stats_mode, sizes = DIST_CASES[case]
    ranks = dist_results[case]
    total = sum(sizes)
    if total == 0:
        for r in ranks:
            assert r["out"].shape[0] == 0
            # no sample anywhere: the running statistics are unchanged
            torch.testing.assert_close(r["running_mean"], torch.zeros_like(r["running_mean"]))
            torch.testing.assert_close(r["running_var"], torch.ones_like(r["running_var"]))
            assert torch.equal(r["weight_grad"], torch.zeros_like(r["weight_grad"]))
        return
    out, x_grad, bn = _reference(stats_mode, sizes)
    torch.testing.assert_close(torch.cat([r["out"] for r in ranks]), out)
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]), x_grad)
    # data-parallel training sums the per-rank parameter gradients
    torch.testing.assert_close(sum(r["weight_grad"] for r in ranks), bn.weight.grad)
    torch.testing.assert_close(sum(r["bias_grad"] for r in ranks), bn.bias.grad)
    for r in ranks:
        torch.testing.assert_close(r["running_mean"], bn.running_mean)
        torch.testing.assert_close(r["running_var"], bn.running_var)


def test_naive_sync_bn_empty_default_mode_raises(dist_results):
    for r in dist_results[4]:
        assert "does not support zero batch size" in r["error"]
