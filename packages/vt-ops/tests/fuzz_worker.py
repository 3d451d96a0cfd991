"""Fuzz cases for every vt_ops op, run in a child process by test_fuzz.py.

    python fuzz_worker.py CASE_FILE [OP ...]

Each op gets ``VT_FUZZ_EXAMPLES`` hypothesis examples (default 100; ``VT_FUZZ_SEED``
picks a random seed instead of the fixed one). An example draws numpy or torch inputs
of random shapes, dtypes, memory layouts and values (empty, degenerate, huge, NaN,
inf) or a wrong argument, calls the op and checks that it either returns the result
of an oracle (torchvision, pycocotools, numpy) or raises TypeError / ValueError
naming the argument. Before every call the case is written to CASE_FILE, so the
parent can name the case that killed the interpreter. Prints ``FUZZ <op> <n>`` per
op, ``FUZZ_FAIL <op>`` with hypothesis' falsifying example for a failed property,
and ``FUZZ_TOTAL <n>`` at the end; exits 1 when a property failed.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vt_ops

try:
    import torchvision.ops as tvops
except ImportError:  # torch builds without a matching torchvision: no torchvision oracle
    tvops = None

try:
    from pycocotools import mask as coco_mask
except ImportError:
    coco_mask = None

__all__ = ["main"]

_CASE_FILE: str | None = None
_COUNTS: dict[str, int] = {}
_CURRENT = ""

LIBS = ("numpy", "torch")
FLOATS = ("float32", "float64", "float16", "bfloat16")
WRONG_DTYPES = ("int32", "int64", "uint8", "bool")
ERRORS = (TypeError, ValueError)


# --- case bookkeeping --------------------------------------------------------------------------


def _describe(x: Any) -> str:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        values = (x.float() if isinstance(x, torch.Tensor) else x).tolist()
        text = repr(values)
        if len(text) > 400:
            text = text[:400] + "..."
        lib = "torch" if isinstance(x, torch.Tensor) else "numpy"
        strides = tuple(x.stride()) if isinstance(x, torch.Tensor) else x.strides
        return f"{lib}[{x.dtype}, shape={tuple(x.shape)}, strides={strides}]{text}"
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (np.ndarray, torch.Tensor)):
        return "[" + ", ".join(_describe(v) for v in x) + "]"
    text = repr(x)
    return text if len(text) < 400 else text[:400] + "..."


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Record the case in CASE_FILE (flushed to disk), then call ``fn``."""
    parts = [_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()]
    text = f"{_CURRENT}: {fn.__name__}({', '.join(parts)})\n"
    if _CASE_FILE:
        with open(_CASE_FILE, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return fn(*args, **kwargs)


def expect_error(names: tuple[str, ...], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn`` must raise TypeError/ValueError whose message names one of ``names``."""
    try:
        result = call(fn, *args, **kwargs)
    except ERRORS as e:
        assert any(n in str(e) for n in names), f"{type(e).__name__}({e}) names none of {names}"
        return
    raise AssertionError(f"expected an error naming {names}, got {_describe(result)}")


def call_or_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, bool]:
    """(result, True), or (None, False) when ``fn`` raised TypeError/ValueError with a message."""
    try:
        return call(fn, *args, **kwargs), True
    except ERRORS as e:
        assert str(e), f"{type(e).__name__} without a message"
        return None, False


# --- arrays ------------------------------------------------------------------------------------


def as_array(data: np.ndarray, lib: str, dtype: str, layout: str = "contiguous") -> Any:
    """``data`` (float64 or int64) as a ``lib`` array of ``dtype`` in ``layout``.

    layout: 'contiguous', 'strided' (every other row of a larger array) or
    'transposed' (column-major storage of a 2-d array).
    """
    if lib == "numpy":
        dtype = "float16" if dtype == "bfloat16" else dtype
        x = data.astype(dtype)
        if layout == "strided" and x.ndim:
            big = np.zeros((2 * x.shape[0], *x.shape[1:]), dtype=x.dtype)
            big[::2] = x
            x = big[::2]
        elif layout == "transposed" and x.ndim == 2:
            x = np.asfortranarray(x)
        return x
    x = torch.from_numpy(np.ascontiguousarray(data)).to(getattr(torch, dtype))
    if layout == "strided" and x.ndim:
        big = torch.zeros((2 * x.shape[0], *x.shape[1:]), dtype=x.dtype)
        big[::2] = x
        x = big[::2]
    elif layout == "transposed" and x.ndim == 2:
        x = x.t().contiguous().t()
    return x


def to_f64(x: Any) -> np.ndarray:
    """The stored values of an array as float64 numpy."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def tolerance(dtype: str) -> float:
    return {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2, "bfloat16": 3e-2}[dtype]


def dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")


def assert_close(got: Any, want: np.ndarray, tol: float, what: str, scale: float = 1.0) -> None:
    g = to_f64(got)
    assert g.shape == want.shape, f"{what}: shape {g.shape} != {want.shape}"
    bad = ~np.isclose(g, want, rtol=tol, atol=tol * scale, equal_nan=True)
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} values differ, e.g. got {g[bad][:5]} want {want[bad][:5]}"
    )


def assert_kind(result: Any, like: Any, dtype: str | None = None) -> None:
    """``result`` is of ``like``'s array library (and of ``dtype`` when given)."""
    want = torch.Tensor if isinstance(like, torch.Tensor) else np.ndarray
    assert isinstance(result, want), f"returned {type(result).__name__}, expected {want.__name__}"
    if dtype is not None:
        got = dtype_name(result)
        want_dtype = "float16" if dtype == "bfloat16" and want is np.ndarray else dtype
        assert got == want_dtype, f"returned dtype {got}, expected {want_dtype}"


layouts = st.sampled_from(("contiguous", "contiguous", "strided", "transposed"))
values_kind = st.sampled_from(("normal", "normal", "normal", "degenerate", "huge", "nan", "inf"))


@st.composite
def xyxy_boxes(draw: Any, n: int, kind: str, size: float = 50.0) -> np.ndarray:
    """n (x1, y1, x2, y2) boxes; ``kind`` adds degenerate, huge or non-finite values."""
    elems = st.floats(-size / 5, size, allow_nan=False)
    xy = np.array(draw(st.lists(st.tuples(elems, elems), min_size=n, max_size=n)), dtype=float)
    wh = np.array(
        draw(st.lists(st.tuples(*[st.floats(0, size / 2, width=32)] * 2), min_size=n, max_size=n)),
        dtype=float,
    )
    xy, wh = xy.reshape(n, 2), wh.reshape(n, 2)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    if n and kind == "degenerate":  # zero-size and inverted (x2 < x1) boxes
        rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n))
        boxes[rows, 2] = boxes[rows, 0] - draw(st.sampled_from((0.0, 1.0, 7.5)))
    elif kind == "huge":
        boxes *= draw(st.sampled_from((1e6, 1e12, -1e6)))
    elif n and kind in ("nan", "inf"):
        value = math.nan if kind == "nan" else draw(st.sampled_from((math.inf, -math.inf)))
        boxes[draw(st.integers(0, n - 1)), draw(st.integers(0, 3))] = value
    return boxes


def finite_rows(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x).all(axis=1) if x.size else np.ones(x.shape[0], dtype=bool)


# --- oracles -----------------------------------------------------------------------------------


