"""NMS family and box IoU against torchvision.ops, same inputs, same process.

Boxes imitate a detector's raw output: jittered copies of object boxes in a
1333 x 800 image, so that candidates overlap the way they do before NMS.

    PYTHONPATH=ci python packages/vt-ops/benchmarks/bench_nms.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import torch
import torchvision
from benchlib import Case, main

import vt_ops

IMAGE_W, IMAGE_H = 1333.0, 800.0


def detections(n: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n boxes (x1, y1, x2, y2) around n / 20 objects, and their scores."""
    g = torch.Generator().manual_seed(seed)
    objects = max(n // 20, 1)
    wh = torch.rand(objects, 2, generator=g) * 300 + 16
    xy = torch.rand(objects, 2, generator=g) * (torch.tensor([IMAGE_W, IMAGE_H]) - wh)
    which = torch.randint(0, objects, (n,), generator=g)
    size = wh[which].repeat(1, 2)
    base = torch.cat([xy, xy + wh], 1)[which]
    boxes = base + (torch.rand(n, 4, generator=g) - 0.5) * 0.3 * size
    boxes = torch.cat([boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)], 1)
    scores = torch.rand(n, generator=g)
    return boxes.to(device), scores.to(device)


def rotated(boxes: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    angles = (torch.rand(len(boxes), 1, generator=g) * 180 - 90).to(boxes.device)
    return torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2], angles], 1)


def cases(args: argparse.Namespace) -> Iterator[Case]:
    device = args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    peer = f"torchvision {torchvision.__version__}"
    sizes = (1000, 5000) if args.quick else (1000, 5000, 20000)
    for n in sizes:
        boxes, scores = detections(n, device)
        yield Case(
            f"nms N={n}",
            lambda b=boxes, s=scores: vt_ops.nms(b, s, 0.5),
            lambda b=boxes, s=scores: torchvision.ops.nms(b, s, 0.5),
            peer,
            sync,
        )
    for n in sizes:
        boxes, scores = detections(n, device, seed=1)
        g = torch.Generator().manual_seed(n)
        idxs = torch.randint(0, 80, (n,), generator=g).to(device)
        yield Case(
            f"batched_nms N={n}, 80 classes",
            lambda b=boxes, s=scores, i=idxs: vt_ops.batched_nms(b, s, i, 0.5),
            lambda b=boxes, s=scores, i=idxs: torchvision.ops.batched_nms(b, s, i, 0.5),
            peer,
            sync,
        )
    a, _ = detections(2000, device, seed=2)
    b, _ = detections(2000, device, seed=3)
    yield Case(
        "box_iou 2000 x 2000",
        lambda: vt_ops.box_iou(a, b),
        lambda: torchvision.ops.box_iou(a, b),
        peer,
        sync,
    )
    boxes, scores = detections(5000, device, seed=4)
    boxes = rotated(boxes)
    yield Case("nms_rotated N=5000", lambda: vt_ops.nms_rotated(boxes, scores, 0.5), sync=sync)
    boxes, scores = detections(2000, device, seed=5)
    boxes = rotated(boxes)
    yield Case(
        "box_iou_rotated 2000 x 2000", lambda: vt_ops.box_iou_rotated(boxes, boxes), sync=sync
    )


if __name__ == "__main__":
    main("vt-ops: NMS and box IoU", cases)
