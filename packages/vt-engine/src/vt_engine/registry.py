"""The registries of vt-engine: the extension points that dict ``type=`` configs reach.

Each registry is a :class:`vt_modeling.Registry`; ``build(dict(type=..., **kwargs))``
calls the registered object with the other keys as keyword arguments.
"""

from __future__ import annotations

import inspect

import torch

from vt_modeling import Registry

__all__ = [
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "HOOKS",
]

OPTIMIZERS = Registry("OPTIMIZERS")
OPTIMIZERS.__doc__ = """``torch.optim.Optimizer`` classes, called with ``(params, **cfg)``.

Every optimizer in ``torch.optim`` is registered under its class name."""

OPTIM_WRAPPERS = Registry("OPTIM_WRAPPERS")
OPTIM_WRAPPERS.__doc__ = """Optimizer wrappers, called with ``(optimizer=..., **cfg)``."""

OPTIM_WRAPPER_CONSTRUCTORS = Registry("OPTIM_WRAPPER_CONSTRUCTORS")
OPTIM_WRAPPER_CONSTRUCTORS.__doc__ = """Callables built with ``(optim_wrapper_cfg,
paramwise_cfg)`` and then called with the model, returning an optimizer wrapper."""

PARAM_SCHEDULERS = Registry("PARAM_SCHEDULERS")
PARAM_SCHEDULERS.__doc__ = """Parameter schedulers, called with ``(optimizer, **cfg)``."""

HOOKS = Registry("HOOKS")
HOOKS.__doc__ = """Runner hooks, called with ``(**cfg)``."""


def _register_torch_optimizers() -> None:
    for name, obj in vars(torch.optim).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
            and name not in OPTIMIZERS
        ):
            OPTIMIZERS.register(obj, name=name)


_register_torch_optimizers()
