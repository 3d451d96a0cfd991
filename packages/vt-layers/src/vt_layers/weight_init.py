"""Caffe2-style weight initialisation used by detectron2's layers and heads."""

from __future__ import annotations

from torch import nn

__all__ = ["c2_msra_fill", "c2_xavier_fill"]


def c2_xavier_fill(module: nn.Module) -> None:
    """Initialise ``module.weight`` as Caffe2's "XavierFill" and ``module.bias`` to 0.

    Caffe2's XavierFill is a uniform distribution of bound ``sqrt(3 / fan_in)``, which is
    ``kaiming_uniform_`` with ``a=1``.
    """
    nn.init.kaiming_uniform_(module.weight, a=1)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0)


def c2_msra_fill(module: nn.Module) -> None:
    """Initialise ``module.weight`` as Caffe2's "MSRAFill" and ``module.bias`` to 0.

    A normal distribution of std ``sqrt(2 / fan_out)`` (He initialisation, fan-out mode).
    """
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0)
