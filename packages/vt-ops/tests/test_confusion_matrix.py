import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import vt_ops

KERNEL_DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64]


def reference_confusion(pred, label, num_classes, ignore_index):
    """numpy.bincount over label * C + pred of the non-ignored elements."""
    label = np.asarray(label).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    keep = label != ignore_index
    bins = label[keep] * num_classes + pred[keep]
    return np.bincount(bins, minlength=num_classes**2).reshape(num_classes, num_classes)


@st.composite
def label_maps(draw):
    num_classes = draw(st.integers(1, 40))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=24))
    pred_dtype = draw(st.sampled_from(KERNEL_DTYPES))
    label_dtype = draw(st.sampled_from(KERNEL_DTYPES))
    top = min(num_classes, np.iinfo(pred_dtype).max + 1, np.iinfo(label_dtype).max + 1)
    label = draw(hnp.arrays(label_dtype, shape, elements=st.integers(0, top - 1)))
    pred = draw(hnp.arrays(pred_dtype, shape, elements=st.integers(0, top - 1)))
    ignore_index = draw(st.sampled_from([-1, 0, top - 1, 255, 2**40]))
    if (
        draw(st.booleans())
        and label.size
        and np.iinfo(label_dtype).min <= ignore_index <= np.iinfo(label_dtype).max
    ):
        # Some ignored elements, whose predictions may be anything.
        where = draw(hnp.arrays(np.bool_, shape))
        label[where] = ignore_index
        pred[where] = np.iinfo(pred_dtype).max
    return pred, label, num_classes, ignore_index


@settings(max_examples=300, deadline=None)
@given(label_maps())
def test_matches_numpy_bincount(case):
    pred, label, num_classes, ignore_index = case
    ours = vt_ops.confusion_matrix(pred, label, num_classes, ignore_index)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.int64
    assert ours.shape == (num_classes, num_classes)
    np.testing.assert_array_equal(ours, reference_confusion(pred, label, num_classes, ignore_index))


@settings(max_examples=100, deadline=None)
@given(label_maps(), st.data())
def test_out_of_range_values_raise_and_leave_out_unchanged(case, data):
    pred, label, num_classes, ignore_index = case
    if label.size == 0:
        return
    flat = data.draw(st.integers(0, label.size - 1))
    target = data.draw(st.sampled_from(["label", "pred"]))
    arr = label if target == "label" else pred
    info = np.iinfo(arr.dtype)
    bad = [v for v in (-1, num_classes, info.max) if info.min <= v <= info.max]
    bad = [v for v in bad if v != ignore_index and not 0 <= v < num_classes]
    if not bad:
        return
    arr.flat[flat] = data.draw(st.sampled_from(bad))
    if target == "pred" and label.flat[flat] == ignore_index:
        label.flat[flat] = 0 if ignore_index != 0 else num_classes - 1
        if label.flat[flat] == ignore_index:
            return
    out = np.full((num_classes, num_classes), 7, dtype=np.int64)
    with pytest.raises(ValueError, match=f"{target}: .*outside \\[0, {num_classes}\\)"):
        vt_ops.confusion_matrix(pred, label, num_classes, ignore_index, out=out)
    assert (out == 7).all()


def test_predictions_at_ignored_elements_are_not_checked():
    label = np.array([255, 1, 0])
    pred = np.array([-5, 1, 1])
    np.testing.assert_array_equal(vt_ops.confusion_matrix(pred, label, 2), [[0, 1], [0, 1]])


def test_out_accumulates_a_data_set(make_label_pair):
    out = np.zeros((19, 19), dtype=np.int64)
    expected = np.zeros_like(out)
    for seed in range(5):
        pred, label = make_label_pair(seed, (64, 96))
        assert vt_ops.confusion_matrix(pred, label, 19, out=out) is out
        expected += reference_confusion(pred, label, 19, 255)
    np.testing.assert_array_equal(out, expected)


def test_threads_and_large_class_counts(make_label_pair):
    pred, label = make_label_pair(1, (300, 517), num_classes=300)  # > interleaved-histogram size
    expected = reference_confusion(pred, label, 300, 255)
    previous = vt_ops.get_num_threads()
    try:
        for threads in (1, 2, 3):
            vt_ops.set_num_threads(threads)
            np.testing.assert_array_equal(vt_ops.confusion_matrix(pred, label, 300), expected)
    finally:
        vt_ops.set_num_threads(previous)


