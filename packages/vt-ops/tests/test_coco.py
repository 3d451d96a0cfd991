import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import vt_ops

mask_utils = pytest.importorskip("pycocotools.mask")
# pycocotools' own decode() warns under numpy 2
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def random_masks(rng, h, w, n, density=0.5):
    return np.asfortranarray((rng.random((h, w, n)) < density).astype(np.uint8))


masks_strategy = hnp.arrays(
    np.uint8,
    st.tuples(st.integers(1, 20), st.integers(1, 20), st.integers(1, 4)),
    elements=st.integers(0, 1),
)


@settings(max_examples=100, deadline=None)
@given(masks_strategy)
def test_property_encode_decode_area_bbox_match_pycocotools(masks):
    masks = np.asfortranarray(masks)
    ref = mask_utils.encode(masks)
    ours = vt_ops.rle_encode(masks)
    assert ours == ref
    np.testing.assert_array_equal(vt_ops.rle_decode(ours), mask_utils.decode(ref))
    np.testing.assert_array_equal(vt_ops.rle_area(ours), mask_utils.area(ref))
    np.testing.assert_array_equal(vt_ops.rle_to_bbox(ours), mask_utils.toBbox(ref))
    assert vt_ops.rle_merge(ours) == mask_utils.merge(ref)
    assert vt_ops.rle_merge(ours, intersect=True) == mask_utils.merge(ref, intersect=True)
    crowd = np.arange(len(ref)) % 2
    np.testing.assert_array_equal(
        vt_ops.rle_iou(ours, ours, crowd), mask_utils.iou(ref, ref, crowd)
    )


def test_single_mask_forms():
    m = np.asfortranarray(random_masks(np.random.default_rng(0), 7, 9, 1)[:, :, 0])
    rle = vt_ops.rle_encode(m)
    assert rle == mask_utils.encode(m)
    np.testing.assert_array_equal(vt_ops.rle_decode(rle), m)
    assert vt_ops.rle_area(rle) == mask_utils.area(rle)
    np.testing.assert_array_equal(vt_ops.rle_to_bbox(rle), mask_utils.toBbox(rle))


def test_empty_and_full_masks():
    masks = np.asfortranarray(np.stack([np.zeros((5, 6)), np.ones((5, 6))], 2).astype(np.uint8))
    ours, ref = vt_ops.rle_encode(masks), mask_utils.encode(masks)
    assert ours == ref
    np.testing.assert_array_equal(vt_ops.rle_to_bbox(ours), mask_utils.toBbox(ref))
    np.testing.assert_array_equal(
        vt_ops.rle_iou(ours, ours, [0, 1]), mask_utils.iou(ref, ref, [0, 1])
    )


coords = st.floats(-20, 120, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(coords, min_size=6, max_size=30).filter(lambda p: len(p) % 2 == 0),
        min_size=1,
        max_size=3,
    ),
    st.integers(1, 100),
    st.integers(1, 100),
)
def test_property_polygons_rasterise_like_pycocotools(polys, h, w):
    assert vt_ops.rle_from_objects(polys, h, w) == mask_utils.frPyObjects(polys, h, w)
    merged = vt_ops.rle_pack([polys], [h], [w])
    ref = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    assert vt_ops.rle_unpack(merged) == [ref]


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.just(4)), elements=st.floats(-10, 90))
)
def test_property_boxes_rasterise_like_pycocotools(boxes):
    assert vt_ops.rle_from_objects(boxes, 60, 70) == mask_utils.frPyObjects(boxes, 60, 70)


def test_uncompressed_and_string_rles():
    unc = {"size": [4, 5], "counts": [3, 6, 2, 9]}
    assert vt_ops.rle_from_objects(unc, 0, 0) == mask_utils.frPyObjects(unc, 4, 5)
    assert vt_ops.rle_from_objects([unc], 0, 0) == mask_utils.frPyObjects([unc], 4, 5)
    rle = mask_utils.encode(random_masks(np.random.default_rng(1), 30, 20, 1))[0]
    as_str = {"size": rle["size"], "counts": rle["counts"].decode()}
    assert vt_ops.rle_unpack(vt_ops.rle_pack([as_str, rle])) == [rle, rle]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 10), st.just(4)), elements=st.floats(0, 50)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 10), st.just(4)), elements=st.floats(0, 50)),
    st.data(),
)
def test_property_coco_box_iou_matches_pycocotools(dt, gt, data):
    crowd = data.draw(hnp.arrays(np.uint8, gt.shape[0], elements=st.integers(0, 1)))
    ours = vt_ops.coco_box_iou(dt, gt, crowd)
    assert ours.shape == (dt.shape[0], gt.shape[0])
    if dt.shape[0]:
        np.testing.assert_array_equal(ours, mask_utils.iou(dt, gt, crowd))


