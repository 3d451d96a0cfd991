"""Helpers shared by the metrics: data-sample access, arrays, tables, logging, PNG files."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "basename_png",
    "format_table",
    "is_array",
    "load_png",
    "lookup",
    "print_log",
    "sample_field",
    "save_png",
    "to_numpy",
]

logger = logging.getLogger("vt_metrics")


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_cupy(x: Any) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


def is_array(x: Any) -> bool:
    """True for numpy arrays, torch tensors and cupy arrays."""
    return isinstance(x, np.ndarray) or _is_torch(x) or _is_cupy(x)


def to_numpy(x: Any, name: str = "array") -> np.ndarray:
    """A numpy view or copy of a numpy array, torch tensor (any device) or cupy array."""
    if isinstance(x, np.ndarray):
        return x
    if _is_torch(x):
        return x.detach().cpu().numpy()
    if _is_cupy(x):
        return x.get()
    if isinstance(x, (int, float, np.generic)):
        return np.asarray(x)
    raise TypeError(
        f"{name}: expected a numpy array, torch tensor or cupy array, got {type(x).__name__}"
    )


def lookup(obj: Any, key: str) -> Any:
    """``obj.get(key)`` for mappings, else ``getattr(obj, key, None)``."""
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def sample_field(sample: Any, key: str, *, required: bool = True) -> Any:
    """The array of a data-sample field, mmseg's ``sample[key]['data']``.

    ``sample`` is a dict (mmseg's ``SegDataSample.to_dict()``) or an object with
    attributes; the field is a mapping or object with ``data``, or the array itself.
    Returns None for a missing optional field.
    """
    value = lookup(sample, key)
    if value is not None and not is_array(value):
        value = lookup(value, "data")
    if value is None:
        if required:
            raise KeyError(f"data sample has no '{key}' (expected sample['{key}']['data'])")
        return None
    if not is_array(value):
        raise TypeError(
            f"{key}: expected a numpy array, torch tensor or cupy array, got {type(value).__name__}"
        )
    return value


def basename_png(sample: Any, output_dir: str) -> str:
    """``output_dir/<image file stem>.png`` for the sample's ``img_path``."""
    img_path = lookup(sample, "img_path")
    if img_path is None:
        raise KeyError("data sample has no 'img_path', needed to name the output file")
    stem = os.path.splitext(os.path.basename(str(img_path)))[0]
    return os.path.abspath(os.path.join(output_dir, f"{stem}.png"))


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "writing and reading PNG files needs Pillow: pip install 'vt-metrics[png]'"
        ) from e
    return Image


def save_png(path: str, array: np.ndarray) -> None:
    """Write a 2-D uint8 (8-bit grey) or uint16 (16-bit grey) array as a PNG file."""
    if array.ndim != 2 or array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a 2-D uint8 or uint16 image, got {array.dtype} {array.shape}")
    _pillow().fromarray(np.ascontiguousarray(array)).save(path)


def load_png(path: str) -> np.ndarray:
    """Read a single-channel PNG file (8 or 16 bits) as a 2-D array."""
    with _pillow().open(path) as image:
        array = np.array(image)
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel image, got shape {array.shape}")
    return array


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{float(value):g}"
    return str(value)


def format_table(columns: Mapping[str, Sequence[Any]]) -> str:
    """A plain-text table, one column per key (the layout of mmseg's PrettyTable output)."""
    names = list(columns)
    cells = [[_cell(v) for v in columns[name]] for name in names]
    rows = max((len(c) for c in cells), default=0)
    cells = [c + [""] * (rows - len(c)) for c in cells]
    widths = [max([len(n), *map(len, c)]) + 2 for n, c in zip(names, cells)]
    rule = "+" + "+".join("-" * w for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        return "|" + "|".join(v.center(w) for v, w in zip(values, widths)) + "|"

    body = [line([c[i] for c in cells]) for i in range(rows)]
    return "\n".join([rule, line(names), rule, *body, rule])


def print_log(message: str) -> None:
    """Log to the ``vt_metrics`` logger when logging is configured, else print."""
    if logger.hasHandlers():
        logger.info(message)
    else:
        print(message, flush=True)
