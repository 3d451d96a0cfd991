import copy

import pytest
import torch
from torch import nn

from vt_engine import AmpOptimWrapper, OptimWrapper


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def mse(model, x, y):
    return ((model(x) - y) ** 2).mean()


def test_accumulation_equals_large_batch():
    x, y = torch.randn(12, 4), torch.randn(12, 1)
    big = make_model()
    small = copy.deepcopy(big)
    ow_big = OptimWrapper(torch.optim.SGD(big.parameters(), lr=0.1))
    ow_small = OptimWrapper(torch.optim.SGD(small.parameters(), lr=0.1), accumulative_counts=3)
    for _ in range(2):
        ow_big.update_params(mse(big, x, y))
        for chunk in range(3):
            sl = slice(4 * chunk, 4 * chunk + 4)
            before = [p.clone() for p in small.parameters()]
            ow_small.update_params(mse(small, x[sl], y[sl]))
            changed = any(not torch.equal(a, b) for a, b in zip(before, small.parameters()))
            assert changed == (chunk == 2)
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_accumulation_remainder_window_uses_its_length():
    # 5 iterations with counts 2: windows [2, 2, 1]; the last loss is divided by 1
    x, y = torch.randn(5, 4), torch.randn(5, 1)
    model = make_model()
    ref = copy.deepcopy(model)
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    ow.initialize_count_status(model, 0, 5)
    ow_ref = OptimWrapper(torch.optim.SGD(ref.parameters(), lr=0.1))
    for i in range(5):
        ow.update_params(mse(model, x[i : i + 1], y[i : i + 1]))
    for lo, hi in [(0, 2), (2, 4), (4, 5)]:
        ow_ref.update_params(mse(ref, x[lo:hi], y[lo:hi]))
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_bounds_norm_and_reports_it():
    model = make_model()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0), clip_grad=dict(max_norm=0.01))
    loss = mse(model, torch.randn(8, 4) * 10, torch.randn(8, 1) * 10)
    ow.backward(loss)
    raw = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    ow.step()
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert ow.grad_norm == pytest.approx(raw.item(), rel=1e-5)
    assert raw > 0.01
    assert clipped.item() == pytest.approx(0.01, rel=1e-4)


def test_clip_grad_value():
    model = make_model()
    ow = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.0), clip_grad=dict(type="value", clip_value=1e-3)
    )
    ow.backward(mse(model, torch.randn(8, 4) * 10, torch.randn(8, 1)))
    ow.step()
    assert max(p.grad.abs().max().item() for p in model.parameters()) <= 1e-3 + 1e-9


def test_bad_arguments():
    params = make_model().parameters()
    opt = torch.optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="accumulative_counts"):
        OptimWrapper(opt, accumulative_counts=0)
    with pytest.raises(ValueError, match="clip_grad"):
        OptimWrapper(opt, clip_grad=dict(type="foo", max_norm=1))
    with pytest.raises(ValueError, match="max_norm"):
        OptimWrapper(opt, clip_grad=dict(norm_type=2))
    with pytest.raises(TypeError, match="optimizer"):
        OptimWrapper(make_model())
    with pytest.raises(ValueError, match="dtype"):
        AmpOptimWrapper(optimizer=opt, dtype="float64")


def test_get_lr_momentum_and_state_round_trip():
    model = make_model()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    assert ow.get_lr() == {"lr": [0.1]}
    assert ow.get_momentum() == {"momentum": [0.9]}
    ow.update_params(mse(model, torch.randn(3, 4), torch.randn(3, 1)))
    other = OptimWrapper(torch.optim.SGD(make_model().parameters(), lr=0.5, momentum=0.9))
    other.load_state_dict(ow.state_dict())
    assert other.get_lr() == {"lr": [0.1]}
    buf = ow.optimizer.state[next(iter(model.parameters()))]["momentum_buffer"]
    other_buf = next(iter(other.optimizer.state.values()))["momentum_buffer"]
    torch.testing.assert_close(buf, other_buf)


def test_amp_scaler_state_round_trips_and_skips_overflow():
    model = make_model()
    ow = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss_scale=dict(init_scale=2.0**10, growth_interval=1),
    )
    assert ow.loss_scaler.is_enabled()
    x, y = torch.randn(4, 4), torch.randn(4, 1)
    with ow.optim_context(model):
        loss = mse(model, x, y)
    ow.update_params(loss)
    assert ow.loss_scaler.get_scale() == 2.0**11  # one finite step, growth_interval=1
    before = [p.clone() for p in model.parameters()]
    first = next(iter(model.parameters()))
    first.grad = torch.full_like(first, float("inf"))  # an overflowed fp16 gradient
    ow.step()
    ow.zero_grad()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # step skipped
    assert ow.loss_scaler.get_scale() == 2.0**10  # backed off
    state = ow.state_dict()
    other = AmpOptimWrapper(optimizer=torch.optim.SGD(make_model().parameters(), lr=0.1))
    other.load_state_dict(state)
    assert other.loss_scaler.state_dict() == ow.loss_scaler.state_dict()
    assert "loss_scaler" in state and "loss_scaler" not in other.optimizer.state_dict()


def test_amp_static_scale_and_bf16():
    model = make_model()
    ow = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_scale=64.0)
    ow.update_params(mse(model, torch.randn(4, 4), torch.randn(4, 1)))
    assert ow.loss_scaler.get_scale() == 64.0
    bf = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype="bfloat16")
    assert not bf.loss_scaler.is_enabled()
    with bf.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    ref = copy.deepcopy(model)
    with bf.optim_context(model):
        loss = mse(model, torch.ones(2, 4), torch.zeros(2, 1))
    bf.update_params(loss)
    assert any(not torch.equal(a, b) for a, b in zip(ref.parameters(), model.parameters()))