def test_mask_iou_of_different_sizes_is_minus_one():
    a = vt_ops.rle_encode(np.ones((4, 4, 1), dtype=np.uint8, order="F"))
    b = vt_ops.rle_encode(np.ones((4, 5, 1), dtype=np.uint8, order="F"))
    assert vt_ops.rle_iou(a, b, [0])[0, 0] == mask_utils.iou(a, b, [0])[0, 0] == -1


def test_grouped_iou_equals_per_group_iou():
    rng = np.random.default_rng(3)
    dt_sizes, gt_sizes = [3, 0, 5, 2], [2, 4, 0, 3]
    dt = rng.random((sum(dt_sizes), 4)) * 40
    gt = rng.random((sum(gt_sizes), 4)) * 40
    crowd = rng.random(len(gt)) < 0.3
    dto, gto = np.cumsum([0, *dt_sizes]), np.cumsum([0, *gt_sizes])
    ious, off = vt_ops.coco_grouped_iou(dt, gt, crowd, dto, gto)
    masks = random_masks(rng, 12, 10, len(dt) + len(gt), 0.3)
    rles = vt_ops.rle_pack(vt_ops.rle_encode(masks))
    d_rles, g_rles = (
        vt_ops.rle_encode(masks[:, :, : len(dt)]),
        vt_ops.rle_encode(masks[:, :, len(dt) :]),
    )
    mask_ious, mask_off = vt_ops.coco_grouped_iou(
        vt_ops.rle_pack(d_rles), vt_ops.rle_pack(g_rles), crowd, dto, gto
    )
    assert len(rles) == len(dt) + len(gt)
    for g in range(len(dt_sizes)):
        d, gg = slice(dto[g], dto[g + 1]), slice(gto[g], gto[g + 1])
        block = ious[off[g] : off[g + 1]].reshape(dt_sizes[g], gt_sizes[g])
        mblock = mask_ious[mask_off[g] : mask_off[g + 1]].reshape(dt_sizes[g], gt_sizes[g])
        if dt_sizes[g] and gt_sizes[g]:
            np.testing.assert_array_equal(block, mask_utils.iou(dt[d], gt[gg], crowd[gg]))
            np.testing.assert_array_equal(
                mblock, mask_utils.iou(d_rles[d], g_rles[gg], crowd[gg].astype(np.uint8))
            )


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 60), st.integers(1, 5), st.integers(1, 4), st.booleans(), st.integers(0, 2**31)
)
def test_property_group_order_is_pycocotools_order(n, n_img, n_cat, use_cats, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, n_img, n)
    cat = rng.integers(0, n_cat, n)
    score = rng.integers(0, 4, n) / 4  # ties
    order = vt_ops.coco_group_order(img, cat, score, n_img, n_cat, use_cats)
    if use_cats:
        expected = np.lexsort((-score, cat * n_img + img))
    else:
        expected = np.lexsort((cat, -score, img))
    np.testing.assert_array_equal(order, expected)


