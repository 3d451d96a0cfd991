import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import vt_ops

# the oracle; torch builds without a matching torchvision skip these tests
torchvision = pytest.importorskip("torchvision")


def _load_rotated_helpers():
    """shapely_iou and random_rotated from test_box_iou_rotated (importlib mode: no imports)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).with_name("test_box_iou_rotated.py")
    spec = importlib.util.spec_from_file_location("_rotated_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.shapely_iou, module.random_rotated


shapely_iou, random_rotated = _load_rotated_helpers()


def torchvision_iou(boxes: np.ndarray, i: int, j: int) -> float:
    """IoU as torchvision's CPU NMS computes it, in the boxes' dtype."""
    a, b = boxes[i], boxes[j]
    area = lambda x: (x[2] - x[0]) * (x[3] - x[1])  # noqa: E731
    w = max(min(a[2], b[2]) - max(a[0], b[0]), a.dtype.type(0))
    h = max(min(a[3], b[3]) - max(a[1], b[1]), a.dtype.type(0))
    inter = w * h
    with np.errstate(invalid="ignore"):
        return float(inter / (area(a) + area(b) - inter))


def reference_nms(
    boxes, scores, iou_threshold, idxs=None, score_threshold=None, max_output=None, iou=None
):
    """Slow, obviously correct greedy NMS with the documented visiting order."""
    iou = iou or torchvision_iou
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")
    keep = []
    for i in order:
        if score_threshold is not None and not scores[i] > score_threshold:
            continue
        same = [k for k in keep if idxs is None or idxs[k] == idxs[i]]
        if any(iou(boxes, k, i) > iou_threshold for k in same):
            continue
        keep.append(int(i))
    return np.array(keep[:max_output], dtype=np.int64)


def rotated_iou_fn(boxes):
    matrix = shapely_iou(boxes, boxes)
    return lambda _, i, j: matrix[i, j]


def random_case(n, size=100.0, dtype=torch.float32, classes=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 4 + 1
    boxes = torch.cat([xy, xy + wh], dim=1).to(dtype)
    scores = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
    idxs = None if classes is None else torch.randint(0, classes, (n,), generator=g)
    return boxes, scores, idxs


def assert_same_keep(ours, expected):
    assert ours.dtype == torch.int64
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


# --- axis-aligned: torchvision is the oracle -------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 10, 500, 3000])
@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.9])
def test_nms_matches_torchvision(n, dtype, iou_threshold):
    boxes, scores, _ = random_case(n, dtype=dtype, seed=n)
    assert_same_keep(
        vt_ops.nms(boxes, scores, iou_threshold),
        torchvision.ops.nms(boxes, scores, iou_threshold),
    )


@pytest.mark.parametrize("n", [20, 3000, 6000])  # torchvision switches strategy above 4000
@pytest.mark.parametrize("classes", [1, 5, 80])
def test_batched_nms_matches_torchvision(n, classes):
    boxes, scores, idxs = random_case(n, dtype=torch.float64, classes=classes, seed=n + classes)
    assert_same_keep(
        vt_ops.batched_nms(boxes, scores, idxs, 0.5),
        torchvision.ops.batched_nms(boxes, scores, idxs, 0.5),
    )


@pytest.mark.parametrize("offset", [1e9, -1e9, 3e15])
def test_batched_nms_exact_for_any_coordinates(offset):
    # Boxes far from the origin: a coordinate-offset trick loses them to rounding.
    boxes, scores, idxs = random_case(400, dtype=torch.float64, classes=7, seed=1)
    boxes = boxes + offset
    expected = reference_nms(boxes.numpy(), scores.numpy(), 0.5, idxs=idxs.numpy())
    np.testing.assert_array_equal(vt_ops.batched_nms(boxes, scores, idxs, 0.5).numpy(), expected)


def test_batched_nms_arbitrary_category_labels():
    boxes, scores, idxs = random_case(300, dtype=torch.float64, classes=4, seed=2)
    labels = torch.tensor([-(2**62), -3, 17, 2**62])[idxs]  # sparse, negative, huge
    expected = vt_ops.batched_nms(boxes, scores, idxs, 0.5)
    assert_same_keep(vt_ops.batched_nms(boxes, scores, labels, 0.5), expected)
    labels32 = torch.tensor([-7, 0, 5, 2**31 - 1], dtype=torch.int32)[idxs]
    assert_same_keep(vt_ops.batched_nms(boxes, scores, labels32, 0.5), expected)


def test_ties_are_visited_by_index():
    # Identical boxes with equal scores: the lowest index survives, on every path.
    boxes = torch.tensor([[0, 0, 10, 10]] * 4 + [[50, 50, 60, 60]] * 3, dtype=torch.float32)
    scores = torch.tensor([0.5, 0.9, 0.9, 0.1, 0.7, 0.7, 0.7])
    assert vt_ops.nms(boxes, scores, 0.5).tolist() == [1, 4]
    idxs = torch.tensor([0, 1, 1, 0, 2, 3, 2])
    assert vt_ops.batched_nms(boxes, scores, idxs, 0.5).tolist() == [1, 4, 5, 0]
    equal = torch.ones(6)
    spread = torch.tensor([[i * 100.0, 0, i * 100.0 + 10, 10] for i in range(6)])
    assert vt_ops.nms(spread, equal, 0.5).tolist() == list(range(6))


@pytest.mark.parametrize("score_threshold", [None, 0.3, 0.95])
@pytest.mark.parametrize("max_output", [None, 0, 1, 25])
def test_score_threshold_and_max_output(score_threshold, max_output):
    boxes, scores, idxs = random_case(400, dtype=torch.float64, classes=6, seed=3)
    b, s, c = boxes.numpy(), scores.numpy(), idxs.numpy()
    for ours, expected in [
        (
            vt_ops.nms(b, s, 0.4, score_threshold=score_threshold, max_output=max_output),
            reference_nms(b, s, 0.4, score_threshold=score_threshold, max_output=max_output),
        ),
        (
            vt_ops.batched_nms(
                b, s, c, 0.4, score_threshold=score_threshold, max_output=max_output
            ),
            reference_nms(
                b, s, 0.4, idxs=c, score_threshold=score_threshold, max_output=max_output
            ),
        ),
    ]:
        np.testing.assert_array_equal(ours, expected)


def test_numpy_in_numpy_out():
    boxes, scores, _ = random_case(200, seed=4)
    keep = vt_ops.nms(boxes.numpy(), scores.numpy(), 0.5)
    assert isinstance(keep, np.ndarray) and keep.dtype == np.int64
    np.testing.assert_array_equal(keep, torchvision.ops.nms(boxes, scores, 0.5).numpy())
    keep = vt_ops.batched_nms(boxes.numpy(), scores.numpy(), idxs_np := np.arange(200) % 3, 0.5)
    assert isinstance(keep, np.ndarray)
    np.testing.assert_array_equal(
        keep, torchvision.ops.batched_nms(boxes, scores, torch.from_numpy(idxs_np), 0.5).numpy()
    )


def test_read_only_broadcast_and_byte_swapped_numpy_inputs():
    boxes, scores, _ = random_case(100, dtype=torch.float64, seed=13)
    expected = torchvision.ops.nms(boxes, scores, 0.5).numpy()
    b, s = boxes.numpy().copy(), scores.numpy().copy()
    b.flags.writeable = s.flags.writeable = False
    np.testing.assert_array_equal(vt_ops.nms(b, s, 0.5), expected)
    np.testing.assert_array_equal(
        vt_ops.batched_nms(b, s, np.broadcast_to(np.int64(3), (100,)), 0.5), expected
    )
    np.testing.assert_array_equal(vt_ops.nms(b.astype(">f8"), s.astype(">f8"), 0.5), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype):
    boxes, scores, _ = random_case(300, seed=5)
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    # Half inputs are computed in float32: the oracle sees the same float32 values.
    assert_same_keep(
        vt_ops.nms(boxes, scores, 0.5), reference_tensor(boxes.float(), scores.float(), 0.5)
    )
    assert vt_ops.batched_nms(boxes, scores, torch.zeros(300, dtype=torch.int64), 0.5).equal(
        vt_ops.nms(boxes, scores, 0.5)
    )


def reference_tensor(boxes, scores, iou_threshold, idxs=None):
    return torch.from_numpy(
        reference_nms(
            boxes.numpy(), scores.numpy(), iou_threshold, None if idxs is None else idxs.numpy()
        )
    )


def test_mixed_float_dtypes_and_grad_inputs():
    boxes, scores, _ = random_case(100, seed=6)
    expected = torchvision.ops.nms(boxes.double(), scores.double(), 0.5)
    assert_same_keep(vt_ops.nms(boxes.double(), scores, 0.5), expected)
    assert_same_keep(
        vt_ops.nms(boxes.double().requires_grad_(), scores.double().requires_grad_(), 0.5), expected
    )
    strided = torch.cat([boxes, boxes], dim=1)[:, ::2]
    assert_same_keep(vt_ops.nms(strided, scores, 0.5), torchvision.ops.nms(strided, scores, 0.5))


def test_degenerate_boxes_suppress_nothing():
    boxes = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [5, 5, 1, 1], [5, 5, 1, 1], [0, 0, 4, 4]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    assert vt_ops.nms(boxes.float(), scores, 0.0).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("fn", ["nms", "batched_nms", "nms_rotated", "batched_nms_rotated"])
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_empty_input_gives_empty_int64(fn, library):
    width = 5 if fn.endswith("rotated") else 4
    boxes, scores, idxs = np.zeros((0, width)), np.zeros(0), np.zeros(0, dtype=np.int64)
    if library == "torch":
        boxes, scores, idxs = map(torch.from_numpy, (boxes, scores, idxs))
    args = (boxes, scores, idxs) if fn.startswith("batched") else (boxes, scores)
    keep = getattr(vt_ops, fn)(*args, 0.5)
    assert keep.shape == (0,)
    assert keep.dtype == (torch.int64 if library == "torch" else np.int64)
    # everything filtered by the score threshold is empty too
    boxes, scores, idxs = random_case(5, seed=7)
    if width == 5:
        boxes = torch.cat([boxes, torch.zeros(5, 1)], 1)
    args = (boxes, scores, idxs if idxs is not None else torch.zeros(5, dtype=torch.int64))
    keep = getattr(vt_ops, fn)(*(args if fn.startswith("batched") else args[:2]), 0.5,
                               score_threshold=2.0)  # fmt: skip
    assert keep.shape == (0,) and keep.dtype == torch.int64


nan, inf = float("nan"), float("inf")
ok_boxes, ok_scores = torch.tensor([[0.0, 0, 1, 1], [0, 0, 2, 2]]), torch.tensor([0.5, 0.4])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(boxes=torch.zeros(2, 5)), ValueError, r"boxes: expected shape \(\*, 4\)"),
        (dict(boxes=torch.zeros(4)), ValueError, r"boxes: expected shape \(\*, 4\)"),
        (dict(scores=torch.zeros(3)), ValueError, r"scores: expected shape \(2,\)"),
        (dict(scores=torch.zeros(2, 1)), ValueError, r"scores: expected shape \(2,\)"),
        (
            dict(boxes=ok_boxes.to(torch.int64)),
            TypeError,
            "boxes: expected a floating dtype",
        ),
        (dict(scores=torch.tensor([1, 2])), TypeError, "scores: expected a floating dtype"),
        (dict(scores=np.zeros(2)), TypeError, "scores must be an array of the same library"),
        (dict(boxes=[[0, 0, 1, 1]]), TypeError, "boxes: expected a numpy array"),
        (dict(boxes=torch.tensor([[0.0, 0, nan, 1], [0, 0, 2, 2]])), ValueError, "boxes: .*NaN"),
        (dict(boxes=torch.tensor([[0.0, 0, 1, 1], [-inf, 0, 2, 2]])), ValueError, "boxes: .*inf"),
        (dict(scores=torch.tensor([nan, 0.4])), ValueError, "scores: .*NaN"),
        (dict(scores=torch.tensor([0.5, inf])), ValueError, "scores: .*inf"),
        (dict(iou_threshold=-0.1), ValueError, "iou_threshold: expected a non-negative"),
        (dict(iou_threshold=nan), ValueError, "iou_threshold: .*NaN"),
        (dict(iou_threshold="0.5"), TypeError, "iou_threshold: expected a real number"),
        (dict(score_threshold=nan), ValueError, "score_threshold: .*NaN"),
        (dict(max_output=-1), ValueError, "max_output: expected a non-negative"),
        (dict(max_output=2.0), TypeError, "max_output: expected an int"),
    ],
)
@pytest.mark.parametrize("batched", [False, True])
def test_bad_input_names_the_argument(kwargs, error, message, batched):
    args = dict(boxes=ok_boxes, scores=ok_scores, iou_threshold=0.5)
    if batched:
        args["idxs"] = torch.zeros(2, dtype=torch.int64)
    args.update(kwargs)
    positional = [args.pop("boxes"), args.pop("scores")]
    if batched:
        positional.append(args.pop("idxs"))
    positional.append(args.pop("iou_threshold"))
    with pytest.raises(error, match=message):
        (vt_ops.batched_nms if batched else vt_ops.nms)(*positional, **args)


@pytest.mark.parametrize(
    ("idxs", "error", "message"),
    [
        (torch.zeros(3, dtype=torch.int64), ValueError, r"idxs: expected shape \(2,\)"),
        (torch.zeros(2), TypeError, "idxs: expected an integer dtype"),
        (torch.zeros(2, dtype=torch.bool), TypeError, "idxs: expected an integer dtype"),
        (np.zeros(2, dtype=np.int64), TypeError, "idxs must be an array of the same library"),
    ],
)
def test_bad_idxs(idxs, error, message):
    with pytest.raises(error, match=message):
        vt_ops.batched_nms(ok_boxes, ok_scores, idxs, 0.5)


def test_bad_rotated_input():
    with pytest.raises(ValueError, match=r"boxes: expected shape \(\*, 5\)"):
        vt_ops.nms_rotated(ok_boxes, ok_scores, 0.5)
    with pytest.raises(ValueError, match=r"boxes: .*NaN"):
        vt_ops.nms_rotated(torch.tensor([[0.0, 0, 1, 1, nan]]), torch.ones(1), 0.5)


@pytest.mark.parametrize("fn", ["nms", "batched_nms", "nms_rotated", "batched_nms_rotated"])
def test_torch_compile_fullgraph(fn):
    boxes, scores, idxs = random_case(300, classes=5, seed=8)
    if fn.endswith("rotated"):
        boxes = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        boxes = torch.cat([boxes, torch.rand(300, 1) * 90], 1)
    op = getattr(vt_ops, fn)
    args = (boxes, scores, idxs) if fn.startswith("batched") else (boxes, scores)

    @torch.compile(fullgraph=True, backend="eager")
    def f(*args):
        keep = op(*args, 0.5, max_output=50)
        return args[0][keep].sum(dim=1), keep

    sums, keep = f(*args)
    assert_same_keep(keep, op(*args, 0.5, max_output=50))
    torch.testing.assert_close(sums, boxes[keep].sum(dim=1))


def test_registered_as_torch_custom_ops():
    boxes, scores, idxs = random_case(50, classes=3, seed=9)
    assert_same_keep(
        torch.ops.vt_ops.batched_nms(boxes, scores, idxs, 0.5, float("-inf"), -1),
        vt_ops.batched_nms(boxes, scores, idxs, 0.5),
    )
    torch.library.opcheck(
        torch.ops.vt_ops.nms.default,
        (boxes, scores, 0.5, 0.2, 10),
        test_utils=("test_schema", "test_faketensor"),
    )


# --- rotated: shapely is the oracle ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("iou_threshold", [0.1, 0.5])
def test_nms_rotated_matches_shapely_reference(dtype, iou_threshold):
    boxes = random_rotated(150, dtype=dtype, seed=10)
    scores = np.random.default_rng(0).random(150).astype(dtype)
    expected = reference_nms(boxes, scores, iou_threshold, iou=rotated_iou_fn(boxes))
    np.testing.assert_array_equal(vt_ops.nms_rotated(boxes, scores, iou_threshold), expected)
    idxs = np.arange(150) % 4
    expected = reference_nms(boxes, scores, iou_threshold, idxs=idxs, iou=rotated_iou_fn(boxes))
    np.testing.assert_array_equal(
        vt_ops.batched_nms_rotated(boxes, scores, idxs, iou_threshold), expected
    )


def test_nms_rotated_angle_zero_equals_nms():
    boxes, scores, idxs = random_case(2000, size=400, dtype=torch.float64, classes=10, seed=11)
    rotated = torch.cat(
        [(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2], torch.zeros(2000, 1)], 1
    )
    assert_same_keep(vt_ops.nms_rotated(rotated, scores, 0.5), vt_ops.nms(boxes, scores, 0.5))
    assert_same_keep(
        vt_ops.batched_nms_rotated(rotated, scores, idxs, 0.5),
        vt_ops.batched_nms(boxes, scores, idxs, 0.5),
    )


def test_nms_rotated_score_threshold_and_max_output():
    boxes = random_rotated(200, seed=12)
    scores = np.random.default_rng(1).random(200)
    full = reference_nms(boxes, scores, 0.3, score_threshold=0.5, iou=rotated_iou_fn(boxes))
    ours = vt_ops.nms_rotated(boxes, scores, 0.3, score_threshold=0.5, max_output=7)
    np.testing.assert_array_equal(ours, full[:7])


# --- properties ------------------------------------------------------------------------------

coordinate = st.integers(0, 60)


@st.composite
def nms_cases(draw, max_size=40):
    n = draw(st.integers(0, max_size))
    corners = draw(hnp.arrays(np.int64, (n, 4), elements=coordinate))
    boxes = np.concatenate(
        [np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], 1
    ).astype(np.float32)
    scores = draw(hnp.arrays(np.float32, (n,), elements=st.floats(0, 1, width=32), unique=True))
    idxs = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 3)))
    iou_threshold = draw(st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0]))
    return boxes, scores, idxs, iou_threshold


@settings(max_examples=300, deadline=None)
@given(nms_cases())
def test_property_equals_torchvision(case):
    # Integer corners make exact IoU ties with the threshold frequent; unique scores make the
    # order unambiguous.
    boxes, scores, idxs, thr = case
    b, s, c = map(torch.from_numpy, (boxes, scores, idxs))
    assert_same_keep(vt_ops.nms(b, s, thr), torchvision.ops.nms(b, s, thr))
    assert_same_keep(vt_ops.batched_nms(b, s, c, thr), torchvision.ops.batched_nms(b, s, c, thr))
    np.testing.assert_array_equal(vt_ops.nms(boxes, scores, thr), torchvision.ops.nms(b, s, thr))


@settings(max_examples=200, deadline=None)
@given(nms_cases(), st.sampled_from([0.0, 0.5, 1.0]))
def test_property_ties_follow_the_reference(case, tie_score):
    boxes, scores, idxs, thr = case
    scores = np.where(scores > 0.5, np.float32(tie_score), scores)  # many equal scores
    np.testing.assert_array_equal(
        vt_ops.batched_nms(boxes, scores, idxs, thr), reference_nms(boxes, scores, thr, idxs=idxs)
    )


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 8), st.sampled_from([4, 5]))),
    st.floats(allow_nan=True),
    st.one_of(st.none(), st.integers(-2, 5)),
)
def test_property_never_crashes(boxes, iou_threshold, max_output):
    # Arbitrary values (NaN, infinity, huge): a result or a ValueError, never a crash.
    n = len(boxes)
    scores = np.linspace(1, 0, n)
    fn = vt_ops.nms if boxes.shape[1] == 4 else vt_ops.nms_rotated
    batched = vt_ops.batched_nms if boxes.shape[1] == 4 else vt_ops.batched_nms_rotated
    for call in (
        lambda: fn(boxes, scores, iou_threshold, max_output=max_output),
        lambda: batched(boxes, scores, np.arange(n) % 2, iou_threshold, max_output=max_output),
    ):
        try:
            keep = call()
        except ValueError:
            continue
        assert keep.dtype == np.int64 and len(set(keep.tolist())) == len(keep)
        assert ((keep >= 0) & (keep < n)).all()


# --- CUDA ------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("fn", ["nms", "batched_nms", "nms_rotated", "batched_nms_rotated"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 5000])
def test_cuda_matches_cpu(fn, dtype, n):
    boxes, scores, idxs = random_case(n, size=300, dtype=dtype, classes=20, seed=n)
    if fn.endswith("rotated"):
        boxes = torch.cat(
            [(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2], scores[:, None] * 360],
            1,
        )
    op = getattr(vt_ops, fn)
    args = (boxes, scores, idxs) if fn.startswith("batched") else (boxes, scores)
    for kwargs in ({}, dict(score_threshold=0.3, max_output=40)):
        ours = op(*(a.cuda() for a in args), 0.5, **kwargs)
        assert ours.is_cuda and ours.dtype == torch.int64
        assert_same_keep(ours.cpu(), op(*args, 0.5, **kwargs))


@pytest.mark.cuda
def test_cuda_bad_input_and_empty():
    boxes = torch.tensor([[0.0, 0, float("nan"), 1]], device="cuda")
    with pytest.raises(ValueError, match=r"boxes: .*NaN"):
        vt_ops.nms(boxes, torch.ones(1, device="cuda"), 0.5)
    with pytest.raises(ValueError, match=r"scores: .*NaN"):
        vt_ops.nms(boxes.nan_to_num(), torch.full((1,), float("nan"), device="cuda"), 0.5)
    with pytest.raises(ValueError, match="scores is on cpu but boxes is on cuda"):
        vt_ops.nms(boxes, torch.ones(1), 0.5)
    empty = vt_ops.nms(torch.zeros(0, 4, device="cuda"), torch.zeros(0, device="cuda"), 0.5)
    assert empty.is_cuda and empty.shape == (0,) and empty.dtype == torch.int64
