"""Mask structures against their peers: polygon rasterisation (pycocotools, as
detectron2 uses it) and mask crop-and-resize (torchvision roi_align + threshold).

    PYTHONPATH=ci python packages/vt-structures/benchmarks/bench_structures.py [--quick]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from benchlib import Case, main

from vt_structures import BitMasks, PolygonMasks, polygons_to_bitmask


def coco_like_polygons(rng: np.random.Generator, n: int, h: int, w: int) -> list[list[np.ndarray]]:
    """n instances of 1-3 star-shaped polygons with 10-60 vertices each."""
    out = []
    for _ in range(n):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(10, min(h, w) / 3)
        polys = []
        for _ in range(rng.integers(1, 4)):
            k = int(rng.integers(10, 60))
            a = np.sort(rng.uniform(0, 2 * math.pi, k))
            rr = rng.uniform(r / 3, r, k)
            ox, oy = rng.uniform(-r, r, 2)
            polys.append(
                np.stack([cx + ox + rr * np.cos(a), cy + oy + rr * np.sin(a)], 1).reshape(-1)
            )
        out.append(polys)
    return out


def make_cases(args):
    rng = np.random.default_rng(0)
    h, w = 480, 640
    polys = coco_like_polygons(rng, 20, h, w)
    try:
        from pycocotools import mask as mask_util

        def coco_rasterize():
            masks = []
            for p in polys:
                rles = mask_util.frPyObjects([q.tolist() for q in p], h, w)
                masks.append(mask_util.decode(mask_util.merge(rles)).astype(bool))
            return masks

        peer = coco_rasterize
    except ImportError:
        peer = None
    yield Case(
        "polygons_to_bitmask, 20 instances, 480x640",
        lambda: [polygons_to_bitmask(p, h, w) for p in polys],
        peer,
        peer_name="pycocotools",
    )

    import torchvision.ops as tvops

    bm = BitMasks.from_polygon_masks(PolygonMasks(polys), h, w)
    boxes = bm.get_bounding_boxes().tensor
    rois = torch.cat([torch.arange(len(boxes), dtype=torch.float32)[:, None], boxes], 1)
    masks = bm.tensor.float()[:, None]
    yield Case(
        "BitMasks.crop_and_resize, 20 masks 480x640 -> 28",
        lambda: bm.crop_and_resize(boxes, 28),
        lambda: tvops.roi_align(masks, rois, 28, 1.0, 0, aligned=True) >= 0.5,
        peer_name="torchvision",
    )
    pm = PolygonMasks(polys)
    yield Case(
        "PolygonMasks.crop_and_resize, 20 instances -> 28", lambda: pm.crop_and_resize(boxes, 28)
    )


if __name__ == "__main__":
    main("vt-structures masks (CPU)", make_cases)
