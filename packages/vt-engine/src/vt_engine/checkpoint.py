"""Checkpoints: atomic saves, safe loads, key/shape reports.

A checkpoint saved by :func:`save_checkpoint` is a directory holding

- ``model.safetensors``: the model weights. safetensors is a flat tensor format:
  loading it never runs code (unlike pickle), it is memory-mapped and fast, and other
  tools (hub, other frameworks) read it.
- ``state.pth``: everything else (meta, optimizer, schedulers, loss scaler, RNG
  states, hook states): nested Python containers that safetensors cannot hold, saved
  with ``torch.save`` and loaded with ``torch.load(weights_only=True)``, which only
  rebuilds tensors and plain containers and never unpickles code.

The directory is written under a temporary name and renamed into place, so a crash
(exception or kill) during a write never leaves a partial checkpoint under the final
name; ``last_checkpoint`` (a text file next to the checkpoints) is replaced atomically
after the rename, so it always names a complete checkpoint.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from safetensors.torch import load_file as _load_safetensors
from safetensors.torch import save_file as _save_safetensors
from torch import nn

from vt_engine.model import unwrap_model

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "load_state_dict",
    "read_checkpoint",
    "find_latest_checkpoint",
    "IncompatibleKeys",
    "MODEL_FILE",
    "STATE_FILE",
]

logger = logging.getLogger("vt_engine")

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pth"
LAST_CHECKPOINT = "last_checkpoint"


class IncompatibleKeys(NamedTuple):
    """What :func:`load_state_dict` could not load."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    """(key, shape in the checkpoint, shape in the model)"""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _weights_for_safetensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU tensors; tensors sharing memory (tied weights) are cloned,
    as safetensors refuses shared storage."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}]: expected a tensor, got {type(value).__name__}")
        t = value.detach().cpu().contiguous()
        ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if ident in seen or t.data_ptr() == 0:
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[key] = t
    return out


def save_checkpoint(
    path: str | os.PathLike,
    model_state: Mapping[str, torch.Tensor],
    state: Mapping[str, Any] | None = None,
    record_last: bool = False,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (see the module docs).

    Args:
        path: the checkpoint directory; an existing one is replaced.
        model_state: the model's state dict (tensors only).
        state: the rest (meta, optimizer, schedulers, RNG states...), ``torch.save``-d.
        record_last: also name it in ``last_checkpoint`` next to it (what
            :func:`find_latest_checkpoint` and ``resume=True`` read).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        _save_safetensors(_weights_for_safetensors(model_state), str(tmp / MODEL_FILE))
        with open(tmp / STATE_FILE, "wb") as f:
            torch.save(dict(state or {}), f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if record_last:
        _write_text_atomic(path.parent / LAST_CHECKPOINT, path.name)
    return path


def find_latest_checkpoint(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint named by ``work_dir/last_checkpoint``, or None."""
    marker = Path(work_dir) / LAST_CHECKPOINT
    if not marker.is_file():
        return None
    path = Path(work_dir) / marker.read_text().strip()
    return path if path.exists() else None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, strings and numpy arrays only: the content of
    detectron2's ``.pkl`` model files, without running arbitrary code."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("collections", "OrderedDict"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not plain weights")


def _refused(path: Path, error: Exception) -> pickle.UnpicklingError:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # torch's message leads with a generic paragraph; the line naming the global is the point
    named = [line for line in lines if "GLOBAL" in line or "refusing" in line]
    reason = (named or lines or [type(error).__name__])[0]
    return pickle.UnpicklingError(
        f"{path}: refusing to load this checkpoint: it holds objects other than tensors and "
        f"plain containers, which unpickling could use to run code ({reason}). Load only "
        "files you trust, or convert them to safetensors."
    )


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)``: never unpickles code; a refusal names the file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refused(path, e) from e


