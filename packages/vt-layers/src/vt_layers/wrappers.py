"""Thin wrappers around torch.nn layers and functions (detectron2's ``layers.wrappers``).

They add empty-input support, norm/activation keyword arguments and small conveniences
that detection code relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Linear",
    "cat",
    "cpu_channels_last",
    "cross_entropy",
    "empty_input_loss_func_wrapper",
    "interpolate",
    "move_device_like",
    "nonzero_tuple",
    "shapes_to_tensor",
]

# torch's own layers accept empty (0-batch) inputs; these names are kept for detectron2
# compatibility.
BatchNorm2d = nn.BatchNorm2d
ConvTranspose2d = nn.ConvTranspose2d
Linear = nn.Linear
interpolate = F.interpolate


def shapes_to_tensor(
    x: Sequence[int | torch.Tensor], device: torch.device | None = None
) -> torch.Tensor:
    """Turn a list of integer scalars or integer tensor scalars into a vector.

    While tracing, the elements must be tensors so that the traced graph keeps them
    dynamic.

    Args:
        x: the shape values.
        device: device of the result.

    Returns:
        Tensor[len(x)]: int64 vector.
    """
    if torch.jit.is_scripting():
        return torch.as_tensor(x, device=device)
    if torch.jit.is_tracing():
        if not all(isinstance(t, torch.Tensor) for t in x):
            raise TypeError("shapes_to_tensor: while tracing, x must contain tensors only")
        ret = torch.stack(list(x))
        return ret if ret.device == device else ret.to(device=device)
    return torch.as_tensor(x, device=device)


def cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """Efficient version of torch.cat that avoids a copy if there is only a single element in a list."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"cat: tensors must be a list or tuple, got {type(tensors).__name__}")
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def empty_input_loss_func_wrapper(
    loss_func: Callable[..., torch.Tensor],
) -> Callable[..., torch.Tensor]:
    """Wrap a loss ``f(input, target, *, reduction="mean", **kwargs)`` to return 0 on empty input.

    The zero is ``input.sum() * 0.0``, so it stays connected to the graph.
    """

    def wrapped_loss_func(
        input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", **kwargs: Any
    ) -> torch.Tensor:
        if target.numel() == 0 and reduction == "mean":
            return input.sum() * 0.0
        return loss_func(input, target, reduction=reduction, **kwargs)

    wrapped_loss_func.__name__ = loss_func.__name__
    wrapped_loss_func.__qualname__ = loss_func.__qualname__
    return wrapped_loss_func


def cross_entropy(
    input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", **kwargs: Any
) -> torch.Tensor:
    """Same as torch.nn.functional.cross_entropy, but returns 0 (instead of nan) for empty inputs."""
    if target.numel() == 0 and reduction == "mean":
        return input.sum() * 0.0  # keeps the graph connected
    return F.cross_entropy(input, target, reduction=reduction, **kwargs)


class Conv2d(nn.Conv2d):
    """A wrapper around :class:`torch.nn.Conv2d` to support empty inputs and more features.

    Extra keyword arguments supported in addition to those of :class:`torch.nn.Conv2d`:

    Args:
        *args: as ``torch.nn.Conv2d``.
        norm (nn.Module, optional): a normalization layer, applied after the convolution
            (a frozen one, with ``scale_and_bias()``, is folded into the convolution).
        activation (callable(Tensor) -> Tensor, optional): an activation function, applied
            after ``norm``.
        **kwargs: as ``torch.nn.Conv2d``.
    """

    def __init__(
        self,
        *args: Any,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # numel last: no guard on a data-dependent size (torch.compile) at inference
        if (
            not torch.jit.is_scripting()
            and self.training
            and isinstance(self.norm, nn.SyncBatchNorm)
            and x.numel() == 0
        ):
            raise ValueError("Conv2d: torch.nn.SyncBatchNorm does not support empty inputs")
        norm = self.norm
        # A frozen norm is an affine transform: fold it into the convolution's weight
        # and bias (one pass over the output instead of two).
        scale_and_bias = getattr(norm, "scale_and_bias", None)
        if scale_and_bias is not None and not torch.jit.is_scripting():
            scale, shift = scale_and_bias()
            weight = self.weight * scale.to(self.weight.dtype).reshape(-1, 1, 1, 1)
            bias = shift if self.bias is None else self.bias * scale + shift
            x = self._conv_forward(x, weight, bias.to(self.weight.dtype))
        else:
            x = self._conv_forward(x, self.weight, self.bias)
            if norm is not None:
                x = norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def nonzero_tuple(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A 'as_tuple=True' version of torch.nonzero that also works under torchscript.

    Args:
        x (Tensor): any tensor; a 0-d tensor is treated as a 1-element vector.

    Returns:
        tuple of Tensor: one int64 index vector per dimension of ``x``.
    """
    if x.dim() == 0:
        return x.unsqueeze(0).nonzero().unbind(1)
    return x.nonzero().unbind(1)


@torch.jit.script_if_tracing
def cpu_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory format when it is a 4-D CPU tensor, else unchanged.

    The CPU (oneDNN) convolutions run on channels-last activations without converting
    their layout at every call, and the layout carries over from layer to layer; the
    values are the same.

    Args:
        x (Tensor): a feature map (N, C, H, W) or any tensor.
    """
    if x.dim() == 4 and x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def move_device_like(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Move ``src`` to the device of ``dst``; traceable (the device is not baked into the graph).

    Args:
        src (Tensor): the tensor to move.
        dst (Tensor): a tensor on the target device.
    """
    return src.to(dst.device)
