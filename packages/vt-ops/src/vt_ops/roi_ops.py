"""Region-of-interest pooling: ROIAlign, ROIAlignRotated and ROIPool.

Forward and backward kernels run on CPU (threads over ROIs and channels) and
CUDA. Inputs are NCHW; channels-last torch tensors are accepted and converted
to contiguous NCHW before the kernel runs. float16/bfloat16 inputs are
computed in float32 and the result cast back.

Gradients (torch only) flow to ``input``, never to the boxes. The CPU backward
is deterministic, bit for bit whatever the thread count (each thread owns
whole channels and visits the ROIs in order); the CUDA backward accumulates
with atomicAdd, so its float sums may differ in the last bits between runs
when ROIs overlap: under ``torch.use_deterministic_algorithms(True)`` it raises
torch's "does not have a deterministic implementation" error (a warning with
``warn_only=True``) instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vt_ops import _C
from vt_ops._arrays import (
    FLOATING,
    TORCH,
    Backend,
    alert_not_deterministic,
    backend_of,
    check_same_device,
    check_shape,
    compute_dtype,
)
from vt_ops._torch_registry import on_torch, torch_ops

__all__ = ["roi_align", "roi_align_rotated", "roi_pool"]


def _concatenate(backend: Backend, arrays: list[Any], axis: int) -> Any:
    if backend is TORCH:
        import torch

        return torch.cat(arrays, dim=axis)
    if backend.name == "cupy":
        import cupy

        return cupy.concatenate(arrays, axis=axis)
    return np.concatenate(arrays, axis=axis)


def _output_size(output_size: Any) -> tuple[int, int]:
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        size = (output_size, output_size)
    elif (
        isinstance(output_size, Sequence)
        and len(output_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in output_size)
    ):
        size = (output_size[0], output_size[1])
    else:
        raise TypeError(f"output_size: expected an int or a pair of ints, got {output_size!r}")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"output_size: expected positive sizes, got {size}")
    return size


def _check_scalars(spatial_scale: Any, sampling_ratio: Any) -> tuple[float, int]:
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float)):
        raise TypeError(f"spatial_scale: expected a float, got {type(spatial_scale).__name__}")
    if not math.isfinite(spatial_scale) or spatial_scale <= 0:
        raise ValueError(f"spatial_scale: expected a positive finite number, got {spatial_scale}")
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio: expected an int, got {type(sampling_ratio).__name__}")
    return float(spatial_scale), sampling_ratio


def _check_input(input: Any) -> tuple[Backend, str]:
    backend = backend_of(input, "input")
    if len(input.shape) != 4:
        raise ValueError(f"input: expected shape (N, C, H, W), got {tuple(input.shape)}")
    dtype = backend.dtype_name(input)
    if dtype not in FLOATING:
        raise TypeError(f"input: expected a floating dtype ({', '.join(FLOATING)}), got {dtype}")
    return backend, dtype


def _as_rois(backend: Backend, input: Any, boxes: Any, dtype: str, width: int, name: str) -> Any:
    """``boxes`` as a K x (width + 1) array with the batch index first.

    ``boxes`` is either that array already or a list with one L x width array
    per image. Checks library, shape, dtype (see ``_check_dtype``) and device.
    """
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            part = f"{name}[{i}]"
            if backend_of(b, part) is not backend:
                raise TypeError(f"{part} must be an array of the same library as input")
            check_shape(b, part, (None, width))
            _check_dtype(backend, b, part, dtype)
            check_same_device(backend, [(input, "input"), (b, part)])
            index = backend.empty((b.shape[0], 1), backend.dtype_name(b), like=b)
            index[...] = i
            parts.append(_concatenate(backend, [index, b], axis=1))
        if not parts:
            return backend.empty((0, width + 1), dtype, like=input)
        return _concatenate(backend, parts, axis=0)
    if backend_of(boxes, name) is not backend:
        raise TypeError(f"{name} must be an array of the same library as input")
    check_shape(boxes, name, (None, width + 1))
    _check_dtype(backend, boxes, name, dtype)
    check_same_device(backend, [(input, "input"), (boxes, name)])
    return boxes


def _check_dtype(backend: Backend, x: Any, name: str, dtype: str) -> None:
    """Boxes have input's dtype; float32 boxes may go with float16/bfloat16 input (autocast)."""
    got = backend.dtype_name(x)
    if got != dtype and not (got == "float32" and dtype in ("float16", "bfloat16")):
        raise TypeError(f"{name}: expected the dtype of input ({dtype}), got {got}")


