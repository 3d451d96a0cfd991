"""A batch of images of different sizes padded into one tensor, as detectron2's ``ImageList``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["ImageList"]


class ImageList:
    """Images of possibly different sizes, padded into a single tensor.

    Attributes:
        tensor (Tensor[N, ..., H, W]): the padded batch.
        image_sizes (list[tuple[int, int]]): each image's (height, width) before padding.
    """

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]) -> None:
        """
        Args:
            tensor (Tensor[N, ..., H, W]): the padded images.
            image_sizes: N (height, width) pairs, the valid region of each image.
        """
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor: expected a tensor, got {type(tensor).__name__}")
        if tensor.dim() < 3:
            raise ValueError(f"tensor: expected shape (N, ..., H, W), got {tuple(tensor.shape)}")
        if len(image_sizes) != tensor.shape[0]:
            raise ValueError(
                f"image_sizes: expected {tensor.shape[0]} sizes (one per image), got {len(image_sizes)}"
            )
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """Tensor[..., h, w]: image ``idx`` without its padding."""
        size = self.image_sizes[idx]
        return self.tensor[idx, ..., : size[0], : size[1]]

    def to(self, *args: Any, **kwargs: Any) -> ImageList:
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: Sequence[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
        padding_constraints: dict[str, int] | None = None,
    ) -> ImageList:
        """Pad images to a common size and stack them.

        Args:
            tensors: images of shape (..., Hi, Wi); every dimension but the last
                two must agree.
            size_divisibility: when > 1, the padded height and width are
                rounded up to a multiple of it (models with strided backbones need this).
            pad_value: value of the padding.
            padding_constraints: optional overrides, as detectron2:
                ``square_size`` (> 0: pad to a square of that size) and
                ``size_divisibility`` (replaces the argument).

        Returns:
            ImageList: the padded batch (contiguous) and the original sizes.

        Raises:
            ValueError: for an empty list, images whose leading dimensions differ,
                or images larger than ``square_size``.
            TypeError: when ``tensors`` is not a list or tuple of tensors.
        """
        if not isinstance(tensors, (tuple, list)):
            raise TypeError(f"tensors: expected a list of tensors, got {type(tensors).__name__}")
        if len(tensors) == 0:
            raise ValueError("tensors: expected at least one image")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"tensors[{i}]: expected a tensor, got {type(t).__name__}")
            if t.dim() < 2 or t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    f"tensors[{i}]: shape {tuple(t.shape)} does not match the leading "
                    f"dimensions of tensors[0] {tuple(tensors[0].shape)}"
                )
        image_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in tensors]
        max_h = max(s[0] for s in image_sizes)
        max_w = max(s[1] for s in image_sizes)

        if padding_constraints is not None:
            square_size = int(padding_constraints.get("square_size", 0))
            if square_size > 0:
                if max_h > square_size or max_w > square_size:
                    raise ValueError(
                        f"padding_constraints: square_size {square_size} is smaller than "
                        f"the largest image ({max_h}, {max_w})"
                    )
                max_h = max_w = square_size
            size_divisibility = int(padding_constraints.get("size_divisibility", size_divisibility))
        if size_divisibility < 0:
            raise ValueError(f"size_divisibility: expected >= 0, got {size_divisibility}")
        if size_divisibility > 1:
            stride = size_divisibility
            max_h = (max_h + stride - 1) // stride * stride
            max_w = (max_w + stride - 1) // stride * stride

        if len(tensors) == 1:
            h, w = image_sizes[0]
            padded = F.pad(tensors[0], [0, max_w - w, 0, max_h - h], value=pad_value)
            batched = padded.unsqueeze(0)
        else:
            batch_shape = [len(tensors), *tensors[0].shape[:-2], max_h, max_w]
            batched = tensors[0].new_full(batch_shape, pad_value)
            for i, img in enumerate(tensors):
                batched[i, ..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batched.contiguous(), image_sizes)
