"""Runner hooks: the mmengine hook points and priorities, and the standard hooks.

Call order. ``Runner.train()`` calls ``before_run``, then the train loop calls
``before_train``; per epoch ``before_train_epoch``, per iteration
``before_train_iter`` -> ``train_step`` -> ``after_train_iter``; then
``after_train_epoch``; validation (``before_val``, ``before_val_epoch``,
``before_val_iter``/``after_val_iter`` per batch, ``after_val_epoch(metrics)``,
``after_val``) runs after the iteration or epoch that completes a ``val_interval``;
then ``after_train`` and ``after_run``. Test mirrors validation. Checkpoints call
``before_save_checkpoint(checkpoint)`` and ``after_load_checkpoint(checkpoint)``.
At each point, hooks run by ascending priority (``"VERY_HIGH"`` = 10 first,
``"VERY_LOW"`` = 90 last), in registration order within a priority.
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vt_engine.model import unwrap_model
from vt_engine.registry import HOOKS
from vt_engine.visualization import _field, image_from_tensor, read_image
from vt_modeling import EventStorage

if TYPE_CHECKING:
    from vt_engine.runner import Runner

__all__ = [
    "Priority",
    "get_priority",
    "Hook",
    "RuntimeInfoHook",
    "IterTimerHook",
    "LoggerHook",
    "ParamSchedulerHook",
    "CheckpointHook",
    "DistSamplerSeedHook",
    "EMAHook",
    "EmptyCacheHook",
    "EventStorageHook",
    "SegVisualizationHook",
]

logger = logging.getLogger("vt_engine")


class Priority(IntEnum):
    """Hook priorities (lower runs first), as mmengine."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def get_priority(priority: int | str | Priority) -> int:
    """The integer value of a priority given as int (0-100), name or :class:`Priority`."""
    if isinstance(priority, str):
        try:
            return int(Priority[priority.upper()])
        except KeyError:
            raise ValueError(
                f"priority: unknown name {priority!r}; expected one of {[p.name for p in Priority]}"
            ) from None
    if isinstance(priority, int) and not isinstance(priority, bool):
        if not 0 <= priority <= 100:
            raise ValueError(f"priority: expected 0..100, got {priority}")
        return int(priority)
    raise TypeError(
        f"priority: expected an int, a name or a Priority, got {type(priority).__name__}"
    )


class Hook:
    """Base class of hooks; every method is a no-op hook point (see the module docs
    for the call order). ``priority`` orders hooks at each point."""

    priority: int | str = "NORMAL"

    def before_run(self, runner: Runner) -> None: ...
    def after_run(self, runner: Runner) -> None: ...
    def before_train(self, runner: Runner) -> None: ...
    def after_train(self, runner: Runner) -> None: ...
    def before_val(self, runner: Runner) -> None: ...
    def after_val(self, runner: Runner) -> None: ...
    def before_test(self, runner: Runner) -> None: ...
    def after_test(self, runner: Runner) -> None: ...
    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None: ...
    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None: ...
    def before_train_epoch(self, runner: Runner) -> None: ...
    def before_val_epoch(self, runner: Runner) -> None: ...
    def before_test_epoch(self, runner: Runner) -> None: ...
    def after_train_epoch(self, runner: Runner) -> None: ...
    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None: ...
    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None: ...
    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None: ...
    def before_val_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None: ...
    def before_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None: ...
    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None: ...
    def after_val_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None: ...
    def after_test_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None: ...

    # helpers (runner.iter / runner.epoch count completed steps before the increment)
    def every_n_epochs(self, runner: Runner, n: int, start: int = 0) -> bool:
        dividend = runner.epoch + 1 - start
        return n > 0 and dividend >= 0 and dividend % n == 0

    def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
        return n > 0 and (batch_idx + 1) % n == 0

    def every_n_train_iters(self, runner: Runner, n: int, start: int = 0) -> bool:
        dividend = runner.iter + 1 - start
        return n > 0 and dividend >= 0 and dividend % n == 0

    def end_of_epoch(self, dataloader: Any, batch_idx: int) -> bool:
        return batch_idx + 1 == len(dataloader)

    def is_last_train_epoch(self, runner: Runner) -> bool:
        return runner.epoch + 1 == runner.max_epochs

    def is_last_train_iter(self, runner: Runner) -> bool:
        return runner.iter + 1 == runner.max_iters