def _check_roi_values(backend: Backend, rois: Any, batch_size: int, rotated: bool) -> None:
    """Data-dependent checks, run eagerly inside the op (one device sync on CUDA)."""
    name = "rois" if rotated else "boxes"
    if rois.shape[0] == 0:
        return
    finite = abs(rois) < math.inf
    index = rois[:, 0]
    in_range = (index >= 0) & (index < batch_size)
    sizes = rois[:, 3:5] >= 0 if rotated else finite
    if bool(finite.all() & in_range.all() & sizes.all()):
        return
    if not bool(finite.all()):
        raise ValueError(f"{name}: coordinates must be finite (found NaN or inf)")
    if not bool(in_range.all()):
        raise ValueError(f"{name}: batch index (column 0) out of range [0, {batch_size})")
    raise ValueError(f"{name}: width and height (columns 3, 4) must be non-negative")


def _prepare(backend: Backend, input: Any, rois: Any, rotated: bool) -> tuple[Any, Any, str]:
    """Contiguous NCHW input and rois in the compute dtype, with their values checked."""
    work = compute_dtype(backend.dtype_name(input))
    x = backend.contiguous(backend.astype(input, work))
    r = backend.contiguous(backend.astype(rois, work))
    _check_roi_values(backend, r, x.shape[0], rotated)
    return x, r, work


def _launch_roi_align(
    backend: Backend,
    input: Any,
    rois: Any,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int,
    aligned: bool,
    rotated: bool,
) -> Any:
    dtype = backend.dtype_name(input)
    x, r, work = _prepare(backend, input, rois, rotated)
    out = backend.empty((r.shape[0], x.shape[1], pooled_h, pooled_w), work, like=x)
    if math.prod(out.shape):
        _C.roi_align_forward(
            x, r, out, spatial_scale, sampling_ratio, aligned, rotated, backend.stream(x)
        )
    return backend.astype(out, dtype)


def _launch_roi_align_backward(
    backend: Backend,
    grad: Any,
    rois: Any,
    spatial_scale: float,
    input_shape: Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    rotated: bool,
) -> Any:
    alert_not_deterministic(backend, grad, "vt_ops::roi_align_backward")
    dtype = backend.dtype_name(grad)
    work = compute_dtype(dtype)
    g = backend.contiguous(backend.astype(grad, work))
    r = backend.contiguous(backend.astype(rois, work))
    grad_input = backend.zeros(tuple(int(s) for s in input_shape), work, like=g)
    if math.prod(g.shape) and math.prod(grad_input.shape):
        _C.roi_align_backward(
            g, r, grad_input, spatial_scale, sampling_ratio, aligned, rotated, backend.stream(g)
        )
    return backend.astype(grad_input, dtype)


def _launch_roi_pool(
    backend: Backend, input: Any, rois: Any, spatial_scale: float, pooled_h: int, pooled_w: int
) -> tuple[Any, Any]:
    dtype = backend.dtype_name(input)
    x, r, work = _prepare(backend, input, rois, rotated=False)
    shape = (r.shape[0], x.shape[1], pooled_h, pooled_w)
    out = backend.empty(shape, work, like=x)
    argmax = backend.empty(shape, "int32", like=x)
    if math.prod(shape):
        _C.roi_pool_forward(x, r, out, argmax, spatial_scale, backend.stream(x))
    return backend.astype(out, dtype), argmax


def _launch_roi_pool_backward(
    backend: Backend, grad: Any, rois: Any, argmax: Any, input_shape: Sequence[int]
) -> Any:
    alert_not_deterministic(backend, grad, "vt_ops::roi_pool_backward")
    dtype = backend.dtype_name(grad)
    work = compute_dtype(dtype)
    g = backend.contiguous(backend.astype(grad, work))
    r = backend.contiguous(backend.astype(rois, work))
    a = backend.contiguous(argmax)
    grad_input = backend.zeros(tuple(int(s) for s in input_shape), work, like=g)
    if math.prod(g.shape) and math.prod(grad_input.shape):
        _C.roi_pool_backward(g, r, a, grad_input, backend.stream(g))
    return backend.astype(grad_input, dtype)