def test_torch_in_torch_out_and_agrees_with_torchmetrics(make_label_pair):
    classification = pytest.importorskip("torchmetrics.functional.classification")
    multiclass_confusion_matrix = classification.multiclass_confusion_matrix

    pred, label = make_label_pair(2, (2, 128, 160))
    tp, tl = torch.from_numpy(pred), torch.from_numpy(label).long()
    ours = vt_ops.confusion_matrix(tp, tl, 19)
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.int64
    expected = multiclass_confusion_matrix(tp, tl, 19, ignore_index=255, validate_args=False)
    torch.testing.assert_close(ours, expected)
    out = torch.zeros(19, 19, dtype=torch.int64)
    vt_ops.confusion_matrix(tp, tl, 19, out=out)
    vt_ops.confusion_matrix(tp, tl, 19, out=out)
    torch.testing.assert_close(out, 2 * expected)


def test_torch_custom_op_passes_opcheck(make_label_pair):
    pred, label = make_label_pair(3, (33, 47))
    vt_ops.register_torch_ops()
    torch.library.opcheck(
        torch.ops.vt_ops.confusion_counts,
        (torch.from_numpy(pred), torch.from_numpy(label), 19, 255),
    )


def test_bool_uint32_and_strided_inputs():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, (40, 30)).astype(bool)
    b = rng.integers(0, 2, (40, 30)).astype(np.uint32)
    np.testing.assert_array_equal(
        vt_ops.confusion_matrix(a, b, 2), reference_confusion(a, b, 2, 255)
    )
    strided = rng.integers(0, 5, (40, 60))[:, ::2]
    np.testing.assert_array_equal(
        vt_ops.confusion_matrix(strided, strided.T.copy().T, 5),
        np.diag(np.bincount(strided.ravel(), minlength=5)),
    )
    t = torch.from_numpy(strided)
    assert not t.is_contiguous()
    assert vt_ops.confusion_matrix(t, t, 5).trace() == strided.size


def test_empty_inputs_give_zeros():
    out = vt_ops.confusion_matrix(np.zeros((0, 5), np.int64), np.zeros((0, 5), np.uint8), 3)
    np.testing.assert_array_equal(out, np.zeros((3, 3)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pred": np.zeros(3, np.float32)}, TypeError, "pred: expected an integer"),
        ({"label": np.zeros(3, np.uint64)}, TypeError, "label: expected an integer"),
        ({"label": np.zeros(4, np.int64)}, ValueError, "same shape"),
        ({"label": torch.zeros(3, dtype=torch.int64)}, TypeError, "same library"),
        ({"num_classes": 0}, ValueError, "num_classes: expected a positive"),
        # found by fuzzing: C * C overflowed int64 in the allocation
        ({"num_classes": 2**62}, ValueError, "num_classes: expected a positive number of at most"),
        ({"num_classes": 2.0}, TypeError, "num_classes: expected an int"),
        ({"ignore_index": "x"}, TypeError, "ignore_index: expected an int"),
        ({"out": np.zeros((3, 3), np.int32)}, TypeError, "out: expected int64"),
        ({"out": np.zeros((2, 3), np.int64)}, ValueError, "out: expected shape"),
        ({"pred": [0, 1, 2]}, TypeError, "pred: expected a numpy array"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    args = {"pred": np.zeros(3, np.int64), "label": np.zeros(3, np.int64), "num_classes": 3}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        vt_ops.confusion_matrix(**args)


@pytest.mark.cuda
@pytest.mark.parametrize("num_classes", [2, 19, 150, 300])  # shared, opt-in shared, global
def test_cuda_matches_cpu(make_label_pair, num_classes):
    pred, label = make_label_pair(4, (3, 512, 1024), num_classes=num_classes)
    expected = vt_ops.confusion_matrix(pred, label, num_classes)
    tp = torch.from_numpy(pred).cuda()
    tl = torch.from_numpy(label).cuda()
    ours = vt_ops.confusion_matrix(tp, tl, num_classes)
    assert ours.device == tp.device
    np.testing.assert_array_equal(ours.cpu().numpy(), expected)
    tl[0, 0, 0] = num_classes
    with pytest.raises(ValueError, match="label: 1 elements"):
        vt_ops.confusion_matrix(tp, tl, num_classes)


def test_numpy_path_without_torch():
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, vt_ops\n"
        "m = vt_ops.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 255], np.uint8), 3)\n"
        "assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0]], m\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
