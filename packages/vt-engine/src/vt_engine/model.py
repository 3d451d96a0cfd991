"""The model contract the runner trains: ``train_step`` / ``val_step`` / ``test_step``
around a ``forward(inputs, data_samples, mode)`` (mmengine's ``BaseModel``), and the
DDP wrapper that keeps it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from vt_engine.optim_wrapper import OptimWrapper

__all__ = ["BaseModel", "DistributedDataParallel", "move_to_device", "parse_losses", "unwrap_model"]


def move_to_device(data: Any, device: torch.device | str) -> Any:
    """``data`` with every tensor moved to ``device`` (dicts, lists and tuples recursed;
    objects with a ``.to(device)`` method moved too)."""
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=True)
    if isinstance(data, Mapping):
        return type(data)({k: move_to_device(v, device) for k, v in data.items()})  # type: ignore[call-arg]
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(move_to_device(v, device) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(move_to_device(v, device) for v in data)
    if hasattr(data, "to") and callable(data.to) and not isinstance(data, nn.Module):
        return data.to(device)
    return data


def parse_losses(losses: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sum the entries whose key contains ``"loss"`` (each a tensor, reduced by mean, or a
    list of tensors, whose means are summed) into the total loss.

    Returns:
        (total loss, ``log_vars``): ``log_vars`` holds every entry, detached, and
        ``"loss"``, the total.
    """
    if not isinstance(losses, Mapping):
        raise TypeError(f"losses: expected a dict of tensors, got {type(losses).__name__}")
    log_vars: dict[str, torch.Tensor] = {}
    for name, value in losses.items():
        if isinstance(value, torch.Tensor):
            log_vars[name] = value.mean()
        elif isinstance(value, Sequence) and all(isinstance(v, torch.Tensor) for v in value):
            log_vars[name] = sum(v.mean() for v in value)  # type: ignore[assignment]
        else:
            raise TypeError(f"losses[{name!r}]: expected a tensor or a list of tensors")
    loss_terms = [v for k, v in log_vars.items() if "loss" in k]
    if not loss_terms:
        raise ValueError(f"losses: no key contains 'loss': {sorted(losses)}")
    total = sum(loss_terms)
    log_vars = {k: v.detach() for k, v in log_vars.items()}
    log_vars["loss"] = total.detach()  # type: ignore[union-attr]
    return total, log_vars  # type: ignore[return-value]


def _run_forward(model: nn.Module, data: Any, mode: str) -> Any:
    if isinstance(data, Mapping):
        return model(**data, mode=mode)
    if isinstance(data, (list, tuple)):
        return model(*data, mode=mode)
    raise TypeError(
        f"data: expected a dict or a tuple from the data preprocessor, got {type(data).__name__}"
    )


class BaseModel(nn.Module):
    """Base class of the models the :class:`~vt_engine.Runner` trains.

    Subclasses implement ``forward(inputs, data_samples=None, mode="tensor")`` where
    ``mode`` is ``"loss"`` (return a dict of losses), ``"predict"`` (return a list of
    predictions, one per sample: what metrics' ``process`` receives) or ``"tensor"``
    (raw outputs). The batch from the data loader goes through
    :meth:`data_preprocessor` first, then is unpacked into ``forward`` (a dict as
    keyword arguments, a tuple as positional arguments).
    """

    def data_preprocessor(self, data: Any, training: bool = False) -> Any:
        """Prepare a collated batch for ``forward``; by default, move tensors to the
        model's device."""
        device = next(self.parameters(), torch.empty(0)).device
        return move_to_device(data, device)

    def parse_losses(
        self, losses: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """See :func:`parse_losses`."""
        return parse_losses(losses)

    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """Preprocess, forward in ``"loss"`` mode inside ``optim_wrapper.optim_context``,
        and update the parameters. Returns the log variables."""
        return _train_step(self, self, data, optim_wrapper)

    @torch.no_grad()
    def val_step(self, data: Any) -> Any:
        """Predictions for one validation batch (``"predict"`` mode)."""
        return _run_forward(self, self.data_preprocessor(data, False), "predict")

    @torch.no_grad()
    def test_step(self, data: Any) -> Any:
        """Predictions for one test batch (``"predict"`` mode)."""
        return _run_forward(self, self.data_preprocessor(data, False), "predict")


def _train_step(
    wrapper: nn.Module, module: BaseModel, data: Any, optim_wrapper: OptimWrapper
) -> dict[str, torch.Tensor]:
    with optim_wrapper.optim_context(wrapper):
        data = module.data_preprocessor(data, True)
        losses = _run_forward(wrapper, data, "loss")
    total, log_vars = module.parse_losses(losses)
    optim_wrapper.update_params(total)
    return log_vars


class DistributedDataParallel(nn.parallel.DistributedDataParallel):
    """``torch.nn.parallel.DistributedDataParallel`` for a :class:`BaseModel`: ``train_step``
    runs the forward through DDP (so gradients are all-reduced, and not within an
    accumulation window), ``val_step``/``test_step`` call the wrapped model."""

    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        return _train_step(self, self.module, data, optim_wrapper)

    def val_step(self, data: Any) -> Any:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> Any:
        return self.module.test_step(data)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
