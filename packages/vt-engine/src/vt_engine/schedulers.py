"""Parameter schedulers (mmengine's ``_ParamScheduler`` family): change an optimizer
hyper-parameter (``lr``, ``momentum``, ...) per iteration or per epoch, only inside
``[begin, end)``, so that several schedulers compose (e.g. a linear warmup followed by
a cosine decay)."""

from __future__ import annotations

import math
from typing import Any

import torch

from vt_engine.optim_wrapper import OptimWrapper
from vt_engine.registry import PARAM_SCHEDULERS

__all__ = [
    "ParamScheduler",
    "LinearParamScheduler",
    "ConstantParamScheduler",
    "MultiStepParamScheduler",
    "ExponentialParamScheduler",
    "CosineAnnealingParamScheduler",
    "PolyParamScheduler",
    "OneCycleParamScheduler",
    "LinearLR",
    "ConstantLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "PolyLR",
    "OneCycleLR",
    "build_param_schedulers",
]

INF = 2**62


class ParamScheduler:
    """Base class: a scheduler of ``param_name`` in every param group of ``optimizer``.

    Every :meth:`step` advances the global step count; only steps in ``[begin, end)``
    change the value, through :meth:`_get_value`, which sees ``self.last_step`` counted
    from ``begin`` (0 at ``begin``). Each group's first value is kept in the group as
    ``initial_<param_name>``. Construction performs the first step, as torch's
    schedulers do.

    Args:
        optimizer: a ``torch.optim.Optimizer`` or an :class:`OptimWrapper`.
        param_name: the param group key to schedule.
        begin: first step (iteration or epoch) at which the scheduler acts.
        end: step at which it stops (exclusive).
        last_step: -1 to start fresh; resuming uses :meth:`load_state_dict` instead.
        by_epoch: step once per epoch (True) or once per iteration (False).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer | OptimWrapper,
        param_name: str,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
    ) -> None:
        if not isinstance(optimizer, (torch.optim.Optimizer, OptimWrapper)):
            raise TypeError(
                f"optimizer: expected a torch.optim.Optimizer or OptimWrapper, got {type(optimizer).__name__}"
            )
        if not isinstance(begin, int) or not isinstance(end, int):
            raise TypeError(f"begin, end: expected ints, got {begin!r}, {end!r}")
        if begin < 0:
            raise ValueError(f"begin: expected a value >= 0, got {begin}")
        if end <= begin:
            raise ValueError(f"end: expected end > begin, got begin={begin}, end={end}")
        if not isinstance(last_step, int) or last_step < -1:
            raise ValueError(f"last_step: expected an int >= -1, got {last_step!r}")
        self.optimizer = optimizer
        self.param_name = param_name
        self.begin = begin
        self.end = end
        self.by_epoch = by_epoch
        for i, group in enumerate(optimizer.param_groups):
            if param_name not in group:
                raise KeyError(f"param group {i} has no {param_name!r} to schedule")
            if last_step == -1:
                group.setdefault(f"initial_{param_name}", group[param_name])
            elif f"initial_{param_name}" not in group:
                raise KeyError(f"param group {i} has no 'initial_{param_name}' to resume from")
        self.base_values = [group[f"initial_{param_name}"] for group in optimizer.param_groups]
        self.last_step = last_step
        self._global_step = 0
        self.step()

    def _get_value(self) -> list[float]:
        """The new value of each param group at ``self.last_step``."""
        raise NotImplementedError

    def _current(self) -> list[float]:
        return [group[self.param_name] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one step (one iteration or one epoch, per ``by_epoch``)."""
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            for group, value in zip(self.optimizer.param_groups, self._get_value()):
                group[self.param_name] = value
        self._last_value = self._current()
        self._global_step += 1

    def get_last_value(self) -> list[float]:
        """The value of each param group after the last :meth:`step`."""
        return self._last_value

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


def _relative_factor(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    return float(value)


@PARAM_SCHEDULERS.register()
class LinearParamScheduler(ParamScheduler):
    """Multiply the value by a factor that goes linearly from ``start_factor`` (at
    ``begin``) to ``end_factor`` (at ``end - 1``), as ``torch.optim.lr_scheduler.LinearLR``
    with ``total_iters = end - begin - 1``; the usual warmup."""

    def __init__(
        self,
        optimizer: Any,
        param_name: str,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
    ) -> None:
        start_factor = _relative_factor("start_factor", start_factor)
        end_factor = _relative_factor("end_factor", end_factor)
        if not 0 < start_factor <= 1.0:
            raise ValueError(f"start_factor: expected a value in (0, 1], got {start_factor}")
        if not 0 <= end_factor <= 1.0:
            raise ValueError(f"end_factor: expected a value in [0, 1], got {end_factor}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return [v * self.start_factor for v in self._current()]
        if self.last_step > self.total_iters:
            return self._current()
        delta = self.end_factor - self.start_factor
        factor = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_step - 1) * delta)
        return [v * factor for v in self._current()]


