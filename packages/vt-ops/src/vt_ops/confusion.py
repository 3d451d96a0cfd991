"""Confusion matrix of integer label maps (segmentation evaluation)."""

from __future__ import annotations

import math
import operator
from typing import Any

from vt_ops import _C
from vt_ops._arrays import TORCH, Backend, backend_of, check_same_device
from vt_ops._torch_registry import on_torch, torch_ops

__all__ = ["confusion_matrix"]

_KERNEL_DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "int64")
# Accepted, converted before the kernel: bool as uint8, uint32 widened to int64.
_CONVERTED_DTYPES = {"bool": "uint8", "uint32": "int64"}
# The C x C int64 matrix of 2**16 classes already takes 32 GiB.
MAX_CLASSES = 2**16


def _check_labels(backend: Backend, x: Any, name: str) -> Any:
    """Raise TypeError unless ``x`` has an integer dtype; returns it ready for the kernel."""
    dtype = backend.dtype_name(x)
    if dtype in _CONVERTED_DTYPES:
        x = backend.astype(x, _CONVERTED_DTYPES[dtype])
    elif dtype not in _KERNEL_DTYPES:
        raise TypeError(
            f"{name}: expected an integer or bool dtype "
            f"({', '.join(_KERNEL_DTYPES + tuple(_CONVERTED_DTYPES))}), got {dtype}"
        )
    return backend.contiguous(x)


def _launch_confusion_counts(
    backend: Backend, pred: Any, label: Any, num_classes: int, ignore_index: int
) -> Any:
    """Run the kernel on validated arrays: int64 counts of length C*C + 2, see confusion_matrix.h."""
    counts = backend.zeros((num_classes * num_classes + 2,), "int64", like=pred)
    if math.prod(pred.shape):
        _C.confusion_matrix(pred, label, num_classes, ignore_index, counts, backend.stream(pred))
    return counts


@on_torch
def _define_torch_ops() -> None:
    import torch

    @torch.library.custom_op(
        "vt_ops::confusion_counts",
        mutates_args=(),
        schema="(Tensor pred, Tensor label, int num_classes, int ignore_index) -> Tensor",
    )
    def confusion_counts(
        pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int
    ) -> torch.Tensor:
        return _launch_confusion_counts(TORCH, pred, label, num_classes, ignore_index)

    @confusion_counts.register_fake
    def _(
        pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int
    ) -> torch.Tensor:
        return pred.new_empty((num_classes * num_classes + 2,), dtype=torch.int64)


def _out_of_range_message(
    backend: Backend, pred: Any, label: Any, num_classes: int, ignore_index: int, counts: Any
) -> str:
    """Describe the pixels the kernel found out of range (only on the error path)."""
    bad_labels, bad_preds = (int(v) for v in counts[-2:].tolist())
    label = backend.astype(label, "int64")
    evaluated = label != ignore_index
    if bad_labels:
        values = label[evaluated & ((label < 0) | (label >= num_classes))]
        return (
            f"label: {bad_labels} elements are outside [0, {num_classes}) and not "
            f"ignore_index={ignore_index} (values from {int(values.min())} to "
            f"{int(values.max())})"
        )
    pred = backend.astype(pred, "int64")
    values = pred[evaluated & ((pred < 0) | (pred >= num_classes))]
    return (
        f"pred: {bad_preds} elements where label is not ignore_index={ignore_index} are "
        f"outside [0, {num_classes}) (values from {int(values.min())} to {int(values.max())})"
    )


def confusion_matrix(
    pred: Any, label: Any, num_classes: int, ignore_index: int = 255, out: Any | None = None
) -> Any:
    """Confusion matrix of a predicted and a ground-truth label map, in one pass.

    One compiled bincount over ``label * num_classes + pred``: per-thread
    histograms on CPU, shared-memory histograms with warp-aggregated atomics
    on CUDA. Memory is O(C²) whatever the number of pixels, so accumulating
    a data set image by image with ``out`` is streaming.

    Args:
        pred (Array[*]): predicted class indices, an integer or bool dtype;
            numpy, torch (CPU or CUDA) or cupy.
        label (Array[*]): ground-truth class indices of the same shape, array
            library and device (its dtype may differ from ``pred``'s).
        num_classes (int): number of classes C, at most 65536.
        ignore_index (int): elements whose label equals it are skipped (their
            prediction is not looked at).
        out (Array[C, C], optional): an int64 matrix of the same library and
            device to add the counts to, in place.

    Returns:
        Array[C, C]: int64 counts, ``[i, j]`` = number of elements with label
        ``i`` predicted as ``j`` (rows: ground truth, columns: prediction);
        ``out`` itself when given. Intersection, areas and union follow as the
        diagonal, the row sums (label), the column sums (prediction).

    Raises:
        ValueError: when a label that is not ``ignore_index``, or the prediction
            at such an element, lies outside ``[0, C)``; ``out`` is then left
            unchanged. Also for mismatched shapes or a bad ``num_classes``.
        TypeError: for non-integer dtypes or arrays of different libraries.
    """
    backend = backend_of(pred, "pred")
    if backend_of(label, "label") is not backend:
        raise TypeError("pred and label must be arrays of the same library")
    if tuple(pred.shape) != tuple(label.shape):
        raise ValueError(
            f"pred and label must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(label.shape)}"
        )
    check_same_device(backend, [(pred, "pred"), (label, "label")])
    num_classes = _as_int(num_classes, "num_classes")
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(
            f"num_classes: expected a positive number of at most {MAX_CLASSES} "
            f"(a C x C matrix), got {num_classes}"
        )
    ignore_index = _as_int(ignore_index, "ignore_index")
    if not -(2**63) <= ignore_index < 2**63:
        raise ValueError(f"ignore_index: expected a 64-bit integer, got {ignore_index}")
    if out is not None:
        if backend_of(out, "out") is not backend:
            raise TypeError("out must be an array of the same library as pred")
        if tuple(out.shape) != (num_classes, num_classes):
            raise ValueError(
                f"out: expected shape ({num_classes}, {num_classes}), got {tuple(out.shape)}"
            )
        if backend.dtype_name(out) != "int64":
            raise TypeError(f"out: expected int64, got {backend.dtype_name(out)}")
        check_same_device(backend, [(pred, "pred"), (out, "out")])
    pred = _check_labels(backend, pred, "pred")
    label = _check_labels(backend, label, "label")
    if backend is TORCH:
        counts = torch_ops().confusion_counts(pred, label, num_classes, ignore_index)
    else:
        counts = _launch_confusion_counts(backend, pred, label, num_classes, ignore_index)
    if counts[-2:].sum() != 0:
        raise ValueError(
            _out_of_range_message(backend, pred, label, num_classes, ignore_index, counts)
        )
    matrix = counts[:-2].reshape(num_classes, num_classes)
    if out is None:
        return matrix
    out += matrix
    return out


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}") from None
