"""A small end-to-end run of what the toolkit has today (replaced by the main job)."""

import time

import torch

import vt_ops

torch.manual_seed(0)
centers = torch.rand(2000, 2) * 512
sizes = torch.rand(2000, 2) * 64 + 8
boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
start = time.perf_counter()
iou = vt_ops.box_iou(boxes, boxes)
elapsed = time.perf_counter() - start
print(vt_ops.build_info())
print(
    f"box_iou {tuple(iou.shape)} in {elapsed * 1e3:.1f} ms; mean off-diagonal IoU {iou.fill_diagonal_(0).mean():.4f}"
)
