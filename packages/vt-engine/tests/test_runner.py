import json
import math

import pytest
import torch
from vt_engine_toys import ToyDataset, ToyMetric, ToyModel

from vt_engine import (
    AmpOptimWrapper,
    CheckpointHook,
    EMAHook,
    Hook,
    LoggerHook,
    Runner,
    find_latest_checkpoint,
    read_checkpoint,
)


def make_runner(
    work_dir,
    *,
    max_iters=20,
    by_epoch=False,
    max_epochs=2,
    dropout=0.1,
    ckpt=None,
    hooks=None,
    **kwargs,
):
    train_cfg = (
        dict(by_epoch=True, max_epochs=max_epochs)
        if by_epoch
        else dict(by_epoch=False, max_iters=max_iters, val_interval=10**6)
    )
    torch.manual_seed(123)  # the same initial weights in every run
    defaults = dict(
        model=ToyModel(dropout=dropout),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=ToyDataset(24), batch_size=4, sampler="default" if by_epoch else "infinite"
        ),
        train_cfg=train_cfg,
        optim_wrapper=dict(
            optimizer=dict(type="AdamW", lr=1e-2, weight_decay=0.01),
            accumulative_counts=2,
            clip_grad=dict(max_norm=1.0),
        ),
        param_scheduler=[
            dict(type="LinearLR", start_factor=0.1, end=4, by_epoch=False),
            dict(type="CosineAnnealingLR", begin=4, end=40, by_epoch=False, eta_min=1e-4),
        ],
        default_hooks=dict(
            checkpoint=ckpt or CheckpointHook(interval=10, by_epoch=by_epoch),
            logger=LoggerHook(interval=5, progress_bar=False),
        ),
        custom_hooks=hooks,
        randomness=dict(seed=7, deterministic=True),
    )
    defaults.update(kwargs)
    return Runner(**defaults)


def weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_resume_is_bit_identical_iter_based(tmp_path):
    straight = make_runner(tmp_path / "a", max_iters=20)
    straight.train()
    first = make_runner(tmp_path / "b", max_iters=10)
    first.train()
    assert find_latest_checkpoint(tmp_path / "b").name == "iter_10"
    resumed = make_runner(tmp_path / "b", max_iters=20, model=ToyModel(dropout=0.1), resume=True)
    resumed.train()
    assert resumed.iter == 20
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.optim_wrapper.get_lr() == resumed.optim_wrapper.get_lr()
    sa, sb = (
        straight.optim_wrapper.state_dict()["state"],
        resumed.optim_wrapper.state_dict()["state"],
    )
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    # and training did change the weights (the comparison is not vacuous)
    fresh = ToyModel(dropout=0.1).state_dict()
    assert not all(torch.equal(fresh[k], a[k]) for k in a)


def test_resume_is_bit_identical_epoch_based_with_amp_scaler(tmp_path):
    def amp(**kw):
        return dict(
            type="AmpOptimWrapper",
            loss_scale=dict(init_scale=256.0, growth_interval=2),
            optimizer=dict(type="SGD", lr=0.05, momentum=0.9),
        )

    straight = make_runner(
        tmp_path / "a",
        by_epoch=True,
        max_epochs=4,
        optim_wrapper=amp(),
        ckpt=CheckpointHook(interval=2),
    )
    straight.train()
    first = make_runner(
        tmp_path / "b",
        by_epoch=True,
        max_epochs=2,
        optim_wrapper=amp(),
        ckpt=CheckpointHook(interval=2),
    )
    first.train()
    resumed = make_runner(
        tmp_path / "b",
        by_epoch=True,
        max_epochs=4,
        optim_wrapper=amp(),
        ckpt=CheckpointHook(interval=2),
        resume=tmp_path / "b" / "epoch_2",
    )
    resumed.train()
    assert isinstance(resumed.optim_wrapper, AmpOptimWrapper)
    assert resumed.epoch == 4 and resumed.iter == 24
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (
        straight.optim_wrapper.loss_scaler.state_dict()
        == resumed.optim_wrapper.loss_scaler.state_dict()
    )


def test_checkpoint_retention_and_contents(tmp_path):
    runner = make_runner(
        tmp_path, max_iters=10, ckpt=CheckpointHook(interval=2, by_epoch=False, max_keep_ckpts=2)
    )
    runner.train()
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("iter_"))
    assert kept == ["iter_10", "iter_8"]
    assert find_latest_checkpoint(tmp_path).name == "iter_10"
    ckpt = read_checkpoint(tmp_path / "iter_10")
    assert ckpt["meta"]["iter"] == 10 and ckpt["meta"]["seed"] == 7
    assert set(ckpt) >= {"state_dict", "optimizer", "param_schedulers", "rng", "meta"}
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in runner.model.state_dict().items())
    assert not list(tmp_path.glob(".*tmp"))  # no temporary leftovers


