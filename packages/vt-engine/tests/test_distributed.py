import pytest
import torch
from vt_engine_toys import ddp_train_worker

from vt_engine import (
    all_gather_object,
    collect_results,
    get_rank,
    get_world_size,
    is_main_process,
    launch,
)


def test_two_process_gloo_ddp_equals_single_process(tmp_path):
    launch(
        ddp_train_worker,
        2,
        args=(str(tmp_path / "ddp"), str(tmp_path / "ddp.pt"), 8),
        backend="gloo",
    )
    launch(ddp_train_worker, 1, args=(str(tmp_path / "single"), str(tmp_path / "single.pt"), 8))
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    rank0, rank1 = ddp["traces"]
    assert rank0.shape == (8, rank0.shape[1])  # 2 epochs x 4 iterations of 8 samples
    assert torch.equal(rank0, rank1)  # all-reduced gradients keep the ranks identical
    torch.testing.assert_close(rank0, single["traces"][0], rtol=1e-5, atol=1e-6)
    assert not torch.equal(rank0[0], rank0[-1])
    assert ddp["metrics"]["count"] == single["metrics"]["count"] == 16
    for key in ("mse", "mae"):
        assert ddp["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-5)


def test_helpers_without_process_group():
    assert get_rank() == 0 and get_world_size() == 1 and is_main_process()
    assert all_gather_object({"a": 1}) == [{"a": 1}]
    assert collect_results([1, 2, 3], 2) == [1, 2]
    with pytest.raises(ValueError, match="num_processes"):
        launch(print, 0)
    with pytest.raises(ValueError, match="size"):
        collect_results([], -1)
