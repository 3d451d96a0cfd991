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

# torch.optim.Optimizer classes, called with (params, **cfg); every optimizer of
# torch.optim is registered under its class name.
OPTIMIZERS = Registry("OPTIMIZERS")

# Optimizer wrappers, called with (optimizer=..., **cfg).
OPTIM_WRAPPERS = Registry("OPTIM_WRAPPERS")

# Built with (optim_wrapper_cfg, paramwise_cfg), then called with the model; they
# return an optimizer wrapper.
OPTIM_WRAPPER_CONSTRUCTORS = Registry("OPTIM_WRAPPER_CONSTRUCTORS")

# Parameter schedulers, called with (optimizer, **cfg).
PARAM_SCHEDULERS = Registry("PARAM_SCHEDULERS")

# Runner hooks, called with (**cfg).
HOOKS = Registry("HOOKS")


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
