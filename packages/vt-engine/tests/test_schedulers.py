import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

from vt_engine import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    OptimWrapper,
    PolyLR,
    build_param_schedulers,
)
from vt_engine.schedulers import LinearParamScheduler

STEPS = 30


def make_optimizer(lrs=(0.1, 0.02)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def trace(optimizer, schedulers, steps=STEPS):
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        for s in schedulers:
            s.step()
    return out


CASES = [
    (
        lambda o: LinearLR(o, start_factor=0.1, end=11),
        lambda o: torch_sched.LinearLR(o, 0.1, 1.0, 10),
    ),
    (
        lambda o: LinearLR(o, start_factor=0.5, end_factor=0.2, end=8),
        lambda o: torch_sched.LinearLR(o, 0.5, 0.2, 7),
    ),
    (lambda o: ConstantLR(o, factor=0.25, end=6), lambda o: torch_sched.ConstantLR(o, 0.25, 5)),
    (
        lambda o: MultiStepLR(o, milestones=[5, 12, 12, 20], gamma=0.5),
        lambda o: torch_sched.MultiStepLR(o, [5, 12, 12, 20], 0.5),
    ),
    (lambda o: ExponentialLR(o, gamma=0.9), lambda o: torch_sched.ExponentialLR(o, 0.9)),
    (
        lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.001),
        lambda o: torch_sched.CosineAnnealingLR(o, 10, 0.001),
    ),
    (lambda o: CosineAnnealingLR(o, end=STEPS), lambda o: torch_sched.CosineAnnealingLR(o, STEPS)),
    (lambda o: PolyLR(o, power=0.9, end=21), lambda o: torch_sched.PolynomialLR(o, 20, 0.9)),
    (
        lambda o: OneCycleLR(o, eta_max=[1.0, 0.5], total_steps=STEPS, pct_start=0.25),
        lambda o: torch_sched.OneCycleLR(
            o, [1.0, 0.5], total_steps=STEPS, pct_start=0.25, cycle_momentum=False
        ),
    ),
    (
        lambda o: OneCycleLR(
            o, eta_max=1.0, total_steps=STEPS, anneal_strategy="linear", three_phase=True
        ),
        lambda o: torch_sched.OneCycleLR(
            o,
            1.0,
            total_steps=STEPS,
            anneal_strategy="linear",
            three_phase=True,
            cycle_momentum=False,
        ),
    ),
]


@pytest.mark.parametrize("ours, theirs", CASES)
def test_matches_torch_lr_scheduler(ours, theirs):
    opt_a, opt_b = make_optimizer(), make_optimizer()
    got = trace(opt_a, [ours(opt_a)])
    want = trace(opt_b, [theirs(opt_b)])
    torch.testing.assert_close(
        torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64)
    )


def test_warmup_then_cosine_composes_by_begin_end():
    opt = make_optimizer((1.0,))
    schedulers = [
        LinearLR(opt, start_factor=0.1, begin=0, end=5),
        CosineAnnealingLR(opt, begin=5, end=25, eta_min=0.0),
    ]
    got = [v[0] for v in trace(opt, schedulers, 25)]
    # reference: warmup over 5 steps (closed form), then torch's cosine from the peak
    ref_opt = make_optimizer((1.0,))
    cosine = torch_sched.CosineAnnealingLR(ref_opt, T_max=20)
    want = [0.1 + 0.9 * t / 4 for t in range(5)]
    for _ in range(20):
        want.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        cosine.step()
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want))


def test_multistep_milestones_count_from_begin():
    opt = make_optimizer((1.0,))
    got = [v[0] for v in trace(opt, [MultiStepLR(opt, milestones=[2], begin=3, gamma=0.1)], 8)]
    assert got == pytest.approx([1, 1, 1, 1, 1, 0.1, 0.1, 0.1])


def test_state_dict_resume_continues_identically():
    opt = make_optimizer()
    sched = CosineAnnealingLR(OptimWrapper(opt), T_max=20)
    trace(opt, [sched], 7)
    state = sched.state_dict()
    opt_state = opt.state_dict()
    rest = trace(opt, [sched], 10)

    opt2 = make_optimizer((5.0, 5.0))
    sched2 = CosineAnnealingLR(opt2, T_max=20)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    assert trace(opt2, [sched2], 10) == rest


def test_momentum_scheduling_and_convert_to_iter_based():
    opt = make_optimizer((1.0,))
    s = LinearParamScheduler(opt, "momentum", start_factor=0.5, end=3)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.45)
    s.step()
    s.step()
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.9)
    opt = make_optimizer((1.0,))
    (built,) = build_param_schedulers(
        [dict(type="MultiStepLR", milestones=[2], by_epoch=True, convert_to_iter_based=True)],
        opt,
        epoch_length=4,
    )
    assert not built.by_epoch and built.milestones == {8: 1}


def test_bad_arguments():
    opt = make_optimizer()
    with pytest.raises(ValueError, match="end"):
        LinearLR(opt, begin=5, end=5)
    with pytest.raises(ValueError, match="start_factor"):
        LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(opt)
    with pytest.raises(TypeError, match="optimizer"):
        LinearLR("sgd")
    with pytest.raises(KeyError, match="nesterov_x"):
        LinearParamScheduler(opt, "nesterov_x")
    with pytest.raises(ValueError, match="total_steps"):
        OneCycleLR(opt, eta_max=1.0)
