import pytest
import torch
from vt_engine_toys import ToyDataset, ToyModel

from vt_engine import AmpOptimWrapper, EmptyCacheHook, LoggerHook, Runner


def train(tmp_path, device, optim_wrapper):
    torch.manual_seed(0)
    runner = Runner(
        model=ToyModel(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=ToyDataset(16), batch_size=4, sampler="infinite"),
        train_cfg=dict(by_epoch=False, max_iters=6),
        optim_wrapper=optim_wrapper,
        default_hooks=dict(logger=LoggerHook(progress_bar=False), checkpoint=None),
        custom_hooks=[EmptyCacheHook(after_iter=True)],
        randomness=dict(seed=1),
        device=device,
    )
    runner.train()
    return runner


@pytest.mark.cuda
def test_cuda_training_matches_cpu(tmp_path):
    cfg = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9))
    cpu = train(tmp_path / "cpu", "cpu", cfg)
    gpu = train(tmp_path / "gpu", "cuda", cfg)
    for a, b in zip(cpu.model.parameters(), gpu.model.parameters()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
def test_cuda_amp_fp16_scaler_and_bf16(tmp_path):
    runner = train(
        tmp_path / "fp16", "cuda", dict(type="AmpOptimWrapper", optimizer=dict(type="SGD", lr=0.05))
    )
    assert (
        isinstance(runner.optim_wrapper, AmpOptimWrapper)
        and runner.optim_wrapper.device_type == "cuda"
    )
    assert (
        runner.optim_wrapper.loss_scaler.is_enabled()
        and runner.optim_wrapper.loss_scaler.get_scale() > 0
    )
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    with runner.optim_wrapper.optim_context(runner.model):
        out = runner.model(torch.randn(2, 4, device="cuda"))
    assert out.dtype == torch.float16
    bf16 = train(
        tmp_path / "bf16",
        "cuda",
        dict(type="AmpOptimWrapper", dtype="bfloat16", optimizer=dict(type="SGD", lr=0.05)),
    )
    assert not bf16.optim_wrapper.loss_scaler.is_enabled()
