"""vt_engine: training runner, hooks, optimizers, schedulers, checkpoints, data and distributed training."""

from __future__ import annotations

from vt_engine.optim_constructors import (
    DefaultOptimWrapperConstructor,
    ForceDefaultOptimWrapperConstructor,
    LayerDecayOptimizerConstructor,
    LearningRateDecayOptimizerConstructor,
    build_optim_wrapper,
)
from vt_engine.optim_wrapper import AmpOptimWrapper, OptimWrapper
from vt_engine.registry import (
    HOOKS,
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
)
from vt_engine.schedulers import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ParamScheduler,
    PolyLR,
    build_param_schedulers,
)

__version__ = "0.1.0"

__all__ = [
    # optimizers
    "OptimWrapper",
    "AmpOptimWrapper",
    "DefaultOptimWrapperConstructor",
    "ForceDefaultOptimWrapperConstructor",
    "LearningRateDecayOptimizerConstructor",
    "LayerDecayOptimizerConstructor",
    "build_optim_wrapper",
    # schedulers
    "ParamScheduler",
    "LinearLR",
    "ConstantLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "PolyLR",
    "OneCycleLR",
    "build_param_schedulers",
    # registries
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "HOOKS",
    "__version__",
]
