"""paste_masks_in_image (accurate and fast) next to torchvision's Mask R-CNN mask pasting.

torchvision's ``paste_masks_in_image`` resizes each (1-pixel padded) mask to its integer
box, like our fast variant; our accurate variant samples at every pixel centre.

    PYTHONPATH=ci python packages/vt-layers/benchmarks/bench_paste_masks.py [--device cuda]
"""

from __future__ import annotations

import torch
from benchlib import Case, main
from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste

from vt_layers import paste_masks_in_image, paste_masks_in_image_fast


def make_cases(args):
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for n, (h, w) in ((20, (480, 640)), (100, (800, 1216))):
        g = torch.Generator().manual_seed(0)
        masks = torch.rand(n, 28, 28, generator=g).to(device)
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
        wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + 8
        boxes = torch.cat([xy, xy + wh], 1).to(device)
        size = f"{n} masks, {h}x{w}"
        yield Case(
            f"accurate, {size}",
            lambda m=masks, b=boxes, s=(h, w): paste_masks_in_image(m, b, s),
            lambda m=masks, b=boxes, s=(h, w): tv_paste(m[:, None], b, s),
            "torchvision",
            sync,
        )
        yield Case(
            f"fast, {size}",
            lambda m=masks, b=boxes, s=(h, w): paste_masks_in_image_fast(m, b, s),
            lambda m=masks, b=boxes, s=(h, w): tv_paste(m[:, None], b, s),
            "torchvision",
            sync,
        )


if __name__ == "__main__":
    main("vt-layers paste_masks_in_image", make_cases)
