"""Pasting fixed-resolution instance masks (e.g. 28x28 predictions) into the image."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "paste_mask_in_image_old",
    "paste_masks_in_image",
    "paste_masks_in_image_fast",
]

# The GPU path pastes masks in chunks so that the temporary grid and the soft masks of
# one chunk stay under this many bytes.
GPU_MEM_LIMIT = 1024**3
# Temporaries per pasted pixel: the sampling grid (2 x float32), the sampled value
# (float32) and the thresholded value (1 byte).
_BYTES_PER_PIXEL = 13


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


def _sample_masks(
    masks: torch.Tensor, boxes: torch.Tensor, y0: int, y1: int, x0: int, x1: int
) -> torch.Tensor:
    """Bilinearly sample ``masks`` (N, Hm, Wm) at the pixel centres of image rows y0:y1, cols x0:x1.

    Pixel ``(y, x)`` of the image has its centre at ``(y + 0.5, x + 0.5)``; the mask
    covers its box exactly, so mask cell ``(i, j)`` has its centre at
    ``x0 + (j + 0.5) * (x1 - x0) / Wm``. Outside the mask the value is 0.

    Returns:
        Tensor[N, y1 - y0, x1 - x0]: the soft values.
    """
    device = masks.device
    bx0, by0, bx1, by1 = torch.split(boxes, 1, dim=1)  # each is (N, 1)
    n = masks.shape[0]
    img_y = torch.arange(y0, y1, device=device, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0, x1, device=device, dtype=torch.float32) + 0.5
    img_y = (img_y - by0) / (by1 - by0) * 2 - 1  # (N, h)
    img_x = (img_x - bx0) / (bx1 - bx0) * 2 - 1  # (N, w)
    gx = img_x[:, None, :].expand(n, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(n, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)
    if not masks.is_floating_point():
        masks = masks.float()
    return F.grid_sample(masks[:, None], grid.to(masks.dtype), align_corners=False)[:, 0]


def _box_regions(boxes: torch.Tensor, img_h: int, img_w: int) -> list[list[int]]:
    """Integer (x0, y0, x1, y1) image region of each box, one pixel wider on each side.

    Pixels outside it get 0 from the bilinear sampling, so only it needs computing.
    """
    lo = (boxes[:, :2].floor() - 1).clamp(min=0)
    hi = boxes[:, 2:].ceil() + 1
    hi = torch.minimum(hi, hi.new_tensor([img_w, img_h])).clamp(min=0)
    return torch.cat([torch.minimum(lo, hi), hi], 1).to(torch.int64).tolist()


def paste_masks_in_image(
    masks: torch.Tensor, boxes: Any, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Paste a set of masks that are of a fixed resolution (e.g., 28 x 28) into an image.

    The location, height, and width for pasting each mask is determined by their
    corresponding bounding boxes in boxes.

    Every image pixel whose centre lies in a box gets the bilinear interpolation of the
    mask at that centre (the mask exactly covers its box; outside of the mask, values
    are 0), then the threshold. On CPU, masks are pasted one by one over the region of
    their box only; on GPU, in chunks whose temporaries stay under 1 GiB. Both compute
    the same values.

    Note:
        This is a complicated but more accurate implementation. In actual deployment, it
        is often enough to use a faster but less accurate implementation, see
        :func:`paste_masks_in_image_fast`.

    Args:
        masks (Tensor[Bimg, Hmask, Wmask]): the predicted masks of Bimg detected instances
            (e.g., Hmask = Wmask = 28), values in [0, 1].
        boxes (Boxes or Tensor[Bimg, 4]): boxes in (x1, y1, x2, y2) image coordinates;
            boxes[i] and masks[i] correspond to the same object instance.
        image_shape (tuple): height, width.
        threshold (float): a threshold in [0, 1] for converting the (soft) masks to binary
            masks; a negative value returns the soft masks as uint8 ``mask * 255``
            (for visualization and debugging).

    Returns:
        Tensor[Bimg, Himage, Wimage]: bool (or uint8 for a negative threshold), on the
        device of ``boxes``; img_masks[i] is the binary mask of instance i.
    """
    fn = "paste_masks_in_image"
    _check_masks(masks, fn)
    n = masks.shape[0]
    boxes = _boxes_tensor(boxes, n, fn)
    img_h, img_w = _check_image_shape(image_shape, fn)
    return _paste_masks(
        masks, boxes, img_h, img_w, threshold, one_by_one=boxes.device.type == "cpu"
    )


def _paste_masks(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    img_h: int,
    img_w: int,
    threshold: float,
    one_by_one: bool,
) -> torch.Tensor:
    """Paste validated masks; one by one over each box's region, or in memory-bounded chunks."""
    out_dtype = torch.bool if threshold >= 0 else torch.uint8
    device = boxes.device
    masks = masks.to(device)
    n = masks.shape[0]
    img_masks = torch.zeros(n, img_h, img_w, device=device, dtype=out_dtype)
    if n == 0 or img_h == 0 or img_w == 0:
        return img_masks
    if one_by_one:
        for i, (x0, y0, x1, y1) in enumerate(_box_regions(boxes, img_h, img_w)):
            if x1 > x0 and y1 > y0:
                soft = _sample_masks(masks[i : i + 1], boxes[i : i + 1], y0, y1, x0, x1)
                img_masks[i, y0:y1, x0:x1] = _binarize(soft[0], threshold)
        return img_masks
    num_chunks = min(math.ceil(n * img_h * img_w * _BYTES_PER_PIXEL / GPU_MEM_LIMIT), n)
    for inds in torch.chunk(torch.arange(n, device=device), num_chunks):
        soft = _sample_masks(masks[inds], boxes[inds], 0, img_h, 0, img_w)
        img_masks[inds] = _binarize(soft, threshold)
    return img_masks


def _binarize(soft: torch.Tensor, threshold: float) -> torch.Tensor:
    """``soft >= threshold``, or uint8 ``soft * 255`` for a negative threshold."""
    return soft >= threshold if threshold >= 0 else (soft * 255).to(dtype=torch.uint8)


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
