"""Gradients are bit-identical run to run under torch.use_deterministic_algorithms.

The CPU backward kernels own their output memory per thread, so the gradients
do not depend on the thread count either. The CUDA backward kernels of
roi_align, roi_align_rotated, roi_pool and deform_conv2d (input gradient)
accumulate with atomicAdd: in deterministic mode they raise torch's standard
error before launching.
"""

import contextlib

import pytest
import torch

import vt_ops
from vt_ops import _arrays


@contextlib.contextmanager
def deterministic(warn_only: bool = False):
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


def _rois(k, n, size, rotated, generator, device="cpu"):
    """Heavily overlapping boxes, so that many ROIs add into the same pixels."""
    xy = torch.rand(k, 2, generator=generator, dtype=torch.float64) * size / 3
    wh = torch.rand(k, 2, generator=generator, dtype=torch.float64) * size / 2 + 2
    batch = torch.randint(0, n, (k, 1), generator=generator).double()
    if rotated:
        angle = torch.rand(k, 1, generator=generator, dtype=torch.float64) * 90 - 45
        rois = torch.cat([batch, xy + wh / 2, wh, angle], dim=1)
    else:
        rois = torch.cat([batch, xy, xy + wh], dim=1)
    return rois.float().to(device)


def _roi_grads(op, device="cpu"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 24, 24, generator=g).to(device).requires_grad_()
    if op == "roi_pool":
        out = vt_ops.roi_pool(x, _rois(64, 2, 24, False, g, device), 5)
    elif op == "roi_align_rotated":
        out = vt_ops.roi_align_rotated(x, _rois(64, 2, 24, True, g, device), 5, 1.0, 2)
    else:
        out = vt_ops.roi_align(x, _rois(64, 2, 24, False, g, device), 5, 1.0, 2, aligned=True)
    out.backward(torch.randn(out.shape, generator=g).to(device))
    return (x.grad,)


def _deform_grads(device="cpu"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 12, 12, generator=g).to(device).requires_grad_()
    offset = (torch.randn(2, 2 * 2 * 9, 12, 12, generator=g) * 2).to(device).requires_grad_()
    mask = torch.rand(2, 2 * 9, 12, 12, generator=g).to(device).requires_grad_()
    weight = torch.randn(6, 8, 3, 3, generator=g).to(device).requires_grad_()
    bias = torch.randn(6, generator=g).to(device).requires_grad_()
    out = vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, deformable_groups=2, mask=mask)
    out.backward(torch.randn(out.shape, generator=g).to(device))
    return x.grad, offset.grad, mask.grad, weight.grad, bias.grad


OPS = ["roi_align", "roi_align_rotated", "roi_pool", "deform_conv2d"]


def _grads(op, device="cpu"):
    return _deform_grads(device) if op == "deform_conv2d" else _roi_grads(op, device)


@pytest.mark.parametrize("op", OPS)
def test_cpu_gradients_are_bit_identical_across_runs_and_thread_counts(op):
    threads = vt_ops.get_num_threads()
    try:
        with deterministic():
            vt_ops.set_num_threads(1)
            reference = _grads(op)
            for n in (1, 2, 3, 4):
                vt_ops.set_num_threads(n)
                for _ in range(2):
                    for got, want in zip(_grads(op), reference, strict=True):
                        assert torch.equal(got, want), f"{op} with {n} threads"
    finally:
        vt_ops.set_num_threads(threads)
    assert any(bool(t.abs().sum()) for t in reference)


@pytest.mark.parametrize("op", OPS)
def test_cuda_backward_raises_torchs_error_in_deterministic_mode(op, monkeypatch):
    # Run the CPU kernels while the ops believe the tensors live on CUDA: the
    # check must come before any kernel launch, in the ops' own Python.
    monkeypatch.setattr(_arrays.TORCH, "device_str", lambda x: "cuda:0")
    backward = {"roi_align_rotated": "roi_align"}.get(op, op) + "_backward"
    with deterministic(), pytest.raises(RuntimeError, match=f"vt_ops::{backward} does not have"):
        _grads(op)
    with deterministic(warn_only=True), pytest.warns(UserWarning, match=f"vt_ops::{backward}"):
        _grads(op)
    _grads(op)  # no check outside deterministic mode


def test_deform_conv2d_offset_and_weight_gradients_are_deterministic_on_cuda(monkeypatch):
    """Only the input gradient scatters with atomics: other gradients pass."""
    monkeypatch.setattr(_arrays.TORCH, "device_str", lambda x: "cuda:0")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 5, 5, generator=g)
    offset = torch.randn(1, 18, 5, 5, generator=g).requires_grad_()
    weight = torch.randn(3, 2, 3, 3, generator=g).requires_grad_()
    with deterministic():
        vt_ops.deform_conv2d(x, offset, weight, padding=1).sum().backward()
    assert offset.grad is not None and weight.grad is not None


@pytest.mark.cuda
@pytest.mark.parametrize("op", OPS)
def test_cuda_deterministic_mode(op):
    with deterministic(), pytest.raises(RuntimeError, match="does not have a deterministic"):
        _grads(op, "cuda")
    cpu, cuda = _grads(op), _grads(op, "cuda")
    for a, b in zip(cpu, cuda, strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-4)
