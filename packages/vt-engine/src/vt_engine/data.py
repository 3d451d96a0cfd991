"""Samplers, collate functions and the data loader builder; distributed-aware and
seeded so that a run (and a resumed run) sees the same batches."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data import default_collate as _torch_default_collate

from vt_engine.dist import broadcast_object, get_rank, get_world_size
from vt_modeling import check_kwargs

__all__ = [
    "ResumableSampler",
    "DefaultSampler",
    "InfiniteSampler",
    "pseudo_collate",
    "default_collate",
    "worker_init_fn",
    "sync_random_seed",
    "build_dataloader",
]


def sync_random_seed() -> int:
    """A random seed drawn on rank 0 and shared with every rank."""
    return int(broadcast_object(int(np.random.randint(2**31)) if get_rank() == 0 else None))


def _check_dataset(dataset: Any) -> int:
    if not hasattr(dataset, "__len__"):
        raise TypeError(
            f"dataset: expected a map-style dataset with __len__, got {type(dataset).__name__}"
        )
    return len(dataset)


class ResumableSampler(Sampler[int]):
    """Base of the samplers that can start their next pass part-way through (``set_start_index``),
    which is how the train loops resume exactly without loading the skipped samples."""

    _start = 0

    def set_start_index(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank in the next iteration only."""
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start: expected a non-negative int, got {start!r}")
        self._start = start

    def _take_start(self) -> int:
        start, self._start = self._start, 0
        return start


