"""Minimal drawing for training visualisations: model inputs to RGB, box outlines."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["convert_image_to_rgb", "draw_boxes"]

# YUV (BT.601) to RGB, as detectron2's ``convert_image_to_rgb``.
_M_YUV2RGB = [[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]]


def convert_image_to_rgb(image: torch.Tensor, format: str | None) -> torch.Tensor:
    """A model input image as uint8 RGB.

    Args:
        image (Tensor[C, H, W]): pixel values in [0, 255] (in [0, 1] for "YUV-BT.601").
        format (str or None): the channel meaning: "RGB" (or None), "BGR", "L"
            (one channel) or "YUV-BT.601".

    Returns:
        Tensor[3, H, W]: uint8, on the CPU.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ValueError("image: expected a Tensor[C, H, W]")
    expected = {None: 3, "RGB": 3, "BGR": 3, "L": 1, "YUV-BT.601": 3}
    if format not in expected:
        raise ValueError(f"format: expected one of {sorted(map(str, expected))}, got {format!r}")
    if image.shape[0] != expected[format]:
        raise ValueError(
            f"image: format {format!r} needs {expected[format]} channels, got {image.shape[0]}"
        )
    img = image.detach().cpu().to(torch.float32)
    if format == "BGR":
        img = img.flip(0)
    elif format == "L":
        img = img.expand(3, -1, -1)
    elif format == "YUV-BT.601":
        img = torch.einsum("rc,chw->rhw", torch.tensor(_M_YUV2RGB), img) * 255.0
    return img.round().clamp(0, 255).to(torch.uint8)


def draw_boxes(
    image: torch.Tensor,
    boxes: torch.Tensor,
    color: Sequence[int] = (0, 255, 0),
    line_width: int = 2,
) -> torch.Tensor:
    """Outline boxes on a copy of an image.

    Box (x0, y0, x1, y1) covers the pixels x0 <= x < x1, y0 <= y < y1 (rounded outward);
    its outline is the ``line_width`` pixels along the inside of that region, once
    clipped to the image.

    Args:
        image (Tensor[3, H, W]): uint8 RGB.
        boxes (Tensor[N, 4]): XYXY_ABS boxes.
        color (tuple[int, int, int]): RGB of the outlines.
        line_width (int): thickness in pixels.

    Returns:
        Tensor[3, H, W]: the image with the outlines.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError("image: expected a Tensor[3, H, W]")
    if image.dtype != torch.uint8:
        raise TypeError(f"image: expected uint8, got {image.dtype}")
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes: expected a Tensor[N, 4], got {getattr(boxes, 'shape', boxes)}")
    if not torch.isfinite(boxes).all():
        raise ValueError("boxes: expected finite coordinates")
    if len(color) != 3:
        raise ValueError(f"color: expected an (r, g, b) triple, got {color!r}")
    if not isinstance(line_width, int) or line_width < 1:
        raise ValueError(f"line_width: expected a positive int, got {line_width!r}")
    out = image.clone()
    h, w = out.shape[1:]
    fill = torch.tensor(list(color), dtype=torch.uint8, device=out.device).view(3, 1)
    region = torch.zeros(h, w, dtype=torch.bool, device=out.device)
    for x0, y0, x1, y1 in boxes.detach().to("cpu", torch.float64).tolist():
        # Pixel ranges [c0, c1) x [r0, r1) covered by the box, clipped to the image.
        c0, r0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        c1, r1 = min(math.ceil(x1), w), min(math.ceil(y1), h)
        if c1 <= c0 or r1 <= r0:
            continue
        region[r0 : min(r0 + line_width, r1), c0:c1] = True
        region[max(r1 - line_width, r0) : r1, c0:c1] = True
        region[r0:r1, c0 : min(c0 + line_width, c1)] = True
        region[r0:r1, max(c1 - line_width, c0) : c1] = True
    out[:, region] = fill
    return out
