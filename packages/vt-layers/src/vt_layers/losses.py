"""Losses used by detection heads: smooth L1, IoU-family box losses, sigmoid focal loss.

Every loss takes ``reduction`` in ``"none" | "mean" | "sum"``; ``"mean"`` of an empty
input is 0 (connected to the graph) instead of NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "ciou_loss",
    "diou_loss",
    "giou_loss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "smooth_l1_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str, fn: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_box_pair(boxes1: torch.Tensor, boxes2: torch.Tensor, fn: str) -> None:
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"{fn}: {name} must be a Tensor, got {type(b).__name__}")
        if b.shape[-1:] != (4,):
            raise ValueError(f"{fn}: {name} must have shape (..., 4), got {tuple(b.shape)}")
    if boxes1.shape != boxes2.shape:
        raise ValueError(
            f"{fn}: boxes1 and boxes2 must have the same shape, got "
            f"{tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        )


def smooth_l1_loss(
    input: torch.Tensor, target: torch.Tensor, beta: float, reduction: str = "none"
) -> torch.Tensor:
    """Smooth L1 loss as defined in the Fast R-CNN paper.

    ::

                      | 0.5 * x ** 2 / beta   if abs(x) < beta
        smoothl1(x) = |
                      | abs(x) - 0.5 * beta   otherwise,

    where ``x = input - target``. ``beta < 1e-5`` gives the L1 loss (and avoids a
    division by zero).

    Args:
        input (Tensor): input tensor of any shape.
        target (Tensor): target value tensor with the same shape as input.
        beta (float): L1 to L2 change point.
        reduction: 'none' | 'mean' | 'sum'.

    Returns:
        Tensor: the loss, with the input's shape for 'none', else a scalar.
    """
    _check_reduction(reduction, "smooth_l1_loss")
    n = torch.abs(input - target)
    loss = n if beta < 1e-05 else torch.where(n < beta, 0.5 * n**2 / beta, n - 0.5 * beta)
    return _reduce(loss, reduction)


def _iou_terms(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float):
    """IoU, enclosing box corners and the boxes' coordinates, shared by the IoU losses."""
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    iw = (torch.min(x2, x2g) - torch.max(x1, x1g)).clamp(min=0)
    ih = (torch.min(y2, y2g) - torch.max(y1, y1g)).clamp(min=0)
    intsct = iw * ih
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsct
    iou = intsct / (union + eps)
    enclosing = (torch.min(x1, x1g), torch.min(y1, y1g), torch.max(x2, x2g), torch.max(y2, y2g))
    return iou, union, enclosing, (x1, y1, x2, y2), (x1g, y1g, x2g, y2g)


def giou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Generalized Intersection over Union loss (Rezatofighi et al., 2019).

    Args:
        boxes1 (Tensor[..., 4]): boxes in (x1, y1, x2, y2) format, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (Tensor[..., 4]): boxes of the same shape.
        reduction: 'none' | 'mean' | 'sum'.
        eps: small number to prevent division by zero.

    Returns:
        Tensor[...]: ``1 - GIoU`` per pair for 'none', else a scalar.
    """
    _check_reduction(reduction, "giou_loss")
    _check_box_pair(boxes1, boxes2, "giou_loss")
    iou, union, (xc1, yc1, xc2, yc2), _, _ = _iou_terms(boxes1, boxes2, eps)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    loss = 1 - (iou - (area_c - union) / (area_c + eps))
    return _reduce(loss, reduction)


def _diou_terms(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float):
    iou, _, (xc1, yc1, xc2, yc2), p, g = _iou_terms(boxes1, boxes2, eps)
    diag_len = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    x_p, y_p = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
    x_g, y_g = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2
    distance = (x_p - x_g) ** 2 + (y_p - y_g) ** 2
    return iou, distance / diag_len, p, g


def diou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Distance Intersection over Union loss (Zheng et al., 2020).

    ``1 - IoU + d² / c²`` with ``d`` the distance of the box centres and ``c`` the
    diagonal of the smallest enclosing box.

    Args:
        boxes1 (Tensor[..., 4]): boxes in (x1, y1, x2, y2) format, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (Tensor[..., 4]): boxes of the same shape.
        reduction: 'none' | 'mean' | 'sum'.
        eps: small number to prevent division by zero.
    """
    _check_reduction(reduction, "diou_loss")
    _check_box_pair(boxes1, boxes2, "diou_loss")
    iou, penalty, _, _ = _diou_terms(boxes1, boxes2, eps)
    return _reduce(1 - iou + penalty, reduction)


