r"""Batch-wise intersection and IoU encoders and decoders for (fuzzy) segmentation masks.

An IoU encoding of a segmentation mask holds, at every pixel, the intersection over
union of the mask with a *proto shape* (e.g. a box) centred at that pixel: a continuous,
generalised bounding-box score. Masks and proto shapes are fuzzy sets (values in
[0, 1]); intersection is the product t-norm (``sum(A * B)``), union
``sum(A) + sum(B) - sum(A * B)``.

All operations work on batches of shape ``(batch, 1, height, width)`` and return a
batch of the same shape ("same" padding, zeros outside the image). The proto shape is
placed with its element ``(floor((kh - 1) / 2), floor((kw - 1) / 2))`` on the pixel;
even sizes hang over to the bottom/right.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BatchBoxBloat",
    "BatchConvOp",
    "BatchIntersectDecode2D",
    "BatchIntersectEncode2D",
    "BatchIoUEncode2D",
    "BatchPeakDetection",
    "BatchWindowOp",
]

ProtoShape = np.ndarray | torch.Tensor | Sequence[Sequence[float]]


def _same_padding(kernel_size: Sequence[int], hang_front: bool = False) -> tuple[int, ...]:
    """(front, back) padding per dimension so that a stride-1 window op keeps the size.

    The total padding of a dimension is ``k - 1``; when it is odd, the back gets the
    extra pixel (``hang_front=False``, TensorFlow's "same") or the front does.
    """
    pads: list[int] = []
    for k in kernel_size:
        small, large = (k - 1) // 2, (k - 1) - (k - 1) // 2
        pads += [large, small] if hang_front else [small, large]
    return tuple(pads)


def _pad2d_args(kernel_size: Sequence[int], hang_front: bool = False) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) for ``nn.ZeroPad2d`` from a (kh, kw) kernel size."""
    top, bottom, left, right = _same_padding(kernel_size, hang_front)
    return left, right, top, bottom


def _to_kernel_size(kernel_size: Any, cls: str, ndim: int = 2) -> tuple[int, ...]:
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size,) * ndim
    try:
        ks = tuple(kernel_size)
    except TypeError:
        raise TypeError(f"{cls}: kernel_size must be an int or a tuple of {ndim} ints") from None
    if len(ks) != ndim or not all(isinstance(k, (int, np.integer)) and k > 0 for k in ks):
        raise ValueError(f"{cls}: kernel_size must be {ndim} positive ints, got {kernel_size!r}")
    return tuple(int(k) for k in ks)