def iou_reference(a: np.ndarray, b: np.ndarray, ioa: bool = False) -> np.ndarray:
    """detectron2's pairwise_iou / pairwise_ioa in float64: 0 where boxes do not intersect."""

    def area(x: np.ndarray) -> np.ndarray:
        return np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)

    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area(b)[None, :] if ioa else area(a)[:, None] + area(b)[None, :] - inter
    with np.errstate(all="ignore"):
        return np.where(inter > 0, inter / np.where(inter > 0, union, 1), 0.0)


def rotated_iou_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact polygon IoU with shapely (angles counter-clockwise, y down)."""
    from shapely.geometry import Polygon

    def poly(r: np.ndarray) -> Polygon:
        cx, cy, w, h, angle = r
        t = math.radians(angle)
        c, s = math.cos(t), math.sin(t)
        pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        return Polygon([(cx + c * x + s * y, cy - s * x + c * y) for x, y in pts])

    out = np.zeros((a.shape[0], b.shape[0]))
    pa, pb = [poly(r) for r in a], [poly(r) for r in b]
    for i, p in enumerate(pa):
        for j, q in enumerate(pb):
            if a[i, 2] > 0 and a[i, 3] > 0 and b[j, 2] > 0 and b[j, 3] > 0:
                inter = p.intersection(q).area
                union = p.area + q.area - inter
                out[i, j] = inter / union if inter > 0 else 0.0
    return out


def greedy_nms_reference(
    iou: np.ndarray,
    scores: np.ndarray,
    idxs: np.ndarray | None,
    threshold: float,
    score_threshold: float | None,
    max_output: int | None,
) -> np.ndarray:
    """Greedy NMS over a precomputed IoU matrix; ties by index, categories kept apart."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for i in order:
        if score_threshold is not None and not scores[i] > score_threshold:
            continue
        if any(iou[k, i] > threshold and (idxs is None or idxs[k] == idxs[i]) for k in keep):
            continue
        keep.append(int(i))
    return np.array(keep[:max_output] if max_output is not None else keep, dtype=np.int64)


# --- box_iou / box_ioa / box_iou_rotated --------------------------------------------------------


def _pair_shape_mutation(draw: Any, width: int) -> tuple[str, tuple[int, ...]] | None:
    return draw(
        st.sampled_from(
            (None, None, None, ("ndim", (3,)), ("width", (3, width + 1)), ("ndim3", (2, 2, width)))
        )
    )


@st.composite
def box_pair_case(draw: Any, width: int) -> dict[str, Any]:
    lib = draw(st.sampled_from(LIBS))
    n, m = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    kind = draw(values_kind)
    if width == 4:
        a, b = draw(xyxy_boxes(n, kind)), draw(xyxy_boxes(m, "normal"))
    else:
        a, b = draw(rotated_boxes(n, kind)), draw(rotated_boxes(m, "normal"))
    dtypes = (draw(st.sampled_from(FLOATS)), draw(st.sampled_from(FLOATS)))
    case = {"lib": lib, "a": a, "b": b, "dtypes": dtypes, "layout": draw(layouts)}
    case["mutation"] = draw(
        st.sampled_from(
            (None,) * 6 + ("dtype1", "dtype2", "ndim1", "width2", "list1", "library2", "none2")
        )
    )
    case["wrong_dtype"] = draw(st.sampled_from(WRONG_DTYPES))
    return case


@st.composite
def rotated_boxes(draw: Any, n: int, kind: str, size: float = 40.0) -> np.ndarray:
    coord = st.floats(0, size, width=32)
    side = st.floats(0, size / 2, width=32)
    angle = st.one_of(st.sampled_from((0.0, 90.0, 180.0, -45.0)), st.floats(-360, 360, width=32))
    rows = draw(st.lists(st.tuples(coord, coord, side, side, angle), min_size=n, max_size=n))
    boxes = np.array(rows, dtype=float).reshape(n, 5)
    if n and kind == "degenerate":
        boxes[draw(st.integers(0, n - 1)), draw(st.sampled_from((2, 3)))] = draw(
            st.sampled_from((0.0, -3.0))
        )
    elif kind == "huge":
        boxes[:, :4] *= draw(st.sampled_from((1e4, 1e6)))
    elif n and kind in ("nan", "inf"):
        boxes[draw(st.integers(0, n - 1)), draw(st.integers(0, 4))] = (
            math.nan if kind == "nan" else math.inf
        )
    return boxes


def _mutated_pair(case: dict[str, Any], width: int) -> tuple[Any, Any, tuple[str, ...] | None]:
    """The two arrays of a case, and the argument names an error must mention (None: valid)."""
    lib, (d1, d2), layout = case["lib"], case["dtypes"], case["layout"]
    a = as_array(case["a"], lib, d1, layout)
    b = as_array(case["b"], lib, d2)
    mutation = case["mutation"]
    if mutation == "dtype1":
        return as_array(case["a"], lib, case["wrong_dtype"]), b, ("boxes1",)
    if mutation == "dtype2":
        return a, as_array(case["b"], lib, case["wrong_dtype"]), ("boxes2",)
    if mutation == "ndim1":
        return a.reshape(-1), b, ("boxes1",)
    if mutation == "width2":
        return a, as_array(np.zeros((2, width + 1)), lib, d2), ("boxes2",)
    if mutation == "list1":
        return case["a"].tolist(), b, ("boxes1",)
    if mutation == "library2":
        other = "torch" if lib == "numpy" else "numpy"
        return a, as_array(case["b"], other, "float32"), ("boxes2", "library")
    if mutation == "none2":
        return a, None, ("boxes2",)
    return a, b, None


def _check_pairwise(result: Any, a: Any, b: Any, want: np.ndarray) -> None:
    d1, d2 = dtype_name(a), dtype_name(b)
    out_dtype = d1 if d1 == d2 else ("float64" if "float64" in (d1, d2) else "float32")
    assert_kind(result, a, out_dtype)
    fa, fb = finite_rows(to_f64(a)), finite_rows(to_f64(b))
    got = to_f64(result)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    tol = max(tolerance(d1), tolerance(d2), tolerance(out_dtype))
    assert_close(got[np.ix_(fa, fb)], want[np.ix_(fa, fb)], tol, "finite pairs")
    nan_a = np.isnan(to_f64(a)).any(axis=1) if a.shape[0] else np.zeros(0, bool)
    if b.shape[0] and nan_a.any():
        assert np.isnan(got[nan_a]).all(), "a NaN box must give NaN for its row"
    finite = got[np.isfinite(got)]
    assert ((finite >= 0) & (finite <= 1 + tol)).all(), "IoU outside [0, 1]"


def fuzz_box_iou(data: Any) -> None:
    case = data.draw(box_pair_case(4))
    ioa = data.draw(st.booleans())
    fn = vt_ops.box_ioa if ioa else vt_ops.box_iou
    a, b, names = _mutated_pair(case, 4)
    if names is not None:
        expect_error(names, fn, a, b)
        return
    result = call(fn, a, b)
    _check_pairwise(result, a, b, iou_reference(to_f64(a), to_f64(b), ioa))