def test_records_fields_reads_and_validates():
    recs = [{"a": 1, "b": [1, 2.5]}, {"a": 2, "b": (3, 4), "c": 7.0}]
    out = vt_ops.records_fields(
        recs, {"a": (np.int64, 0, None), "b": (np.float64, 2, None), "c": (np.float64, 0, -1)}
    )
    np.testing.assert_array_equal(out["a"], [1, 2])
    np.testing.assert_array_equal(out["b"], [[1, 2.5], [3, 4]])
    np.testing.assert_array_equal(out["c"], [-1, 7])
    with pytest.raises(ValueError, match=r"records\[1\]: missing key 'x'"):
        vt_ops.records_fields([{"x": 1}, {}], {"x": (np.float64, 0, None)})
    with pytest.raises(ValueError, match=r"records\[0\]\['b'\]: expected 3 numbers, got 2"):
        vt_ops.records_fields(recs, {"b": (np.float64, 3, None)})
    with pytest.raises(TypeError, match=r"records\[0\]\['a'\]: expected a number"):
        vt_ops.records_fields([{"a": "x"}], {"a": (np.float64, 0, None)})
    with pytest.raises(TypeError, match=r"records\[0\]: expected a dict"):
        vt_ops.records_fields([3], {"a": (np.float64, 0, None)})
    with pytest.raises(TypeError, match=r"fields\['c'\]: default must be None or a float64"):
        vt_ops.records_fields([], {"c": (np.float64, 4, [0.0] * 4)})
    with pytest.raises(TypeError, match=r"fields\['i'\]: default must be None or an? int64"):
        vt_ops.records_fields([], {"i": (np.int64, 0, 0.5)})


@pytest.mark.parametrize("fn", [vt_ops.rle_to_bbox, vt_ops.rle_area, vt_ops.rle_merge])
@pytest.mark.parametrize(
    "rle, message",
    [
        # found by fuzzing: integer division by a zero height killed the interpreter
        ({"size": [0, 3], "counts": [4699, 6364]}, r"rles\[0\]: Invalid RLE .* exceed"),
        ({"size": [2, 2], "counts": [1, 9]}, r"rles\[0\]: Invalid RLE .* \(10 > 2 x 2\)"),
        # a height that wrapped to 0 as pycocotools' uint32
        ({"size": [2**40, 2**31], "counts": "\x02"}, r"height \* width < 2\*\*32"),
    ],
)
def test_rles_that_do_not_fit_their_size_raise(fn, rle, message):
    with pytest.raises(ValueError, match=message):
        fn([rle])


def test_rle_sizes_beyond_uint32_raise():
    with pytest.raises(ValueError, match=r"height \* width < 2\*\*32"):
        vt_ops.rle_from_objects(np.zeros((1, 4)), 2**40, 3)
    with pytest.raises(ValueError, match=r"height \* width < 2\*\*32"):
        vt_ops.rle_pack([[[0, 0, 1, 0, 1, 1]]], [2**16], [2**16])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: vt_ops.rle_pack([{"counts": "abc"}]),
            ValueError,
            "needs the keys 'counts' and 'size'",
        ),
        (
            lambda: vt_ops.rle_pack([[[0, 0, 1, 1, 2, 0]]]),
            ValueError,
            "polygons need the image height",
        ),
        (
            lambda: vt_ops.rle_pack([{"size": [3], "counts": "a"}]),
            ValueError,
            r"'size' must be \[height, width\]",
        ),
        (
            lambda: vt_ops.rle_pack([{"size": [3, 3], "counts": [1, -2]}]),
            ValueError,
            "non-negative integers",
        ),
        (lambda: vt_ops.rle_pack([5]), TypeError, "expected an RLE dict or a list of polygons"),
        (
            lambda: vt_ops.rle_pack([{"size": [3, 3], "counts": "P"}]),
            ValueError,
            r"segmentations\[0\]: truncated compressed RLE",
        ),
        (
            lambda: vt_ops.rle_decode([{"size": [2, 2], "counts": [1, 9]}]),
            ValueError,
            "Invalid RLE",
        ),
        (lambda: vt_ops.rle_encode(np.zeros((2, 2), dtype=np.float32)), TypeError, "uint8"),
        (
            lambda: vt_ops.coco_box_iou(np.zeros((2, 3)), np.zeros((1, 4)), [0]),
            ValueError,
            r"dt: expected boxes of shape \(N, 4\)",
        ),
        (
            lambda: vt_ops.coco_box_iou(np.zeros((2, 4)), np.zeros((1, 4)), [0, 1]),
            ValueError,
            "iscrowd: expected 1 flags",
        ),
        (lambda: vt_ops.rle_area(["x"]), TypeError, r"rles\[0\]: expected an RLE dict"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
