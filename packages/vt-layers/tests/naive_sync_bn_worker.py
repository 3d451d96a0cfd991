"""One rank of the 2-process gloo test of NaiveSyncBatchNorm (run by test_batch_norm.py).

usage: naive_sync_bn_worker.py RANK WORLD_SIZE INIT_FILE CASES_JSON OUT_DIR
"""

import json
import sys
from datetime import timedelta
from pathlib import Path

import torch

C, H, W = 3, 4, 5


def make_case(sizes):
    """The full batch, output gradient and affine parameters of one case (same on every rank)."""
    g = torch.Generator().manual_seed(1234 + 10 * sum(sizes) + sizes[0])
    n = sum(sizes)
    x = torch.randn(n, C, H, W, generator=g, dtype=torch.float64) * 2 + 0.5
    grad_out = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    weight = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    bias = torch.randn(C, generator=g, dtype=torch.float64)
    return x, grad_out, weight, bias


def main():
    import torch.distributed as dist

    from vt_layers import NaiveSyncBatchNorm

    rank, world = int(sys.argv[1]), int(sys.argv[2])
    init_file, cases, out_dir = sys.argv[3], json.loads(Path(sys.argv[4]).read_text()), sys.argv[5]
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=120),
    )
    for i, (stats_mode, sizes) in enumerate(cases):
        x, grad_out, weight, bias = make_case(sizes)
        start = sum(sizes[:rank])
        sl = slice(start, start + sizes[rank])
        m = NaiveSyncBatchNorm(C, stats_mode=stats_mode, momentum=0.3).double().train()
        with torch.no_grad():
            m.weight.copy_(weight)
            m.bias.copy_(bias)
        xr = x[sl].clone().requires_grad_(True)
        result = {}
        try:
            out = m(xr)
            (out * grad_out[sl]).sum().backward()
            result = {
                "out": out.detach(),
                "x_grad": xr.grad,
                "weight_grad": m.weight.grad,
                "bias_grad": m.bias.grad,
                "running_mean": m.running_mean,
                "running_var": m.running_var,
            }
        except ValueError as e:
            result = {"error": str(e)}
        torch.save(result, f"{out_dir}/case{i}_rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