def _scalar(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


@HOOKS.register()
class RuntimeInfoHook(Hook):
    """Records the loop position, learning rate, losses and metrics in the runner's
    message hub (what the logger reads)."""

    priority = "VERY_HIGH"

    def before_train(self, runner: Runner) -> None:
        runner.message_hub.update_info("max_iters", runner.max_iters)
        runner.message_hub.update_info("max_epochs", runner.max_epochs)

    def before_train_epoch(self, runner: Runner) -> None:
        runner.message_hub.update_info("epoch", runner.epoch)

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        runner.message_hub.update_info("iter", runner.iter)
        lrs = runner.optim_wrapper.get_lr()["lr"]
        runner.message_hub.update_scalar("train/lr", lrs[0])

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        for key, value in (outputs or {}).items():
            runner.message_hub.update_scalar(f"train/{key}", _scalar(value))
        grad_norm = getattr(runner.optim_wrapper, "grad_norm", None)
        if grad_norm is not None:
            runner.message_hub.update_scalar("train/grad_norm", grad_norm)

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        for key, value in (metrics or {}).items():
            runner.message_hub.update_info(f"val/{key}", value)

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        for key, value in (metrics or {}).items():
            runner.message_hub.update_info(f"test/{key}", value)


@HOOKS.register()
class IterTimerHook(Hook):
    """Times data loading (``data_time``) and whole iterations (``time``) and estimates
    the remaining training time (``eta`` in the message hub, seconds)."""

    priority = "NORMAL"

    def __init__(self) -> None:
        self._t = time.perf_counter()
        self._train_start_iter = 0
        self._train_time = 0.0

    def _start(self, runner: Runner) -> None:
        self._t = time.perf_counter()

    before_val_epoch = before_test_epoch = before_train_epoch = _start  # type: ignore[assignment]

    def before_train(self, runner: Runner) -> None:
        self._train_start_iter = runner.iter
        self._train_time = 0.0

    def _before_iter(self, runner: Runner, mode: str) -> None:
        runner.message_hub.update_scalar(f"{mode}/data_time", time.perf_counter() - self._t)

    def _after_iter(self, runner: Runner, mode: str) -> float:
        now = time.perf_counter()
        elapsed = now - self._t
        self._t = now
        runner.message_hub.update_scalar(f"{mode}/time", elapsed)
        return elapsed

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        self._before_iter(runner, "train")

    def before_val_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        self._before_iter(runner, "val")

    def before_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        self._before_iter(runner, "test")

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._train_time += self._after_iter(runner, "train")
        done = runner.iter + 1 - self._train_start_iter
        runner.message_hub.update_info(
            "eta", self._train_time / done * (runner.max_iters - runner.iter - 1)
        )

    def after_val_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._after_iter(runner, "val")

    def after_test_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._after_iter(runner, "test")

    def after_val(self, runner: Runner) -> None:
        # validation time is not training time: restart the clock for the next iteration
        self._t = time.perf_counter()


@HOOKS.register()
class LoggerHook(Hook):
    """Logs training progress every ``interval`` iterations and validation/test metrics.

    Each record goes to the runner's logger (console and ``<log_dir>/<timestamp>.log``)
    and to the visualizer's backends (``add_scalars``: JSON lines, TensorBoard). With
    ``progress_bar``, the main process shows a tqdm bar with ETA over the training
    iterations (and over each evaluation). Training records hold ``lr``, every loss
    (mean over the interval), ``time`` and ``data_time`` (mean), ``grad_norm`` when
    clipping, ``eta`` (seconds), ``epoch``, ``iter`` and, on CUDA, ``memory`` (MB).

    Args:
        interval: log every ``interval`` training iterations.
        ignore_last: skip the last, shorter interval of an epoch.
        progress_bar: show tqdm bars on the main process.
    """

    priority = "BELOW_NORMAL"

    def __init__(
        self, interval: int = 10, ignore_last: bool = True, progress_bar: bool = True
    ) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval: expected a positive int, got {interval!r}")
        self.interval = interval
        self.ignore_last = ignore_last
        self.progress_bar = progress_bar
        self._bar: Any = None
        self._eval_bar: Any = None

    def _new_bar(self, runner: Runner, total: int, initial: int, desc: str, leave: bool) -> Any:
        if not (self.progress_bar and runner.rank == 0):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, leave=leave, dynamic_ncols=True)

    def before_train(self, runner: Runner) -> None:
        self._bar = self._new_bar(runner, runner.max_iters, runner.iter, "train", True)

    def after_train(self, runner: Runner) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _train_record(self, runner: Runner, window: int) -> dict[str, Any]:
        hub = runner.message_hub
        record: dict[str, Any] = {}
        for key, buf in hub.log_scalars.items():
            if not key.startswith("train/"):
                continue
            name = key[len("train/") :]
            record[name] = buf.current() if name == "lr" else buf.mean(window)
        record["eta"] = hub.get_info("eta", 0.0)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            record["memory"] = torch.cuda.max_memory_allocated() // (1024 * 1024)
        record["epoch"] = (
            runner.epoch + 1 if runner.train_loop is not None and runner.by_epoch else runner.epoch
        )
        record["iter"] = runner.iter + 1
        return record

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if outputs and "loss" in outputs:
                self._bar.set_postfix(loss=f"{_scalar(outputs['loss']):.4g}", refresh=False)
        loader = runner.train_dataloader
        end_of_epoch = runner.by_epoch and self.end_of_epoch(loader, batch_idx)
        if self.every_n_train_iters(runner, self.interval):
            window = self.interval
        elif (end_of_epoch and not self.ignore_last) or self.is_last_train_iter(runner):
            window = (
                (batch_idx % self.interval) + 1
                if runner.by_epoch
                else (runner.iter % self.interval) + 1
            )
        else:
            return
        record = self._train_record(runner, window)
        if runner.by_epoch:
            head = f"Epoch(train) [{record['epoch']}][{batch_idx + 1:>{len(str(len(loader)))}}/{len(loader)}]"
        else:
            head = (
                f"Iter(train) [{record['iter']:>{len(str(runner.max_iters))}}/{runner.max_iters}]"
            )
        eta = str(datetime.timedelta(seconds=int(record["eta"])))
        body = "  ".join(
            f"{k}: {v:.4e}"
            if k == "lr"
            else f"{k}: {v:.4f}"
            if isinstance(v, float)
            else f"{k}: {v}"
            for k, v in record.items()
            if k not in ("eta", "epoch", "iter")
        )
        runner.logger.info(f"{head}  eta: {eta}  {body}")
        runner.visualizer.add_scalars(record, step=runner.iter + 1)

    def _before_eval(self, runner: Runner, loader: Any, desc: str) -> None:
        total = len(loader) if loader is not None and hasattr(loader, "__len__") else None
        self._eval_bar = self._new_bar(runner, total, 0, desc, False)

    def before_val_epoch(self, runner: Runner) -> None:
        self._before_eval(runner, runner.val_dataloader, "val")

    def before_test_epoch(self, runner: Runner) -> None:
        self._before_eval(runner, runner.test_dataloader, "test")

    def after_val_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._eval_bar is not None:
            self._eval_bar.update(1)

    after_test_iter = after_val_iter  # type: ignore[assignment]

    def _after_eval(self, runner: Runner, metrics: dict[str, Any] | None, mode: str) -> None:
        if self._eval_bar is not None:
            self._eval_bar.close()
            self._eval_bar = None
        metrics = dict(metrics or {})
        scalars = {
            k: v.item() if isinstance(v, (torch.Tensor, np.number)) else v
            for k, v in metrics.items()
            if isinstance(v, (int, float, torch.Tensor, np.number)) and not isinstance(v, bool)
        }
        body = "  ".join(
            f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in scalars.items()
        )
        position = f"[{runner.epoch}]" if runner.by_epoch else f"[{runner.iter}]"
        runner.logger.info(f"{'Epoch' if runner.by_epoch else 'Iter'}({mode}) {position}  {body}")
        step = runner.epoch if runner.by_epoch else runner.iter
        runner.visualizer.add_scalars({f"{mode}/{k}": v for k, v in scalars.items()}, step=step)

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._after_eval(runner, metrics, "val")

    def after_test_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._after_eval(runner, metrics, "test")


