"""Pasting fixed-resolution instance masks (e.g. 28x28 predictions) into the image.

The accurate :func:`paste_masks_in_image` is vt_structures' (``ROIMasks`` needs it and
vt-structures cannot depend on vt-layers); this module adds the fast approximate variant.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vt_structures import paste_masks_in_image

__all__ = [
    "paste_mask_in_image_old",
    "paste_masks_in_image",
    "paste_masks_in_image_fast",
]


def _boxes_tensor(boxes: Any, n: int, fn: str) -> torch.Tensor:
    """A Boxes-like object (with ``.tensor``) or a Tensor[N, 4] -> Tensor[N, 4]."""
    if not isinstance(boxes, torch.Tensor):
        tensor = getattr(boxes, "tensor", None)
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{fn}: boxes must be a Tensor[N, 4] or Boxes, got {type(boxes).__name__}"
            )
        boxes = tensor
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{fn}: boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if boxes.shape[0] != n:
        raise ValueError(f"{fn}: got {n} masks but {boxes.shape[0]} boxes")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    return boxes


def _check_masks(masks: Any, fn: str) -> None:
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{fn}: masks must be a Tensor, got {type(masks).__name__}")
    if masks.dim() != 3:
        raise ValueError(f"{fn}: masks must have shape (N, Hmask, Wmask), got {tuple(masks.shape)}")


def _check_image_shape(image_shape: Any, fn: str) -> tuple[int, int]:
    if len(image_shape) != 2:
        raise ValueError(f"{fn}: image_shape must be (height, width), got {image_shape}")
    img_h, img_w = int(image_shape[0]), int(image_shape[1])
    if img_h < 0 or img_w < 0:
        raise ValueError(f"{fn}: image_shape must be non-negative, got {image_shape}")
    return img_h, img_w


def paste_mask_in_image_old(
    mask: torch.Tensor, box: torch.Tensor, img_h: int, img_w: int, threshold: float = 0.5
) -> torch.Tensor:
    """Paste a single mask in an image: the fast approximate algorithm of Detectron.

    The box is truncated to integer pixel coordinates; the mask is resized (bilinear,
    anti-aliased like PIL's) to ``(y1 - y0 + 1, x1 - x0 + 1)`` pixel samples, thresholded
    with ``> threshold`` and copied into the image. An example (1D) box with continuous
    coordinates (x0=0.7, x1=4.3) maps to discrete coordinates (x0=0, x1=4), i.e. 5
    pixels, not ``x1 - x0``.

    Args:
        mask (Tensor[Hmask, Wmask]): soft mask, values in [0, 1].
        box (Tensor[4]): (x1, y1, x2, y2) in image coordinates.
        img_h: image height.
        img_w: image width.
        threshold: binarization threshold; negative returns uint8 ``mask * 255``.

    Returns:
        Tensor[img_h, img_w]: bool (uint8 for a negative threshold), on ``mask``'s device.
    """
    out_dtype = torch.bool if threshold >= 0 else torch.uint8
    im_mask = torch.zeros((img_h, img_w), dtype=out_dtype, device=mask.device)
    _paste_old_into(im_mask, mask, box.to(dtype=torch.int32).tolist(), threshold)
    return im_mask


def _paste_old_into(
    im_mask: torch.Tensor, mask: torch.Tensor, box: list[int], threshold: float
) -> None:
    """Resize ``mask`` to the integer ``box`` (x0, y0, x1, y1, inclusive) and write it into ``im_mask``."""
    img_h, img_w = im_mask.shape
    samples_w = box[2] - box[0] + 1  # number of pixel samples, *not* geometric width
    samples_h = box[3] - box[1] + 1
    x_0, x_1 = max(box[0], 0), min(box[2] + 1, img_w)
    y_0, y_1 = max(box[1], 0), min(box[3] + 1, img_h)
    if samples_w <= 0 or samples_h <= 0 or x_1 <= x_0 or y_1 <= y_0:
        return
    src = mask if mask.is_floating_point() else mask.float()
    resized = F.interpolate(
        src[None, None],
        size=(samples_h, samples_w),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0, 0]
    resized = resized > threshold if threshold >= 0 else (resized * 255).to(torch.uint8)
    im_mask[y_0:y_1, x_0:x_1] = resized[y_0 - box[1] : y_1 - box[1], x_0 - box[0] : x_1 - box[0]]


def paste_masks_in_image_fast(
    masks: torch.Tensor, boxes: Any, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Faster, less accurate :func:`paste_masks_in_image`: resize each mask to its box and copy.

    Uses :func:`paste_mask_in_image_old` per mask: boxes are truncated to whole pixels, so
    a pasted mask can be shifted by up to one pixel compared to the accurate version.

    Args:
        masks (Tensor[Bimg, Hmask, Wmask]): soft masks, values in [0, 1].
        boxes (Boxes or Tensor[Bimg, 4]): boxes in (x1, y1, x2, y2) image coordinates.
        image_shape (tuple): height, width.
        threshold (float): binarization threshold (``> threshold``); negative returns
            uint8 ``mask * 255``.

    Returns:
        Tensor[Bimg, Himage, Wimage]: bool (uint8 for a negative threshold).
    """
    fn = "paste_masks_in_image_fast"
    _check_masks(masks, fn)
    boxes = _boxes_tensor(boxes, masks.shape[0], fn)
    img_h, img_w = _check_image_shape(image_shape, fn)
    masks = masks.to(boxes.device)
    dtype = torch.bool if threshold >= 0 else torch.uint8
    img_masks = torch.zeros(masks.shape[0], img_h, img_w, dtype=dtype, device=boxes.device)
    for i, box in enumerate(boxes.to(dtype=torch.int32).tolist()):
        _paste_old_into(img_masks[i], masks[i], box, threshold)
    return img_masks