class DefaultSampler(ResumableSampler):
    """Finite sampler for epoch-based training and evaluation: each rank gets every
    ``world_size``-th index of one (optionally shuffled, with ``seed + epoch``)
    permutation, padded by repeating indices (``round_up``) so all ranks have as many.

    Args:
        dataset: the dataset (only its length is used).
        shuffle: shuffle each epoch.
        seed: shuffling seed, the same on every rank; None draws one on rank 0.
        round_up: pad to a multiple of the world size (else the last ranks get fewer).
    """

    def __init__(
        self, dataset: Any, shuffle: bool = True, seed: int | None = None, round_up: bool = True
    ) -> None:
        self.dataset_size = _check_dataset(dataset)
        self.rank = get_rank()
        self.world_size = get_world_size()
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.round_up = round_up
        self.epoch = 0
        if round_up:
            self.num_samples = math.ceil(self.dataset_size / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = math.ceil((self.dataset_size - self.rank) / self.world_size)
            self.total_size = self.dataset_size

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.dataset_size, generator=g).tolist()
        else:
            indices = list(range(self.dataset_size))
        if self.round_up and self.dataset_size:
            indices = (indices * math.ceil(self.total_size / len(indices)))[: self.total_size]
        mine = indices[self.rank : self.total_size : self.world_size]
        return iter(mine[self._take_start() :])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Shuffle with ``seed + epoch`` from now on."""
        self.epoch = epoch


class InfiniteSampler(ResumableSampler):
    """Endless sampler for iteration-based training: concatenated permutations (seeded
    by ``seed``), split across ranks by striding.

    Args:
        dataset: the dataset (only its length is used).
        shuffle: shuffle each pass.
        seed: the same on every rank; None draws one on rank 0.
    """

    def __init__(self, dataset: Any, shuffle: bool = True, seed: int | None = None) -> None:
        self.dataset_size = _check_dataset(dataset)
        if self.dataset_size == 0:
            raise ValueError("dataset: an InfiniteSampler needs a non-empty dataset")
        self.rank = get_rank()
        self.world_size = get_world_size()
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        while True:
            if self.shuffle:
                yield from torch.randperm(self.dataset_size, generator=g).tolist()
            else:
                yield from range(self.dataset_size)

    def __iter__(self) -> Iterator[int]:
        mine = itertools.islice(self._infinite_indices(), self.rank, None, self.world_size)
        return itertools.islice(mine, self._take_start(), None)

    def __len__(self) -> int:
        return self.dataset_size

    def set_epoch(self, epoch: int) -> None:
        """No-op: an infinite stream has no epochs."""


def pseudo_collate(data_batch: Sequence[Any]) -> Any:
    """Collate without stacking: a batch of dicts becomes a dict of lists (recursively),
    a batch of tuples a tuple of lists; tensors of different shapes stay a list."""
    if not isinstance(data_batch, Sequence) or not data_batch:
        raise ValueError("data_batch: expected a non-empty sequence of samples")
    elem = data_batch[0]
    if isinstance(elem, Mapping):
        return type(elem)({key: pseudo_collate([d[key] for d in data_batch]) for key in elem})  # type: ignore[call-arg]
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(pseudo_collate(list(s)) for s in zip(*data_batch)))
    if isinstance(elem, (list, tuple)) and not isinstance(elem, str):
        if any(len(d) != len(elem) for d in data_batch):
            raise ValueError("data_batch: each sample's sequence must have the same length")
        return type(elem)(pseudo_collate(list(s)) for s in zip(*data_batch))
    return list(data_batch)


def default_collate(data_batch: Sequence[Any]) -> Any:
    """``torch.utils.data.default_collate``: stacks tensors, numbers and arrays; other
    objects (data samples) are kept in lists as :func:`pseudo_collate` does."""
    elem = data_batch[0]
    if isinstance(elem, Mapping):
        return type(elem)({key: default_collate([d[key] for d in data_batch]) for key in elem})  # type: ignore[call-arg]
    if (
        isinstance(elem, (list, tuple))
        and not isinstance(elem, str)
        and not hasattr(elem, "_fields")
    ):
        return type(elem)(default_collate(list(s)) for s in zip(*data_batch))
    if isinstance(elem, (torch.Tensor, np.ndarray, int, float, np.number)):
        return _torch_default_collate(list(data_batch))
    return list(data_batch)


def worker_init_fn(worker_id: int, num_workers: int, rank: int) -> None:
    """Seed ``random``, numpy and torch in a data loader worker.

    torch gives each worker ``base_seed + worker_id``, with ``base_seed`` drawn from the
    loader's generator for every new iterator (so it changes each epoch and is
    reproducible); ranks are told apart by adding ``rank * num_workers``.
    """
    worker_seed = (torch.initial_seed() + num_workers * rank) % 2**63
    np.random.seed(worker_seed % 2**32)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler | str | dict | None = "default",
    shuffle: bool = True,
    num_workers: int = 0,
    collate_fn: Callable[[Sequence[Any]], Any] | str = pseudo_collate,
    seed: int | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    skip_bad_samples: bool = False,
    max_refetch: int = 10,
    **kwargs: Any,
) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` with a distributed-aware, seeded sampler.

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch on each rank.
        sampler: a ``Sampler``, ``"default"`` (:class:`DefaultSampler`), ``"infinite"``
            (:class:`InfiniteSampler`), or ``dict(type="default"|"infinite", **kwargs)``.
        shuffle: passed to the built sampler.
        num_workers: loader worker processes, seeded with :func:`worker_init_fn`.
        collate_fn: a callable, ``"pseudo_collate"`` or ``"default_collate"``.
        seed: the seed of the sampler, the workers and the loader's generator; None draws
            one on rank 0. The loader gets its own generator so that creating an iterator
            does not consume the global torch random state.
        drop_last: drop the last incomplete batch.
        pin_memory: copy batches into pinned memory.
        persistent_workers: keep the workers between passes.
        skip_bad_samples: wrap ``dataset`` in
            :class:`~vt_engine.datasets.SkipBadSamplesDataset`, so a sample whose
            loading raises is skipped with a warning (counted) instead of stopping the
            run. Off by default: the error propagates.
        max_refetch: with ``skip_bad_samples``, the failures in a row tolerated before
            giving up.
        **kwargs: more ``torch.utils.data.DataLoader`` arguments.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    seed = sync_random_seed() if seed is None else seed
    if skip_bad_samples:
        from vt_engine.datasets import SkipBadSamplesDataset

        dataset = SkipBadSamplesDataset(dataset, max_refetch=max_refetch, seed=seed)
    if isinstance(sampler, str):
        sampler = {"type": sampler}
    if isinstance(sampler, dict):
        sampler = dict(sampler)
        kind = sampler.pop("type", "default")
        sampler.setdefault("shuffle", shuffle)
        sampler.setdefault("seed", seed)
        classes = {
            "default": DefaultSampler,
            "DefaultSampler": DefaultSampler,
            "infinite": InfiniteSampler,
            "InfiniteSampler": InfiniteSampler,
        }
        if kind not in classes:
            raise ValueError(f"sampler: expected 'default' or 'infinite', got {kind!r}")
        check_kwargs(classes[kind], sampler, "sampler")
        sampler = classes[kind](dataset, **sampler)
    if isinstance(collate_fn, str):
        collates = {"pseudo_collate": pseudo_collate, "default_collate": default_collate}
        if collate_fn not in collates:
            raise ValueError(f"collate_fn: expected one of {sorted(collates)}, got {collate_fn!r}")
        collate_fn = collates[collate_fn]
    init_fn = (
        partial(worker_init_fn, num_workers=num_workers, rank=get_rank())
        if num_workers > 0
        else None
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        worker_init_fn=init_fn,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