@on_torch
def _define_torch_ops() -> None:
    import torch

    # --- roi_align / roi_align_rotated -----------------------------------------------------
    @torch.library.custom_op(
        "vt_ops::roi_align",
        mutates_args=(),
        schema="(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
        "int pooled_width, int sampling_ratio, bool aligned, bool rotated) -> Tensor",
    )
    def roi_align_op(
        input: torch.Tensor,
        rois: torch.Tensor,
        spatial_scale: float,
        pooled_height: int,
        pooled_width: int,
        sampling_ratio: int,
        aligned: bool,
        rotated: bool,
    ) -> torch.Tensor:
        return _launch_roi_align(
            TORCH,
            input,
            rois,
            spatial_scale,
            pooled_height,
            pooled_width,
            sampling_ratio,
            aligned,
            rotated,
        )

    @roi_align_op.register_fake
    def _(
        input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned, rotated
    ):
        return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))

    @torch.library.custom_op(
        "vt_ops::roi_align_backward",
        mutates_args=(),
        schema="(Tensor grad, Tensor rois, float spatial_scale, SymInt[] input_shape, "
        "int sampling_ratio, bool aligned, bool rotated) -> Tensor",
    )
    def roi_align_backward_op(
        grad: torch.Tensor,
        rois: torch.Tensor,
        spatial_scale: float,
        input_shape: list[int],
        sampling_ratio: int,
        aligned: bool,
        rotated: bool,
    ) -> torch.Tensor:
        return _launch_roi_align_backward(
            TORCH, grad, rois, spatial_scale, input_shape, sampling_ratio, aligned, rotated
        )

    @roi_align_backward_op.register_fake
    def _(grad, rois, spatial_scale, input_shape, sampling_ratio, aligned, rotated):
        return grad.new_empty(input_shape)

    def roi_align_setup_context(ctx, inputs, output):
        input, rois, spatial_scale, _, _, sampling_ratio, aligned, rotated = inputs
        ctx.save_for_backward(rois)
        ctx.input_shape = input.shape
        ctx.args = (spatial_scale, sampling_ratio, aligned, rotated)

    def roi_align_backward(ctx, grad):
        (rois,) = ctx.saved_tensors
        spatial_scale, sampling_ratio, aligned, rotated = ctx.args
        grad_input = roi_align_backward_op(
            grad, rois, spatial_scale, list(ctx.input_shape), sampling_ratio, aligned, rotated
        )
        return grad_input, None, None, None, None, None, None, None

    roi_align_op.register_autograd(roi_align_backward, setup_context=roi_align_setup_context)

    # --- roi_pool ------------------------------------------------------------------------------
    @torch.library.custom_op(
        "vt_ops::roi_pool",
        mutates_args=(),
        schema="(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
        "int pooled_width) -> (Tensor, Tensor)",
    )
    def roi_pool_op(
        input: torch.Tensor,
        rois: torch.Tensor,
        spatial_scale: float,
        pooled_height: int,
        pooled_width: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _launch_roi_pool(TORCH, input, rois, spatial_scale, pooled_height, pooled_width)

    @roi_pool_op.register_fake
    def _(input, rois, spatial_scale, pooled_height, pooled_width):
        shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
        return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)

    @torch.library.custom_op(
        "vt_ops::roi_pool_backward",
        mutates_args=(),
        schema="(Tensor grad, Tensor rois, Tensor argmax, SymInt[] input_shape) -> Tensor",
    )
    def roi_pool_backward_op(
        grad: torch.Tensor, rois: torch.Tensor, argmax: torch.Tensor, input_shape: list[int]
    ) -> torch.Tensor:
        return _launch_roi_pool_backward(TORCH, grad, rois, argmax, input_shape)

    @roi_pool_backward_op.register_fake
    def _(grad, rois, argmax, input_shape):
        return grad.new_empty(input_shape)

    def roi_pool_setup_context(ctx, inputs, output):
        input, rois = inputs[0], inputs[1]
        ctx.save_for_backward(rois, output[1])
        ctx.input_shape = input.shape

    def roi_pool_backward(ctx, grad, grad_argmax):
        rois, argmax = ctx.saved_tensors
        grad_input = roi_pool_backward_op(grad, rois, argmax, list(ctx.input_shape))
        return grad_input, None, None, None, None

    roi_pool_op.register_autograd(roi_pool_backward, setup_context=roi_pool_setup_context)


def _roi_align(
    input: Any,
    boxes: Any,
    output_size: Any,
    spatial_scale: Any,
    sampling_ratio: Any,
    aligned: bool,
    rotated: bool,
) -> Any:
    backend, dtype = _check_input(input)
    name = "rois" if rotated else "boxes"
    rois = _as_rois(backend, input, boxes, dtype, 5 if rotated else 4, name)
    pooled_h, pooled_w = _output_size(output_size)
    scale, sampling_ratio = _check_scalars(spatial_scale, sampling_ratio)
    args = (scale, pooled_h, pooled_w, sampling_ratio, bool(aligned), rotated)
    if backend is TORCH:
        return torch_ops().roi_align(input, rois, *args)
    return _launch_roi_align(backend, input, rois, *args)


