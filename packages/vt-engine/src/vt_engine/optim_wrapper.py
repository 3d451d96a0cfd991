"""Optimizer wrappers: one object that does backward, gradient accumulation, clipping
and mixed precision around a ``torch.optim.Optimizer``, as mmengine's ``OptimWrapper``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from vt_engine.registry import OPTIM_WRAPPERS

__all__ = ["OptimWrapper", "AmpOptimWrapper"]


@OPTIM_WRAPPERS.register()
class OptimWrapper:
    """Wraps an optimizer with gradient accumulation and gradient clipping.

    Args:
        optimizer: the wrapped ``torch.optim.Optimizer``.
        accumulative_counts: number of :meth:`update_params` calls whose gradients are
            summed before one optimizer step; each loss is divided by this count (or by
            the remainder for the last, shorter window of a run, see
            :meth:`initialize_count_status`), so accumulating ``k`` batches of size ``b``
            equals one batch of size ``k * b`` for a mean-reduced loss.
        clip_grad: ``None`` or a dict: ``dict(max_norm=..., norm_type=2)`` (or with
            ``type="norm"``) clips by total norm with ``torch.nn.utils.clip_grad_norm_``;
            ``dict(type="value", clip_value=...)`` clips each element with
            ``clip_grad_value_``.

    After a clipped step, :attr:`grad_norm` holds the total norm before clipping
    (``None`` when clipping by value or when nothing was clipped).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        accumulative_counts: int = 1,
        clip_grad: dict | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if not isinstance(accumulative_counts, int) or accumulative_counts < 1:
            raise ValueError(
                f"accumulative_counts: expected a positive int, got {accumulative_counts!r}"
            )
        self.optimizer = optimizer
        self._accumulative_counts = accumulative_counts
        self.clip_grad_kwargs: dict[str, Any] = {}
        self.grad_norm: float | None = None
        if clip_grad is not None:
            if not isinstance(clip_grad, dict) or not clip_grad:
                raise TypeError(
                    f"clip_grad: expected a non-empty dict such as dict(max_norm=1.0), got {clip_grad!r}"
                )
            clip_grad = dict(clip_grad)
            clip_type = clip_grad.pop("type", "norm")
            if clip_type == "norm":
                self._clip_func = nn.utils.clip_grad_norm_
                required = "max_norm"
            elif clip_type == "value":
                self._clip_func = nn.utils.clip_grad_value_
                required = "clip_value"
            else:
                raise ValueError(
                    f"clip_grad['type']: expected 'norm' or 'value', got {clip_type!r}"
                )
            if required not in clip_grad:
                raise ValueError(f"clip_grad: type {clip_type!r} needs the key {required!r}")
            self._clip_type = clip_type
            self.clip_grad_kwargs = clip_grad
        self._inner_count = 0
        self._max_counts = -1
        self._remainder_counts = -1

    # -- the training step -------------------------------------------------------------
    def update_params(
        self,
        loss: torch.Tensor,
        step_kwargs: dict | None = None,
        zero_kwargs: dict | None = None,
    ) -> None:
        """Scale ``loss`` for accumulation, backward, and step + zero_grad when a window ends."""
        loss = self.scale_loss(loss)
        self.backward(loss)
        if self.should_update():
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Divide ``loss`` by the number of iterations in the current accumulation window."""
        if self._accumulative_counts == 1:
            factor = 1
        elif (
            self._max_counts == -1 or self._inner_count < self._max_counts - self._remainder_counts
        ):
            factor = self._accumulative_counts
        else:
            factor = self._remainder_counts
        return loss / factor

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """``loss.backward(**kwargs)`` and count one accumulated iteration."""
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        """Clip gradients (if configured) and step the optimizer."""
        if self.clip_grad_kwargs:
            self._clip_grad()
        self.optimizer.step(**kwargs)

    def zero_grad(self, **kwargs: Any) -> None:
        self.optimizer.zero_grad(**kwargs)

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [
            p
            for group in self.optimizer.param_groups
            for p in group["params"]
            if p.requires_grad and p.grad is not None
        ]

    def _clip_grad(self) -> None:
        params = self._params_with_grad()
        if not params:
            self.grad_norm = None
            return
        result = self._clip_func(params, **self.clip_grad_kwargs)
        self.grad_norm = float(result) if self._clip_type == "norm" else None

    # -- accumulation bookkeeping ------------------------------------------------------
    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Tell the wrapper where training starts (``init_counts`` iterations done) and ends
        (``max_counts``). Accumulation windows are aligned to multiples of
        ``accumulative_counts`` from iteration 0, so the last window of a run whose length
        is not a multiple divides its losses by its true length, ``max_counts %
        accumulative_counts``, whether or not the run was resumed."""
        self._inner_count = init_counts
        self._max_counts = max_counts
        if self._accumulative_counts > 1 and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
        ):
            warnings.warn(
                "Gradient accumulation with BatchNorm is not equivalent to a larger batch.",
                stacklevel=2,
            )
        self._remainder_counts = max_counts % self._accumulative_counts

    def should_update(self) -> bool:
        """Whether the current iteration ends an accumulation window."""
        return (
            self._inner_count % self._accumulative_counts == 0
            or self._inner_count == self._max_counts
        )

    def should_sync(self) -> bool:
        """Whether the next backward must all-reduce gradients (DDP): at window ends only."""
        return (self._inner_count + 1) % self._accumulative_counts == 0 or (
            self._inner_count + 1
        ) == self._max_counts

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Context for the forward and backward of one iteration: skips DDP's gradient
        all-reduce (``model.no_sync()``) inside an accumulation window."""
        ctx = model.no_sync() if not self.should_sync() and hasattr(model, "no_sync") else None
        with ctx if ctx is not None else nullcontext():
            yield

    @property
    def inner_count(self) -> int:
        """Number of backward passes done so far."""
        return self._inner_count

    @property
    def accumulative_counts(self) -> int:
        return self._accumulative_counts

    # -- optimizer passthrough ---------------------------------------------------------
    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict:
        return self.optimizer.defaults

    def get_lr(self) -> dict[str, list[float]]:
        """``{"lr": [lr of each param group]}``."""
        return {"lr": [group["lr"] for group in self.param_groups]}

    def get_momentum(self) -> dict[str, list[float]]:
        """``{"momentum": [...]}``; Adam-style optimizers report ``betas[0]``, 0 when absent."""
        momentum = []
        for group in self.param_groups:
            if "momentum" in group:
                momentum.append(group["momentum"])
            elif "betas" in group:
                momentum.append(group["betas"][0])
            else:
                momentum.append(0)
        return {"momentum": momentum}

    def state_dict(self) -> dict:
        """The optimizer's state dict (plus the loss scaler's for :class:`AmpOptimWrapper`)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(accumulative_counts={self._accumulative_counts}, "
            f"clip_grad={self.clip_grad_kwargs or None}, optimizer={self.optimizer!r})"
        )


