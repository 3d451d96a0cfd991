"""vt_ops.deform_conv2d vs torchvision.ops.deform_conv2d, forward and forward+backward.

ResNet res4/res5-like layers (3x3, stride 1, padding 1), v1 and v2 (modulated).

    PYTHONPATH=ci .venv/bin/python packages/vt-ops/benchmarks/bench_deform_conv.py [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import torch
import torchvision
from benchlib import Case, main

import vt_ops

# (batch, channels, height, width): res4 and res5 of a ResNet at a 1024x1024 input.
SHAPES = [(2, 256, 64, 64), (2, 512, 32, 32)]


def make_cases(args: argparse.Namespace) -> Iterator[Case]:
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    for n, c, h, w in SHAPES:
        for modulated in (False, True):
            x = torch.randn(n, c, h, w, generator=g).to(device)
            weight = (torch.randn(c, c, 3, 3, generator=g) * 0.02).to(device)
            bias = torch.randn(c, generator=g).to(device)
            offset = (torch.randn(n, 18, h, w, generator=g) * 2).to(device)
            mask = torch.rand(n, 9, h, w, generator=g).to(device) if modulated else None
            kind = "v2" if modulated else "v1"
            name = f"{kind} {n}x{c}x{h}x{w} 3x3"

            def ours(x=x, offset=offset, weight=weight, bias=bias, mask=mask):
                return vt_ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)

            def peer(x=x, offset=offset, weight=weight, bias=bias, mask=mask):
                return torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)

            torch.testing.assert_close(ours(), peer(), atol=1e-3, rtol=1e-3)
            yield Case(f"forward {name}", ours, peer, "torchvision", sync)

            leaves = [t.clone().requires_grad_() for t in (x, offset, weight, bias)]
            m = mask.clone().requires_grad_() if modulated else None

            def backward(fn, leaves=leaves, m=m):
                def run():
                    for t in (*leaves, m):
                        if t is not None:
                            t.grad = None
                    fn(*leaves, padding=1, mask=m).sum().backward()

                return run

            yield Case(
                f"forward+backward {name}",
                backward(vt_ops.deform_conv2d),
                backward(torchvision.ops.deform_conv2d),
                "torchvision",
                sync,
            )


if __name__ == "__main__":
    main("deform_conv2d", make_cases)