@HOOKS.register()
class ParamSchedulerHook(Hook):
    """Steps the runner's parameter schedulers: iteration-based ones after every
    iteration, epoch-based ones after every epoch."""

    priority = "LOW"

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        for scheduler in runner.param_schedulers:
            if not scheduler.by_epoch:
                scheduler.step()

    def after_train_epoch(self, runner: Runner) -> None:
        for scheduler in runner.param_schedulers:
            if scheduler.by_epoch:
                scheduler.step()


_GREATER_KEYS = (
    "acc",
    "top",
    "ar@",
    "auc",
    "precision",
    "map",
    "iou",
    "ap",
    "pq",
    "sq",
    "rq",
    "dice",
    "fscore",
    "recall",
)
_LESS_KEYS = ("loss", "err", "mse", "mae", "abs_rel", "sq_rel")


@HOOKS.register()
class CheckpointHook(Hook):
    """Saves checkpoints periodically, keeps the last ``max_keep_ckpts``, and the best by
    a metric.

    Args:
        interval: save every ``interval`` epochs (``by_epoch``) or iterations; -1 never
            (except ``save_last``).
        by_epoch: count ``interval`` in epochs or iterations.
        save_optimizer: include the optimizer (and loss scaler) state.
        save_param_scheduler: include the schedulers' states.
        out_dir: where to save; default the runner's ``work_dir``.
        max_keep_ckpts: keep only the newest periodic checkpoints (-1: all).
        save_last: also save at the end of training.
        save_best: a metric name (or "auto": the first metric) to keep the best
            checkpoint of, ``best_<metric>_<epoch|iter>_<n>``, replacing the previous.
        rule: "greater" or "less"; inferred from the metric name when None.
        save_begin: first epoch/iteration that may be saved.
    """

    priority = "VERY_LOW"

    def __init__(
        self,
        interval: int = -1,
        by_epoch: bool = True,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        out_dir: str | os.PathLike | None = None,
        max_keep_ckpts: int = -1,
        save_last: bool = True,
        save_best: str | None = None,
        rule: str | None = None,
        save_begin: int = 0,
    ) -> None:
        if rule not in (None, "greater", "less"):
            raise ValueError(f"rule: expected 'greater', 'less' or None, got {rule!r}")
        if not isinstance(max_keep_ckpts, int) or max_keep_ckpts == 0 or max_keep_ckpts < -1:
            raise ValueError(
                f"max_keep_ckpts: expected -1 or a positive int, got {max_keep_ckpts!r}"
            )
        self.interval = interval
        self.by_epoch = by_epoch
        self.save_optimizer = save_optimizer
        self.save_param_scheduler = save_param_scheduler
        self.out_dir = out_dir
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.save_best = save_best
        self.rule = rule
        self.save_begin = save_begin
        self.best_score: float | None = None
        self.best_ckpt_path: str | None = None

    def _dir(self, runner: Runner) -> Path:
        return Path(self.out_dir) if self.out_dir is not None else Path(runner.work_dir)

    def after_train_epoch(self, runner: Runner) -> None:
        if self.by_epoch and (
            self.every_n_epochs(runner, self.interval, self.save_begin)
            or (self.save_last and self.is_last_train_epoch(runner))
        ):
            self._save(
                runner, f"epoch_{runner.epoch + 1}", epoch=runner.epoch + 1, iteration=runner.iter
            )

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if not self.by_epoch and (
            self.every_n_train_iters(runner, self.interval, self.save_begin)
            or (self.save_last and self.is_last_train_iter(runner))
        ):
            self._save(
                runner, f"iter_{runner.iter + 1}", epoch=runner.epoch, iteration=runner.iter + 1
            )

    def _save(self, runner: Runner, name: str, epoch: int, iteration: int) -> None:
        out_dir = self._dir(runner)
        runner.save_checkpoint(
            out_dir / name,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            epoch=epoch,
            iteration=iteration,
            record_last=True,
        )
        if self.max_keep_ckpts > 0 and runner.rank == 0:
            prefix = "epoch_" if self.by_epoch else "iter_"
            pattern = re.compile(rf"^{prefix}(\d+)$")
            found = sorted(
                (int(m.group(1)), p)
                for p in out_dir.iterdir()
                if p.is_dir() and (m := pattern.match(p.name))
            )
            for _, path in found[: -self.max_keep_ckpts]:
                shutil.rmtree(path, ignore_errors=True)

    def _rule_for(self, key: str) -> str:
        if self.rule is not None:
            return self.rule
        lowered = key.lower()
        if any(k in lowered for k in _LESS_KEYS):
            return "less"
        if any(k in lowered for k in _GREATER_KEYS):
            return "greater"
        raise ValueError(
            f"save_best: cannot infer the rule for metric {key!r}; pass rule='greater' or 'less'"
        )

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        if not self.save_best or not metrics or runner.train_loop is None:
            return
        key = next(iter(metrics)) if self.save_best == "auto" else self.save_best
        if key not in metrics:
            raise KeyError(
                f"save_best: metric {key!r} not among the evaluation results {sorted(metrics)}"
            )
        score = _scalar(metrics[key])
        rule = self._rule_for(key)
        if self.best_score is not None and not (
            score > self.best_score if rule == "greater" else score < self.best_score
        ):
            return
        self.best_score = score
        step_name = f"epoch_{runner.epoch}" if self.by_epoch else f"iter_{runner.iter}"
        safe_key = re.sub(r"[^\w.-]", "_", key)
        path = self._dir(runner) / f"best_{safe_key}_{step_name}"
        previous = self.best_ckpt_path
        self.best_ckpt_path = str(path)
        runner.save_checkpoint(
            path,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            epoch=runner.epoch,
            iteration=runner.iter,
        )
        if previous and previous != str(path) and runner.rank == 0:
            shutil.rmtree(previous, ignore_errors=True)
        runner.logger.info(
            f"The best checkpoint with {score:.4f} {key} at {step_name} is saved to {path}"
        )

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        checkpoint.setdefault("hooks", {})["CheckpointHook"] = {
            "best_score": self.best_score,
            "best_ckpt_path": self.best_ckpt_path,
        }

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        state = checkpoint.get("hooks", {}).get("CheckpointHook")
        if state:
            self.best_score = state["best_score"]
            self.best_ckpt_path = state["best_ckpt_path"]


