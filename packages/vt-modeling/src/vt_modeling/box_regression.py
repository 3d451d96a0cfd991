"""Box <-> delta parameterisations used by the R-CNN, RetinaNet and FCOS heads."""

from __future__ import annotations

import math
from typing import Any

import torch

from vt_layers import ciou_loss, diou_loss, giou_loss, smooth_l1_loss

__all__ = ["Box2BoxTransform", "Box2BoxTransformLinear", "Box2BoxTransformRotated"]

# Prevent exp() overflow for very large predicted log-scales (detectron2's default).
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def _check_weights(weights: tuple[float, ...], n: int) -> tuple[float, ...]:
    weights = tuple(float(w) for w in weights)
    if len(weights) != n:
        raise ValueError(f"weights: expected {n} values, got {len(weights)}")
    return weights


def _check_positive_size(widths: torch.Tensor, heights: torch.Tensor, name: str) -> None:
    if not bool(((widths > 0) & (heights > 0)).all()):
        raise ValueError(f"{name}: every box needs a positive width and height")


class Box2BoxTransform:
    """The R-CNN box transformation: deltas (dx, dy, dw, dh) move and scale a box.

    dx, dy are the center shift relative to the box size, dw, dh the log-scale
    change; each multiplied by its weight.
    """

    def __init__(
        self, weights: tuple[float, float, float, float], scale_clamp: float = _DEFAULT_SCALE_CLAMP
    ):
        """
        Args:
            weights (4-element tuple): scaling factors applied to (dx, dy, dw, dh).
            scale_clamp (float): dw and dh are clamped to this value before exp().
        """
        self.weights = _check_weights(weights, 4)
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas that transform ``src_boxes`` into ``target_boxes``.

        Args:
            src_boxes (Tensor[N, 4]): source boxes (x1, y1, x2, y2), positive size.
            target_boxes (Tensor[N, 4]): target boxes.

        Returns:
            Tensor[N, 4]: (dx, dy, dw, dh).
        """
        if not isinstance(src_boxes, torch.Tensor) or not isinstance(target_boxes, torch.Tensor):
            raise TypeError("src_boxes and target_boxes must be tensors")
        src_widths = src_boxes[:, 2] - src_boxes[:, 0]
        src_heights = src_boxes[:, 3] - src_boxes[:, 1]
        _check_positive_size(src_widths, src_heights, "src_boxes")
        src_ctr_x = src_boxes[:, 0] + 0.5 * src_widths
        src_ctr_y = src_boxes[:, 1] + 0.5 * src_heights
        target_widths = target_boxes[:, 2] - target_boxes[:, 0]
        target_heights = target_boxes[:, 3] - target_boxes[:, 1]
        target_ctr_x = target_boxes[:, 0] + 0.5 * target_widths
        target_ctr_y = target_boxes[:, 1] + 0.5 * target_heights

        wx, wy, ww, wh = self.weights
        dx = wx * (target_ctr_x - src_ctr_x) / src_widths
        dy = wy * (target_ctr_y - src_ctr_y) / src_heights
        dw = ww * torch.log(target_widths / src_widths)
        dh = wh * torch.log(target_heights / src_heights)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Apply ``deltas`` to ``boxes``.

        Args:
            deltas (Tensor[N, k*4]): k deltas per box (e.g. one per class).
            boxes (Tensor[N, 4]): boxes to transform.

        Returns:
            Tensor[N, k*4]: transformed boxes, in the float dtype of ``deltas``.
        """
        deltas = deltas.float() if not deltas.is_floating_point() else deltas
        boxes = boxes.to(deltas.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights

        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.scale_clamp)

        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        x1 = pred_ctr_x - 0.5 * pred_w
        y1 = pred_ctr_y - 0.5 * pred_h
        x2 = pred_ctr_x + 0.5 * pred_w
        y2 = pred_ctr_y + 0.5 * pred_h
        return torch.stack((x1, y1, x2, y2), dim=-1).reshape(deltas.shape)


class Box2BoxTransformRotated:
    """The R-CNN transformation for rotated boxes (cx, cy, w, h, angle degrees).

    Deltas are (dx, dy, dw, dh, da); the angle delta is wrapped into
    [-180, 180) degrees and expressed in radians before its weight.
    """

    def __init__(
        self,
        weights: tuple[float, float, float, float, float],
        scale_clamp: float = _DEFAULT_SCALE_CLAMP,
    ):
        """
        Args:
            weights (5-element tuple): scaling factors applied to (dx, dy, dw, dh, da).
            scale_clamp (float): dw and dh are clamped to this value before exp().
        """
        self.weights = _check_weights(weights, 5)
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            src_boxes (Tensor[N, 5]): source rotated boxes, positive width and height.
            target_boxes (Tensor[N, 5]): target rotated boxes.

        Returns:
            Tensor[N, 5]: (dx, dy, dw, dh, da).
        """
        src_ctr_x, src_ctr_y, src_widths, src_heights, src_angles = torch.unbind(src_boxes, dim=1)
        _check_positive_size(src_widths, src_heights, "src_boxes")
        target_ctr_x, target_ctr_y, target_widths, target_heights, target_angles = torch.unbind(
            target_boxes, dim=1
        )

        wx, wy, ww, wh, wa = self.weights
        dx = wx * (target_ctr_x - src_ctr_x) / src_widths
        dy = wy * (target_ctr_y - src_ctr_y) / src_heights
        dw = ww * torch.log(target_widths / src_widths)
        dh = wh * torch.log(target_heights / src_heights)
        da = (target_angles - src_angles + 180.0) % 360.0 - 180.0
        da = da * (wa * math.pi / 180.0)
        return torch.stack((dx, dy, dw, dh, da), dim=1)

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            deltas (Tensor[N, k*5]): k deltas per box.
            boxes (Tensor[N, 5]): rotated boxes to transform.

        Returns:
            Tensor[N, k*5]: transformed boxes; angles in [-180, 180).
        """
        if deltas.shape[1] % 5 != 0 or boxes.shape[1] != 5:
            raise ValueError(
                f"deltas must be N x (k*5) and boxes N x 5, got {tuple(deltas.shape)}, {tuple(boxes.shape)}"
            )
        boxes = boxes.to(deltas.dtype).unsqueeze(2)
        ctr_x, ctr_y, widths, heights, angles = (boxes[:, i] for i in range(5))
        wx, wy, ww, wh, wa = self.weights
        dx = deltas[:, 0::5] / wx
        dy = deltas[:, 1::5] / wy
        dw = torch.clamp(deltas[:, 2::5] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::5] / wh, max=self.scale_clamp)
        da = deltas[:, 4::5] / wa * (180.0 / math.pi)

        pred = torch.empty_like(deltas)
        pred[:, 0::5] = dx * widths + ctr_x
        pred[:, 1::5] = dy * heights + ctr_y
        pred[:, 2::5] = torch.exp(dw) * widths
        pred[:, 3::5] = torch.exp(dh) * heights
        pred[:, 4::5] = (da + angles + 180.0) % 360.0 - 180.0
        return pred


