"""Non-maximum suppression of axis-aligned and rotated boxes (torch API over vt-ops).

Equal scores are visited by increasing index, on CPU and CUDA alike; NaN or infinite
boxes or scores raise ValueError.
"""

from __future__ import annotations

import torch

import vt_ops

__all__ = ["batched_nms", "batched_nms_rotated", "nms", "nms_rotated"]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Performs non-maximum suppression (NMS) on the boxes according to their intersection-over-union (IoU).

    NMS iteratively removes lower scoring boxes which have an IoU greater than
    iou_threshold with another (higher scoring) box.

    If multiple boxes have the exact same score, they are visited by increasing index,
    so CPU and GPU select the same box (torchvision and detectron2 give no such
    guarantee).

    Args:
        boxes (Tensor[N, 4]): boxes to perform NMS on, in (x1, y1, x2, y2) format.
        scores (Tensor[N]): scores for each one of the boxes.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.

    Returns:
        Tensor: int64 tensor with the indices of the elements that have been kept by
        NMS, sorted in decreasing order of scores.
    """
    return vt_ops.nms(boxes, scores, iou_threshold)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Performs non-maximum suppression in a batched fashion; same as torchvision's, but safer.

    Each index value correspond to a category, and NMS will not be applied between
    elements of different categories. Categories are separated inside the kernel (no
    coordinate offsets), so the result is exact for any coordinates and dtypes;
    float16/bfloat16 are computed in float32.

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.
        scores (Tensor[N]): scores for each one of the boxes.
        idxs (Tensor[N]): indices of the categories for each one of the boxes.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.

    Returns:
        Tensor: int64 tensor with the indices of the elements that have been kept by
        NMS, sorted in decreasing order of scores.
    """
    return vt_ops.batched_nms(boxes, scores, idxs, iou_threshold)


def nms_rotated(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Performs non-maximum suppression (NMS) on the rotated boxes according to their IoU.

    Rotated NMS iteratively removes lower scoring rotated boxes which have an IoU
    greater than iou_threshold with another (higher scoring) rotated box.

    Note that RotatedBox (5, 3, 4, 2, -90) covers exactly the same region as
    RotatedBox (5, 3, 4, 2, 90) does, and their IoU will be 1. However, they can be
    representing completely different objects in certain tasks, e.g., OCR: a single
    character "v" in its square box reads "v" at 0 degrees, ">" at 90, "^" at 180 and
    "<" at -90 degrees, and all four boxes have IoU 1 with each other.

    Rotated NMS that only uses IoU keeps the highest-scoring one of them, which usually
    still makes sense, because typically only one of the orientations is correct, and
    it does not matter much when the box is only used to classify the object. When IoU
    filters proposals against ground truth labelled with strictly correct orientations
    (upside-down words annotated with 180 degrees, etc.), the angle should be taken into
    account; and for datasets annotated as 4-point polygons without vertex order, the
    angle cannot be recovered anyway. In summary, not considering angles in rotated NMS
    seems to be a good option for now, but be aware of its implications.

    Args:
        boxes (Tensor[N, 5]): rotated boxes in (x_center, y_center, width, height,
            angle_degrees) format.
        scores (Tensor[N]): scores for each one of the rotated boxes.
        iou_threshold (float): discards all overlapping rotated boxes with
            IoU > iou_threshold.

    Returns:
        Tensor: int64 tensor with the indices of the elements that have been kept by
        rotated NMS, sorted in decreasing order of scores.
    """
    return vt_ops.nms_rotated(boxes, scores, iou_threshold)


def batched_nms_rotated(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Performs non-maximum suppression of rotated boxes in a batched fashion.

    Each index value correspond to a category, and NMS will not be applied between
    elements of different categories.

    Args:
        boxes (Tensor[N, 5]): boxes in (x_ctr, y_ctr, width, height, angle_degrees) format.
        scores (Tensor[N]): scores for each one of the boxes.
        idxs (Tensor[N]): indices of the categories for each one of the boxes.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.

    Returns:
        Tensor: int64 tensor with the indices of the elements that have been kept by
        NMS, sorted in decreasing order of scores.
    """
    return vt_ops.batched_nms_rotated(boxes, scores, idxs, iou_threshold)