def fuzz_box_iou_rotated(data: Any) -> None:
    case = data.draw(box_pair_case(5))
    a, b, names = _mutated_pair(case, 5)
    if names is not None:
        expect_error(names, vt_ops.box_iou_rotated, a, b)
        return
    result = call(vt_ops.box_iou_rotated, a, b)
    fa, fb = to_f64(a), to_f64(b)
    ok_a, ok_b = finite_rows(fa), finite_rows(fb)
    want = np.zeros((fa.shape[0], fb.shape[0]))
    both = np.concatenate([fa[ok_a], fb[ok_b]])
    sides = np.sort(both[:, 2:4], axis=1)
    # Needles (h / w < 1e-3) lose their area to float32 rounding of the corners, and
    # shapely's float64 precision degrades on huge coordinates: range checks only.
    needles = ((sides[:, 0] > 0) & (sides[:, 0] < 1e-3 * sides[:, 1])).any()
    if np.abs(both[:, :4]).max(initial=0) < 1e3 and not needles:
        want[np.ix_(ok_a, ok_b)] = rotated_iou_reference(fa[ok_a], fb[ok_b])
        _check_pairwise(result, a, b, want)
    else:
        assert_kind(result, a)
        got = to_f64(result)[np.ix_(ok_a, ok_b)]
        assert ((got >= 0) & (got <= 1 + 1e-3)).all(), "IoU outside [0, 1]"


# --- nms ---------------------------------------------------------------------------------------


@st.composite
def nms_case(draw: Any, rotated: bool, batched: bool) -> dict[str, Any]:
    n = draw(st.integers(0, 12))
    kind = draw(values_kind)
    boxes = draw(rotated_boxes(n, kind)) if rotated else draw(xyxy_boxes(n, kind))
    scores = np.array(
        draw(
            st.lists(
                st.sampled_from((0.1, 0.5, 0.5, 0.9)) | st.floats(0, 1), min_size=n, max_size=n
            )
        ),
        dtype=float,
    )
    if n and kind == "nan" and draw(st.booleans()):
        scores[draw(st.integers(0, n - 1))] = math.nan
    idxs = np.array(draw(st.lists(st.integers(-2, 3), min_size=n, max_size=n)), dtype=np.int64)
    return {
        "lib": draw(st.sampled_from(LIBS)),
        "boxes": boxes,
        "scores": scores,
        "idxs": idxs,
        "dtype": draw(st.sampled_from(FLOATS)),
        "idx_dtype": draw(st.sampled_from(("int64", "int32", "uint8", "bool", "float32"))),
        "layout": draw(layouts),
        "iou_threshold": draw(st.sampled_from((0.0, 0.3, 0.5, 0.7, 1.0, -0.5, math.nan, "x"))),
        "score_threshold": draw(st.sampled_from((None, None, 0.2, 0.5, math.nan))),
        "max_output": draw(st.sampled_from((None, None, 0, 1, 3, -1, 2.5))),
        "mutation": draw(
            st.sampled_from(
                (None,) * 5 + ("boxes_dtype", "scores_ndim", "scores_len", "boxes_width")
            )
        ),
    }


def _fuzz_nms(data: Any, rotated: bool, batched: bool) -> None:
    case = data.draw(nms_case(rotated, batched))
    lib, dtype = case["lib"], case["dtype"]
    width = 5 if rotated else 4
    boxes = as_array(case["boxes"], lib, dtype, case["layout"])
    scores = as_array(
        case["scores"], lib, dtype, "strided" if case["layout"] != "contiguous" else "contiguous"
    )
    args: list[Any] = [boxes, scores]
    idx_ok = True
    if batched:
        idxs = case["idxs"]
        if case["idx_dtype"] in ("uint8", "bool"):
            idxs = np.abs(idxs) % 2
        args.append(as_array(idxs, lib, case["idx_dtype"]))
        idx_ok = case["idx_dtype"] not in ("float32", "bool")
    fn = {
        (False, False): vt_ops.nms,
        (False, True): vt_ops.batched_nms,
        (True, False): vt_ops.nms_rotated,
        (True, True): vt_ops.batched_nms_rotated,
    }[(rotated, batched)]
    kwargs = {"score_threshold": case["score_threshold"], "max_output": case["max_output"]}
    thr = case["iou_threshold"]
    n = case["boxes"].shape[0]
    mutation = case["mutation"]
    if mutation is not None:  # one wrong array, every other argument valid
        kwargs, thr = {}, 0.5
        if mutation == "boxes_dtype":
            args[0], names = as_array(case["boxes"], lib, "int32"), ("boxes",)
        elif mutation == "scores_ndim":
            args[1], names = scores.reshape(-1, 1), ("scores",)
        elif mutation == "scores_len":
            args[1], names = as_array(np.zeros(n + 1), lib, dtype), ("scores",)
        else:
            args[0], names = as_array(np.zeros((n, width - 1)), lib, dtype), ("boxes",)
        if not idx_ok:
            names += ("idxs",)
        expect_error(names, fn, *args, thr, **kwargs)
        return
    mo, st_ = case["max_output"], case["score_threshold"]
    bad: tuple[str, ...] = ()
    if not idx_ok:
        bad += ("idxs",)
    if isinstance(thr, str) or math.isnan(thr) or thr < 0:
        bad += ("iou_threshold",)
    if mo is not None and (isinstance(mo, float) or mo < 0):
        bad += ("max_output",)
    if st_ is not None and math.isnan(st_):
        bad += ("score_threshold",)
    fb, fs = to_f64(boxes), to_f64(scores)
    non_finite = not (np.isfinite(fb).all() and np.isfinite(fs).all())
    if non_finite:
        bad += ("boxes", "scores")
    if bad:
        expect_error(bad, fn, *args, thr, **kwargs)
        return
    keep = call(fn, *args, thr, **kwargs)
    assert_kind(keep, boxes, "int64")
    iou = rotated_iou_reference(fb, fb) if rotated else iou_reference(fb, fb)
    if rotated and np.abs(fb[:, :4]).max(initial=0) >= 1e3:
        return  # shapely's precision: only the kind and dtype checks above
    tol = tolerance(dtype) * 10
    if np.any(np.abs(iou - thr) < tol):
        return  # an IoU within rounding of the threshold: either answer is right
    idxs_np = to_f64(args[2]).astype(np.int64) if batched else None
    want = greedy_nms_reference(iou, fs, idxs_np, thr, case["score_threshold"], mo)
    got = to_f64(keep).astype(np.int64)
    assert np.array_equal(got, want), f"kept {got.tolist()}, expected {want.tolist()}"


def fuzz_nms(data: Any) -> None:
    _fuzz_nms(data, rotated=False, batched=False)


def fuzz_batched_nms(data: Any) -> None:
    _fuzz_nms(data, rotated=False, batched=True)


def fuzz_nms_rotated(data: Any) -> None:
    _fuzz_nms(data, rotated=True, batched=False)


def fuzz_batched_nms_rotated(data: Any) -> None:
    _fuzz_nms(data, rotated=True, batched=True)


# --- roi_align / roi_align_rotated / roi_pool --------------------------------------------------


