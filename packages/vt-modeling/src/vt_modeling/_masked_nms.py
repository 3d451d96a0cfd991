"""Batched NMS over a masked subset of candidates, without indexing them out first."""

from __future__ import annotations

import torch

import vt_ops

__all__ = ["masked_batched_nms"]


def masked_batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    valid: torch.Tensor,
    iou_threshold: float,
) -> torch.Tensor:
    """``batched_nms`` of the ``valid`` candidates, as indices into all of them.

    The same kept candidates, in the same order, as ``batched_nms`` of
    ``boxes[valid]``, ``scores[valid]``, ``idxs[valid]`` (mapped back to indices of
    the full arrays), but with no data-dependent indexing before NMS (a graph break
    under ``torch.compile``, an unbacked size under ``torch.export``): invalid
    candidates get the lowest score and are excluded by the kernel's score threshold.
    Their boxes and scores may be non-finite.

    Args:
        boxes (Tensor[N, 4] or Tensor[N, 5]): boxes in (x1, y1, x2, y2) format, or
            rotated boxes in (cx, cy, w, h, angle) format (then rotated NMS).
        scores (Tensor[N]): scores of the boxes.
        idxs (Tensor[N]): integer category of each box.
        valid (Tensor[N] bool): the candidates taking part.
        iou_threshold (float): discards all overlapping boxes with IoU > iou_threshold.

    Returns:
        Tensor[K] int64: indices of the kept candidates by decreasing score.
    """
    lowest = torch.finfo(scores.dtype).min
    scores = torch.where(valid, scores, lowest)
    boxes = torch.where(valid[:, None], boxes, 0.0)
    # The registered op (namespace vt_ops) rather than vt_ops.batched_nms: the arguments
    # are valid by construction, and its checks read the thresholds as Python numbers,
    # a graph break where dynamo passes them as symbolic floats.
    vt_ops.register_torch_ops()
    op = (
        torch.ops.vt_ops.batched_nms_rotated
        if boxes.shape[-1] == 5
        else torch.ops.vt_ops.batched_nms
    )
    return op(boxes, scores, idxs, iou_threshold, lowest, -1)
