"""What the compiled extension contains."""

from __future__ import annotations

from typing import Any

from vt_ops import _C

__all__ = ["build_info", "cuda_available", "get_num_threads", "set_num_threads"]


def build_info() -> dict[str, Any]:
    """Describe the compiled extension.

    Returns:
        dict: ``version``, ``compiler``, ``cxx_standard``, ``cuda_compiled`` (bool),
        ``cuda_version`` (str or None), ``cuda_architectures`` (list of SM
        numbers), ``num_threads`` (threads CPU kernels use) and
        ``cuda_devices`` (GPUs visible now; 0 without a driver).
    """
    from vt_ops import __version__

    info = dict(_C.build_info())
    info["version"] = __version__
    info["cuda_devices"] = _C.cuda_device_count() if info["cuda_compiled"] else 0
    return info


def cuda_available() -> bool:
    """True when CUDA kernels were compiled and a GPU is visible."""
    return bool(_C.build_info()["cuda_compiled"]) and _C.cuda_device_count() > 0


def get_num_threads() -> int:
    """Number of threads the CPU kernels use."""
    return int(_C.get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the number of threads CPU kernels use; ``n <= 0`` restores the default.

    The default is ``VT_OPS_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the
    number of CPUs this process may run on.
    """
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    _C.set_num_threads(n)