class Recorder(Hook):
    priority = "LOWEST"
    points = (
        "before_run",
        "after_run",
        "before_train",
        "after_train",
        "before_train_epoch",
        "after_train_epoch",
        "before_train_iter",
        "after_train_iter",
        "before_val",
        "after_val",
        "before_val_epoch",
        "after_val_epoch",
        "before_val_iter",
        "after_val_iter",
        "before_save_checkpoint",
    )

    def __init__(self, name="rec", log=None):
        self.name = name
        self.calls = [] if log is None else log
        for point in self.points:
            setattr(self, point, self._make(point))

    def _make(self, point):
        def record(runner, **kwargs):
            self.calls.append(
                (point, kwargs.get("batch_idx")) if self.name == "rec" else (self.name, point)
            )

        return record


def test_hook_call_order_epoch_based_with_validation(tmp_path):
    rec = Recorder()
    runner = make_runner(
        tmp_path,
        by_epoch=True,
        max_epochs=2,
        train_dataloader=dict(dataset=ToyDataset(8), batch_size=4),
        val_dataloader=dict(dataset=ToyDataset(4), batch_size=4, shuffle=False),
        val_evaluator=ToyMetric(),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        ckpt=CheckpointHook(interval=2),
        hooks=[rec],
    )
    runner.train()
    epoch = [("before_train_epoch", None)]
    for i in range(2):
        epoch += [("before_train_iter", i), ("after_train_iter", i)]
    epoch += [("after_train_epoch", None)]
    val = [
        ("before_val", None),
        ("before_val_epoch", None),
        ("before_val_iter", 0),
        ("after_val_iter", 0),
        ("after_val_epoch", None),
        ("after_val", None),
    ]
    expected = [("before_run", None), ("before_train", None)]
    expected += epoch + val
    expected += [*epoch[:-1], ("before_save_checkpoint", None), ("after_train_epoch", None), *val]
    expected += [("after_train", None), ("after_run", None)]
    # the checkpoint hook (VERY_LOW) saves inside after_train_epoch, before the recorder (LOWEST)
    assert rec.calls == expected


def test_hooks_run_by_priority_then_registration(tmp_path):
    log = []
    runner = make_runner(
        tmp_path, max_iters=1, default_hooks=dict(logger=None, checkpoint=None, timer=None)
    )
    for name, prio in [("low", "LOW"), ("high", "HIGH"), ("high2", "HIGH"), ("top", 0)]:
        hook = Recorder(name, log)
        runner.register_hook(hook, priority=prio)
    runner.call_hook("before_run")
    assert [n for n, _ in log] == ["top", "high", "high2", "low"]
    with pytest.raises(ValueError, match="priority"):
        runner.register_hook(Recorder(), priority="SOMETIMES")


def test_json_and_tensorboard_logs(tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=10,
        train_cfg=dict(by_epoch=False, max_iters=10, val_interval=5),
        val_dataloader=dict(dataset=ToyDataset(8, seed=3), batch_size=4, shuffle=False),
        val_evaluator=ToyMetric(),
        visualizer=dict(backends=("local", "tensorboard")),
    )
    runner.train()
    vis_dir = runner.log_dir / "vis_data"
    records = [json.loads(line) for line in (vis_dir / "scalars.json").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val/mse" in r]
    assert [r["step"] for r in train] == [5, 10] and [r["iter"] for r in train] == [5, 10]
    for r in train:
        assert {"lr", "loss", "loss_mse", "time", "data_time", "eta", "grad_norm", "epoch"} <= set(
            r
        )
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float))
    assert [r["step"] for r in val] == [5, 10] and val[0]["val/count"] == 8

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(vis_dir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"loss", "lr", "val/mse"} <= set(tags)
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == [5, 10]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    text_log = (runner.log_dir / f"{runner.timestamp}.log").read_text()
    assert "Iter(train) [10/10]" in text_log and "Iter(val) [10]" in text_log


def test_save_best_keeps_one_best_checkpoint(tmp_path):
    runner = make_runner(
        tmp_path,
        max_iters=12,
        dropout=0.0,
        train_cfg=dict(by_epoch=False, max_iters=12, val_interval=3),
        val_dataloader=dict(dataset=ToyDataset(8, seed=3), batch_size=4, shuffle=False),
        val_evaluator=ToyMetric(),
        ckpt=CheckpointHook(interval=-1, by_epoch=False, save_best="mse", save_last=False),
    )
    runner.train()
    lines = (runner.log_dir / "vis_data" / "scalars.json").read_text().splitlines()
    vals = [(json.loads(x)["val/mse"], json.loads(x)["step"]) for x in lines if "val/mse" in x]
    best_mse, best_step = min(vals)
    best = [p.name for p in tmp_path.iterdir() if p.name.startswith("best_")]
    assert best == [f"best_mse_iter_{best_step}"]
    hook = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    assert hook.best_score == pytest.approx(best_mse)
    assert not any(p.name.startswith("iter_") for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="rule"):
        CheckpointHook(save_best="mse", rule="bigger")


