"""Array-library frontends: numpy, torch and cupy arrays in, the same kind out.

Every op is written once against :class:`Backend`: the backend makes inputs
contiguous, allocates outputs and workspaces with the caller's own library (so
torch's caching allocator serves CUDA memory) and names the stream kernels run
on. The compiled kernels in ``vt_ops._C`` receive everything through DLPack.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "Backend",
    "alert_not_deterministic",
    "backend_of",
    "check_floating",
    "check_integer",
    "check_shape",
    "is_torch",
]


def is_torch(x: Any) -> bool:
    """True when ``x`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_cupy(x: Any) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


class Backend:
    """Operations an op needs from the array library of its inputs."""

    name: str

    def contiguous(self, x: Any) -> Any:
        raise NotImplementedError

    def empty(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        raise NotImplementedError

    def zeros(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        raise NotImplementedError

    def stream(self, like: Any) -> int:
        """The CUDA stream handle kernels on ``like``'s device must use (0 on CPU)."""
        return 0

    def dtype_name(self, x: Any) -> str:
        """'float32', 'float16', 'bfloat16', 'int64', ... for x's dtype."""
        raise NotImplementedError

    def astype(self, x: Any, dtype_name: str) -> Any:
        raise NotImplementedError

    def device_str(self, x: Any) -> str:
        raise NotImplementedError

    def argsort_descending(self, x: Any) -> Any:
        """int64 indices sorting 1-D ``x`` by decreasing value, ties by increasing index."""
        raise NotImplementedError


class NumpyBackend(Backend):
    name = "numpy"

    def contiguous(self, x: Any) -> Any:
        x = np.ascontiguousarray(x)
        # The extension only accepts writable arrays: copy read-only inputs (e.g. frombuffer).
        return x if x.flags.writeable else x.copy()

    def empty(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        return np.empty(tuple(shape), dtype=np.dtype(dtype))

    def zeros(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        return np.zeros(tuple(shape), dtype=np.dtype(dtype))

    def dtype_name(self, x: Any) -> str:
        return x.dtype.name

    def astype(self, x: Any, dtype_name: str) -> Any:
        return x.astype(dtype_name, copy=False)

    def device_str(self, x: Any) -> str:
        return "cpu"

    def argsort_descending(self, x: Any) -> Any:
        return np.argsort(-x, kind="stable").astype(np.int64, copy=False)


class CupyBackend(NumpyBackend):
    name = "cupy"

    def contiguous(self, x: Any) -> Any:
        import cupy

        return cupy.ascontiguousarray(x)

    def empty(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        import cupy

        with like.device:
            return cupy.empty(tuple(shape), dtype=dtype)

    def zeros(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        import cupy

        with like.device:
            return cupy.zeros(tuple(shape), dtype=dtype)

    def stream(self, like: Any) -> int:
        import cupy

        with like.device:
            return int(cupy.cuda.get_current_stream().ptr)

    def device_str(self, x: Any) -> str:
        return f"cuda:{x.device.id}"

    def argsort_descending(self, x: Any) -> Any:
        import cupy

        return cupy.argsort(-x).astype(cupy.int64, copy=False)  # cupy sorts stably


class TorchBackend(Backend):
    name = "torch"

    def contiguous(self, x: Any) -> Any:
        # DLPack refuses tensors that require grad; autograd is handled by the custom ops.
        return x.detach().contiguous()

    def empty(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        import torch

        return torch.empty(tuple(shape), dtype=_torch_dtype(dtype), device=like.device)

    def zeros(self, shape: Sequence[int], dtype: Any, like: Any) -> Any:
        import torch

        return torch.zeros(tuple(shape), dtype=_torch_dtype(dtype), device=like.device)

    def stream(self, like: Any) -> int:
        if like.device.type != "cuda":
            return 0
        import torch

        return int(torch.cuda.current_stream(like.device).cuda_stream)

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype).removeprefix("torch.")

    def astype(self, x: Any, dtype_name: str) -> Any:
        return x.to(_torch_dtype(dtype_name))

    def device_str(self, x: Any) -> str:
        return str(x.device)

    def argsort_descending(self, x: Any) -> Any:
        import torch

        return torch.sort(x, descending=True, stable=True).indices


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, np.dtype(dtype).name if not isinstance(dtype, str) else dtype)


NUMPY = NumpyBackend()
CUPY = CupyBackend()
TORCH = TorchBackend()

FLOATING = ("float16", "bfloat16", "float32", "float64")
INTEGER = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")


def backend_of(x: Any, name: str) -> Backend:
    """The backend of array ``x``; raises TypeError naming ``name`` otherwise."""
    if isinstance(x, np.ndarray):
        return NUMPY
    if is_torch(x):
        return TORCH
    if _is_cupy(x):
        return CUPY
    raise TypeError(
        f"{name}: expected a numpy array, torch tensor or cupy array, got {type(x).__name__}"
    )


def check_shape(x: Any, name: str, shape: Sequence[int | None]) -> None:
    """Raise ValueError unless ``x.shape`` matches ``shape`` (None matches any size)."""
    ok = len(x.shape) == len(shape) and all(
        want is None or int(got) == want for got, want in zip(x.shape, shape)
    )
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected shape ({want}), got {tuple(x.shape)}")


def check_floating(backend: Backend, x: Any, name: str) -> str:
    """Raise TypeError unless ``x`` has a floating dtype; returns the dtype name."""
    dtype = backend.dtype_name(x)
    if dtype not in FLOATING:
        raise TypeError(f"{name}: expected a floating dtype ({', '.join(FLOATING)}), got {dtype}")
    return dtype


def check_integer(backend: Backend, x: Any, name: str) -> str:
    """Raise TypeError unless ``x`` has an integer dtype that fits int64; returns its name."""
    dtype = backend.dtype_name(x)
    if dtype not in INTEGER:
        raise TypeError(f"{name}: expected an integer dtype ({', '.join(INTEGER)}), got {dtype}")
    return dtype


def compute_dtype(*dtype_names: str) -> str:
    """Kernels compute in float64 when any input is float64, else float32."""
    return "float64" if "float64" in dtype_names else "float32"


def result_dtype(*dtype_names: str) -> str:
    """The promoted floating dtype of the inputs (what the op returns)."""
    if "float64" in dtype_names:
        return "float64"
    if "float32" in dtype_names or len(set(dtype_names)) > 1:
        return "float32"
    return dtype_names[0]


def check_same_device(backend: Backend, arrays: Sequence[tuple[Any, str]]) -> None:
    """Raise ValueError naming the first array on another device than the first."""
    first, first_name = arrays[0]
    device = backend.device_str(first)
    for x, name in arrays[1:]:
        if backend.device_str(x) != device:
            raise ValueError(
                f"{name} is on {backend.device_str(x)} but {first_name} is on {device}"
            )


def alert_not_deterministic(backend: Backend, x: Any, op: str) -> None:
    """Before a CUDA kernel that accumulates with float atomics: torch's own error
    (or warning, with ``warn_only=True``) when ``torch.use_deterministic_algorithms``
    is on. Other devices and libraries have deterministic kernels."""
    if backend is not TORCH or not backend.device_str(x).startswith("cuda"):
        return
    import torch

    if not torch.are_deterministic_algorithms_enabled():
        return
    # torch's own message (torch._prims_common.alert_not_deterministic), through public API
    message = f"{op} does not have a deterministic implementation, but you set "
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(
            message + "'torch.use_deterministic_algorithms(True, warn_only=True)'.", stacklevel=3
        )
        return
    raise RuntimeError(
        message + "'torch.use_deterministic_algorithms(True)'. You can turn off determinism "
        "just for this operation, or you can use the 'warn_only=True' option, if that's "
        "acceptable for your application."
    )