_DTYPE_NAMES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


@OPTIM_WRAPPERS.register()
class AmpOptimWrapper(OptimWrapper):
    """An :class:`OptimWrapper` that runs forward under ``torch.autocast`` and scales the
    loss with a ``torch.amp.GradScaler``.

    Args:
        loss_scale: ``"dynamic"`` (a default ``GradScaler``), a float (a static scale: the
            scaler starts there and is reset to it after every step) or a dict of
            ``GradScaler`` arguments.
        dtype: autocast dtype, ``torch.float16`` (default) or ``torch.bfloat16`` (or their
            names). bfloat16 has float32's exponent range, so its scaler is disabled: the
            loss is not scaled and steps are never skipped.
        device_type: ``"cuda"`` or ``"cpu"``; by default the device of the first parameter.
        **kwargs: :class:`OptimWrapper` arguments (``optimizer``, ``accumulative_counts``,
            ``clip_grad``).
    """

    def __init__(
        self,
        loss_scale: str | float | dict = "dynamic",
        dtype: torch.dtype | str | None = None,
        device_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            dtype = _DTYPE_NAMES.get(dtype, dtype)
        if dtype is None:
            dtype = torch.float16
        if dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"dtype: expected float16 or bfloat16, got {dtype!r}")
        self.cast_dtype = dtype
        if device_type is None:
            first = next((p for g in self.param_groups for p in g["params"]), None)
            device_type = first.device.type if first is not None else "cpu"
        self.device_type = device_type
        enabled = dtype == torch.float16
        self._scale_update_param: float | None = None
        if loss_scale == "dynamic":
            scaler_kwargs: dict[str, Any] = {}
        elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
            self._scale_update_param = float(loss_scale)
            scaler_kwargs = {"init_scale": float(loss_scale)}
        elif isinstance(loss_scale, dict):
            scaler_kwargs = dict(loss_scale)
        else:
            raise TypeError(
                f"loss_scale: expected 'dynamic', a float or a dict, got {loss_scale!r}"
            )
        self.loss_scaler = torch.amp.GradScaler(device_type, enabled=enabled, **scaler_kwargs)

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        """Unscale and clip gradients, step unless they overflowed, update the scale."""
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    def state_dict(self) -> dict:
        state = self.optimizer.state_dict()
        state["loss_scaler"] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop("loss_scaler", None)
        if scaler_state is not None and scaler_state:
            self.loss_scaler.load_state_dict(scaler_state)
        self.optimizer.load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.cast_dtype):
            yield