class BatchWindowOp(abc.ABC, nn.Module):
    """Base class for encoders that use windowing operations, e.g. convolutions or pooling."""

    AREA_DIMS: tuple[int, ...] = (2, 3)
    """Indices of axes in which the image area is defined.

    Masks are expected with ``size()[0]`` the batch, ``size()[1]`` the (single) channel
    and ``size()[AREA_DIMS]`` the image, e.g. ``(2, 3)`` for 2D.
    """

    @property
    @abc.abstractmethod
    def kernel_size(self) -> tuple[int, ...]:
        """The kernel size of the window."""

    @property
    def settings(self) -> dict[str, Any]:
        """Settings to reproduce the instance."""
        return {"kernel_size": self.kernel_size}

    def __repr__(self) -> str:
        """Representation based on this instance's settings."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"

    def _validate_masks(self, masks: Any) -> None:
        """Raise if ``masks`` are not a (B, 1, H, W) tensor at least as large as the kernel."""
        name = type(self).__name__
        if not isinstance(masks, torch.Tensor):
            raise TypeError(f"{name}: masks must be a torch.Tensor, got {type(masks).__name__}")
        ndim = len(self.AREA_DIMS) + 2
        if masks.dim() != ndim or masks.shape[1] != 1:
            raise ValueError(
                f"{name}: masks must have shape (batch_size, 1, height, width), "
                f"got {tuple(masks.shape)}"
            )
        image = tuple(masks.shape[d] for d in self.AREA_DIMS)
        if any(s < k for s, k in zip(image, self.kernel_size)):
            raise ValueError(
                f"{name}: masks of size {image} are smaller than the kernel size {self.kernel_size}"
            )

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        """Wrapper for the window operation on a batch of masks.

        Validates the masks; bool and integer masks are computed in float32, floating
        masks in their own dtype, on their own device.

        Args:
            masks (Tensor[B, 1, H, W]): masks of one batch, at least as large as the kernel.

        Returns:
            Tensor[B, 1, H, W]: the result of :meth:`conv_op`.
        """
        self._validate_masks(masks)
        if not masks.is_floating_point():
            masks = masks.float()
        return self.conv_op(masks)

    @abc.abstractmethod
    def conv_op(self, masks: torch.Tensor) -> torch.Tensor:
        """The window operation on the masks (without validation).

        Args:
            masks (Tensor[B, 1, H, W]): floating masks of one batch.
        """


class BatchBoxBloat(BatchWindowOp):
    """Bloat single pixels to full boxes, always choosing the maximum box to be up front.

    Every pixel becomes a box of :attr:`kernel_size` with its value; overlapping boxes
    keep the largest value. This is a (same-padded, stride 1) max-pooling operation.

    Args:
        kernel_size: the window size (kh, kw) to which each pixel shall be blown up.
    """

    def __init__(self, kernel_size: int | tuple[int, int]) -> None:
        super().__init__()
        kernel_size = _to_kernel_size(kernel_size, type(self).__name__)
        # Outside the image nothing can win the maximum.
        self.padding = nn.ConstantPad2d(_pad2d_args(kernel_size), float("-inf"))
        """Padding to obtain the same size as the input after bloating."""
        self.nms_bloating = nn.MaxPool2d(kernel_size=kernel_size, stride=(1, 1))
        """The bloating itself: a max-pooling of window :attr:`kernel_size`."""

    @property
    def kernel_size(self) -> tuple[int, int]:
        """The max-pooling kernel size (kh, kw)."""
        return tuple(self.nms_bloating.kernel_size)

    def conv_op(self, masks: torch.Tensor) -> torch.Tensor:
        """Apply the bloating to the pixels."""
        return self.nms_bloating(self.padding(masks))


class BatchPeakDetection(BatchBoxBloat):
    """Keep only peak points, i.e. the ones that take the maximum value within a window around them.

    The window is given by :attr:`~BatchBoxBloat.kernel_size` (the same window
    :class:`BatchBoxBloat` uses). The returned mask has all non-peaks set to 0.

    Args:
        kernel_size: the window size (kh, kw).
    """

    def conv_op(self, masks: torch.Tensor) -> torch.Tensor:
        """Apply the peak filtering."""
        bloated = super().conv_op(masks)
        return masks * (bloated == masks).to(masks.dtype)


class BatchConvOp(BatchWindowOp):
    """Base class for encoders that use a convolution with a proto shape."""

    @property
    @abc.abstractmethod
    def proto_shape(self) -> np.ndarray:
        """The kernel associated with the convolutional masking operation."""

    @property
    def kernel_size(self) -> tuple[int, ...]:
        """The kernel size of the proto-type shape (see :attr:`proto_shape`)."""
        return tuple(self.proto_shape.shape)

    @property
    def settings(self) -> dict[str, Any]:
        """Settings to reproduce the instance.

        Only ``kernel_size`` when the proto shape is the all-ones box, else ``proto_shape``.
        """
        proto_shape = self.proto_shape
        if np.allclose(proto_shape, 1):
            return {"kernel_size": self.kernel_size}
        return {"proto_shape": proto_shape.tolist()}

    @classmethod
    def _to_valid_proto_shape(
        cls, proto_shape: ProtoShape | None = None, kernel_size: int | Sequence[int] | None = None
    ) -> np.ndarray:
        """Validate ``proto_shape`` or create the all-ones box of ``kernel_size``.

        Raises:
            ValueError: if both are None, or the proto shape is not a non-empty 2-D array
                of finite non-negative values with a positive sum.
        """
        name = cls.__name__
        ndim = len(cls.AREA_DIMS)
        if proto_shape is None:
            if kernel_size is None:
                raise ValueError(
                    f"{name}: either kernel_size or proto_shape must be given, but both are None"
                )
            return np.ones(_to_kernel_size(kernel_size, name, ndim), dtype=np.float64)
        if isinstance(proto_shape, torch.Tensor):
            proto_shape = proto_shape.detach().cpu().numpy()
        try:
            arr = np.asarray(proto_shape, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: proto_shape must be a {ndim}-D array of numbers") from None
        if arr.ndim != ndim or arr.size == 0:
            raise ValueError(
                f"{name}: proto_shape must be a non-empty {ndim}-D array, got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
            raise ValueError(
                f"{name}: proto_shape must hold finite non-negative values with a positive sum"
            )
        return arr

    @staticmethod
    def _fixed_conv(kernel: np.ndarray) -> nn.Conv2d:
        """A non-trainable 1->1 channel convolution with ``kernel`` as weight and no bias."""
        conv = nn.Conv2d(1, 1, kernel_size=kernel.shape, bias=False)
        conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel)).float()[None, None]
        conv.requires_grad_(False)
        return conv

    @staticmethod
    def _weight_like(conv: nn.Conv2d, masks: torch.Tensor) -> torch.Tensor:
        return conv.weight.to(device=masks.device, dtype=masks.dtype)


class BatchIntersectEncode2D(BatchConvOp):
    r"""Intersection encoding of a batch of masks of shape ``(batch, 1, height, width)``.

    Each output pixel holds the (fuzzy) intersection area of the mask with the proto
    shape centred at that pixel, i.e. the correlation of the zero-padded mask with the
    proto shape; the better the proto shape covers the mask there, the higher the value.
    Since ``intersect(c * A, B) == c * intersect(A, B)``, normalizing by the proto
    shape's area gives values in [0, 1] for masks in [0, 1].

    Args:
        proto_shape: the proto shape (a 2-D array of values in [0, 1]); at most the size
            of the masks.
        kernel_size: if ``proto_shape`` is None, use the all-ones box of this size.
        normalize_by: divide the intersection area by the total area of the
            ``'proto_shape'``, of the ``'target'`` mask (0 where the target is empty), or
            ``'none'``.
    """

    def __init__(
        self,
        proto_shape: ProtoShape | None = None,
        kernel_size: int | tuple[int, int] | None = None,
        normalize_by: str = "proto_shape",
    ) -> None:
        if normalize_by not in ("none", "proto_shape", "target"):
            raise ValueError(
                "BatchIntersectEncode2D: normalize_by must be one of "
                f"('none', 'proto_shape', 'target'), got {normalize_by!r}"
            )
        super().__init__()
        proto = self._to_valid_proto_shape(proto_shape=proto_shape, kernel_size=kernel_size)
        self.normalize_by = normalize_by
        """Divisor of the intersection: area of the 'proto_shape', of the 'target', or 'none'."""
        self.padding = nn.ZeroPad2d(_pad2d_args(proto.shape))
        """Padding to obtain the same size as the input after the convolution."""
        self.intersect_conv = self._fixed_conv(proto)
        """Convolution computing the intersection for each location of the proto shape."""
        self.eval()

    @property
    def proto_shape(self) -> np.ndarray:
        """The proto shape used for the intersection calculation."""
        return self.intersect_conv.weight.detach().cpu().numpy()[0, 0]

    @property
    def settings(self) -> dict[str, Any]:
        """Settings to reproduce the instance."""
        return {**super().settings, "normalize_by": self.normalize_by}

    def conv_op(self, masks: torch.Tensor) -> torch.Tensor:
        """Intersection encoding of ``masks`` (Tensor[B, 1, H, W]), same shape."""
        weight = self._weight_like(self.intersect_conv, masks)
        intersect = F.conv2d(self.padding(masks), weight)
        if self.normalize_by == "proto_shape":
            intersect = intersect / weight.sum()
        elif self.normalize_by == "target":
            area = masks.sum(dim=self.AREA_DIMS, keepdim=True)
            intersect = torch.where(area > 0, intersect / torch.where(area > 0, area, 1), 0)
        return intersect


class BatchIoUEncode2D(BatchConvOp):
    """Intersection over union encoding of a batch of masks of shape ``(batch, 1, height, width)``.

    Each output pixel holds the IoU of the mask with the proto shape centred at that
    pixel, a value in [0, 1] (for masks and proto shapes in [0, 1]); 1 where the mask is
    exactly the proto shape centred there. Intersection and union are fuzzy (product
    t-norm, areas by sum, see :class:`BatchIntersectEncode2D`):
    ``(I + smooth) / (area(mask) + area(proto_shape) - I + smooth)``.

    Args:
        proto_shape: the proto shape (a 2-D array of values in [0, 1]).
        kernel_size: if ``proto_shape`` is None, use the all-ones box of this size.
        smooth: smoothing summand of the division.
    """

    def __init__(
        self,
        proto_shape: ProtoShape | None = None,
        kernel_size: int | tuple[int, int] | None = None,
        smooth: float = 1e-7,
    ) -> None:
        super().__init__()
        self.intersect_encoder = BatchIntersectEncode2D(
            proto_shape=proto_shape, kernel_size=kernel_size, normalize_by="none"
        )
        self.area_proto_shape: float = float(np.sum(self.proto_shape))
        """Area of the proto shape."""
        self.smooth: float = float(smooth)
        """Smoothing summand for the division."""
        self.eval()

    @property
    def proto_shape(self) -> np.ndarray:
        """The proto shape used for the IoU calculation."""
        return self.intersect_encoder.proto_shape

    @property
    def settings(self) -> dict[str, Any]:
        """Settings to reproduce the instance."""
        return {**super().settings, "smooth": self.smooth}

    def smooth_division(self, dividend: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
        """``(dividend + smooth) / (divisor + smooth)``."""
        return (dividend + self.smooth) / (divisor + self.smooth)

    def conv_op(self, masks: torch.Tensor) -> torch.Tensor:
        """IoU encoding of ``masks`` (Tensor[B, 1, H, W]), same shape."""
        intersect = self.intersect_encoder.conv_op(masks)
        area_masks = masks.sum(dim=self.AREA_DIMS, keepdim=True)
        union = area_masks + self.area_proto_shape - intersect
        return self.smooth_division(intersect, union)


class BatchIntersectDecode2D(BatchConvOp):
    r"""Given a batch of IoU encoded masks, estimates the original segmentation mask.

    This estimation is done by

    1. "bloating" each pixel: create a mask with the :attr:`proto_shape` at the
       pixel's location, weighted by the pixel value,
    2. adding up all bloated pixel masks to obtain one mask.

    Consider the convolution that describes the IoU encoding of the given mask. Then
    the above steps are a convolution with kernel and padding of the encoding
    convolution, but

    - kernel and padding flipped along each dimension; in 2D, the two flips are
      equivalent to a rotation by 180°,
    - kernel normalized by its L1 norm (after that, the values in the convolution sum
      up to 1).

    **Derivation.** The bloat mask of a pixel :math:`p^{iou}` can only contribute to a
    pixel :math:`p` if the proto shape centred at :math:`p^{iou}` reaches :math:`p`,
    i.e. for each image axis :math:`a`

    .. math::
        -\lceil (k_a - 1) / 2 \rceil \le p_a - p^{iou}_a \le \lfloor (k_a - 1) / 2 \rfloor

    (:math:`k_a` the proto shape size): a kernel of the encoder's size with the padding
    flipped. Its entry at :math:`p^{iou}` is
    :math:`\text{proto\_shape}[p_a - p^{iou}_a + \lfloor (k_a - 1)/2 \rfloor]`, the
    encoder's kernel flipped in each dimension.

    Decoding the proto-normalized intersection encoding of a mask gives back the mask
    wherever the mask is constant on the (2k - 1)-window around a pixel; decoding the
    thresholded ``== 1`` encoding of a binary mask (scaled by the proto shape's area)
    gives its morphological opening by the proto shape.

    Args:
        proto_shape: the proto shape used for the encoding.
        kernel_size: if ``proto_shape`` is None, use the all-ones box of this size.
    """

    def __init__(
        self,
        proto_shape: ProtoShape | None = None,
        kernel_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        proto = self._to_valid_proto_shape(proto_shape=proto_shape, kernel_size=kernel_size)
        kernel = proto[::-1, ::-1] / np.abs(proto).sum()
        self.padding = nn.ZeroPad2d(_pad2d_args(kernel.shape, hang_front=True))
        """Padding to obtain the same size as the input (the encoder's, flipped)."""
        self.decoder_conv = self._fixed_conv(kernel)
        """Convolution with the decoding kernel (:attr:`decoding_proto_shape`)."""
        self.eval()

    @property
    def decoding_proto_shape(self) -> np.ndarray:
        """The kernel of the decoder (flipped and normalized IoU encoding proto shape)."""
        return self.decoder_conv.weight.detach().cpu().numpy()[0, 0]

    @property
    def proto_shape(self) -> np.ndarray:
        """The (L1-normalized) proto shape used for the IoU encoding."""
        return np.ascontiguousarray(self.decoding_proto_shape[::-1, ::-1])

    def conv_op(self, masks: torch.Tensor) -> torch.Tensor:
        """Forward pass: apply the decoding convolution to ``masks`` (Tensor[B, 1, H, W])."""
        return F.conv2d(self.padding(masks), self._weight_like(self.decoder_conv, masks))
