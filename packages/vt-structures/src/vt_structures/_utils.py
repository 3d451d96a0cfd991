"""Validation and indexing helpers shared by the structures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["check_index", "check_tensor", "index_list", "index_to_list"]


def check_tensor(x: Any, name: str, shape: Sequence[int | None]) -> torch.Tensor:
    """Return ``x`` as a tensor; raise unless its shape matches ``shape`` (None: any size)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(x).__name__}")
    ok = x.dim() == len(shape) and all(w is None or x.shape[i] == w for i, w in enumerate(shape))
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected shape ({want}), got {tuple(x.shape)}")
    return x


def check_index(item: Any, length: int, what: str) -> None:
    """Raise a clear error for an out-of-range int or a bool mask of the wrong length."""
    if isinstance(item, bool):
        raise TypeError(f"{what} cannot be indexed by a bool; use a bool mask tensor")
    if isinstance(item, int):
        if not -length <= item < length:
            raise IndexError(f"{what} index {item} out of range for length {length}")
    elif (
        isinstance(item, (torch.Tensor, np.ndarray))
        and item.dtype in (torch.bool, np.bool_)
        and (item.ndim != 1 or item.shape[0] != length)
    ):
        raise IndexError(
            f"{what}: a bool mask must have shape ({length},), got {tuple(item.shape)}"
        )


def index_to_list(item: Any, length: int) -> list[int]:
    """Positions selected by an int, slice, bool mask or integer index (tensor, array, list)."""
    if isinstance(item, int):
        return [range(length)[item]]
    if isinstance(item, slice):
        return list(range(length))[item]
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    arr = np.asarray(item)
    if arr.dtype == np.bool_:
        if arr.shape != (length,):
            raise IndexError(f"a bool mask must have shape ({length},), got {arr.shape}")
        return np.nonzero(arr)[0].tolist()
    if arr.size == 0:
        return []
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise IndexError(f"expected an int, slice, bool mask or 1-D integer index, got {item!r}")
    return [range(length)[int(i)] for i in arr]


def index_list(values: list, item: Any) -> list:
    """Index a Python list like a tensor (int keeps a list of one element)."""
    return [values[i] for i in index_to_list(item, len(values))]
