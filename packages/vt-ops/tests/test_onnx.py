"""ONNX export of vt_ops.nms / vt_ops.roi_align (torch.onnx.export(dynamo=True)) against eager."""

import numpy as np
import pytest
import torch

import vt_ops

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


class Detector(torch.nn.Module):
    def __init__(self, score_threshold, max_output, aligned, sampling_ratio):
        super().__init__()
        self.args = (score_threshold, max_output, aligned, sampling_ratio)

    def forward(self, features, boxes, scores):
        score_threshold, max_output, aligned, sampling_ratio = self.args
        keep = vt_ops.nms(
            boxes, scores, 0.5, score_threshold=score_threshold, max_output=max_output
        )
        rois = torch.cat([torch.arange(2).repeat(5)[:, None].float(), boxes[:10]], dim=1)
        pooled = vt_ops.roi_align(features, rois, (3, 4), 0.5, sampling_ratio, aligned)
        return keep, pooled


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 3, 16, 20, generator=g)
    xy = torch.rand(30, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + torch.rand(30, 2, generator=g) * 12 + 0.5], dim=1)
    return features, boxes, torch.rand(30, generator=g)


@pytest.mark.parametrize(
    "score_threshold, max_output, aligned, sampling_ratio",
    [(None, None, True, 2), (0.3, 5, False, -1), (None, 0, True, 0)],
)
def test_exported_model_matches_eager(
    tmp_path, score_threshold, max_output, aligned, sampling_ratio
):
    model = Detector(score_threshold, max_output, aligned, sampling_ratio).eval()
    program = torch.onnx.export(
        model,
        _inputs(0),
        dynamo=True,
        custom_translation_table=vt_ops.onnx_translation_table(),
        verbose=False,
    )
    path = tmp_path / "model.onnx"
    program.save(str(path))
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert {"NonMaxSuppression", "RoiAlign"} <= ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in (1, 2):  # other data than the export's: nothing was folded into constants
        inputs = _inputs(seed)
        feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
        keep, pooled = session.run(None, feed)
        eager_keep, eager_pooled = model(*inputs)
        np.testing.assert_array_equal(keep, eager_keep.numpy())
        np.testing.assert_allclose(pooled, eager_pooled.numpy(), rtol=1e-5, atol=1e-5)


def test_rotated_roi_align_has_no_onnx_operator():
    class Rotated(torch.nn.Module):
        def forward(self, features, rois):
            return vt_ops.roi_align_rotated(features, rois, 2)

    rois = torch.tensor([[0.0, 4, 4, 3, 2, 30]])
    with pytest.raises(Exception, match="roi_align_rotated has no ONNX operator"):
        torch.onnx.export(
            Rotated().eval(),
            (torch.randn(1, 1, 8, 8), rois),
            dynamo=True,
            custom_translation_table=vt_ops.onnx_translation_table(),
        )