@HOOKS.register()
class DistSamplerSeedHook(Hook):
    """Calls ``set_epoch(epoch)`` on the training sampler before each epoch, so
    shuffling differs per epoch and agrees across ranks."""

    priority = "NORMAL"

    def before_train_epoch(self, runner: Runner) -> None:
        loader = runner.train_dataloader
        sampler = getattr(loader, "sampler", None)
        batch_sampler = getattr(loader, "batch_sampler", None)
        for s in (sampler, getattr(batch_sampler, "sampler", None)):
            if s is not None and hasattr(s, "set_epoch"):
                s.set_epoch(runner.epoch)
                return


@HOOKS.register()
class EMAHook(Hook):
    """Keeps an exponential moving average of the model's parameters,
    ``ema = (1 - momentum) * ema + momentum * param`` after every iteration past
    ``begin_iter`` (the first such update, and every one before, copies the parameters),
    and evaluates with the averaged weights.

    The averaged weights are saved in checkpoints (``ema_state_dict``) and restored on
    resume.

    Args:
        momentum: the update weight of the current parameters.
        begin_iter: the first iteration that averages.
        update_buffers: average floating-point buffers too (else copy them).
    """

    priority = "NORMAL"

    def __init__(
        self, momentum: float = 0.0002, begin_iter: int = 0, update_buffers: bool = False
    ) -> None:
        if not 0 < momentum < 1:
            raise ValueError(f"momentum: expected a value in (0, 1), got {momentum}")
        self.momentum = momentum
        self.begin_iter = begin_iter
        self.update_buffers = update_buffers
        self.ema_model: torch.nn.Module | None = None
        self.steps = 0

    def before_run(self, runner: Runner) -> None:
        if self.ema_model is None:
            self.ema_model = copy.deepcopy(unwrap_model(runner.model)).eval().requires_grad_(False)

    @torch.no_grad()
    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        assert self.ema_model is not None
        model = unwrap_model(runner.model)
        averaging = runner.iter + 1 > self.begin_iter and self.steps > 0
        if runner.iter + 1 > self.begin_iter:
            self.steps += 1
        for ema_p, p in zip(self.ema_model.parameters(), model.parameters()):
            if averaging:
                ema_p.lerp_(p.detach(), self.momentum)
            else:
                ema_p.copy_(p.detach())
        for ema_b, b in zip(self.ema_model.buffers(), model.buffers()):
            if averaging and self.update_buffers and b.is_floating_point():
                ema_b.lerp_(b, self.momentum)
            else:
                ema_b.copy_(b)

    @torch.no_grad()
    def _swap(self, runner: Runner) -> None:
        assert self.ema_model is not None
        for ema_p, p in zip(self.ema_model.parameters(), unwrap_model(runner.model).parameters()):
            tmp = p.detach().clone()
            p.copy_(ema_p)
            ema_p.copy_(tmp)

    def before_val_epoch(self, runner: Runner) -> None:
        self._swap(runner)

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        self._swap(runner)

    before_test_epoch = before_val_epoch  # type: ignore[assignment]
    after_test_epoch = after_val_epoch  # type: ignore[assignment]

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        assert self.ema_model is not None
        checkpoint["ema_state_dict"] = self.ema_model.state_dict()
        checkpoint.setdefault("hooks", {})["EMAHook"] = {"steps": self.steps}

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        if self.ema_model is None:
            self.before_run(runner)
        assert self.ema_model is not None
        if "ema_state_dict" in checkpoint:
            self.ema_model.load_state_dict(checkpoint["ema_state_dict"])
            self.steps = checkpoint.get("hooks", {}).get("EMAHook", {}).get("steps", 1)
        else:
            warnings.warn(
                "EMAHook: no ema_state_dict in the checkpoint; the average starts from the loaded weights",
                stacklevel=2,
            )
            self.ema_model.load_state_dict(unwrap_model(runner.model).state_dict())


