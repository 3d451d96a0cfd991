"""Keypoints of instances and the keypoint-head heatmap encoding, as detectron2."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vt_structures._utils import check_index, check_tensor

__all__ = ["Keypoints", "heatmaps_to_keypoints", "keypoints_to_heatmap"]


class Keypoints:
    """K keypoints of N instances, stored as Tensor[N, K, 3] of (x, y, visibility).

    Visibility follows COCO: 0 not labeled (x = y = 0), 1 labeled but not
    visible, 2 labeled and visible. Coordinates are continuous: the top-left
    corner of the image is (0, 0) and pixel (i, j) covers [j, j + 1) x [i, i + 1).
    """

    def __init__(self, keypoints: torch.Tensor | np.ndarray | list) -> None:
        """
        Args:
            keypoints (Tensor[N, K, 3]): keypoints; converted to float32 unless floating.
        """
        if isinstance(keypoints, torch.Tensor):
            t = keypoints if keypoints.is_floating_point() else keypoints.to(torch.float32)
        elif isinstance(keypoints, (np.ndarray, list, tuple)):
            t = torch.as_tensor(np.asarray(keypoints, dtype=np.float32))
        else:
            raise TypeError(
                f"keypoints: expected a tensor, array or list, got {type(keypoints).__name__}"
            )
        if t.dim() != 3 or t.shape[2] != 3:
            raise ValueError(f"keypoints: expected shape (N, K, 3), got {tuple(t.shape)}")
        self.tensor = t

    def __len__(self) -> int:
        return self.tensor.size(0)

    def to(self, *args: Any, **kwargs: Any) -> Keypoints:
        return type(self)(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to_heatmap(
        self, boxes: torch.Tensor, heatmap_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the keypoints as heatmap indices inside ``boxes`` (keypoint-head targets).

        Args:
            boxes (Tensor[N, 4]): one box per instance.
            heatmap_size: side of the square heatmap.

        Returns:
            heatmaps (Tensor[N, K], int64): flat index ``y * heatmap_size + x`` of
            each keypoint's heatmap cell, 0 when invalid.
            valid (Tensor[N, K], int64): 1 for labeled keypoints inside their box.
        """
        return keypoints_to_heatmap(self.tensor, boxes, heatmap_size)

    def __getitem__(self, item: Any) -> Keypoints:
        """Keypoints selected by an int (a Keypoints of one instance), slice, bool mask or index."""
        check_index(item, len(self), "Keypoints")
        if isinstance(item, int):
            return Keypoints(self.tensor[item].unsqueeze(0))
        t = self.tensor[item]
        if t.dim() != 3:
            raise ValueError(f"Indexing on Keypoints with {item} returns shape {tuple(t.shape)}!")
        return Keypoints(t)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.tensor

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    @staticmethod
    def cat(keypoints_list: Sequence[Keypoints]) -> Keypoints:
        """Concatenate Keypoints with the same number of keypoints per instance."""
        if not isinstance(keypoints_list, (list, tuple)) or len(keypoints_list) == 0:
            raise ValueError("keypoints_list: expected a non-empty list of Keypoints")
        for k in keypoints_list:
            if not isinstance(k, Keypoints):
                raise TypeError(
                    f"keypoints_list: every element must be Keypoints, got {type(k).__name__}"
                )
        return type(keypoints_list[0])(torch.cat([k.tensor for k in keypoints_list], dim=0))