@st.composite
def roi_case(draw: Any, rotated: bool) -> dict[str, Any]:
    n, c = draw(st.integers(0, 2)), draw(st.integers(0, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    k = draw(st.integers(0, 5))
    kind = draw(values_kind)
    if rotated:
        boxes = draw(rotated_boxes(k, kind, size=8.0))
    else:
        boxes = draw(xyxy_boxes(k, kind, size=8.0))
    batch = np.array(draw(st.lists(st.integers(0, max(n - 1, 0)), min_size=k, max_size=k)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "lib": draw(st.sampled_from(LIBS)),
        "dtype": draw(st.sampled_from(FLOATS)),
        "input": rng.standard_normal((n, c, h, w)),
        "boxes": boxes,
        "batch": batch.reshape(k).astype(float),
        "as_list": draw(st.booleans()),
        "input_layout": draw(st.sampled_from(("contiguous", "channels_last", "strided"))),
        "output_size": draw(st.sampled_from((1, 2, (3, 2), 5, 0, -1, (2,), 2.5, True, (2, 0)))),
        "spatial_scale": draw(st.sampled_from((1.0, 1.0, 0.5, 2.0, 0.0, -1.0, math.nan, "a"))),
        "sampling_ratio": draw(st.sampled_from((-1, 0, 1, 2, 1.5))),
        "aligned": draw(st.booleans()),
        "mutation": draw(
            st.sampled_from(
                (None,) * 6
                + ("input_ndim", "input_dtype", "boxes_width", "boxes_dtype", "batch_range")
            )
        ),
        "nan_input": draw(st.integers(0, 9)) == 0,
    }


def _roi_input(case: dict[str, Any]) -> Any:
    x = case["input"].copy()
    if case["nan_input"] and x.size:
        x.reshape(-1)[0] = math.nan
    lib, dtype, layout = case["lib"], case["dtype"], case["input_layout"]
    if layout == "channels_last" and lib == "torch":
        return as_array(x, lib, dtype).contiguous(memory_format=torch.channels_last)
    if layout == "channels_last":
        return as_array(x.transpose(0, 2, 3, 1), lib, dtype).transpose(0, 3, 1, 2)
    return as_array(x, lib, dtype, layout if layout == "strided" else "contiguous")


def _roi_boxes(case: dict[str, Any], input: Any, width: int) -> Any:
    lib, dtype = case["lib"], case["dtype"]
    box_dtype = dtype if dtype in ("float32", "float64") else "float32"
    boxes, batch = case["boxes"], case["batch"]
    if case["as_list"]:
        n = input.shape[0]
        return [as_array(boxes[batch == i], lib, box_dtype) for i in range(n)]
    return as_array(np.concatenate([batch[:, None], boxes], axis=1), lib, box_dtype, "strided")


def _roi_errors(case: dict[str, Any], rotated: bool, pool: bool) -> tuple[str, ...] | None:
    """The argument names an error must mention, or None for a valid case."""
    size = case["output_size"]
    if not (isinstance(size, (int, tuple))) or isinstance(size, bool):
        return ("output_size",)
    pair = (size, size) if isinstance(size, int) else size
    if len(pair) != 2 or min(pair) <= 0:
        return ("output_size",)
    scale = case["spatial_scale"]
    if isinstance(scale, str) or not scale > 0:
        return ("spatial_scale",)
    if not pool and isinstance(case["sampling_ratio"], float):
        return ("sampling_ratio",)
    name = "rois" if rotated else "boxes"
    boxes = case["boxes"]
    if case["as_list"]:  # the per-image list holds the boxes of existing images only
        boxes = boxes[case["batch"] < case["input"].shape[0]]
    if not np.isfinite(boxes).all():
        return (name,)
    if not case["as_list"] and boxes.shape[0] and case["input"].shape[0] == 0:
        return (name, "batch index")
    if rotated and (boxes[:, 2:4] < 0).any():
        return (name,)
    return None


def _fuzz_roi(data: Any, rotated: bool, pool: bool) -> None:
    case = data.draw(roi_case(rotated))
    width = 5 if rotated else 4
    name = "rois" if rotated else "boxes"
    input = _roi_input(case)
    boxes = _roi_boxes(case, input, width)
    mutation = case["mutation"]
    lib = case["lib"]
    if mutation == "input_ndim":
        input, names = input.sum(1), ("input",)
    elif mutation == "input_dtype":
        input, names = as_array(case["input"], lib, "int64"), ("input",)
    elif mutation == "boxes_width":
        boxes, names = as_array(np.zeros((2, width)), lib, case["dtype"]), (name,)
    elif mutation == "boxes_dtype":
        boxes, names = as_array(np.zeros((2, width + 1)), lib, "int32"), (name,)
    elif mutation == "batch_range" and not case["as_list"] and case["boxes"].shape[0]:
        bad = np.concatenate([case["batch"][:, None], case["boxes"]], axis=1)
        bad[0, 0] = input.shape[0] + data.draw(st.sampled_from((0, 5)))
        boxes, names = as_array(bad, lib, dtype_name(boxes)), (name, "batch index")
    else:
        names = None
    other = _roi_errors(case, rotated, pool)
    if names is not None or other is not None:  # any of the wrong arguments may be named
        names = (names or ()) + (other or ())
    if pool:
        fn, args = vt_ops.roi_pool, (input, boxes, case["output_size"], case["spatial_scale"])
    else:
        fn = vt_ops.roi_align_rotated if rotated else vt_ops.roi_align
        args = (input, boxes, case["output_size"], case["spatial_scale"], case["sampling_ratio"])
        if not rotated:
            args += (case["aligned"],)
    if names is not None:
        expect_error(names, fn, *args)
        return
    big = np.abs(case["boxes"]).max(initial=0) > 1e3
    if big and not pool and case["sampling_ratio"] <= 0:
        return  # adaptive sampling of a huge box takes ~(size / output_size)^2 samples per bin
    out = call(fn, *args)
    assert_kind(out, input, case["dtype"])
    size = case["output_size"]
    ph, pw = (size, size) if isinstance(size, int) else size
    k = sum(b.shape[0] for b in boxes) if isinstance(boxes, list) else boxes.shape[0]
    assert tuple(out.shape) == (k, input.shape[1], ph, pw), f"shape {tuple(out.shape)}"
    x64 = to_f64(input)
    if np.isnan(x64).any():
        return
    got = to_f64(out)
    bound = np.abs(x64).max(initial=0)
    tol = tolerance(case["dtype"])
    assert (np.abs(got) <= bound * (1 + tol) + 1e-12).all(), "output exceeds max |input|"
    if tvops is None:
        return
    rois = _rois_f64(boxes, width)
    xt, rt = torch.from_numpy(x64), torch.from_numpy(rois)
    scale = case["spatial_scale"]
    if pool:
        want = tvops.roi_pool(xt, rt, (ph, pw), scale).numpy()
    elif not rotated:
        want = tvops.roi_align(
            xt, rt, (ph, pw), scale, case["sampling_ratio"], case["aligned"]
        ).numpy()
    else:
        if not (rois[:, 5] == 0).all():
            return  # checked against roi_align at angle 0 only
        cx, cy, w, h = rois[:, 1], rois[:, 2], rois[:, 3], rois[:, 4]
        xyxy = np.stack([rois[:, 0], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        want = tvops.roi_align(
            xt, torch.from_numpy(xyxy), (ph, pw), scale, case["sampling_ratio"], True
        ).numpy()
        tol = max(tol, 1e-4)
    assert_close(out, want, tol, fn.__name__, scale=max(bound, 1.0))


def _rois_f64(boxes: Any, width: int) -> np.ndarray:
    """(K, 1 + width) float64 rois of an array or a per-image list."""
    if not isinstance(boxes, list):
        return to_f64(boxes)
    parts = [
        np.concatenate([np.full((b.shape[0], 1), float(i)), to_f64(b)], 1)
        for i, b in enumerate(boxes)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, width + 1))


def fuzz_roi_align(data: Any) -> None:
    _fuzz_roi(data, rotated=False, pool=False)


def fuzz_roi_align_rotated(data: Any) -> None:
    _fuzz_roi(data, rotated=True, pool=False)


def fuzz_roi_pool(data: Any) -> None:
    _fuzz_roi(data, rotated=False, pool=True)


# --- deform_conv2d -----------------------------------------------------------------------------


def fuzz_deform_conv2d(data: Any) -> None:
    draw = data.draw
    lib, dtype = draw(st.sampled_from(LIBS)), draw(st.sampled_from(FLOATS))
    groups, dg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n, c = draw(st.integers(0, 2)), draw(st.integers(1, 2)) * groups * dg
    o = draw(st.integers(1, 2)) * groups
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    stride = draw(st.sampled_from((1, 2, (1, 2))))
    padding = draw(st.sampled_from((0, 1, (2, 0))))
    dilation = draw(st.sampled_from((1, 2)))
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    oh = (h + 2 * ph - dilation * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dilation * (kw - 1) - 1) // sw + 1
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset_scale = draw(st.sampled_from((0.0, 1.5, 1.5, 1e6)))
    use_mask, use_bias = draw(st.booleans()), draw(st.booleans())
    mutation = draw(
        st.sampled_from(
            (None,) * 6
            + ("offset_shape", "mask_shape", "weight_channels", "bias_shape", "stride", "padding",
               "dilation", "groups", "input_dtype", "offset_nan", "weight_library")
        )
    )  # fmt: skip
    x = rng.standard_normal((n, c, h, w))
    if oh < 1 or ow < 1:
        off = np.zeros((n, 2 * dg * kh * kw, 1, 1))
        m = np.zeros((n, dg * kh * kw, 1, 1))
    else:
        off = rng.standard_normal((n, 2 * dg * kh * kw, oh, ow)) * offset_scale
        m = rng.random((n, dg * kh * kw, oh, ow))
    wt = rng.standard_normal((o, c // groups, kh, kw))
    b = rng.standard_normal(o)
    if mutation == "offset_nan" and off.size:
        off.reshape(-1)[0] = math.nan
    layout = draw(st.sampled_from(("contiguous", "strided")))
    args = {
        "input": as_array(x, lib, dtype, layout),
        "offset": as_array(off, lib, dtype),
        "weight": as_array(wt, lib, dtype, layout),
        "bias": as_array(b, lib, dtype) if use_bias else None,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "deformable_groups": dg,
        "mask": as_array(m, lib, dtype) if use_mask else None,
    }
    names: tuple[str, ...] | None = None
    if mutation == "offset_shape":
        args["offset"] = as_array(np.zeros((n, 2 * dg * kh * kw + 1, 1, 1)), lib, dtype)
        names = ("offset", "input")
    elif mutation == "mask_shape":
        args["mask"] = as_array(np.zeros((n, dg * kh * kw + 1, 1, 1)), lib, dtype)
        names = ("mask", "input")
    elif mutation == "weight_channels":
        args["weight"] = as_array(np.zeros((o, c // groups + 1, kh, kw)), lib, dtype)
        names = ("weight",)
    elif mutation == "bias_shape":
        args["bias"] = as_array(np.zeros(o + 1), lib, dtype)
        names = ("bias", "input")
    elif mutation in ("stride", "padding", "dilation"):
        args[mutation] = draw(st.sampled_from(((0, 1), -1, 1.5, (1, 1, 1), "2")))
        if mutation == "padding" and args[mutation] == (0, 1):
            args[mutation] = (-1, 0)
        names = (mutation,)
    elif mutation == "groups":
        args["groups"] = draw(st.sampled_from((0, 3 * c + 1, 1.0, True)))
        names = ("groups", "input", "weight")
    elif mutation == "input_dtype":
        args["input"] = as_array(x, lib, "int32")
        names = ("input",)
    elif mutation == "weight_library":
        args["weight"] = as_array(wt, "numpy" if lib == "torch" else "torch", "float32")
        names = ("weight",)
    if names is None and (oh < 1 or ow < 1):
        names = ("input",)
    if names is not None:
        expect_error(names, vt_ops.deform_conv2d, **args)
        return
    out = call(vt_ops.deform_conv2d, **args)
    assert_kind(out, args["input"], dtype)
    assert tuple(out.shape) == (n, o, oh, ow), f"shape {tuple(out.shape)}"
    if tvops is None or mutation == "offset_nan":
        return
    t = {
        k: torch.from_numpy(to_f64(v)) if v is not None and not isinstance(v, (int, tuple)) else v
        for k, v in args.items()
    }
    want = tvops.deform_conv2d(
        t["input"], t["offset"], t["weight"], t["bias"], stride, padding, dilation, t["mask"]
    ).numpy()
    scale = np.abs(to_f64(args["input"])).sum(axis=(1, 2, 3), keepdims=False).max(initial=1.0)
    tol = tolerance(dtype) * (10 if dtype in ("float16", "bfloat16") else 1)
    assert_close(out, want, tol, "deform_conv2d", scale=float(scale))


# --- confusion_matrix --------------------------------------------------------------------------


def fuzz_confusion_matrix(data: Any) -> None:
    draw = data.draw
    lib = draw(st.sampled_from(LIBS))
    c = draw(st.integers(1, 6))
    ignore = draw(st.sampled_from((255, -1, 0, 2**40)))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    size = math.prod(shape)
    pred = np.array(draw(st.lists(st.integers(0, c - 1), min_size=size, max_size=size)))
    label = np.array(draw(st.lists(st.integers(0, c - 1), min_size=size, max_size=size)))
    pred, label = pred.reshape(shape).astype(np.int64), label.reshape(shape).astype(np.int64)
    if size and draw(st.booleans()) and 0 <= ignore < 256:
        label.reshape(-1)[draw(st.integers(0, size - 1))] = ignore
    dtypes = ("int64", "int32", "int16", "int8", "uint8") + (("bool",) if c == 2 else ())
    pdt, ldt = draw(st.sampled_from(dtypes)), draw(st.sampled_from(dtypes))
    if ldt in ("bool",) or (ldt == "int8" and ignore > 127) or (ldt == "uint8" and ignore < 0):
        label[label == ignore] = 0
    mutation = draw(
        st.sampled_from(
            (None,) * 5
            + ("pred_range", "label_range", "float", "shape", "num_classes", "out_shape",
               "out_dtype", "library")
        )
    )  # fmt: skip
    num_classes: Any = c
    names: tuple[str, ...] | None = None
    out = as_array(np.zeros((c, c), dtype=np.int64), lib, "int64") if draw(st.booleans()) else None
    if mutation == "pred_range" and size and pdt not in ("bool", "uint8"):
        pred.reshape(-1)[0] = draw(st.sampled_from((-1, c)))
        seen = [
            v for v in range(c) if v != ignore
        ]  # the prediction of an ignored label is not read
        label.reshape(-1)[0] = seen[0] if seen else ignore
        names = ("pred",) if seen else None
    elif mutation == "label_range" and size and ldt not in ("bool",):
        label.reshape(-1)[0] = c if ldt != "uint8" or c < 255 else 0
        names = ("label",)
    elif mutation == "float":
        pdt, names = "float32", ("pred",)
    elif mutation == "shape":
        pred, names = np.zeros((*shape, 2), dtype=np.int64), ("pred", "label", "shape")
    elif mutation == "num_classes":
        num_classes = draw(st.sampled_from((0, -3, 2.0, True, "4", 2**17, 2**62)))
        out, names = None, ("num_classes",)
    elif mutation == "out_shape":
        out, names = as_array(np.zeros((c + 1, c), dtype=np.int64), lib, "int64"), ("out",)
    elif mutation == "out_dtype":
        out, names = as_array(np.zeros((c, c)), lib, "float32"), ("out",)
    elif mutation == "library":
        label = as_array(label, "torch" if lib == "numpy" else "numpy", ldt)
        names = ("label", "library")
    p = as_array(pred, lib, pdt, draw(layouts))
    lab = label if mutation == "library" else as_array(label, lib, ldt, draw(layouts))
    before = None if out is None else to_f64(out).copy()
    if names is not None:
        expect_error(names, vt_ops.confusion_matrix, p, lab, num_classes, ignore, out=out)
        if out is not None:
            assert np.array_equal(to_f64(out), before), "out changed by a failed call"
        return
    got = call(vt_ops.confusion_matrix, p, lab, num_classes, ignore, out=out)
    assert_kind(got, p, "int64")
    pv, lv = to_f64(p).astype(np.int64).reshape(-1), to_f64(lab).astype(np.int64).reshape(-1)
    keep = lv != ignore
    want = np.bincount(lv[keep] * c + pv[keep], minlength=c * c).reshape(c, c)
    assert np.array_equal(to_f64(got), want), f"got {to_f64(got).tolist()}, want {want.tolist()}"
    if out is not None:
        assert got is out, "out not returned"


# --- COCO masks --------------------------------------------------------------------------------


@st.composite
def binary_masks(draw: Any) -> np.ndarray:
    h, w, n = draw(st.integers(0, 6)), draw(st.integers(0, 6)), draw(st.integers(1, 3))
    bits = draw(st.lists(st.booleans(), min_size=h * w * n, max_size=h * w * n))
    return np.array(bits, dtype=np.uint8).reshape(h, w, n)


def _coco_rles(masks: np.ndarray) -> list[dict[str, Any]]:
    return coco_mask.encode(np.asfortranarray(masks))


@st.composite
def malformed_rle(draw: Any) -> Any:
    """An RLE-ish dict with bad sizes, counts or types (or something else entirely)."""
    h = draw(st.sampled_from((0, 1, 3, -1, 2**31, 2**40, "3", 2.5)))
    w = draw(st.sampled_from((0, 2, 3, -2, 2**31)))
    counts = draw(
        st.one_of(
            st.binary(max_size=12),
            st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=12),
            st.lists(st.integers(-5, 2**40), max_size=6),
            st.sampled_from((None, 3, [1.5, 2], [[1]], "")),
        )
    )
    kind = draw(st.sampled_from(("dict", "dict", "dict", "no_size", "no_counts", "size3", "int")))
    if kind == "int":
        return 7
    rle: dict[str, Any] = {"size": [h, w], "counts": counts}
    if kind == "no_size":
        del rle["size"]
    elif kind == "no_counts":
        del rle["counts"]
    elif kind == "size3":
        rle["size"] = [h, w, 1]
    return rle


def fuzz_rle(data: Any) -> None:
    """rle_encode/decode/area/to_bbox/merge/iou/pack against pycocotools, and malformed RLEs."""
    draw = data.draw
    if draw(st.integers(0, 2)) == 0:
        rles = draw(st.lists(malformed_rle(), min_size=1, max_size=3))
        fn = draw(
            st.sampled_from(
                (vt_ops.rle_decode, vt_ops.rle_area, vt_ops.rle_to_bbox, vt_ops.rle_merge,
                 vt_ops.rle_pack)
            )
        )  # fmt: skip
        # garbage must give a result or an error, never a crash
        call_or_error(fn, rles)
        call_or_error(vt_ops.rle_iou, rles, rles, [0] * len(rles))
        return
    masks = draw(binary_masks())
    if coco_mask is None:
        return
    want = _coco_rles(masks)
    got = call(vt_ops.rle_encode, masks)
    assert [r["counts"] for r in got] == [r["counts"] for r in want], "rle_encode differs"
    assert [list(r["size"]) for r in got] == [list(r["size"]) for r in want], "sizes differ"
    decoded = call(vt_ops.rle_decode, want)
    assert np.array_equal(decoded, masks), "rle_decode differs"
    assert np.array_equal(call(vt_ops.rle_area, want), coco_mask.area(want)), "rle_area differs"
    assert np.array_equal(call(vt_ops.rle_to_bbox, want), coco_mask.toBbox(want)), "toBbox"
    intersect = draw(st.booleans())
    merged = call(vt_ops.rle_merge, want, intersect)
    assert merged["counts"] == coco_mask.merge(want, intersect)["counts"], "rle_merge differs"
    crowd = draw(st.lists(st.booleans(), min_size=len(want), max_size=len(want)))
    iou = call(vt_ops.rle_iou, want, want, crowd)
    assert_close(iou, np.asarray(coco_mask.iou(want, want, crowd)), 1e-12, "rle_iou")
    packed = call(vt_ops.rle_pack, want)
    assert [r["counts"] for r in vt_ops.rle_unpack(packed)] == [r["counts"] for r in want]
    as_str = [{"size": r["size"], "counts": r["counts"].decode()} for r in want]
    assert np.array_equal(call(vt_ops.rle_decode, as_str), masks), "str counts"
    uncompressed = [
        {"size": list(masks.shape[:2]), "counts": _runs(masks[:, :, i])}
        for i in range(masks.shape[2])
    ]
    assert np.array_equal(call(vt_ops.rle_decode, uncompressed), masks), "uncompressed RLE"


def _runs(mask: np.ndarray) -> list[int]:
    """Uncompressed RLE counts (column-major runs, starting with zeros)."""
    flat = mask.reshape(-1, order="F")
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    return runs


def fuzz_rle_from_objects(data: Any) -> None:
    draw = data.draw
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    coord = st.floats(-3, 10, width=32)
    kind = draw(st.sampled_from(("polygons", "polygon", "boxes", "box", "bad")))
    if kind == "bad":
        obj = draw(
            st.sampled_from(
                ([[1.0, 2.0, 3.0]], [[math.nan] * 6], [[1e30] * 6], [["a"] * 6], [], "x",
                 [[1.0] * 5], np.zeros((2, 3)), [[0, 0, 4, 4, 4]], [{"size": [2, 2]}])
            )
        )  # fmt: skip
        bad_h = draw(st.sampled_from((h, -1, 0, 2**40)))
        call_or_error(vt_ops.rle_from_objects, obj, bad_h, w)
        return
    if kind in ("polygons", "polygon"):
        polys = [
            [v for _ in range(draw(st.integers(3, 5))) for v in (draw(coord), draw(coord))]
            for _ in range(draw(st.integers(1, 3)))
        ]
        obj = polys if kind == "polygons" else polys[0]
    else:
        boxes = [
            [draw(coord), draw(coord), draw(st.floats(0, 6)), draw(st.floats(0, 6))]
            for _ in range(draw(st.integers(1, 3)))
        ]
        obj = np.array(boxes) if kind == "boxes" else boxes[0]
    got = call(vt_ops.rle_from_objects, obj, h, w)
    if coco_mask is None:
        return
    if kind in ("box", "polygon"):  # pycocotools takes one box or polygon only in a list
        single = np.array([obj]) if kind == "box" else [obj]
        got, want = [got], coco_mask.frPyObjects(single, h, w)
    else:
        want = coco_mask.frPyObjects(obj, h, w)
        if isinstance(want, dict):
            got, want = [got], [want]
    assert [r["counts"] for r in got] == [r["counts"] for r in want], "frPyObjects differs"


# --- COCO evaluation kernels -------------------------------------------------------------------


def fuzz_coco_box_iou(data: Any) -> None:
    draw = data.draw
    d, g = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    xywh = st.tuples(*[st.floats(-5, 20, width=32)] * 2, *[st.floats(0, 10, width=32)] * 2)
    dt = np.array(draw(st.lists(xywh, min_size=d, max_size=d)), dtype=float).reshape(d, 4)
    gt = np.array(draw(st.lists(xywh, min_size=g, max_size=g)), dtype=float).reshape(g, 4)
    crowd = draw(st.lists(st.booleans(), min_size=g, max_size=g))
    mutation = draw(st.sampled_from((None, None, None, "crowd_len", "dt_shape", "nan")))
    if mutation == "crowd_len":
        expect_error(("iscrowd",), vt_ops.coco_box_iou, dt, gt, [*crowd, True])
        return
    if mutation == "dt_shape":
        expect_error(("dt",), vt_ops.coco_box_iou, np.zeros((2, 3)), gt, crowd)
        return
    if mutation == "nan" and d:
        dt[0, 0] = math.nan
    got = call(vt_ops.coco_box_iou, dt, gt, crowd)
    if coco_mask is not None and d and g:
        want = np.asarray(coco_mask.iou(dt, gt, np.array(crowd, dtype=np.uint8)))
        assert_close(got, want, 1e-12, "coco_box_iou")
    # the grouped kernel must agree block by block
    groups = draw(st.integers(1, 3))
    dto = np.sort(
        np.array(
            [0, d, *draw(st.lists(st.integers(0, d), min_size=groups - 1, max_size=groups - 1))]
        )
    )
    gto = np.sort(
        np.array(
            [0, g, *draw(st.lists(st.integers(0, g), min_size=groups - 1, max_size=groups - 1))]
        )
    )
    if draw(st.integers(0, 3)) == 0:
        bad = draw(st.sampled_from(("reverse", "end", "start")))
        if bad == "reverse" and len(dto) > 2:
            dto = dto[::-1].copy()
        elif bad == "end":
            dto[-1] += 1
        else:
            gto[0] = -1
        call_or_error(vt_ops.coco_grouped_iou, dt, gt, crowd, dto, gto)
        return
    ious, offsets = call(vt_ops.coco_grouped_iou, dt, gt, crowd, dto, gto)
    full = to_f64(got)
    for i in range(groups):
        block = full[dto[i] : dto[i + 1], gto[i] : gto[i + 1]]
        assert_close(ious[offsets[i] : offsets[i + 1]], block.reshape(-1), 1e-12, "grouped")


def oks_reference(dt, gt, boxes, areas, sigmas):
    """pycocotools' computeOks for one group."""
    var = (sigmas * 2) ** 2
    out = np.zeros((dt.shape[0], gt.shape[0]))
    for j, g in enumerate(gt):
        xg, yg, vg = g[0::3], g[1::3], g[2::3]
        k1 = np.count_nonzero(vg > 0)
        bb = boxes[j]
        x0, x1 = bb[0] - bb[2], bb[0] + bb[2] * 2
        y0, y1 = bb[1] - bb[3], bb[1] + bb[3] * 2
        for i, d in enumerate(dt):
            xd, yd = d[0::3], d[1::3]
            if k1 > 0:
                dx, dy = xd - xg, yd - yg
            else:
                z = np.zeros(len(sigmas))
                dx = np.maximum(z, x0 - xd) + np.maximum(z, xd - x1)
                dy = np.maximum(z, y0 - yd) + np.maximum(z, yd - y1)
            e = (dx**2 + dy**2) / var / (areas[j] + np.spacing(1)) / 2
            if k1 > 0:
                e = e[vg > 0]
            out[i, j] = np.sum(np.exp(-e)) / e.shape[0]
    return out


def fuzz_coco_grouped_oks(data: Any) -> None:
    draw = data.draw
    k, d, g = draw(st.integers(1, 4)), draw(st.integers(0, 4)), draw(st.integers(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dt = rng.random((d, 3 * k)) * 20
    gt = rng.random((g, 3 * k)) * 20
    gt[:, 2::3] = rng.integers(0, 3, (g, k))
    boxes = rng.random((g, 4)) * 10
    areas = rng.random(g) * 50 + draw(st.sampled_from((0.0, 1.0)))
    sigmas = rng.random(k) + 0.1
    mutation = draw(
        st.sampled_from((None, None, "gt_width", "areas_len", "boxes_shape", "offsets"))
    )
    dto, gto = np.array([0, d]), np.array([0, g])
    if mutation is not None:
        if mutation == "gt_width":
            gt = np.zeros((g, 3 * k + 1))
        elif mutation == "areas_len":
            areas = np.zeros(g + 1)
        elif mutation == "boxes_shape":
            boxes = np.zeros((g + 1, 4))
        else:
            dto = np.array([0, d + 1])
        _result, ok = call_or_error(vt_ops.coco_grouped_oks, dt, gt, boxes, areas, sigmas, dto, gto)
        assert not ok or (mutation == "gt_width" and g * (3 * k + 1) % (3 * k) == 0), (
            f"{mutation}: accepted"
        )
        return
    oks, _offsets = call(vt_ops.coco_grouped_oks, dt, gt, boxes, areas, sigmas, dto, gto)
    want = oks_reference(dt, gt, boxes, areas, sigmas)
    assert_close(oks, want.reshape(-1), 1e-9, "coco_grouped_oks")


def fuzz_coco_group_order(data: Any) -> None:
    draw = data.draw
    n_img, n_cat, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(0, 12))
    img = np.array(
        draw(st.lists(st.integers(0, n_img - 1), min_size=n, max_size=n)), dtype=np.int64
    )
    cat = np.array(
        draw(st.lists(st.integers(0, n_cat - 1), min_size=n, max_size=n)), dtype=np.int64
    )
    scores = np.array(draw(st.lists(st.sampled_from((0.1, 0.5, 0.9)), min_size=n, max_size=n)))
    use_cats = draw(st.booleans())
    mutation = draw(st.sampled_from((None, None, None, "range", "length", "negative")))
    if mutation is not None and n:
        if mutation == "range":
            img[0] = n_img
        elif mutation == "negative":
            cat[-1] = -1
        else:
            scores = scores[:-1]
        _result, ok = call_or_error(
            vt_ops.coco_group_order, img, cat, scores, n_img, n_cat, use_cats
        )
        assert not ok, f"{mutation}: accepted"
        return
    got = call(vt_ops.coco_group_order, img, cat, scores, n_img, n_cat, use_cats)
    idx = np.arange(n)
    keys = (idx, -scores, img, cat) if use_cats else (idx, cat, -scores, img)
    want = np.lexsort(keys)
    assert np.array_equal(got, want), f"order {got.tolist()}, expected {want.tolist()}"


def fuzz_coco_match_accumulate(data: Any) -> None:
    """coco_match and coco_accumulate on random (and mutated) inputs: invariants, no crash."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ng = draw(st.integers(1, 3))
    dsz = [draw(st.integers(0, 3)) for _ in range(ng)]
    gsz = [draw(st.integers(0, 3)) for _ in range(ng)]
    dto, gto = np.cumsum([0, *dsz]), np.cumsum([0, *gsz])
    ioo = np.cumsum([0] + [a * b for a, b in zip(dsz, gsz)])
    d, g = int(dto[-1]), int(gto[-1])
    ious = rng.random(int(ioo[-1]))
    kwargs = {
        "gt_ignore": rng.random(g) < 0.2,
        "gt_crowd": rng.random(g) < 0.2,
        "gt_area": rng.random(g) * 100,
        "gt_zero_id": rng.random(g) < 0.1,
        "dt_area": rng.random(d) * 100,
        "area_ranges": np.array([[0, 1e10], [0, 50.0]]),
        "iou_thresholds": np.array([0.5, 0.75]),
    }
    mutation = draw(st.sampled_from((None, None, "ious_len", "gt_len", "offsets", "ranges")))
    if mutation == "ious_len":
        ious = ious[:-1] if ious.size else np.zeros(1)
    elif mutation == "gt_len":
        kwargs["gt_area"] = np.zeros(g + 1)
    elif mutation == "offsets":
        dto = dto.copy()
        dto[-1] += 2
    elif mutation == "ranges":
        kwargs["area_ranges"] = np.zeros(3)
    if mutation is not None:
        _, ok = call_or_error(vt_ops.coco_match, ious, ioo, dto, gto, **kwargs)
        assert not ok, f"{mutation}: accepted"
        return
    state, npig = call(vt_ops.coco_match, ious, ioo, dto, gto, **kwargs)
    assert state.shape == (d, 2, 2) and set(np.unique(state)) <= {0, 1, 2}
    assert npig.shape == (2, ng) and (npig >= 0).all()
    # accumulate over one category holding every detection
    scores = rng.random(d)
    rank = np.concatenate([np.arange(s) for s in dsz]) if d else np.zeros(0, np.int64)
    cat_offsets = np.array([0, d])
    npig_cat = npig.sum(axis=1, keepdims=True)
    bad = draw(st.sampled_from((None, None, "state", "cats", "npig")))
    if bad == "state":
        state = state[:-1] if d else np.zeros((1, 2, 2), np.int8)
    elif bad == "cats":
        cat_offsets = np.array([0, d + 1])
    elif bad == "npig":
        npig_cat = np.zeros((3, 1), np.int64)
    args = (scores, rank, state, cat_offsets, npig_cat, np.linspace(0, 1, 11), [1, 10])
    if bad is not None:
        _, ok = call_or_error(vt_ops.coco_accumulate, *args)
        assert not ok, f"{bad}: accepted"
        return
    precision, recall, _sc = call(vt_ops.coco_accumulate, *args)
    assert precision.shape == (2, 11, 1, 2, 2) and recall.shape == (2, 1, 2, 2)
    valid = precision[precision != -1]
    assert ((valid >= 0) & (valid <= 1)).all(), "precision outside [0, 1]"


def fuzz_records_fields(data: Any) -> None:
    draw = data.draw
    value = st.one_of(
        st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.none(), st.text(max_size=2),
        st.lists(st.floats(-10, 10), max_size=5), st.booleans(),
    )  # fmt: skip
    records = draw(
        st.lists(
            st.one_of(
                st.dictionaries(st.sampled_from(("a", "b", "c")), value, max_size=3),
                st.sampled_from((None, 3, [1])),
            ),
            max_size=4,
        )
    )
    fields = {
        "a": (np.float64, 0, draw(st.sampled_from((None, 0.0)))),
        "b": (np.int64, 0, draw(st.sampled_from((None, 0)))),
        "c": (np.float64, 4, draw(st.sampled_from((None, [0.0] * 4)))),
    }
    result, ok = call_or_error(vt_ops.records_fields, records, fields)
    if not ok:
        return
    for i, r in enumerate(records):
        assert isinstance(r, dict), f"record {i} ({r!r}) accepted"
        for key, (dtype, width, default) in fields.items():
            v = r.get(key, default)
            assert v is not None, f"missing {key} accepted"
            got = result[key][i]
            if width:
                assert np.array_equal(got, np.asarray(v, dtype=dtype), equal_nan=True), key
            else:
                assert isinstance(v, (int, float)), f"{key}={v!r} accepted"
                if dtype is np.int64:
                    assert got == v, f"{key}: {got} != {v!r}"
                else:
                    assert got == float(v) or (math.isnan(got) and math.isnan(v)), key


# --- driver ------------------------------------------------------------------------------------


FUZZERS: dict[str, Callable[[Any], None]] = {
    name.removeprefix("fuzz_"): fn
    for name, fn in sorted(globals().items())
    if name.startswith("fuzz_") and callable(fn)
}

# Every public function of vt_ops is exercised by the fuzzer named here.
COVERS = {
    "box_iou": ("box_iou", "box_ioa"),
    "box_iou_rotated": ("box_iou_rotated",),
    "nms": ("nms",),
    "batched_nms": ("batched_nms",),
    "nms_rotated": ("nms_rotated",),
    "batched_nms_rotated": ("batched_nms_rotated",),
    "roi_align": ("roi_align",),
    "roi_align_rotated": ("roi_align_rotated",),
    "roi_pool": ("roi_pool",),
    "deform_conv2d": ("deform_conv2d",),
    "confusion_matrix": ("confusion_matrix",),
    "rle": ("rle_pack", "rle_unpack", "rle_encode", "rle_decode", "rle_area", "rle_to_bbox",
            "rle_merge", "rle_iou"),
    "rle_from_objects": ("rle_from_objects",),
    "coco_box_iou": ("coco_box_iou", "coco_grouped_iou"),
    "coco_grouped_oks": ("coco_grouped_oks",),
    "coco_group_order": ("coco_group_order",),
    "coco_match_accumulate": ("coco_match", "coco_accumulate"),
    "records_fields": ("records_fields",),
}  # fmt: skip


def run(name: str, examples: int, seed: int | None) -> tuple[int, str | None]:
    """Run one fuzzer; returns (cases run, failure text or None)."""
    global _CURRENT
    _CURRENT = name
    _COUNTS[name] = 0
    fuzzer = FUZZERS[name]

    def property(data: Any) -> None:
        _COUNTS[name] += 1
        fuzzer(data)

    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(given(st.data())(property))
    if seed is not None:
        from hypothesis import seed as with_seed

        test = with_seed(seed)(test)
    try:
        test()
    except Exception:
        return _COUNTS[name], traceback.format_exc()
    return _COUNTS[name], None


def main(argv: list[str]) -> int:
    global _CASE_FILE
    _CASE_FILE = argv[0] if argv else None
    names = argv[1:] or list(FUZZERS)
    examples = int(os.environ.get("VT_FUZZ_EXAMPLES", "100"))
    seed = os.environ.get("VT_FUZZ_SEED")
    warnings.simplefilter("ignore", RuntimeWarning)  # numpy's casts of huge values to float16
    vt_ops.set_num_threads(int(os.environ.get("VT_OPS_NUM_THREADS", "1")))
    torch.set_num_threads(1)
    covered = {f for fs in COVERS.values() for f in fs}
    public = {n for n in vt_ops.__all__ if callable(getattr(vt_ops, n)) and n[0].islower()}
    helpers = {"build_info", "cuda_available", "get_num_threads", "set_num_threads",
               "register_torch_ops", "onnx_translation_table"}  # fmt: skip
    missing = sorted(public - covered - helpers)
    failed = bool(missing)
    if missing:
        print(f"FUZZ_UNCOVERED {' '.join(missing)}", flush=True)
    total = 0
    for name in names:
        start = time.process_time()
        count, failure = run(name, examples, None if seed is None else int(seed))
        total += count
        print(f"FUZZ {name} {count} ({time.process_time() - start:.1f} s)", flush=True)
        if failure:
            failed = True
            print(f"FUZZ_FAIL {name}\n{failure}", flush=True)
    print(f"FUZZ_TOTAL {total}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