class Box2BoxTransformLinear:
    """The linear transformation of FCOS: deltas are the distances (left, top,
    right, bottom) from an anchor's center to the target box's sides."""

    def __init__(self, normalize_by_size: bool = True):
        """
        Args:
            normalize_by_size (bool): divide the distances by the anchor's size.
        """
        self.normalize_by_size = normalize_by_size

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            src_boxes (Tensor[N, 4]): anchors (only their centers and sizes are used).
            target_boxes (Tensor[N, 4]): target boxes.

        Returns:
            Tensor[N, 4]: (left, top, right, bottom) distances.
        """
        src_ctr_x = 0.5 * (src_boxes[:, 0] + src_boxes[:, 2])
        src_ctr_y = 0.5 * (src_boxes[:, 1] + src_boxes[:, 3])
        target_l = src_ctr_x - target_boxes[:, 0]
        target_t = src_ctr_y - target_boxes[:, 1]
        target_r = target_boxes[:, 2] - src_ctr_x
        target_b = target_boxes[:, 3] - src_ctr_y
        deltas = torch.stack((target_l, target_t, target_r, target_b), dim=1)
        if self.normalize_by_size:
            deltas = deltas / self._strides(src_boxes)
        return deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """
        Args:
            deltas (Tensor[N, k*4]): distances; negative values are clamped to 0.
            boxes (Tensor[N, 4]): anchors.

        Returns:
            Tensor[N, k*4]: the boxes.
        """
        deltas = torch.nn.functional.relu(deltas)
        boxes = boxes.to(deltas.dtype)
        ctr_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
        ctr_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
        if self.normalize_by_size:
            deltas = deltas * self._strides(boxes).repeat(1, deltas.shape[1] // 4)
        left, top, right, bottom = (
            deltas[:, 0::4],
            deltas[:, 1::4],
            deltas[:, 2::4],
            deltas[:, 3::4],
        )
        pred = torch.stack(
            (
                ctr_x[:, None] - left,
                ctr_y[:, None] - top,
                ctr_x[:, None] + right,
                ctr_y[:, None] + bottom,
            ),
            dim=-1,
        )
        return pred.reshape(deltas.shape)

    @staticmethod
    def _strides(boxes: torch.Tensor) -> torch.Tensor:
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        return torch.stack([w, h, w, h], dim=1)


def _dense_box_regression_loss(
    anchors: list[Any],
    box2box_transform: Box2BoxTransform | Box2BoxTransformLinear,
    pred_anchor_deltas: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    fg_mask: torch.Tensor | Any,
    box_reg_loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> torch.Tensor:
    """Box regression loss summed over the foreground anchors of a dense detector.

    Args:
        anchors (list[Boxes] | list[Tensor[R, 4]]): anchors of each feature level.
        box2box_transform: the transformation between anchors and boxes.
        pred_anchor_deltas (list[Tensor[N, R_i, 4]]): predicted deltas of each level.
        gt_boxes (list[Tensor[R, 4]]): the matched ground-truth box of every anchor, per image.
        fg_mask (Tensor[N, R] bool or ``...``): the foreground anchors.
        box_reg_loss_type (str): "smooth_l1", "giou", "diou" or "ciou".
        smooth_l1_beta (float): beta of the smooth L1 loss.
    """
    if isinstance(anchors[0], torch.Tensor):
        anchors_tensor = torch.cat(anchors)
    else:
        anchors_tensor = type(anchors[0]).cat(anchors).tensor
    pred = torch.cat(pred_anchor_deltas, dim=1)
    if box_reg_loss_type == "smooth_l1":
        gt_anchor_deltas = torch.stack(
            [box2box_transform.get_deltas(anchors_tensor, k) for k in gt_boxes]
        )
        return smooth_l1_loss(
            pred[fg_mask], gt_anchor_deltas[fg_mask], beta=smooth_l1_beta, reduction="sum"
        )
    losses = {"giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss}
    if box_reg_loss_type not in losses:
        raise ValueError(f"Invalid dense box regression loss type '{box_reg_loss_type}'")
    pred_boxes = torch.stack([box2box_transform.apply_deltas(k, anchors_tensor) for k in pred])
    return losses[box_reg_loss_type](
        pred_boxes[fg_mask], torch.stack(gt_boxes)[fg_mask], reduction="sum"
    )
