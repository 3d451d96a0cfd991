import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from vt_engine import (
    DefaultSampler,
    InfiniteSampler,
    build_dataloader,
    default_collate,
    pseudo_collate,
)


def as_rank(sampler, rank, world_size):
    """Re-target a sampler built in one process to another rank (what it computes then)."""
    sampler.rank, sampler.world_size = rank, world_size
    if isinstance(sampler, DefaultSampler):
        sampler.num_samples = -(-sampler.dataset_size // world_size)
        sampler.total_size = sampler.num_samples * world_size
    return sampler


@pytest.mark.parametrize("n, world_size", [(10, 1), (10, 3), (12, 4), (1, 2)])
def test_default_sampler_partitions_and_pads(n, world_size):
    data = list(range(n))
    parts = [list(as_rank(DefaultSampler(data, seed=3), r, world_size)) for r in range(world_size)]
    lengths = {len(p) for p in parts}
    assert lengths == {-(-n // world_size)}
    flat = [i for group in zip(*parts) for i in group]
    assert sorted(set(flat)) == data  # every sample once, plus padding repeats
    assert flat[:n] == torch.randperm(n, generator=torch.Generator().manual_seed(3)).tolist()


def test_default_sampler_epochs_and_start_index():
    sampler = DefaultSampler(list(range(20)), seed=1)
    e0 = list(sampler)
    assert list(sampler) == e0
    sampler.set_epoch(1)
    e1 = list(sampler)
    assert e1 != e0 and sorted(e1) == list(range(20))
    sampler.set_start_index(7)
    assert list(sampler) == e1[7:]
    assert list(sampler) == e1  # the start applies to one pass only
    with pytest.raises(ValueError, match="start"):
        sampler.set_start_index(-1)
    assert list(DefaultSampler(list(range(5)), shuffle=False)) == [0, 1, 2, 3, 4]


def test_infinite_sampler_stream_ranks_and_resume():
    sampler = InfiniteSampler(list(range(5)), seed=2)
    stream = list(itertools.islice(iter(sampler), 23))
    for k in range(4):  # consecutive permutations
        assert sorted(stream[5 * k : 5 * k + 5]) == list(range(5))
    sampler.set_start_index(9)
    assert list(itertools.islice(iter(sampler), 14)) == stream[9:23]
    r0 = list(itertools.islice(iter(as_rank(InfiniteSampler(list(range(5)), seed=2), 0, 2)), 6))
    r1 = list(itertools.islice(iter(as_rank(InfiniteSampler(list(range(5)), seed=2), 1, 2)), 6))
    assert [i for pair in zip(r0, r1) for i in pair] == stream[:12]
    with pytest.raises(ValueError, match="non-empty"):
        InfiniteSampler([])


def test_pseudo_and_default_collate():
    batch = [
        {
            "inputs": torch.zeros(3, 4, 5),
            "meta": {"id": 1, "name": "a"},
            "pair": (1, torch.ones(2)),
        },
        {
            "inputs": torch.zeros(3, 6, 5),
            "meta": {"id": 2, "name": "b"},
            "pair": (2, torch.ones(2)),
        },
    ]
    out = pseudo_collate(batch)
    assert isinstance(out["inputs"], list) and [t.shape[1] for t in out["inputs"]] == [4, 6]
    assert out["meta"] == {"id": [1, 2], "name": ["a", "b"]}
    assert out["pair"][0] == [1, 2] and len(out["pair"][1]) == 2
    stacked = default_collate([{"x": torch.ones(2), "y": 3, "s": object()} for _ in range(4)])
    assert stacked["x"].shape == (4, 2) and torch.equal(stacked["y"], torch.tensor([3, 3, 3, 3]))
    assert isinstance(stacked["s"], list) and len(stacked["s"]) == 4
    with pytest.raises(ValueError, match="non-empty"):
        pseudo_collate([])


class RandomDraws(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"np": float(np.random.rand()), "torch": float(torch.rand(()))}


def test_build_dataloader_seeds_workers_reproducibly_and_distinctly():
    def draws(seed):
        loader = build_dataloader(
            RandomDraws(), batch_size=2, num_workers=2, seed=seed, shuffle=False
        )
        return [pair for batch in loader for pair in zip(batch["np"], batch["torch"])]

    a, b, c = draws(0), draws(0), draws(1)
    assert a == b and a != c
    assert len({x for x, _ in a}) == 8  # workers draw different numbers


def test_build_dataloader_arguments():
    loader = build_dataloader(list(range(10)), batch_size=4, sampler="infinite", seed=0)
    assert isinstance(loader.sampler, InfiniteSampler)
    loader = build_dataloader(
        list(range(10)), batch_size=4, collate_fn="default_collate", shuffle=False, seed=0
    )
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="batch_size"):
        build_dataloader(list(range(3)), batch_size=0)
    with pytest.raises(ValueError, match="sampler"):
        build_dataloader(list(range(3)), batch_size=1, sampler="random")
    with pytest.raises(ValueError, match="collate_fn"):
        build_dataloader(list(range(3)), batch_size=1, collate_fn="stack")