def ciou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Complete Intersection over Union loss (Zheng et al., 2021).

    The DIoU loss plus an aspect-ratio consistency term ``alpha * v``, where ``alpha`` is
    treated as a constant in the backward pass.

    Args:
        boxes1 (Tensor[..., 4]): boxes in (x1, y1, x2, y2) format, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (Tensor[..., 4]): boxes of the same shape.
        reduction: 'none' | 'mean' | 'sum'.
        eps: small number to prevent division by zero.
    """
    _check_reduction(reduction, "ciou_loss")
    _check_box_pair(boxes1, boxes2, "ciou_loss")
    iou, penalty, p, g = _diou_terms(boxes1, boxes2, eps)
    w_pred, h_pred = p[2] - p[0], p[3] - p[1]
    w_gt, h_gt = g[2] - g[0], g[3] - g[1]
    v = (4 / (math.pi**2)) * torch.pow(torch.atan(w_gt / h_gt) - torch.atan(w_pred / h_pred), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(1 - iou + penalty + alpha * v, reduction)


def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = -1,
    gamma: float = 2,
    reduction: str = "none",
) -> torch.Tensor:
    """Loss used in RetinaNet for dense detection: https://arxiv.org/abs/1708.02002.

    Args:
        inputs (Tensor): the predictions (logits) for each example, any shape.
        targets (Tensor): the binary classification label for each element in inputs
            (0 for the negative class and 1 for the positive class), same shape.
        alpha: weighting factor in (0, 1) to balance positive vs negative examples;
            a negative value means no weighting.
        gamma: exponent of the modulating factor (1 - p_t) to balance easy vs hard
            examples.
        reduction: 'none' | 'mean' | 'sum'.

    Returns:
        Tensor: the loss (float32 or float64), per element for 'none', else a scalar.

    The defaults (``alpha=-1``, no weighting) are detectron2's; torchvision's
    ``sigmoid_focal_loss`` defaults to ``alpha=0.25``.
    """
    _check_reduction(reduction, "sigmoid_focal_loss")
    inputs, targets = _as_float(inputs), _as_float(targets)
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return _reduce(loss, reduction)


def sigmoid_focal_loss_star(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = -1,
    gamma: float = 1,
    reduction: str = "none",
) -> torch.Tensor:
    """FL* described in RetinaNet paper Appendix: https://arxiv.org/abs/1708.02002.

    ``-log(sigmoid(gamma * x_t)) / gamma`` with ``x_t = x`` for positives and ``-x`` for
    negatives.

    Args:
        inputs (Tensor): the predictions (logits) for each example, any shape.
        targets (Tensor): the binary classification label for each element in inputs, same
            shape.
        alpha: weighting factor in (0, 1) to balance positive vs negative examples;
            a negative value means no weighting.
        gamma: gamma parameter described in FL*; must be positive.
        reduction: 'none' | 'mean' | 'sum'.
    """
    _check_reduction(reduction, "sigmoid_focal_loss_star")
    if gamma <= 0:
        raise ValueError(f"sigmoid_focal_loss_star: gamma must be positive, got {gamma}")
    inputs, targets = _as_float(inputs), _as_float(targets)
    shifted_inputs = gamma * (inputs * (2 * targets - 1))
    loss = -F.logsigmoid(shifted_inputs) / gamma
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = loss * alpha_t
    return _reduce(loss, reduction)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64, everything else is computed in float32 (as detectron2)."""
    return x if x.dtype == torch.float64 else x.float()
