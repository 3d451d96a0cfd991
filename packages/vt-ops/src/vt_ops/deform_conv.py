"""Deformable convolution v1 and v2 (modulated), forward and backward.

The compiled kernels sample the input at the offset positions into a column
buffer (deformable im2col) and scatter column gradients back (col2im, and the
"coord" kernel for the offset and mask gradients); the matrix products run in
the caller's own library (``torch.matmul``, ``numpy.matmul`` or
``cupy.matmul``).

The CPU backward is deterministic whatever the thread count (each task owns
whole gradient planes); the CUDA col2im kernel accumulates with atomicAdd, so
under ``torch.use_deterministic_algorithms(True)`` a backward on CUDA that
needs the input gradient raises torch's "does not have a
deterministic implementation" error (a warning with ``warn_only=True``).

Memory: the batch is processed in chunks of images so that the column buffer,
``chunk * C * kh * kw * out_h * out_w`` elements of the compute dtype, stays
within ``max_column_bytes`` (default 256 MiB, or the environment variable
``VT_OPS_DEFORM_MAX_COLUMN_BYTES``); a single image whose columns are larger
than that gets a buffer of exactly its size. Forward and backward each use one
such buffer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vt_ops import _C
from vt_ops._arrays import (
    CUPY,
    TORCH,
    Backend,
    alert_not_deterministic,
    backend_of,
    check_floating,
    check_same_device,
    check_shape,
    compute_dtype,
    result_dtype,
)
from vt_ops._torch_registry import on_torch, torch_ops

__all__ = ["deform_conv2d"]

DEFAULT_MAX_COLUMN_BYTES = 256 * 2**20
MAX_COLUMN_BYTES_ENV = "VT_OPS_DEFORM_MAX_COLUMN_BYTES"


@dataclass(frozen=True)
class _Conv:
    """Validated convolution parameters."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    deformable_groups: int
    max_column_bytes: int

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, s, p, d in zip(
                (height, width), self.kernel, self.stride, self.padding, self.dilation
            )
        )

    def kernel_args(self) -> tuple[Any, ...]:
        """The geometry arguments of the ``_C.deform_*`` kernels."""
        return (self.kernel, self.stride, self.padding, self.dilation, self.deformable_groups)


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {tuple(value)}")
        return (_int(value[0], name, minimum), _int(value[1], name, minimum))
    v = _int(value, name, minimum)
    return (v, v)


def _max_column_bytes(value: int | None) -> int:
    if value is not None:
        return _int(value, "max_column_bytes", 1)
    env = os.environ.get(MAX_COLUMN_BYTES_ENV)
    if env:
        try:
            parsed = int(env)
        except ValueError:
            parsed = 0
        if parsed < 1:
            raise ValueError(f"{MAX_COLUMN_BYTES_ENV}: expected a positive int, got {env!r}")
        return parsed
    return DEFAULT_MAX_COLUMN_BYTES