def _to_tensors(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj, order="C"))  # keeps 0-d arrays 0-d
    if isinstance(obj, Mapping):
        return {k: _to_tensors(v) for k, v in obj.items()}
    return obj


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint into ``{"state_dict": weights, **other state}``.

    Accepts a checkpoint directory of :func:`save_checkpoint`, a ``.safetensors`` file,
    a ``torch.save`` file (``.pth``/``.pt``; read with ``weights_only=True``; weights
    under ``"state_dict"`` or ``"model"`` as mmengine and detectron2 save them, or a
    bare state dict) or a detectron2 ``.pkl`` file (numpy arrays under ``"model"``,
    read by an unpickler that only accepts arrays and containers).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a checkpoint directory: no {MODEL_FILE}")
        ckpt: dict[str, Any] = {}
        if (path / STATE_FILE).is_file():
            ckpt = _torch_load(path / STATE_FILE, map_location)
        ckpt["state_dict"] = _load_safetensors(str(path / MODEL_FILE), device=str(map_location))
        return ckpt
    if path.suffix == ".safetensors":
        return {"state_dict": _load_safetensors(str(path), device=str(map_location))}
    if path.suffix == ".pkl":
        with open(path, "rb") as f:
            try:
                data = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
            except pickle.UnpicklingError as e:
                raise _refused(path, e) from e
        data = _to_tensors(data)
    else:
        data = _torch_load(path, map_location)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a dict in the checkpoint, got {type(data).__name__}")
    data = dict(data)
    for key in ("state_dict", "model"):
        if key in data and isinstance(data[key], Mapping):
            weights = data.pop(key)
            data["state_dict"] = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor)}
            return data
    return {"state_dict": {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}}


def load_state_dict(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = False
) -> IncompatibleKeys:
    """Load ``state_dict`` into ``module`` skipping shape mismatches, and report.

    Args:
        module: the model (a DDP wrapper is unwrapped).
        state_dict: the weights.
        strict: raise a RuntimeError listing the problems instead of logging them.

    Returns:
        The missing keys, unexpected keys and shape mismatches.
    """
    module = unwrap_model(module)
    own = module.state_dict()
    mismatches = []
    loadable = {}
    for key, value in state_dict.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            mismatches.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            loadable[key] = value
    result = module.load_state_dict(loadable, strict=False)
    mismatched = {key for key, _, _ in mismatches}
    missing = [k for k in result.missing_keys if k not in mismatched]
    report = IncompatibleKeys(missing, list(result.unexpected_keys), mismatches)
    lines = []
    if report.unexpected_keys:
        lines.append(f"unexpected keys in the checkpoint: {', '.join(report.unexpected_keys)}")
    if report.missing_keys:
        lines.append(f"keys missing from the checkpoint: {', '.join(report.missing_keys)}")
    for key, theirs, ours in mismatches:
        lines.append(f"shape mismatch for {key}: checkpoint {theirs}, model {ours}")
    if lines:
        if strict:
            raise RuntimeError("Error loading the state dict:\n" + "\n".join(lines))
        logger.warning("\n".join(lines))
    return report


def load_checkpoint(
    model: nn.Module,
    filename: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    strict: bool = False,
    revise_keys: Sequence[tuple[str, str]] = ((r"^module\.", ""),),
) -> dict[str, Any]:
    """Load the weights of a checkpoint (any format :func:`read_checkpoint` accepts) into
    ``model``.

    Args:
        model: the model (a DDP wrapper is unwrapped).
        filename: the checkpoint.
        map_location: where tensors are loaded.
        strict: raise on missing/unexpected keys and shape mismatches.
        revise_keys: ``(pattern, replacement)`` regex substitutions applied to every key
            (default: strip a DDP ``module.`` prefix).

    Returns:
        The checkpoint dict, with ``"incompatible_keys"`` (an :class:`IncompatibleKeys`).
    """
    ckpt = read_checkpoint(filename, map_location)
    weights = ckpt["state_dict"]
    for pattern, repl in revise_keys:
        weights = {re.sub(pattern, repl, k): v for k, v in weights.items()}
    ckpt["state_dict"] = weights
    ckpt["incompatible_keys"] = load_state_dict(model, weights, strict=strict)
    return ckpt
