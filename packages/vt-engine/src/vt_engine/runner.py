"""The Runner: builds the training pieces from objects or configs and runs the train,
validation and test loops with hooks, checkpoints, logging and distributed training."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from vt_engine import dist as vt_dist
from vt_engine.checkpoint import (
    find_latest_checkpoint,
    load_checkpoint,
    load_state_dict,
    read_checkpoint,
    save_checkpoint,
)
from vt_engine.data import build_dataloader, sync_random_seed
from vt_engine.evaluator import Evaluator
from vt_engine.hooks import (
    CheckpointHook,
    DistSamplerSeedHook,
    Hook,
    IterTimerHook,
    LoggerHook,
    ParamSchedulerHook,
    RuntimeInfoHook,
    get_priority,
)
from vt_engine.loops import EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
from vt_engine.message_hub import MessageHub
from vt_engine.model import DistributedDataParallel, unwrap_model
from vt_engine.optim_constructors import build_optim_wrapper
from vt_engine.optim_wrapper import OptimWrapper
from vt_engine.registry import HOOKS
from vt_engine.schedulers import ParamScheduler, build_param_schedulers
from vt_engine.visualization import LocalVisBackend, TensorboardVisBackend, Visualizer
from vt_modeling import UnknownKeyError, check_keys, check_kwargs

__all__ = ["Runner", "set_random_seed", "get_rng_state", "set_rng_state"]

_DEFAULT_HOOKS: dict[str, type[Hook]] = {
    "runtime_info": RuntimeInfoHook,
    "timer": IterTimerHook,
    "sampler_seed": DistSamplerSeedHook,
    "logger": LoggerHook,
    "param_scheduler": ParamSchedulerHook,
    "checkpoint": CheckpointHook,
}


def set_random_seed(seed: int, deterministic: bool = False) -> None:
    """Seed ``random``, numpy and torch (all devices); with ``deterministic``, also ask
    torch for deterministic algorithms (and disable cuDNN benchmarking)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def get_rng_state() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's (CPU and CUDA) generators, as plain
    containers and tensors (loadable with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _TqdmHandler(logging.StreamHandler):
    """Console handler that prints through tqdm so progress bars stay intact."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record))
        except Exception:
            self.handleError(record)


class Runner:
    """Trains, validates and tests a model (mmengine's ``Runner``).

    Every argument may be a ready object; data loaders, the optimizer wrapper, the
    schedulers and hooks may also be configs (dicts), so that Python config files
    (see :class:`~vt_engine.Config`) can describe a run.

    Args:
        model: a :class:`~vt_engine.BaseModel` (anything with ``train_step``,
            ``val_step`` and ``test_step`` and the ``forward`` modes they use).
        work_dir: where checkpoints and logs go.
        train_dataloader: a ``DataLoader`` or a dict of
            :func:`~vt_engine.build_dataloader` arguments (``dataset``, ``batch_size``,
            ``sampler``...; the seed defaults to the runner's).
        val_dataloader: the same, for validation.
        test_dataloader: the same, for testing.
        train_cfg: ``dict(by_epoch=True, max_epochs=N, val_begin=1, val_interval=1)``
            or ``dict(by_epoch=False, max_iters=N, val_interval=K)``.
        val_cfg: ``dict(fp16=False)`` (autocast during validation) or None.
        test_cfg: the same, for testing.
        optim_wrapper: an :class:`~vt_engine.OptimWrapper`, a torch optimizer, or a dict
            for :func:`~vt_engine.build_optim_wrapper` (``type``, ``optimizer``,
            ``constructor``, ``paramwise_cfg``, ``accumulative_counts``...).
        param_scheduler: schedulers or dicts (``dict(type="LinearLR", ...)``), a list
            or one.
        val_evaluator: an :class:`~vt_engine.Evaluator`, a metric or a list of metrics
            (``process(data_batch, data_samples)``, ``evaluate(size)``).
        test_evaluator: the same, for testing.
        default_hooks: overrides of the default hooks by name (``runtime_info``,
            ``timer``, ``sampler_seed``, ``logger``, ``param_scheduler``,
            ``checkpoint``): a hook, a dict config, or None to drop it.
        custom_hooks: more hooks (objects or dict configs of :data:`HOOKS`).
        load_from: a checkpoint whose weights are loaded before running.
        resume: True resumes from ``work_dir/last_checkpoint`` (if any); a path resumes
            from that checkpoint; resuming restores the weights, optimizer, loss
            scaler, schedulers, loop position, hook states and RNG states.
        launcher: "none" (single process, or a process group already initialised,
            e.g. by :func:`~vt_engine.launch`) or "pytorch" (initialise from torchrun's
            environment).
        env_cfg: ``dict(dist_backend=None, sync_bn=None, find_unused_parameters=False)``;
            ``sync_bn="torch"`` converts BatchNorm layers to ``nn.SyncBatchNorm``.
        randomness: ``dict(seed=None, deterministic=False, diff_rank_seed=False)``;
            a None seed is drawn on rank 0 and shared.
        visualizer: a :class:`~vt_engine.Visualizer`, or a dict
            ``dict(backends=("local", "tensorboard"))`` naming the backends written to
            ``<work_dir>/<timestamp>/vis_data`` (default: local JSON lines only).
        log_level: level of the console and file logs.
        experiment_name: names the log directory; default the timestamp.
        device: where the model runs; default ``cuda:<local rank>`` when CUDA is
            available, else CPU.
        cfg: the config the runner was built from, kept for reference.
    """

    def __init__(
        self,
        model: nn.Module,
        work_dir: str | os.PathLike,
        train_dataloader: DataLoader | dict | None = None,
        val_dataloader: DataLoader | dict | None = None,
        test_dataloader: DataLoader | dict | None = None,
        train_cfg: dict | None = None,
        val_cfg: dict | None = None,
        test_cfg: dict | None = None,
        optim_wrapper: OptimWrapper | torch.optim.Optimizer | dict | None = None,
        param_scheduler: Any = None,
        val_evaluator: Any = None,
        test_evaluator: Any = None,
        default_hooks: Mapping[str, Hook | dict | None] | None = None,
        custom_hooks: Sequence[Hook | dict] | None = None,
        load_from: str | os.PathLike | None = None,
        resume: bool | str | os.PathLike = False,
        launcher: str = "none",
        env_cfg: dict | None = None,
        randomness: dict | None = None,
        visualizer: Visualizer | dict | None = None,
        log_level: str | int = "INFO",
        experiment_name: str | None = None,
        device: str | torch.device | None = None,
        cfg: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        for name in ("train_step", "val_step", "test_step"):
            if not callable(getattr(model, name, None)):
                raise TypeError(
                    f"model: {type(model).__name__} has no {name}(); derive it from vt_engine.BaseModel"
                )
        if launcher not in ("none", "pytorch"):
            raise ValueError(f"launcher: expected 'none' or 'pytorch', got {launcher!r}")
        self.cfg = cfg
        self.env_cfg = dict(env_cfg or {})
        check_keys(self.env_cfg, ("dist_backend", "sync_bn", "find_unused_parameters"), "env_cfg")
        if launcher == "pytorch":
            vt_dist.init_dist(self.env_cfg.get("dist_backend"))
        self.rank = vt_dist.get_rank()
        self.world_size = vt_dist.get_world_size()
        self.distributed = vt_dist.is_distributed()

        randomness = dict(randomness or {})
        check_keys(randomness, ("seed", "deterministic", "diff_rank_seed"), "randomness")
        seed = randomness.get("seed")
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.deterministic = bool(randomness.get("deterministic", False))
        set_random_seed(
            self.seed + (self.rank if randomness.get("diff_rank_seed") else 0), self.deterministic
        )

        self.work_dir = Path(work_dir).resolve()
        self.timestamp = vt_dist.broadcast_object(time.strftime("%Y%m%d_%H%M%S"))
        self.experiment_name = experiment_name or self.timestamp
        self.log_dir = self.work_dir / self.experiment_name
        if self.rank == 0:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        vt_dist.barrier()
        self.logger = self._build_logger(log_level)
        self.message_hub = MessageHub()

        if device is None:
            device = f"cuda:{vt_dist.get_local_rank()}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        model = model.to(self.device)
        if self.distributed:
            if self.env_cfg.get("sync_bn") == "torch":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=bool(self.env_cfg.get("find_unused_parameters", False)),
            )
        self.model = model

        self.train_dataloader = self._build_dataloader(train_dataloader)
        self.val_dataloader = self._build_dataloader(val_dataloader)
        self.test_dataloader = self._build_dataloader(test_dataloader)
        self._train_cfg = dict(train_cfg) if train_cfg is not None else None
        self._val_cfg = dict(val_cfg or {})
        self._test_cfg = dict(test_cfg or {})
        check_kwargs(ValLoop, self._val_cfg, "val_cfg")
        check_kwargs(TestLoop, self._test_cfg, "test_cfg")
        self._optim_wrapper_cfg = optim_wrapper
        self.optim_wrapper: OptimWrapper | None = None
        self._param_scheduler_cfg = param_scheduler
        self.param_schedulers: list[ParamScheduler] = []
        self.val_evaluator = self._build_evaluator(val_evaluator)
        self.test_evaluator = self._build_evaluator(test_evaluator)
        self.visualizer = self._build_visualizer(visualizer)
        self.load_from = load_from
        self._resume = resume
        self.train_loop: EpochBasedTrainLoop | IterBasedTrainLoop | None = None
        self.val_loop: ValLoop | None = None
        self.test_loop: TestLoop | None = None
        self._hooks: list[Hook] = []
        self._register_hooks(default_hooks, custom_hooks)
        self.logger.info(
            f"Runner: seed {self.seed}, device {self.device}, world size {self.world_size}, work_dir {self.work_dir}"
        )

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> Runner:
        """Build from a config mapping (e.g. :meth:`Config.fromfile`): its keys that
        are ``Runner`` arguments are passed; ``cfg`` itself is kept as ``runner.cfg``.

        Other keys are the config's own variables and are ignored, unless one is a
        near-miss of an argument (``trian_dataloader``, ``val_evaluater``): that is
        taken for a typo and raises :class:`~vt_modeling.UnknownKeyError` naming the
        argument."""
        params = set(inspect.signature(cls.__init__).parameters) - {"self", "cfg"}
        for key in cfg:
            if key in params or not isinstance(key, str):
                continue
            close = difflib.get_close_matches(key, params, n=1, cutoff=0.8)
            if close:
                raise UnknownKeyError(
                    f"cfg: unknown key {key!r}; did you mean {close[0]!r}? (a Runner argument)"
                )
        if "model" not in cfg or "work_dir" not in cfg:
            raise ValueError("cfg: needs 'model' and 'work_dir'")
        return cls(**{k: v for k, v in cfg.items() if k in params}, cfg=cfg)

    def _build_logger(self, log_level: str | int) -> logging.Logger:
        logger = logging.getLogger(f"vt_engine.run.{self.experiment_name}.{id(self)}")
        logger.propagate = False
        logger.setLevel(log_level if self.rank == 0 else logging.WARNING)
        fmt = logging.Formatter("%(asctime)s - %(levelname)s - %(message)s", "%Y/%m/%d %H:%M:%S")
        console = _TqdmHandler()
        console.setFormatter(fmt)
        logger.addHandler(console)
        if self.rank == 0:
            file_handler = logging.FileHandler(self.log_dir / f"{self.timestamp}.log")
            file_handler.setFormatter(fmt)
            logger.addHandler(file_handler)
        return logger

    def _build_dataloader(self, loader: DataLoader | dict | None) -> DataLoader | None:
        if loader is None or isinstance(loader, DataLoader):
            return loader
        if isinstance(loader, Mapping):
            kwargs = dict(loader)
            valid = set(inspect.signature(build_dataloader).parameters)
            valid |= set(inspect.signature(DataLoader.__init__).parameters) - {"self"}
            check_keys(kwargs, valid - {"kwargs"}, "dataloader")
            kwargs.setdefault("seed", self.seed)
            return build_dataloader(**kwargs)
        raise TypeError(f"dataloader: expected a DataLoader or a dict, got {type(loader).__name__}")

    @staticmethod
    def _build_evaluator(evaluator: Any) -> Evaluator | None:
        if evaluator is None or isinstance(evaluator, Evaluator):
            return evaluator
        return Evaluator(evaluator)

    def _build_visualizer(self, visualizer: Visualizer | dict | None) -> Visualizer:
        if isinstance(visualizer, Visualizer):
            vis = visualizer
        else:
            cfg = dict(visualizer or {})
            valid = set(inspect.signature(Visualizer).parameters) - {"vis_backends"}
            check_keys(cfg, valid | {"backends"}, "visualizer")
            names = cfg.pop("backends", ("local",))
            save_dir = self.log_dir / "vis_data"
            known = {"local": LocalVisBackend, "tensorboard": TensorboardVisBackend}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(
                    f"visualizer['backends']: unknown {unknown}; expected names from {sorted(known)}"
                )
            vis = Visualizer(vis_backends=[known[n](save_dir) for n in names], **cfg)
        if self.rank != 0:
            vis.vis_backends = []
        for loader in (self.train_dataloader, self.val_dataloader, self.test_dataloader):
            meta = getattr(getattr(loader, "dataset", None), "metainfo", None)
            if meta and not vis.dataset_meta:
                vis.dataset_meta = dict(meta)
        return vis

    def _register_hooks(
        self, default_hooks: Mapping[str, Any] | None, custom_hooks: Sequence[Any] | None
    ) -> None:
        chosen: dict[str, Any] = {name: cls() for name, cls in _DEFAULT_HOOKS.items()}
        for name, hook in (default_hooks or {}).items():
            # more hooks may come under new names, but a near-miss of a default's name
            # would silently add a second hook of that kind
            close = difflib.get_close_matches(name, _DEFAULT_HOOKS, n=1, cutoff=0.8)
            if name not in _DEFAULT_HOOKS and close:
                raise UnknownKeyError(
                    f"default_hooks: unknown key {name!r}; did you mean {close[0]!r}? "
                    f"(default hooks: {', '.join(_DEFAULT_HOOKS)})"
                )
            chosen[name] = hook
        for hook in chosen.values():
            if hook is not None:
                self.register_hook(hook)
        for hook in custom_hooks or ():
            self.register_hook(hook)

    def register_hook(self, hook: Hook | dict, priority: int | str | None = None) -> None:
        """Insert ``hook`` (or a dict config of :data:`HOOKS`) after the hooks of the
        same or a higher priority."""
        if isinstance(hook, dict):
            cfg = dict(hook)
            priority = cfg.pop("priority", priority)
            hook = HOOKS.build(cfg)
        if not isinstance(hook, Hook):
            raise TypeError(f"hook: expected a Hook or a dict config, got {type(hook).__name__}")
        if priority is not None:
            hook.priority = priority
        value = get_priority(hook.priority)
        index = len(self._hooks)
        for i, existing in enumerate(self._hooks):
            if value < get_priority(existing.priority):
                index = i
                break
        self._hooks.insert(index, hook)

    @property
    def hooks(self) -> list[Hook]:
        """The registered hooks, in call order."""
        return list(self._hooks)

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call ``fn_name`` of every hook in priority order."""
        for hook in self._hooks:
            getattr(hook, fn_name)(self, **kwargs)

    # -- loop position ----------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.train_loop.epoch if self.train_loop is not None else 0

    @property
    def iter(self) -> int:
        return self.train_loop.iter if self.train_loop is not None else 0

    @property
    def max_epochs(self) -> int:
        return self.train_loop.max_epochs if self.train_loop is not None else 0

    @property
    def max_iters(self) -> int:
        return self.train_loop.max_iters if self.train_loop is not None else 0

    @property
    def by_epoch(self) -> bool:
        return isinstance(self.train_loop, EpochBasedTrainLoop)

    # -- running ----------------------------------------------------------------------
    def _build_train_loop(self) -> EpochBasedTrainLoop | IterBasedTrainLoop:
        if (
            self.train_dataloader is None
            or self._train_cfg is None
            or self._optim_wrapper_cfg is None
        ):
            raise RuntimeError("train(): needs train_dataloader, train_cfg and optim_wrapper")
        cfg = dict(self._train_cfg)
        known = {"type", "by_epoch"}
        for loop in (EpochBasedTrainLoop, IterBasedTrainLoop):
            known |= set(inspect.signature(loop.__init__).parameters) - {"self", "runner"}
        check_keys(cfg, known - {"dataloader"}, "train_cfg")
        loop_type = cfg.pop("type", None)
        by_epoch = cfg.pop("by_epoch", loop_type != "IterBasedTrainLoop" and "max_iters" not in cfg)
        loop_cls = EpochBasedTrainLoop if by_epoch else IterBasedTrainLoop
        check_kwargs(loop_cls, cfg, f"train_cfg ({loop_cls.__name__})")
        return loop_cls(self, self.train_dataloader, **cfg)

    def _build_eval_loop(self, kind: str) -> ValLoop | TestLoop | None:
        loader = self.val_dataloader if kind == "val" else self.test_dataloader
        evaluator = self.val_evaluator if kind == "val" else self.test_evaluator
        if loader is None or evaluator is None:
            return None
        cfg = self._val_cfg if kind == "val" else self._test_cfg
        return (ValLoop if kind == "val" else TestLoop)(self, loader, evaluator, **cfg)

    def _build_optimization(self) -> None:
        cfg = self._optim_wrapper_cfg
        if isinstance(cfg, torch.optim.Optimizer):
            self.optim_wrapper = OptimWrapper(cfg)
        else:
            self.optim_wrapper = build_optim_wrapper(self.model, cfg)  # type: ignore[arg-type]
        assert self.train_dataloader is not None
        self.param_schedulers = build_param_schedulers(
            self._param_scheduler_cfg, self.optim_wrapper, epoch_length=len(self.train_dataloader)
        )

    def train(self) -> nn.Module:
        """Run the training loop (with validation); returns the model."""
        self.train_loop = self._build_train_loop()
        self._build_optimization()
        self.val_loop = self._build_eval_loop("val")  # type: ignore[assignment]
        self.call_hook("before_run")
        self._load_or_resume()
        try:
            model = self.train_loop.run()
            self.call_hook("after_run")
        finally:
            self.visualizer.close()
            skipped = getattr(self.train_dataloader.dataset, "num_skipped", None)
            if skipped:
                self.logger.warning(
                    f"skipped {skipped} bad training samples (see the warnings naming them)"
                )
        return model

    def val(self) -> dict[str, Any]:
        """Run one validation pass; returns the metrics."""
        self.val_loop = self._build_eval_loop("val")  # type: ignore[assignment]
        if self.val_loop is None:
            raise RuntimeError("val(): needs val_dataloader and val_evaluator")
        return self._run_eval(self.val_loop)

    def test(self) -> dict[str, Any]:
        """Run one test pass; returns the metrics."""
        self.test_loop = self._build_eval_loop("test")  # type: ignore[assignment]
        if self.test_loop is None:
            raise RuntimeError("test(): needs test_dataloader and test_evaluator")
        return self._run_eval(self.test_loop)

    def _run_eval(self, loop: ValLoop | TestLoop) -> dict[str, Any]:
        self.call_hook("before_run")
        if self.load_from is not None:
            self.load_checkpoint(self.load_from)
        try:
            metrics = loop.run()
            self.call_hook("after_run")
        finally:
            self.visualizer.close()
        return metrics

    # -- checkpoints ------------------------------------------------------------------
    def _load_or_resume(self) -> None:
        if self._resume is True:
            path = find_latest_checkpoint(self.work_dir)
            if path is None:
                self.logger.info(
                    f"resume=True but no checkpoint in {self.work_dir}: training from scratch"
                )
            else:
                self.resume(path)
                return
        elif self._resume:
            self.resume(self._resume)
            return
        if self.load_from is not None:
            self.load_checkpoint(self.load_from)

    def load_checkpoint(self, filename: str | os.PathLike, strict: bool = False) -> dict[str, Any]:
        """Load the weights of a checkpoint (see :func:`~vt_engine.load_checkpoint`)."""
        ckpt = load_checkpoint(self.model, filename, map_location="cpu", strict=strict)
        self.logger.info(f"Loaded weights from {filename}")
        return ckpt

    def save_checkpoint(
        self,
        path: str | os.PathLike,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        epoch: int | None = None,
        iteration: int | None = None,
        record_last: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Save a checkpoint directory (rank 0 writes; see :func:`~vt_engine.save_checkpoint`).

        ``epoch``/``iteration`` are the completed epochs/iterations recorded for resume
        (default: the current loop position).
        """
        from vt_engine import __version__

        checkpoint: dict[str, Any] = {
            "meta": {
                "epoch": self.epoch if epoch is None else epoch,
                "iter": self.iter if iteration is None else iteration,
                "seed": self.seed,
                "experiment_name": self.experiment_name,
                "time": time.strftime("%Y%m%d_%H%M%S"),
                "vt_engine_version": __version__,
                **dict(meta or {}),
            },
            "state_dict": unwrap_model(self.model).state_dict(),
            "message_hub": self.message_hub.state_dict(),
            "rng": get_rng_state(),
        }
        generator = getattr(self.train_dataloader, "generator", None)
        if generator is not None:
            checkpoint["dataloader_generator"] = generator.get_state()
        if save_optimizer and self.optim_wrapper is not None:
            checkpoint["optimizer"] = self.optim_wrapper.state_dict()
            ow = self.optim_wrapper
            if ow.inner_count % ow.accumulative_counts != 0:
                # inside an accumulation window: keep each rank's partial gradient sums
                grads = {
                    name: p.grad.detach().cpu().clone()
                    for name, p in unwrap_model(self.model).named_parameters()
                    if p.grad is not None
                }
                checkpoint["accumulated_grads"] = vt_dist.all_gather_object(grads)
        if save_param_scheduler and self.param_schedulers:
            checkpoint["param_schedulers"] = [s.state_dict() for s in self.param_schedulers]
        self.call_hook("before_save_checkpoint", checkpoint=checkpoint)
        if self.rank == 0:
            weights = checkpoint.pop("state_dict")
            save_checkpoint(path, weights, checkpoint, record_last=record_last)
        vt_dist.barrier()

    def resume(self, filename: str | os.PathLike) -> None:
        """Restore weights, optimizer, loss scaler, schedulers, loop position, hook and
        RNG states from a checkpoint saved by :meth:`save_checkpoint`; training then
        continues as if never interrupted. Call after the train loop is built (as
        ``train()`` does with ``resume=...``)."""
        if self.train_loop is None or self.optim_wrapper is None:
            raise RuntimeError(
                "resume(): build the train loop first (use Runner(resume=...).train())"
            )
        ckpt = read_checkpoint(filename, map_location="cpu")
        load_state_dict(self.model, ckpt.pop("state_dict"), strict=True)
        meta = ckpt.get("meta", {})
        if meta.get("seed") is not None and meta["seed"] != self.seed:
            self.logger.warning(
                f"resuming a run with seed {meta['seed']} under seed {self.seed}: data order and "
                "randomness differ from the original run; pass randomness=dict(seed=...)"
            )
        if "optimizer" in ckpt:
            self.optim_wrapper.load_state_dict(ckpt["optimizer"])
        if "param_schedulers" in ckpt:
            states = ckpt["param_schedulers"]
            if len(states) != len(self.param_schedulers):
                raise ValueError(
                    f"checkpoint has {len(states)} scheduler states, the runner {len(self.param_schedulers)} schedulers"
                )
            for scheduler, state in zip(self.param_schedulers, states):
                scheduler.load_state_dict(state)
        self._restore_accumulated_grads(ckpt.get("accumulated_grads"), int(meta.get("iter", 0)))
        self.train_loop._epoch = int(meta.get("epoch", 0))
        self.train_loop._iter = int(meta.get("iter", 0))
        self.message_hub.load_state_dict(ckpt.get("message_hub", {}))
        generator = getattr(self.train_dataloader, "generator", None)
        if generator is not None and "dataloader_generator" in ckpt:
            generator.set_state(ckpt["dataloader_generator"])
        self.call_hook("after_load_checkpoint", checkpoint=ckpt)
        if "rng" in ckpt:
            set_rng_state(ckpt["rng"])
        self.logger.info(
            f"Resumed from {filename} at epoch {self.train_loop.epoch}, iter {self.train_loop.iter}"
        )

    def _restore_accumulated_grads(self, per_rank: list[dict] | None, iteration: int) -> None:
        assert self.optim_wrapper is not None
        if iteration % self.optim_wrapper.accumulative_counts == 0:
            return
        if per_rank is None or len(per_rank) != self.world_size:
            self.logger.warning(
                "the checkpoint was saved inside a gradient accumulation window without the "
                "gradients of this world size: the first window after resuming is shorter"
            )
            return
        params = dict(unwrap_model(self.model).named_parameters())
        for name, grad in per_rank[self.rank].items():
            params[name].grad = grad.to(params[name].device)
