import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import vt_ops

# the oracle; torch builds without a matching torchvision skip these tests
torchvision = pytest.importorskip("torchvision")


def reference_ioa(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return torch.where(inter > 0, inter / area_b, torch.zeros_like(inter))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (300, 257)])
def test_box_iou_matches_torchvision(make_boxes, dtype, shape):
    a, b = make_boxes(shape[0], dtype=dtype), make_boxes(shape[1], dtype=dtype)
    ours = vt_ops.box_iou(a, b)
    assert ours.dtype == dtype and ours.shape == shape
    torch.testing.assert_close(ours, torchvision.ops.box_iou(a, b))


def test_box_ioa_matches_reference(make_boxes):
    a, b = make_boxes(50, dtype=torch.float64), make_boxes(40, dtype=torch.float64)
    torch.testing.assert_close(vt_ops.box_ioa(a, b), reference_ioa(a, b))


def test_numpy_in_numpy_out(make_boxes):
    a = make_boxes(20, dtype=torch.float64)
    out = vt_ops.box_iou(a.numpy(), a.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, torchvision.ops.box_iou(a, a).numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.diag(out), 1.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_return_their_dtype(make_boxes, dtype):
    a = make_boxes(30)
    ours = vt_ops.box_iou(a.to(dtype), a.to(dtype))
    assert ours.dtype == dtype
    expected = torchvision.ops.box_iou(a.to(dtype).float(), a.to(dtype).float()).to(dtype)
    torch.testing.assert_close(ours, expected)


def test_mixed_dtypes_promote(make_boxes):
    a = make_boxes(5)
    assert vt_ops.box_iou(a, a.double()).dtype == torch.float64


def test_empty_inputs_give_empty_matrix(make_boxes):
    a = make_boxes(4)
    assert vt_ops.box_iou(a[:0], a).shape == (0, 4)
    assert vt_ops.box_iou(a, a[:0]).shape == (4, 0)
    assert vt_ops.box_iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 0)


def test_degenerate_and_nan_boxes_are_documented():
    boxes = torch.tensor([[0, 0, 0, 0], [5, 5, 1, 1], [0, 0, 2, 2], [0, 0, float("nan"), 2]])
    iou = vt_ops.box_iou(boxes, boxes)
    assert iou[0, 0] == 0 and iou[1, 1] == 0  # empty boxes: 0, not 0/0
    assert iou[2, 2] == 1 and iou[1, 2] == 0
    assert torch.isnan(iou[3]).all() and torch.isnan(iou[:, 3]).all()


def test_non_contiguous_and_grad_inputs(make_boxes):
    a = make_boxes(10, dtype=torch.float64)
    strided = torch.cat([a, a], dim=1)[:, ::2]  # non-contiguous view
    assert not strided.is_contiguous()
    torch.testing.assert_close(vt_ops.box_iou(strided, a), torchvision.ops.box_iou(strided, a))
    torch.testing.assert_close(
        vt_ops.box_iou(a.requires_grad_(), a), torchvision.ops.box_iou(a, a).detach()
    )


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((torch.zeros(3, 5), torch.zeros(2, 4)), ValueError, r"boxes1: expected shape \(\*, 4\)"),
        ((torch.zeros(3, 4), torch.zeros(4)), ValueError, "boxes2: expected shape"),
        (
            (torch.zeros(3, 4, dtype=torch.int64), torch.zeros(2, 4)),
            TypeError,
            "boxes1: expected a floating dtype",
        ),
        ((torch.zeros(3, 4), np.zeros((2, 4))), TypeError, "same library"),
        (([[0, 0, 1, 1]], torch.zeros(2, 4)), TypeError, "boxes1: expected a numpy array"),
    ],
)
def test_bad_input_names_the_argument(args, error, message):
    with pytest.raises(error, match=message):
        vt_ops.box_iou(*args)


def test_torch_compile_fullgraph(make_boxes):
    a, b = make_boxes(64), make_boxes(32)

    @torch.compile(fullgraph=True, backend="eager")
    def f(x, y):
        return vt_ops.box_iou(x, y).max(dim=1).values

    torch.testing.assert_close(f(a, b), torchvision.ops.box_iou(a, b).max(dim=1).values)


def test_registered_as_torch_custom_op(make_boxes):
    a = make_boxes(8)
    torch.testing.assert_close(torch.ops.vt_ops.box_overlap(a, a, 0), vt_ops.box_iou(a, a))
    torch.library.opcheck(torch.ops.vt_ops.box_overlap.default, (a, make_boxes(5), 0))


finite = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 12), st.just(4)), elements=finite),
    hnp.arrays(np.float64, st.tuples(st.integers(0, 12), st.just(4)), elements=finite),
)
def test_property_matches_torchvision_on_any_boxes(a, b):
    # sort coordinates so x1 <= x2, y1 <= y2 (torchvision's precondition)
    a = np.concatenate([np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])], axis=1)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    ours = vt_ops.box_iou(a, b)
    expected = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = np.nan_to_num(expected, nan=0.0)  # 0/0 for two empty boxes is 0 here
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)
    assert ((ours >= 0) & (ours <= 1)).all()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(make_boxes, dtype):
    a, b = make_boxes(1000, dtype=dtype), make_boxes(700, dtype=dtype)
    ours = vt_ops.box_iou(a.cuda(), b.cuda())
    assert ours.is_cuda
    torch.testing.assert_close(ours.cpu(), vt_ops.box_iou(a, b))