class ParamSnapshots(Hook):
    priority = "LOWEST"

    def __init__(self):
        self.train, self.val = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.train.append([p.detach().clone() for p in runner.model.parameters()])

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self.val.append([p.detach().clone() for p in runner.model.parameters()])


def test_ema_hook_averages_and_validates_with_averaged_weights(tmp_path):
    snaps = ParamSnapshots()
    ema = EMAHook(momentum=0.25, begin_iter=1)
    runner = make_runner(
        tmp_path,
        max_iters=4,
        dropout=0.0,
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        param_scheduler=None,
        train_cfg=dict(by_epoch=False, max_iters=4, val_interval=4),
        val_dataloader=dict(dataset=ToyDataset(4), batch_size=4, shuffle=False),
        val_evaluator=ToyMetric(),
        hooks=[ema, snaps],
    )
    runner.train()
    # iteration 1 is before begin_iter, iteration 2 is the first average (a copy)
    expected = snaps.train[1]
    for params in snaps.train[2:]:
        expected = [0.75 * e + 0.25 * p for e, p in zip(expected, params)]
    for e, got in zip(expected, ema.ema_model.parameters()):
        torch.testing.assert_close(got, e)
    for e, got in zip(expected, snaps.val[0]):  # validation ran with the averaged weights
        torch.testing.assert_close(got, e)
    for p, got in zip(snaps.train[-1], runner.model.parameters()):  # and swapped back
        assert torch.equal(p, got)
    ckpt = read_checkpoint(tmp_path / "iter_4")
    assert all(
        torch.equal(ckpt["ema_state_dict"][k], v) for k, v in ema.ema_model.state_dict().items()
    )


def test_val_and_test_standalone_with_load_from(tmp_path):
    trained = make_runner(tmp_path / "t", max_iters=4)
    trained.train()
    kwargs = dict(
        val_dataloader=dict(dataset=ToyDataset(8, seed=3), batch_size=4, shuffle=False),
        val_evaluator=ToyMetric(),
        test_dataloader=dict(dataset=ToyDataset(8, seed=3), batch_size=3, shuffle=False),
        test_evaluator=[ToyMetric(prefix="t_")],
        load_from=tmp_path / "t" / "iter_4",
    )
    runner = Runner(model=ToyModel(dropout=0.1), work_dir=tmp_path / "v", **kwargs)
    metrics = runner.val()
    assert metrics["count"] == 8
    tmetrics = runner.test()
    assert tmetrics["t_count"] == 8 and tmetrics["t_mse"] == pytest.approx(metrics["mse"])
    # the reference: the trained model evaluated directly
    model = trained.model.eval()
    ds = ToyDataset(8, seed=3)
    with torch.no_grad():
        ref = ((model(ds.x) - ds.y) ** 2).double().mean().item()
    assert metrics["mse"] == pytest.approx(ref, rel=1e-5)


def test_runner_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="train_step"):
        Runner(model=torch.nn.Linear(2, 2), work_dir=tmp_path)
    with pytest.raises(ValueError, match="launcher"):
        Runner(model=ToyModel(), work_dir=tmp_path, launcher="slurm")
    runner = Runner(model=ToyModel(), work_dir=tmp_path)
    with pytest.raises(RuntimeError, match="train_dataloader"):
        runner.train()
    with pytest.raises(RuntimeError, match="val_dataloader"):
        runner.val()
    with pytest.raises(ValueError, match="backends"):
        Runner(model=ToyModel(), work_dir=tmp_path, visualizer=dict(backends=("wandb",)))


def test_empty_cache_hook_calls(monkeypatch, tmp_path):
    from vt_engine import EmptyCacheHook

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    hook = EmptyCacheHook(before_epoch=True, after_epoch=False, after_iter=True)
    hook.before_train_epoch(None)
    hook.after_train_epoch(None)
    hook.after_train_iter(None, 0)
    hook.after_val_iter(None, 0)
    assert len(calls) == 3


class CrashAt(Hook):
    priority = "LOWEST"  # after the checkpoint hook saved this iteration

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise RuntimeError("simulated crash")


def test_resume_after_crash_mid_epoch_is_bit_identical(tmp_path):
    def run(work_dir, **kw):
        return make_runner(
            work_dir,
            by_epoch=True,
            max_epochs=2,
            ckpt=CheckpointHook(interval=3, by_epoch=False),
            **kw,
        )

    straight = run(tmp_path / "a")
    straight.train()
    crashed = run(tmp_path / "b", hooks=[CrashAt(9)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.train()
    assert find_latest_checkpoint(tmp_path / "b").name == "iter_9"  # epoch 1, batch 3 of 6
    resumed = run(tmp_path / "b", resume=True)
    resumed.train()
    assert resumed.iter == 12 and resumed.epoch == 2
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