@HOOKS.register()
class EmptyCacheHook(Hook):
    """Releases cached CUDA memory (``torch.cuda.empty_cache``) before/after epochs or
    after iterations; a no-op without CUDA."""

    priority = "NORMAL"

    def __init__(
        self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False
    ) -> None:
        self._before_epoch = before_epoch
        self._after_epoch = after_epoch
        self._after_iter = after_iter

    @staticmethod
    def _empty() -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def before_train_epoch(self, runner: Runner) -> None:
        if self._before_epoch:
            self._empty()

    before_val_epoch = before_test_epoch = before_train_epoch  # type: ignore[assignment]

    def after_train_epoch(self, runner: Runner) -> None:
        if self._after_epoch:
            self._empty()

    def after_val_epoch(self, runner: Runner, metrics: dict[str, Any] | None = None) -> None:
        if self._after_epoch:
            self._empty()

    after_test_epoch = after_val_epoch  # type: ignore[assignment]

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self._after_iter:
            self._empty()

    after_val_iter = after_test_iter = after_train_iter  # type: ignore[assignment]


@HOOKS.register()
class EventStorageHook(Hook):
    """Opens an :class:`~vt_modeling.EventStorage` (detectron2's event storage) during
    each training iteration, so that the model can report images and scalars through
    ``get_event_storage()``: e.g. the training visualisations of
    ``GeneralizedRCNN(vis_period=...)`` and of the mask head, and the
    ``mask_rcnn/accuracy`` scalars.

    The storage's ``iter`` is the runner's iteration. A model with an ``event_storage``
    attribute (:class:`~vt_engine.DetectionModel`) is given the storage and opens it
    around its forward; for other models the storage is open from ``before_train_iter``
    to ``after_train_iter``. After each iteration the images put during it go to the
    runner visualizer's backends (``add_image``: PNG files, TensorBoard) at their
    iteration, and the scalars put during it go to the message hub as
    ``train/<name>``, which :class:`LoggerHook` logs and writes.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.storage: EventStorage | None = None
        self._model: Any = None
        self._entered = False

    def _exit(self) -> None:
        if self._entered and self.storage is not None:
            self._entered = False
            self.storage.__exit__(None, None, None)

    def _start(self, runner: Runner) -> EventStorage:
        self.storage = EventStorage(runner.iter)
        model = unwrap_model(runner.model)
        self._model = model if hasattr(model, "event_storage") else None
        if self._model is not None:
            self._model.event_storage = self.storage
        return self.storage

    def before_train(self, runner: Runner) -> None:
        self._start(runner)

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None) -> None:
        storage = self.storage if self.storage is not None else self._start(runner)
        storage.iter = runner.iter
        if self._model is None:
            self._exit()  # left open when the previous iteration raised
            storage.__enter__()
            self._entered = True

    def after_train_iter(
        self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.storage is None:
            return
        self._exit()
        storage = self.storage
        for name, image, iteration in storage.vis_data:
            runner.visualizer.add_image(name, image_from_tensor(image), step=iteration)
        storage.clear_images()
        for name, (value, iteration) in storage.latest().items():
            if iteration == storage.iter:
                runner.message_hub.update_scalar(f"train/{name}", value)

    def after_train(self, runner: Runner) -> None:
        self._exit()
        if self._model is not None:
            self._model.event_storage = None
            self._model = None


@HOOKS.register()
class SegVisualizationHook(Hook):
    """Segmentation Visualization Hook. Used to visualize validation and testing process
    prediction results.

    During validation, the first sample of every ``interval``-th batch (counted as
    ``runner.iter + batch_idx``) is drawn, ground truth next to prediction, as
    ``val_<image file name>``; during testing, every sample is drawn as
    ``<image file name>``. Images go to the runner visualizer's backends (PNG files,
    TensorBoard). Each data sample needs ``img_path`` and ``gt_sem_seg`` /
    ``pred_sem_seg`` (a SegDataSample, or any object or dict with those fields).

    Args:
        draw: whether to draw prediction results. If it is False, it means that no
            drawing will be done.
        interval: the interval of visualization.
        show: whether to display the drawn image; shown images are not stored.
        wait_time: the interval of show (s).
        backend_args: arguments of the file backend the images are read with; only
            the local backend (``None`` or ``dict(backend="local")``) is available.
    """

    priority = "NORMAL"

    def __init__(
        self,
        draw: bool = False,
        interval: int = 50,
        show: bool = False,
        wait_time: float = 0.0,
        backend_args: dict | None = None,
    ) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval: expected a positive int, got {interval!r}")
        if backend_args is not None and backend_args.get("backend", "local") not in (
            "local",
            "disk",
        ):
            raise ValueError(
                f"backend_args: only the local file backend is supported, got {backend_args!r}"
            )
        self.draw = draw
        self.interval = interval
        self.show = show
        self.wait_time = wait_time
        self.backend_args = dict(backend_args) if backend_args else None
        self._test_index = 0
        if show:
            warnings.warn(
                "SegVisualizationHook(show=True): drawn images are shown, not stored", stacklevel=2
            )

    def _draw(self, runner: Runner, name: str, sample: Any, step: int) -> None:
        img_path = _field(sample, "img_path")
        if img_path is None:
            raise ValueError(
                "SegVisualizationHook: the data sample has no img_path to read the image from"
            )
        img = read_image(img_path, self.backend_args)
        runner.visualizer.add_datasample(
            name, img, data_sample=sample, show=self.show, wait_time=self.wait_time, step=step
        )

    def after_val_iter(
        self,
        runner: Runner,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Sequence[Any] | None = None,
    ) -> None:
        """Run after every ``self.interval`` validation iterations.

        Args:
            runner: the runner of the validation process.
            batch_idx: the index of the current batch in the val loop.
            data_batch: data from the dataloader.
            outputs: a batch of data samples that contain annotations and predictions.
        """
        if not self.draw or not outputs:
            return
        total_curr_iter = runner.iter + batch_idx
        if total_curr_iter % self.interval == 0:
            sample = outputs[0]
            name = f"val_{os.path.basename(str(_field(sample, 'img_path')))}"
            self._draw(runner, name, sample, total_curr_iter)

    def after_test_iter(
        self,
        runner: Runner,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Sequence[Any] | None = None,
    ) -> None:
        """Run after every testing iteration: draws every sample of the batch.

        Args:
            runner: the runner of the testing process.
            batch_idx: the index of the current batch in the test loop.
            data_batch: data from the dataloader.
            outputs: a batch of data samples that contain annotations and predictions.
        """
        if not self.draw:
            return
        for sample in outputs or ():
            self._test_index += 1
            name = os.path.basename(str(_field(sample, "img_path")))
            self._draw(runner, name, sample, self._test_index)