def keypoints_to_heatmap(
    keypoints: torch.Tensor, rois: torch.Tensor, heatmap_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmap indices of keypoints inside their boxes (Mask R-CNN's discretisation).

    A keypoint at continuous (x, y) in box (x0, y0, x1, y1) falls in cell
    ``floor((x - x0) * heatmap_size / (x1 - x0))`` (same for y); a keypoint
    exactly on the right/bottom edge goes to the last cell.

    Args:
        keypoints (Tensor[N, K, 3]): (x, y, visibility).
        rois (Tensor[N, 4]): boxes (x0, y0, x1, y1).
        heatmap_size: side of the heatmap.

    Returns:
        heatmaps (Tensor[N, K], int64): flat cell index, 0 where invalid.
        valid (Tensor[N, K], int64): 1 for a visible keypoint inside its box.
    """
    keypoints = check_tensor(keypoints, "keypoints", (None, None, 3))
    rois = check_tensor(rois, "rois", (keypoints.shape[0], 4))
    if heatmap_size <= 0:
        raise ValueError(f"heatmap_size: expected > 0, got {heatmap_size}")
    if rois.numel() == 0:
        empty = rois.new_zeros((0, keypoints.shape[1]), dtype=torch.int64)
        return empty, empty.clone()
    offset_x = rois[:, 0][:, None]
    offset_y = rois[:, 1][:, None]
    scale_x = (heatmap_size / (rois[:, 2] - rois[:, 0]))[:, None]
    scale_y = (heatmap_size / (rois[:, 3] - rois[:, 1]))[:, None]

    x = keypoints[..., 0]
    y = keypoints[..., 1]
    x_boundary = x == rois[:, 2][:, None]
    y_boundary = y == rois[:, 3][:, None]
    x = ((x - offset_x) * scale_x).floor().long()
    y = ((y - offset_y) * scale_y).floor().long()
    x[x_boundary] = heatmap_size - 1
    y[y_boundary] = heatmap_size - 1

    valid_loc = (x >= 0) & (y >= 0) & (x < heatmap_size) & (y < heatmap_size)
    vis = keypoints[..., 2] > 0
    valid = (valid_loc & vis).long()
    heatmaps = (y * heatmap_size + x) * valid
    return heatmaps, valid


@torch.no_grad()
def heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Decode keypoint heatmaps into image coordinates, as detectron2.

    Each heatmap is resized bicubically to its box's size (rounded up), the
    maximum gives the keypoint (cell centers), and the score is the
    spatial-softmax probability at the maximum, normalised over the
    heatmap-resolution region so that scores of boxes of different sizes compare.

    Args:
        maps (Tensor[N, K, S, S]): heatmap logits.
        rois (Tensor[N, 4]): the boxes the heatmaps cover.

    Returns:
        Tensor[N, K, 4]: (x, y, logit, score) per keypoint.
    """
    maps = check_tensor(maps, "maps", (None, None, None, None))
    rois = check_tensor(rois, "rois", (maps.shape[0], 4))
    maps = maps.detach()
    rois = rois.detach()
    offset_x, offset_y = rois[:, 0], rois[:, 1]
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil, heights_ceil = widths.ceil(), heights.ceil()
    num_rois, num_keypoints = maps.shape[:2]
    xy_preds = maps.new_zeros(num_rois, num_keypoints, 4)
    width_corrections = widths / widths_ceil
    height_corrections = heights / heights_ceil
    keypoints_idx = torch.arange(num_keypoints, device=maps.device)

    for i in range(num_rois):
        outsize = (int(heights_ceil[i]), int(widths_ceil[i]))
        roi_map = F.interpolate(maps[[i]], size=outsize, mode="bicubic", align_corners=False)[0]
        max_score = roi_map.reshape(num_keypoints, -1).max(1).values.view(num_keypoints, 1, 1)
        tmp_full_resolution = (roi_map - max_score).exp_()
        tmp_pool_resolution = (maps[i] - max_score).exp_()
        # Scores over the box-size map, normalised with the heatmap-size map, so that
        # boxes of different absolute sizes get comparable scores.
        roi_map_scores = tmp_full_resolution / tmp_pool_resolution.sum((1, 2), keepdim=True)
        w = roi_map.shape[2]
        pos = roi_map.reshape(num_keypoints, -1).argmax(1)
        x_int = pos % w
        y_int = torch.div(pos - x_int, w, rounding_mode="floor")
        x = (x_int.to(maps.dtype) + 0.5) * width_corrections[i]
        y = (y_int.to(maps.dtype) + 0.5) * height_corrections[i]
        xy_preds[i, :, 0] = x + offset_x[i]
        xy_preds[i, :, 1] = y + offset_y[i]
        xy_preds[i, :, 2] = roi_map[keypoints_idx, y_int, x_int]
        xy_preds[i, :, 3] = roi_map_scores[keypoints_idx, y_int, x_int]
    return xy_preds
