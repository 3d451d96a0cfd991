"""Distributed helpers over ``torch.distributed``; each works (as a no-op or identity)
when no process group is initialised, so the same code runs on one process."""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = [
    "is_distributed",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "is_main_process",
    "barrier",
    "broadcast",
    "broadcast_object",
    "all_reduce",
    "all_gather_object",
    "collect_results",
    "init_dist",
    "launch",
    "get_comm_device",
]


def is_distributed() -> bool:
    """Whether a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    """The rank within this machine (``LOCAL_RANK`` set by torchrun), 0 otherwise."""
    return int(os.environ.get("LOCAL_RANK", get_rank() if is_distributed() else 0))


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def get_comm_device() -> torch.device:
    """The device collectives need: the current CUDA device for nccl, else CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Broadcast ``tensor`` in place from rank ``src``; returns it."""
    if is_distributed():
        dist.broadcast(tensor, src)
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (pickled)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=get_comm_device())
    return box[0]


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """All-reduce ``tensor`` in place with ``op`` in ("sum", "mean", "max", "min")."""
    if not is_distributed():
        return tensor
    ops = {
        "sum": dist.ReduceOp.SUM,
        "mean": dist.ReduceOp.SUM,
        "max": dist.ReduceOp.MAX,
        "min": dist.ReduceOp.MIN,
    }
    if op not in ops:
        raise ValueError(f"op: expected one of {sorted(ops)}, got {op!r}")
    dist.all_reduce(tensor, ops[op])
    if op == "mean":
        tensor.div_(get_world_size())
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (pickled)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def collect_results(results: list, size: int) -> list:
    """Gather per-rank result lists into the dataset order, on every rank.

    Distributed samplers give rank ``r`` the samples ``r, r + W, r + 2W, ...`` (padded
    by repeating samples so that all ranks have as many); results are interleaved back
    and cut to ``size`` to drop the padding, as mmengine's ``collect_results``.

    Args:
        results: this rank's results, one per sample, in its sampler's order.
        size: the number of samples in the dataset.
    """
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"size: expected a non-negative int, got {size!r}")
    parts = all_gather_object(list(results))
    ordered = [item for group in zip(*parts) for item in group]
    # ranks with an extra sample (no padding) leave a tail that zip dropped
    longest = max(len(p) for p in parts)
    if any(len(p) != longest for p in parts):
        for i in range(min(len(p) for p in parts), longest):
            ordered.extend(p[i] for p in parts if i < len(p))
    return ordered[:size]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_dist(backend: str | None = None, timeout_s: float = 1800.0) -> None:
    """Initialise the default process group from torchrun's environment variables
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``).

    Args:
        backend: "nccl" or "gloo"; by default nccl when CUDA is available, else gloo.
        timeout_s: collective timeout in seconds.
    """
    if is_distributed():
        return
    missing = [
        k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
    ]
    if missing:
        raise RuntimeError(
            f"init_dist: environment variables {missing} are not set; start with torchrun "
            "or vt_engine.launch"
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(get_local_rank())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))


def _launch_worker(
    local_rank: int, fn: Callable[..., Any], world_size: int, backend: str, port: int, args: tuple
) -> None:
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    init_dist(backend)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def launch(
    fn: Callable[..., Any],
    num_processes: int,
    args: tuple = (),
    backend: str | None = None,
) -> None:
    """Run ``fn(*args)`` in ``num_processes`` processes on this machine, each with an
    initialised process group (single-machine counterpart of torchrun; ``fn`` must be
    picklable, i.e. defined at module level). With one process, ``fn`` runs here.

    Args:
        fn: the per-process entry point.
        num_processes: number of processes (one per GPU for nccl).
        args: positional arguments for ``fn``.
        backend: "nccl" or "gloo"; default nccl when CUDA is available, else gloo.
    """
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes: expected a positive int, got {num_processes!r}")
    if num_processes == 1:
        fn(*args)
        return
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    mp.start_processes(
        _launch_worker,
        args=(fn, num_processes, backend, _free_port(), args),
        nprocs=num_processes,
        join=True,
        start_method="spawn",
    )
