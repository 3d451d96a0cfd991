"""Gathering results across torch.distributed ranks, without importing torch.

A process that has not imported torch cannot have initialised
torch.distributed, so every helper first looks torch up in ``sys.modules``
and treats the run as single-process when it is absent.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["broadcast_object", "collect_results", "get_dist_info", "is_main_process", "to_cpu"]

_gloo_group: Any = None


def _initialized_dist() -> Any:
    """``torch.distributed`` when a process group is initialised, else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def get_dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    dist = _initialized_dist()
    if dist is None:
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    return get_dist_info()[0] == 0


def to_cpu(data: Any) -> Any:
    """Move every torch tensor in nested lists, tuples and dicts to the CPU."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(data, torch.Tensor):
        return data.detach().cpu()
    if isinstance(data, list):
        return [to_cpu(x) for x in data]
    if isinstance(data, tuple):
        return tuple(to_cpu(x) for x in data)
    if isinstance(data, dict):
        return {k: to_cpu(v) for k, v in data.items()}
    return data


def _cpu_group(dist: Any) -> Any:
    """A gloo group for CPU objects (None: the default group already has gloo)."""
    global _gloo_group
    if "gloo" in str(dist.get_backend()):  # 'gloo', or e.g. 'cpu:gloo,cuda:nccl'
        return None
    if _gloo_group is None:
        _gloo_group = dist.new_group(backend="gloo")  # collective: every rank gets here
    return _gloo_group


def _interleave(parts: list[list[Any]]) -> list[Any]:
    """Results in dataset order: samples are dealt to ranks round-robin by the sampler."""
    ordered = []
    for i in range(max((len(p) for p in parts), default=0)):
        ordered.extend(p[i] for p in parts if i < len(p))
    return ordered


def collect_results(results: list[Any], size: int | None, device: str = "cpu") -> list[Any] | None:
    """Gather every rank's ``results`` on rank 0, in dataset order, cut to ``size``.

    ``device`` 'cpu' gathers pickled objects over a gloo group; 'gpu' over the
    default group, through the current CUDA device when it is NCCL. Returns
    None on the other ranks.
    """
    dist = _initialized_dist()
    if dist is None or dist.get_world_size() == 1:
        ordered = to_cpu(list(results))
    else:
        rank, world = dist.get_rank(), dist.get_world_size()
        if device == "cpu":
            parts = [None] * world if rank == 0 else None
            dist.gather_object(to_cpu(list(results)), parts, dst=0, group=_cpu_group(dist))
        else:
            parts = [None] * world
            dist.all_gather_object(parts, list(results))
        if rank != 0:
            return None
        ordered = to_cpu(_interleave(parts))
    return ordered if size is None else ordered[:size]


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    dist = _initialized_dist()
    if dist is None or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
