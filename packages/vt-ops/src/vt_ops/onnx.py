"""ONNX export of the vt_ops torch ops through their registration.

``torch.onnx.export(model, args, dynamo=True,
custom_translation_table=vt_ops.onnx_translation_table())`` exports models
that call :func:`vt_ops.nms` and :func:`vt_ops.roi_align` on torch tensors:
the custom ops ``vt_ops::nms`` and ``vt_ops::roi_align`` become the standard
ONNX ``NonMaxSuppression`` and ``RoiAlign`` operators (opset 18), so the
exported model runs in onnxruntime without vt_ops. Needs ``onnxscript``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["onnx_translation_table"]


def onnx_translation_table() -> dict[Any, Callable[..., Any]]:
    """Translations of the vt_ops custom ops for ``torch.onnx.export(..., dynamo=True)``.

    Returns:
        dict: ``{torch.ops.vt_ops.nms.default: ..., torch.ops.vt_ops.roi_align.default: ...}``,
        the ``custom_translation_table`` argument of ``torch.onnx.export``.

    ``nms`` keeps the same boxes as the eager op for valid boxes (x1 <= x2,
    y1 <= y2; ONNX reorders inverted corners); ``roi_align`` maps
    ``aligned=True`` to ``coordinate_transformation_mode='half_pixel'`` and
    ``aligned=False`` to ``'output_half_pixel'``. Rotated boxes have no ONNX
    operator: exporting ``roi_align_rotated`` raises NotImplementedError.
    """
    from onnxscript import INT64
    from onnxscript import opset18 as op

    from vt_ops._torch_registry import torch_ops

    ops = torch_ops()

    def nms(boxes: Any, scores: Any, iou_threshold: float, score_threshold: float, max_output: int):
        # NonMaxSuppression works on (batch, class) planes: one batch, one class.
        planes = op.Unsqueeze(boxes, op.Constant(value_ints=[0]))
        plane_scores = op.Unsqueeze(scores, op.Constant(value_ints=[0, 1]))
        if max_output < 0:  # all: the number of boxes
            limit = op.Shape(boxes, start=0, end=1)
        else:
            limit = op.Constant(value_ints=[max_output])
        iou = op.Constant(value_floats=[iou_threshold])
        if score_threshold == float("-inf"):
            selected = op.NonMaxSuppression(planes, plane_scores, limit, iou)
        else:
            score = op.Constant(value_floats=[score_threshold])
            selected = op.NonMaxSuppression(planes, plane_scores, limit, iou, score)
        # (batch, class, box) rows, by decreasing score
        column = op.Gather(selected, op.Constant(value_ints=[2]), axis=1)
        return op.Reshape(column, op.Constant(value_ints=[-1]))

    def roi_align(
        input: Any,
        rois: Any,
        spatial_scale: float,
        pooled_height: int,
        pooled_width: int,
        sampling_ratio: int,
        aligned: bool,
        rotated: bool,
    ):
        if rotated:
            raise NotImplementedError("roi_align_rotated has no ONNX operator")
        index = op.Gather(rois, op.Constant(value_ints=[0]), axis=1)
        batch = op.Cast(op.Reshape(index, op.Constant(value_ints=[-1])), to=INT64.dtype)
        boxes = op.Slice(
            rois, op.Constant(value_ints=[1]), op.Constant(value_ints=[5]),
            op.Constant(value_ints=[1]),
        )  # fmt: skip
        return op.RoiAlign(
            input,
            boxes,
            batch,
            mode="avg",
            output_height=pooled_height,
            output_width=pooled_width,
            sampling_ratio=max(sampling_ratio, 0),
            spatial_scale=spatial_scale,
            coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
        )

    return {ops.nms.default: nms, ops.roi_align.default: roi_align}