def _check(
    input: Any,
    offset: Any,
    weight: Any,
    bias: Any,
    mask: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    deformable_groups: Any,
    max_column_bytes: int | None,
) -> tuple[Backend, _Conv]:
    """Validate the arguments of :func:`deform_conv2d`; raise naming the culprit."""
    backend = backend_of(input, "input")
    arrays = [(input, "input"), (offset, "offset"), (weight, "weight")]
    arrays += [(x, name) for x, name in ((bias, "bias"), (mask, "mask")) if x is not None]
    for x, name in arrays[1:]:
        if backend_of(x, name) is not backend:
            raise TypeError(f"{name} must be an array of the same library as input")
    for x, name in arrays:
        check_floating(backend, x, name)
    check_same_device(backend, arrays)
    groups = _int(groups, "groups", 1)
    deformable_groups = _int(deformable_groups, "deformable_groups", 1)
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)

    check_shape(input, "input", (None, None, None, None))
    check_shape(weight, "weight", (None, None, None, None))
    n, channels, height, width = (int(s) for s in input.shape)
    out_channels, _, kh, kw = (int(s) for s in weight.shape)
    if channels % groups:
        raise ValueError(f"input: {channels} channels are not divisible by groups={groups}")
    if out_channels % groups:
        raise ValueError(
            f"weight: {out_channels} output channels are not divisible by groups={groups}"
        )
    check_shape(weight, "weight", (None, channels // groups, None, None))
    if kh < 1 or kw < 1:
        raise ValueError(f"weight: expected a non-empty kernel, got {kh}x{kw}")
    if channels % deformable_groups:
        raise ValueError(
            f"input: {channels} channels are not divisible by deformable_groups={deformable_groups}"
        )
    conv = _Conv(
        (kh, kw),
        stride,
        padding,
        dilation,
        groups,
        deformable_groups,
        _max_column_bytes(max_column_bytes),
    )
    out_h, out_w = conv.out_size(height, width)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"input: spatial size {height}x{width} is too small for a {kh}x{kw} kernel with "
            f"padding={padding} and dilation={dilation}"
        )
    kk = kh * kw
    check_shape(offset, "offset", (n, 2 * deformable_groups * kk, out_h, out_w))
    if mask is not None:
        check_shape(mask, "mask", (n, deformable_groups * kk, out_h, out_w))
    if bias is not None:
        check_shape(bias, "bias", (out_channels,))
    return backend, conv


def _view(backend: Backend, x: Any, shape: tuple[int, ...]) -> Any:
    """A view of contiguous ``x`` with ``shape`` (never a copy)."""
    return x.view(shape) if backend is TORCH else x.reshape(shape)


def _matmul(backend: Backend, a: Any, b: Any, out: Any) -> None:
    if backend is TORCH:
        import torch

        torch.matmul(a, b, out=out)
    elif backend is CUPY:
        import cupy

        cupy.matmul(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


def _chunk(conv: _Conv, n: int, channels: int, out_size: int, dtype: str) -> int:
    """Images per column buffer: as many as fit in ``max_column_bytes``, at least one."""
    per_image = channels * conv.kernel[0] * conv.kernel[1] * out_size * np.dtype(dtype).itemsize
    return max(1, min(n, conv.max_column_bytes // max(per_image, 1)))


def _forward(
    backend: Backend, input: Any, offset: Any, weight: Any, bias: Any, mask: Any, conv: _Conv
) -> Any:
    """The convolution on validated arrays; returns the promoted floating dtype."""
    dtypes = [backend.dtype_name(x) for x in (input, offset, weight, bias, mask) if x is not None]
    work = compute_dtype(*dtypes)
    x, off, w = (backend.contiguous(backend.astype(a, work)) for a in (input, offset, weight))
    m = None if mask is None else backend.contiguous(backend.astype(mask, work))
    n, channels, height, width = x.shape
    out_channels, groups = w.shape[0], conv.groups
    out_h, out_w = conv.out_size(height, width)
    length = out_h * out_w
    k = channels // groups * conv.kernel[0] * conv.kernel[1]
    out = backend.empty((n, out_channels, out_h, out_w), work, like=x)
    if n and out_channels:
        chunk = _chunk(conv, n, channels, length, work)
        columns = backend.empty((chunk, groups * k, length), work, like=x)
        wmat = _view(backend, w, (groups, out_channels // groups, k))
        stream = backend.stream(x)
        for b0 in range(0, n, chunk):
            b1 = min(n, b0 + chunk)
            cols = columns[: b1 - b0]
            _C.deform_im2col(
                x[b0:b1], off[b0:b1], None if m is None else m[b0:b1], cols,
                *conv.kernel_args(), stream,
            )  # fmt: skip
            _matmul(
                backend,
                wmat,
                _view(backend, cols, (b1 - b0, groups, k, length)),
                _view(backend, out[b0:b1], (b1 - b0, groups, out_channels // groups, length)),
            )
    if bias is not None:
        out += _view(backend, backend.astype(bias, work), (1, out_channels, 1, 1))
    return backend.astype(out, result_dtype(*dtypes))


def _backward(
    grad_out: Any,
    input: Any,
    offset: Any,
    weight: Any,
    mask: Any,
    conv: _Conv,
    need_input: bool,
    need_offset: bool,
    need_weight: bool,
) -> tuple[Any, Any, Any, Any]:
    """Gradients (input, offset, mask, weight) of torch tensors; unneeded ones are empty."""
    import torch

    backend = TORCH
    if need_input:
        alert_not_deterministic(backend, grad_out, "vt_ops::deform_conv2d_backward")
    tensors = [t for t in (grad_out, input, offset, weight, mask) if t is not None]
    work = compute_dtype(*(backend.dtype_name(t) for t in tensors))
    go, x, off, w = (backend.contiguous(backend.astype(t, work)) for t in tensors[:4])
    m = None if mask is None else backend.contiguous(backend.astype(mask, work))
    n, channels, height, width = x.shape
    out_channels, groups = w.shape[0], conv.groups
    og = out_channels // groups
    out_h, out_w = conv.out_size(height, width)
    length = out_h * out_w
    k = channels // groups * conv.kernel[0] * conv.kernel[1]

    def empty_like(t: Any) -> Any:
        return t.new_empty((0,))

    grad_input = x.new_zeros(x.shape) if need_input else None
    grad_offset = torch.empty_like(off) if need_offset else None
    grad_mask = torch.empty_like(m) if need_offset and m is not None else None
    grad_weight = w.new_zeros((groups, og, k)) if need_weight else None
    if n and (need_input or need_offset or need_weight):
        chunk = _chunk(conv, n, channels, length, work)
        columns = x.new_empty((chunk, groups * k, length))
        w_t = w.view(groups, og, k).transpose(1, 2)
        stream = backend.stream(x)
        for b0 in range(0, n, chunk):
            b1 = min(n, b0 + chunk)
            cols = columns[: b1 - b0]
            cols4 = cols.view(b1 - b0, groups, k, length)
            go4 = go[b0:b1].view(b1 - b0, groups, og, length)
            m_chunk = None if m is None else m[b0:b1]
            if need_input or need_offset:
                torch.matmul(w_t, go4, out=cols4)
                if need_input:
                    _C.deform_col2im(
                        cols, off[b0:b1], m_chunk, grad_input[b0:b1], *conv.kernel_args(), stream
                    )
                if need_offset:
                    _C.deform_col2im_coord(
                        cols, x[b0:b1], off[b0:b1], m_chunk, grad_offset[b0:b1],
                        None if grad_mask is None else grad_mask[b0:b1],
                        *conv.kernel_args(), stream,
                    )  # fmt: skip
            if need_weight:
                _C.deform_im2col(x[b0:b1], off[b0:b1], m_chunk, cols, *conv.kernel_args(), stream)
                for i in range(b1 - b0):
                    grad_weight.baddbmm_(go4[i], cols4[i].transpose(1, 2))
    return (
        empty_like(input) if grad_input is None else grad_input.to(input.dtype),
        empty_like(offset) if grad_offset is None else grad_offset.to(offset.dtype),
        empty_like(offset if mask is None else mask)
        if grad_mask is None
        else grad_mask.to(mask.dtype),
        empty_like(weight)
        if grad_weight is None
        else grad_weight.view(weight.shape).to(weight.dtype),
    )


@on_torch
def _define_torch_ops() -> None:
    import torch

    def conv_of(
        weight: torch.Tensor,
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        groups: int,
        deformable_groups: int,
        max_column_bytes: int,
    ) -> _Conv:
        return _Conv(
            (weight.shape[2], weight.shape[3]),
            (stride[0], stride[1]),
            (padding[0], padding[1]),
            (dilation[0], dilation[1]),
            groups,
            deformable_groups,
            max_column_bytes,
        )

    @torch.library.custom_op(
        "vt_ops::deform_conv2d",
        mutates_args=(),
        schema="(Tensor input, Tensor offset, Tensor weight, Tensor? bias, Tensor? mask, "
        "int[2] stride, int[2] padding, int[2] dilation, int groups, int deformable_groups, "
        "int max_column_bytes) -> Tensor",
    )
    def deform_conv2d_op(
        input: torch.Tensor,
        offset: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        mask: torch.Tensor | None,
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        groups: int,
        deformable_groups: int,
        max_column_bytes: int,
    ) -> torch.Tensor:
        conv = conv_of(
            weight, stride, padding, dilation, groups, deformable_groups, max_column_bytes
        )
        return _forward(TORCH, input, offset, weight, bias, mask, conv)

    @deform_conv2d_op.register_fake
    def _(input, offset, weight, bias, mask, stride, padding, dilation, groups, dg, max_bytes):
        conv = conv_of(weight, stride, padding, dilation, groups, dg, max_bytes)
        out_h, out_w = conv.out_size(input.shape[2], input.shape[3])
        dtype = input.dtype
        for t in (offset, weight, bias, mask):
            if t is not None:
                dtype = torch.promote_types(dtype, t.dtype)
        return input.new_empty((input.shape[0], weight.shape[0], out_h, out_w), dtype=dtype)

    @torch.library.custom_op(
        "vt_ops::deform_conv2d_backward",
        mutates_args=(),
        schema="(Tensor grad_output, Tensor input, Tensor offset, Tensor weight, Tensor? mask, "
        "int[2] stride, int[2] padding, int[2] dilation, int groups, int deformable_groups, "
        "int max_column_bytes, bool need_input, bool need_offset, bool need_weight) "
        "-> (Tensor, Tensor, Tensor, Tensor)",
    )
    def deform_conv2d_backward_op(
        grad_output: torch.Tensor,
        input: torch.Tensor,
        offset: torch.Tensor,
        weight: torch.Tensor,
        mask: torch.Tensor | None,
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        groups: int,
        deformable_groups: int,
        max_column_bytes: int,
        need_input: bool,
        need_offset: bool,
        need_weight: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        conv = conv_of(
            weight, stride, padding, dilation, groups, deformable_groups, max_column_bytes
        )
        return _backward(
            grad_output, input, offset, weight, mask, conv, need_input, need_offset, need_weight
        )

    @deform_conv2d_backward_op.register_fake
    def _(grad_output, input, offset, weight, mask, *args):
        need_input, need_offset, need_weight = args[-3:]

        def like(t: torch.Tensor, needed: bool) -> torch.Tensor:
            return torch.empty_like(t) if needed else t.new_empty((0,))

        return (
            like(input, need_input),
            like(offset, need_offset),
            like(mask, need_offset) if mask is not None else offset.new_empty((0,)),
            like(weight, need_weight),
        )

    def setup_context(ctx, inputs, output):
        input, offset, weight, bias, mask, *params = inputs
        ctx.save_for_backward(input, offset, weight, mask)
        ctx.params = params
        ctx.bias_dtype = None if bias is None else bias.dtype

    def backward(ctx, grad):
        input, offset, weight, mask = ctx.saved_tensors
        need = ctx.needs_input_grad
        need_offset = need[1] or (mask is not None and need[4])
        gi, go, gm, gw = torch.ops.vt_ops.deform_conv2d_backward(
            grad, input, offset, weight, mask, *ctx.params, need[0], need_offset, need[2]
        )
        gb = grad.sum((0, 2, 3)).to(ctx.bias_dtype) if need[3] else None
        return (
            gi if need[0] else None,
            go if need[1] else None,
            gw if need[2] else None,
            gb,
            gm if mask is not None and need[4] else None,
            *([None] * len(ctx.params)),
        )

    deform_conv2d_op.register_autograd(backward, setup_context=setup_context)


def deform_conv2d(
    input: Any,
    offset: Any,
    weight: Any,
    bias: Any | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    deformable_groups: int = 1,
    mask: Any | None = None,
    *,
    max_column_bytes: int | None = None,
) -> Any:
    """Deformable convolution: v1 when ``mask`` is None, v2 (modulated) with a mask.

    The offset layout is torchvision's and detectron2's: for deformable group
    ``g`` and kernel position ``(i, j)``, channels ``2 * (g * kh * kw + i * kw + j)``
    and ``+ 1`` hold the (dy, dx) shift of the sampling point. Samples outside
    the image read zeros (bilinear interpolation with zero padding). Equal to
    ``torchvision.ops.deform_conv2d`` on the same arguments.

    Args:
        input (Array[N, C, H, W]): the input; numpy, torch or cupy.
        offset (Array[N, 2 * deformable_groups * kh * kw, out_h, out_w]): sampling offsets.
        weight (Array[O, C / groups, kh, kw]): convolution weights.
        bias (Array[O], optional): added to every output position.
        stride (int or (int, int)): distance between convolution centers.
        padding (int or (int, int)): implicit zero padding on both sides.
        dilation (int or (int, int)): spacing between kernel elements.
        groups (int): convolution groups; ``C`` and ``O`` must be divisible by it.
        deformable_groups (int): channel groups with their own offsets (and mask);
            ``C`` must be divisible by it.
        mask (Array[N, deformable_groups * kh * kw, out_h, out_w], optional):
            modulation scalars (v2); None for v1.
        max_column_bytes (int, optional): memory bound of the column buffer; see
            the module documentation. Default: ``VT_OPS_DEFORM_MAX_COLUMN_BYTES``
            or 256 MiB.

    Returns:
        Array[N, O, out_h, out_w]: of the inputs' kind and device and their
        promoted floating dtype; float16/bfloat16 are computed in float32.

    Torch tensors are differentiable with respect to input, offset, weight,
    bias and mask (``torch.ops.vt_ops.deform_conv2d``, usable under
    ``torch.compile``). numpy and cupy arrays get the forward pass only.
    """
    backend, conv = _check(
        input, offset, weight, bias, mask, stride, padding, dilation, groups,
        deformable_groups, max_column_bytes,
    )  # fmt: skip
    if backend is TORCH:
        return torch_ops().deform_conv2d(
            input, offset, weight, bias, mask, list(conv.stride), list(conv.padding),
            list(conv.dilation), conv.groups, conv.deformable_groups, conv.max_column_bytes,
        )  # fmt: skip
    return _forward(backend, input, offset, weight, bias, mask, conv)