@PARAM_SCHEDULERS.register()
class ConstantParamScheduler(ParamScheduler):
    """Multiply the value by ``factor`` from ``begin`` until ``end - 1``, where the
    original value is restored (``torch.optim.lr_scheduler.ConstantLR`` with
    ``total_iters = end - begin - 1``)."""

    def __init__(
        self,
        optimizer: Any,
        param_name: str,
        factor: float = 1.0 / 3,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
    ) -> None:
        factor = _relative_factor("factor", factor)
        if not 0 < factor <= 1.0:
            raise ValueError(f"factor: expected a value in (0, 1], got {factor}")
        self.factor = factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return [v * self.factor for v in self._current()]
        if self.last_step != self.total_iters:
            return self._current()
        return [v / self.factor for v in self._current()]


@PARAM_SCHEDULERS.register()
class MultiStepParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` at each milestone (steps counted from ``begin``)."""

    def __init__(
        self,
        optimizer: Any,
        param_name: str,
        milestones: list[int],
        gamma: float = 0.1,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
    ) -> None:
        if not all(isinstance(m, int) and m >= 0 for m in milestones):
            raise ValueError(f"milestones: expected non-negative ints, got {milestones!r}")
        self.milestones = {m: list(milestones).count(m) for m in milestones}
        self.gamma = _relative_factor("gamma", gamma)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch)

    def _get_value(self) -> list[float]:
        if self.last_step not in self.milestones:
            return self._current()
        factor = self.gamma ** self.milestones[self.last_step]
        return [v * factor for v in self._current()]


@PARAM_SCHEDULERS.register()
class ExponentialParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` every step after ``begin``."""

    def __init__(
        self,
        optimizer: Any,
        param_name: str,
        gamma: float,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
    ) -> None:
        self.gamma = _relative_factor("gamma", gamma)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return self._current()
        return [v * self.gamma for v in self._current()]


@PARAM_SCHEDULERS.register()
class CosineAnnealingParamScheduler(ParamScheduler):
    """Cosine annealing from the current value to ``eta_min`` over ``T_max`` steps
    (default ``end - begin``), as ``torch.optim.lr_scheduler.CosineAnnealingLR``.

    Args:
        eta_min: the minimum value (default 0).
        eta_min_ratio: the minimum as a ratio of each group's initial value; exclusive
            with ``eta_min``.
    """

    def __init__(
        self,
        optimizer: Any,
        param_name: str,
        T_max: int | None = None,
        eta_min: float | None = None,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        eta_min_ratio: float | None = None,
    ) -> None:
        if eta_min is not None and eta_min_ratio is not None:
            raise ValueError("eta_min and eta_min_ratio: give at most one")
        if T_max is None:
            if end >= INF:
                raise ValueError("T_max: required when end is not given")
            T_max = end - begin
        if not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"T_max: expected a positive int, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = 0.0 if eta_min is None and eta_min_ratio is None else eta_min
        self.eta_min_ratio = eta_min_ratio
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch)

    def _get_value(self) -> list[float]:
        if self.eta_min_ratio is None:
            eta_mins = [self.eta_min] * len(self.base_values)
        else:
            eta_mins = [b * self.eta_min_ratio for b in self.base_values]
        current = self._current()
        t, T = self.last_step, self.T_max
        if t == 0:
            return current
        if (t - 1 - T) % (2 * T) == 0:
            return [
                v + (b - m) * (1 - math.cos(math.pi / T)) / 2
                for v, b, m in zip(current, self.base_values, eta_mins)
            ]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (v - m) + m for v, m in zip(current, eta_mins)]


@PARAM_SCHEDULERS.register()
class PolyParamScheduler(ParamScheduler):
    """Polynomial decay to ``eta_min`` with exponent ``power`` over ``end - begin - 1``
    steps (``torch.optim.lr_scheduler.PolynomialLR`` when ``eta_min == 0``)."""

    def __init__(
        self,
        optimizer: Any,
        param_name: str,
        eta_min: float = 0.0,
        power: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
    ) -> None:
        self.eta_min = _relative_factor("eta_min", eta_min)
        self.power = _relative_factor("power", power)
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch)

    def _get_value(self) -> list[float]:
        if self.last_step == 0:
            return self._current()
        keep = (1 - 1 / (self.total_iters - self.last_step + 1)) ** self.power
        return [(v - self.eta_min) * keep + self.eta_min for v in self._current()]


@PARAM_SCHEDULERS.register()
class OneCycleParamScheduler(ParamScheduler):
    """The 1cycle policy (``torch.optim.lr_scheduler.OneCycleLR``, values only): rise from
    ``max_value / div_factor`` to ``max_value`` over ``pct_start`` of ``total_steps``
    (default ``end - begin``), then anneal to ``initial / final_div_factor``; with
    ``three_phase`` the rise is mirrored before the final anneal.

    Args:
        eta_max: the peak value (one per group or one for all).
        anneal_strategy: "cos" or "linear".
    """

    def __init__(
        self,
        optimizer: Any,
        param_name: str,
        eta_max: float | list[float],
        total_steps: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
    ) -> None:
        if total_steps is None:
            if end >= INF:
                raise ValueError("total_steps: required when end is not given")
            total_steps = end - begin
        if not isinstance(total_steps, int) or total_steps < 2:
            raise ValueError(f"total_steps: expected an int >= 2, got {total_steps!r}")
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start: expected a value in (0, 1), got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy: expected 'cos' or 'linear', got {anneal_strategy!r}"
            )
        groups = optimizer.param_groups
        maxes = list(eta_max) if isinstance(eta_max, (list, tuple)) else [eta_max] * len(groups)
        if len(maxes) != len(groups):
            raise ValueError(f"eta_max: expected {len(groups)} values, got {len(maxes)}")
        if last_step == -1:
            for group, peak in zip(groups, maxes):
                group[f"initial_{param_name}"] = peak / div_factor
                group[f"max_{param_name}"] = peak
                group[f"min_{param_name}"] = peak / div_factor / final_div_factor
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        if three_phase:
            self._phases = [
                (float(pct_start * total_steps) - 1, "initial", "max"),
                (float(2 * pct_start * total_steps) - 2, "max", "initial"),
                (total_steps - 1.0, "initial", "min"),
            ]
        else:
            self._phases = [
                (float(pct_start * total_steps) - 1, "initial", "max"),
                (total_steps - 1.0, "max", "min"),
            ]
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch)

    def _anneal(self, start: float, stop: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return stop + (start - stop) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (stop - start) * pct + start

    def _get_value(self) -> list[float]:
        t = self.last_step
        if t > self.total_steps:
            raise ValueError(
                f"{type(self).__name__}: stepped {t + 1} times, more than total_steps={self.total_steps}"
            )
        values = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, start_key, stop_key) in enumerate(self._phases):
                if t <= end_step or i == len(self._phases) - 1:
                    pct = (t - start_step) / (end_step - start_step)
                    values.append(
                        self._anneal(
                            group[f"{start_key}_{self.param_name}"],
                            group[f"{stop_key}_{self.param_name}"],
                            pct,
                        )
                    )
                    break
                start_step = end_step
        return values


def _lr_scheduler(base: type) -> type:
    """The ``lr`` flavour of a parameter scheduler: the same arguments less ``param_name``."""

    class LRScheduler(base):  # type: ignore[misc, valid-type]
        def __init__(self, optimizer: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(optimizer, "lr", *args, **kwargs)

    name = base.__name__.replace("ParamScheduler", "LR")
    LRScheduler.__name__ = LRScheduler.__qualname__ = name
    LRScheduler.__doc__ = f"{base.__name__} of the learning rate (``param_name='lr'``)."
    LRScheduler.__module__ = __name__
    PARAM_SCHEDULERS.register(LRScheduler)
    return LRScheduler


LinearLR = _lr_scheduler(LinearParamScheduler)
ConstantLR = _lr_scheduler(ConstantParamScheduler)
MultiStepLR = _lr_scheduler(MultiStepParamScheduler)
ExponentialLR = _lr_scheduler(ExponentialParamScheduler)
CosineAnnealingLR = _lr_scheduler(CosineAnnealingParamScheduler)
PolyLR = _lr_scheduler(PolyParamScheduler)
OneCycleLR = _lr_scheduler(OneCycleParamScheduler)


def build_param_schedulers(
    cfgs: ParamScheduler | dict | list[ParamScheduler | dict] | None,
    optimizer: torch.optim.Optimizer | OptimWrapper,
    epoch_length: int | None = None,
) -> list[ParamScheduler]:
    """Build schedulers from objects or ``dict(type=..., ...)`` configs.

    A dict config with ``convert_to_iter_based=True`` (and ``by_epoch=True``) is given in
    epochs and converted to iterations with ``epoch_length``: ``begin``, ``end``,
    ``T_max``, ``total_steps`` and ``milestones`` are multiplied by it.
    """
    if cfgs is None:
        return []
    items = cfgs if isinstance(cfgs, (list, tuple)) else [cfgs]
    out = []
    for cfg in items:
        if isinstance(cfg, ParamScheduler):
            out.append(cfg)
            continue
        if not isinstance(cfg, dict):
            raise TypeError(
                f"param_scheduler: expected a scheduler or dict, got {type(cfg).__name__}"
            )
        cfg = dict(cfg)
        if cfg.pop("convert_to_iter_based", False) and cfg.get("by_epoch", True):
            if not epoch_length:
                raise ValueError("convert_to_iter_based needs the train dataloader's length")
            cfg["by_epoch"] = False
            for key in ("begin", "end", "T_max", "total_steps"):
                if key in cfg and cfg[key] is not None and cfg[key] < INF:
                    cfg[key] = cfg[key] * epoch_length
            if "milestones" in cfg:
                cfg["milestones"] = [m * epoch_length for m in cfg["milestones"]]
        out.append(PARAM_SCHEDULERS.build(cfg, optimizer))
    return out