def roi_align(
    input: Any,
    boxes: Any,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Any:
    """Region of Interest (RoI) Align, as described in Mask R-CNN.

    Args:
        input (Array[N, C, H, W]): features, numpy, torch or cupy, any floating dtype.
        boxes (Array[K, 5] or List[Array[L, 4]]): boxes in (x1, y1, x2, y2) format,
            of input's library, dtype (or float32 for a float16/bfloat16 input) and
            device. A single array carries the batch index in its first column; a
            list holds the boxes of image i at index i.
        output_size (int or Tuple[int, int]): (height, width) of each pooled output.
        spatial_scale (float): scales box coordinates to input coordinates, e.g.
            1/16 for a stride-16 feature map.
        sampling_ratio (int): sampling points per bin along each axis; ``<= 0``
            takes ``ceil(roi_size / output_size)`` points (adaptive).
        aligned (bool): if True, shift the box by -0.5 pixel so that pixel centres
            sit at half-integer coordinates (detectron2's ROIAlignV2); if False,
            the legacy behaviour, which also forces boxes to be at least 1x1.

    Returns:
        Array[K, C, output_size[0], output_size[1]]: of input's kind, device and dtype.

    Sampling points more than one pixel outside the feature map contribute
    zero. Differentiable with respect to ``input`` (torch); the CPU backward is
    deterministic, the CUDA backward accumulates with atomicAdd (an error under
    ``torch.use_deterministic_algorithms(True)``). Equal to
    ``torchvision.ops.roi_align``.
    """
    return _roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned, False)


def roi_align_rotated(
    input: Any,
    rois: Any,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
) -> Any:
    """RoI Align over rotated boxes (detectron2's ROIAlignRotated).

    Args:
        input (Array[N, C, H, W]): features, numpy, torch or cupy, any floating dtype.
        rois (Array[K, 6] or List[Array[L, 5]]): (batch_index, cx, cy, w, h, angle)
            rows, or per image (cx, cy, w, h, angle) arrays; the angle is in degrees,
            counter-clockwise in image coordinates (y pointing down); w, h >= 0.
        output_size (int or Tuple[int, int]): (height, width) of each pooled output.
        spatial_scale (float): scales box coordinates to input coordinates.
        sampling_ratio (int): sampling points per bin along each axis; ``<= 0``
            is adaptive (``ceil(roi_size / output_size)``).

    Returns:
        Array[K, C, output_size[0], output_size[1]]: of input's kind, device and dtype.

    Coordinates are continuous: pixel ``i`` covers ``[i, i + 1)`` and is sampled
    at ``i + 0.5``, so an angle of 0 gives ``roi_align(..., aligned=True)`` on the
    equivalent (x1, y1, x2, y2) box. Output rows follow the box's height axis
    and columns its width axis, both turned with the box. Differentiable with
    respect to ``input`` (torch).
    """
    return _roi_align(input, rois, output_size, spatial_scale, sampling_ratio, True, True)


def roi_pool(
    input: Any, boxes: Any, output_size: int | tuple[int, int], spatial_scale: float = 1.0
) -> Any:
    """Region of Interest (RoI) max pooling, as in Fast R-CNN.

    Args:
        input (Array[N, C, H, W]): features, numpy, torch or cupy, any floating dtype.
        boxes (Array[K, 5] or List[Array[L, 4]]): boxes in (x1, y1, x2, y2) format,
            as for :func:`roi_align`.
        output_size (int or Tuple[int, int]): (height, width) of each pooled output.
        spatial_scale (float): scales box coordinates to input coordinates.

    Returns:
        Array[K, C, output_size[0], output_size[1]]: the maximum of each bin; bins
        that fall outside the feature map are 0.

    Box corners are rounded to pixels and boxes forced to be at least 1x1. The
    gradient (torch) flows to the maximum of each bin. Equal to
    ``torchvision.ops.roi_pool``.
    """
    backend, dtype = _check_input(input)
    rois = _as_rois(backend, input, boxes, dtype, 4, "boxes")
    pooled_h, pooled_w = _output_size(output_size)
    scale, _ = _check_scalars(spatial_scale, 0)
    if backend is TORCH:
        return torch_ops().roi_pool(input, rois, scale, pooled_h, pooled_w)[0]
    return _launch_roi_pool(backend, input, rois, scale, pooled_h, pooled_w)[0]
