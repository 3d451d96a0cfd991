"""ROIAlign over axis-aligned and rotated boxes (torch API over vt-ops)."""

from __future__ import annotations

import torch
from torch import nn

import vt_ops

__all__ = ["ROIAlign", "ROIAlignRotated", "roi_align", "roi_align_rotated"]


def roi_align(
    input: torch.Tensor,
    boxes: torch.Tensor | list[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """Performs Region of Interest (RoI) Align operator described in Mask R-CNN.

    Args:
        input (Tensor[N, C, H, W]): input tensor.
        boxes (Tensor[K, 5] or List[Tensor[L, 4]]): the box coordinates in
            (x1, y1, x2, y2) format where the regions will be taken from. If a single
            Tensor is passed, then the first column should contain the batch index. If a
            list of Tensors is passed, then each Tensor will correspond to the boxes for
            an element i in a batch.
        output_size (int or Tuple[int, int]): the size of the output after the cropping
            is performed, as (height, width).
        spatial_scale (float): a scaling factor that maps the input coordinates to the
            box coordinates.
        sampling_ratio (int): number of sampling points in the interpolation grid used
            to compute the output value of each pooled output bin. If > 0, then exactly
            sampling_ratio x sampling_ratio grid points are used. If <= 0, then an
            adaptive number of grid points are used (computed as
            ceil(roi_width / pooled_w), and likewise for height).
        aligned (bool): If False, use the legacy implementation. If True, pixel shift
            the box by -0.5 to align more perfectly about two neighboring pixel indices
            (detectron2's ROIAlignV2).

    Returns:
        Tensor[K, C, output_size[0], output_size[1]]: the pooled features.
    """
    return vt_ops.roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)


def roi_align_rotated(
    input: torch.Tensor,
    rois: torch.Tensor | list[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
) -> torch.Tensor:
    """RoI Align over rotated boxes.

    Args:
        input (Tensor[N, C, H, W]): input tensor.
        rois (Tensor[K, 6] or List[Tensor[L, 5]]): (batch_index, x_ctr, y_ctr, width,
            height, angle_degrees) rows, or per image (x_ctr, y_ctr, width, height,
            angle_degrees) tensors; angles counter-clockwise.
        output_size (int or Tuple[int, int]): (height, width) of the output.
        spatial_scale (float): scales the box coordinates to input coordinates.
        sampling_ratio (int): sampling points per bin along each axis; ``<= 0`` is
            adaptive.

    Returns:
        Tensor[K, C, output_size[0], output_size[1]]: the pooled features.

    Coordinates are continuous (as ``roi_align(..., aligned=True)``): pixel ``i`` is
    sampled at ``i + 0.5``.
    """
    return vt_ops.roi_align_rotated(input, rois, output_size, spatial_scale, sampling_ratio)


def _check_rois(rois: torch.Tensor, width: int, module: str) -> None:
    if not isinstance(rois, torch.Tensor):
        raise TypeError(f"{module}: rois must be a Tensor, got {type(rois).__name__}")
    if rois.dim() != 2 or rois.shape[1] != width:
        raise ValueError(f"{module}: rois must have shape (K, {width}), got {tuple(rois.shape)}")


class ROIAlign(nn.Module):
    """Module form of :func:`roi_align`.

    Args:
        output_size (tuple): h, w.
        spatial_scale (float): scale the input boxes by this number.
        sampling_ratio (int): number of inputs samples to take for each output sample.
            0 to take samples densely.
        aligned (bool): if False, use the legacy implementation in Detectron. If True,
            align the results more perfectly.

    Note:
        The meaning of aligned=True:

        Given a continuous coordinate c, its two neighboring pixel indices (in our pixel
        model) are computed by floor(c - 0.5) and ceil(c - 0.5). For example, c=1.3 has
        pixel neighbors with discrete indices [0] and [1] (which are sampled from the
        underlying signal at continuous coordinates 0.5 and 1.5). But the original
        roi_align (aligned=False) does not subtract the 0.5 when computing neighboring
        pixel indices and therefore it uses pixels with a slightly incorrect alignment
        (relative to our pixel model) when performing bilinear interpolation.

        With aligned=True, we first appropriately scale the ROI and then shift it by
        -0.5 prior to calling roi_align. This produces the correct neighbors.

        The difference does not make a difference to the model's performance if ROIAlign
        is used together with conv layers.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = True,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Args:
            input (Tensor[N, C, H, W]): features.
            rois (Tensor[K, 5]): first column is the index into N, the other 4 columns
                are xyxy.

        Returns:
            Tensor[K, C, output_size[0], output_size[1]].
        """
        _check_rois(rois, 5, "ROIAlign")
        if input.is_quantized:
            input = input.dequantize()
        return roi_align(
            input,
            rois.to(dtype=input.dtype),
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.aligned,
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class ROIAlignRotated(nn.Module):
    """Module form of :func:`roi_align_rotated`.

    Args:
        output_size (tuple): h, w.
        spatial_scale (float): scale the input boxes by this number.
        sampling_ratio (int): number of inputs samples to take for each output sample.
            0 to take samples densely.

    Note:
        ROIAlignRotated supports continuous coordinate by default: Given a continuous
        coordinate c, its two neighboring pixel indices (in our pixel model) are
        computed by floor(c - 0.5) and ceil(c - 0.5). For example, c=1.3 has pixel
        neighbors with discrete indices [0] and [1] (which are sampled from the
        underlying signal at continuous coordinates 0.5 and 1.5).
    """

    def __init__(
        self, output_size: int | tuple[int, int], spatial_scale: float, sampling_ratio: int
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Args:
            input (Tensor[N, C, H, W]): features.
            rois (Tensor[K, 6]): first column is the index into N, the other 5 columns
                are (x_ctr, y_ctr, width, height, angle_degrees).

        Returns:
            Tensor[K, C, output_size[0], output_size[1]].
        """
        _check_rois(rois, 6, "ROIAlignRotated")
        return roi_align_rotated(
            input,
            rois.to(dtype=input.dtype),
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}"
        )
