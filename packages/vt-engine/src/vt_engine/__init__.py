"""vt_engine: training runner, hooks, optimizers, schedulers, checkpoints, data and distributed training."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
