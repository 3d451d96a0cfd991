"""ROIAlign, ROIAlignRotated and ROIPool against torchvision.ops.

FPN-like inputs: one 256 x 200 x 272 feature map (the stride-4 level of an
800 x 1088 image, spatial_scale 1/4) and boxes with sides log-uniform in
16..128 image pixels, the range FPN assigns to that level. torchvision has no
rotated op; roi_align_rotated runs without a peer (target: 0.34 s on a 2-core
CPU, 1.5x detectron2's 0.51 s).

    PYTHONPATH=ci python packages/vt-ops/benchmarks/bench_roi_align.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator

import torch
import torchvision
from benchlib import Case, main

import vt_ops

IMAGE_H, IMAGE_W, SCALE = 800, 1088, 0.25


def make_boxes(k: int, device: str, generator: torch.Generator) -> torch.Tensor:
    """K x 5 (batch, x1, y1, x2, y2) boxes inside an IMAGE_H x IMAGE_W image."""
    side = torch.exp(
        torch.empty(k, 2, dtype=torch.float64).uniform_(
            math.log(16), math.log(128), generator=generator
        )
    )
    centre = torch.rand(k, 2, generator=generator, dtype=torch.float64) * torch.tensor(
        [IMAGE_W, IMAGE_H]
    )
    x1y1 = (centre - side / 2).clamp(min=0)
    x2y2 = torch.minimum(centre + side / 2, torch.tensor([IMAGE_W, IMAGE_H], dtype=torch.float64))
    boxes = torch.cat([torch.zeros(k, 1, dtype=torch.float64), x1y1, x2y2], dim=1)
    return boxes.float().to(device)


def to_rotated(boxes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    b, x1, y1, x2, y2 = boxes.unbind(1)
    angle = (torch.rand(len(boxes), generator=generator) * 180 - 90).to(boxes.device)
    return torch.stack([b, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, angle], dim=1)


def forward_backward(fn, x: torch.Tensor, grad: torch.Tensor):
    def run():
        out = fn(x)
        return torch.autograd.grad(out, x, grad)

    return run


def cases(args: argparse.Namespace) -> Iterator[Case]:
    device = args.device
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 256, IMAGE_H // 4, IMAGE_W // 4, generator=gen).to(device)
    xg = x.clone().requires_grad_()
    tv = "torchvision"

    for k, size, sampling_ratio, aligned, backward in [
        (1000, 7, 2, True, True),
        (1000, 7, 0, True, True),
        (1000, 7, 2, False, False),
        (512, 14, 2, True, True),
    ]:
        boxes = make_boxes(k, device, gen)
        name = f"roi_align {k} boxes {size}x{size} sr={sampling_ratio} aligned={aligned}"

        def ours(t, b=boxes, s=size, sr=sampling_ratio, a=aligned):
            return vt_ops.roi_align(t, b, s, SCALE, sr, a)

        def peer(t, b=boxes, s=size, sr=sampling_ratio, a=aligned):
            return torchvision.ops.roi_align(t, b, s, SCALE, sr, a)

        yield Case(f"{name} forward", lambda f=ours: f(x), lambda f=peer: f(x), tv, sync)
        if backward:
            grad = torch.randn(k, 256, size, size, generator=gen).to(device)
            yield Case(
                f"{name} forward+backward",
                forward_backward(ours, xg, grad),
                forward_backward(peer, xg, grad),
                tv,
                sync,
            )

    boxes = make_boxes(1000, device, gen)
    grad = torch.randn(1000, 256, 7, 7, generator=gen).to(device)
    yield Case(
        "roi_pool 1000 boxes 7x7 forward",
        lambda: vt_ops.roi_pool(x, boxes, 7, SCALE),
        lambda: torchvision.ops.roi_pool(x, boxes, 7, SCALE),
        tv,
        sync,
    )
    yield Case(
        "roi_pool 1000 boxes 7x7 forward+backward",
        forward_backward(lambda t: vt_ops.roi_pool(t, boxes, 7, SCALE), xg, grad),
        forward_backward(lambda t: torchvision.ops.roi_pool(t, boxes, 7, SCALE), xg, grad),
        tv,
        sync,
    )

    rois = to_rotated(boxes, gen)
    for sampling_ratio in (0, 2):
        yield Case(
            f"roi_align_rotated 1000 rois 7x7 sr={sampling_ratio} forward",
            lambda sr=sampling_ratio: vt_ops.roi_align_rotated(x, rois, 7, SCALE, sr),
            sync=sync,
        )
    yield Case(
        "roi_align_rotated 1000 rois 7x7 sr=2 forward+backward",
        forward_backward(lambda t: vt_ops.roi_align_rotated(t, rois, 7, SCALE, 2), xg, grad),
        sync=sync,
    )


if __name__ == "__main__":
    main("vt_ops ROI ops vs torchvision.ops", cases)
