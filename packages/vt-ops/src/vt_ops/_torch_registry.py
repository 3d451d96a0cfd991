"""Lazy registration of the torch custom ops (namespace ``vt_ops``).

Op modules decorate a function that defines their ``torch.library.custom_op``
ops with :func:`on_torch`; the definitions run once, the first time a torch
tensor reaches an op (or at ``import vt_ops`` when torch is already imported),
so ``import vt_ops`` never imports torch itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["on_torch", "torch_ops"]

_definers: list[Callable[[], None]] = []
_defined = False


def on_torch(define: Callable[[], None]) -> Callable[[], None]:
    """Register ``define`` to run once when the torch ops are first needed."""
    _definers.append(define)
    if _defined:
        define()
    return define


def register_torch_ops() -> None:
    """Define every torch custom op now (idempotent)."""
    global _defined
    if _defined:
        return
    _defined = True
    for define in _definers:
        define()


def torch_ops() -> Any:
    """``torch.ops.vt_ops``, with every op defined."""
    register_torch_ops()
    import torch

    return torch.ops.vt_ops
