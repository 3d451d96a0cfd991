import hashlib
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vt_engine.synthetic_shapes import (
    KEYPOINT_NAMES,
    STUFF_CLASSES,
    THING_CLASSES,
    synthetic_shapes,
)


def tree_digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return synthetic_shapes(
        tmp_path_factory.mktemp("a"), num_train=12, num_val=4, image_size=128, progress=False
    )


def test_same_seed_gives_identical_files(small, tmp_path):
    again = synthetic_shapes(tmp_path, num_train=12, num_val=4, image_size=128, progress=False)
    assert again.root.name == small.root.name
    assert tree_digest(again.root) == tree_digest(small.root)
    other = synthetic_shapes(
        tmp_path, seed=1, num_train=12, num_val=4, image_size=128, progress=False
    )
    assert tree_digest(other.root) != tree_digest(small.root)


def test_generated_once_then_cached(small):
    marker = small.root / "COMPLETE.json"
    before = marker.stat().st_mtime_ns
    synthetic_shapes(small.root.parent, num_train=12, num_val=4, image_size=128, progress=False)
    assert marker.stat().st_mtime_ns == before


def _rasterize(polygons, size):
    img = Image.new("L", (size, size), 0)
    for poly in polygons:
        ImageDraw.Draw(img).polygon(poly, fill=1)
    return np.asarray(img, dtype=bool)


def test_annotations_match_rendered_segments(small):
    data = json.loads(small.instances_json("train").read_text())
    panoptic = json.loads(small.panoptic_json("train").read_text())
    assert [c["name"] for c in data["categories"]] == list(THING_CLASSES)
    by_image = {a["image_id"]: a for a in panoptic["annotations"]}
    checked = 0
    for image in data["images"]:
        png = np.asarray(
            Image.open(small.panoptic_dir("train") / image["file_name"]), dtype=np.int64
        )
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        segments = by_image[image["id"]]["segments_info"]
        assert sorted(s["id"] for s in segments) == sorted(set(np.unique(ids).tolist()))
        for seg in segments:
            assert seg["area"] == int((ids == seg["id"]).sum())
        things = [s for s in segments if s["category_id"] <= len(THING_CLASSES)]
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        assert len(things) == len(anns)
        for ann, seg in zip(anns, things):
            assert ann["category_id"] == seg["category_id"]
            drawn = ids == seg["id"]
            polygon_mask = _rasterize(ann["segmentation"], small.image_size)
            iou = (drawn & polygon_mask).sum() / (drawn | polygon_mask).sum()
            assert iou > 0.85, (image["file_name"], ann["id"], iou)
            x, y, w, h = ann["bbox"]
            assert (
                0 <= x
                and 0 <= y
                and x + w <= small.image_size + 1e-6
                and y + h <= small.image_size + 1e-6
            )
            assert abs(ann["area"] - drawn.sum()) < 0.2 * ann["area"] + 20
            checked += 1
    assert checked >= 12


def test_keypoints_only_on_triangles(small):
    data = json.loads(small.instances_json("train").read_text())
    triangle_id = THING_CLASSES.index("triangle") + 1
    cats = {c["id"]: c for c in data["categories"]}
    assert cats[triangle_id]["keypoints"] == list(KEYPOINT_NAMES)
    for ann in data["annotations"]:
        if ann["category_id"] == triangle_id:
            assert len(ann["keypoints"]) == 3 * len(KEYPOINT_NAMES)
            assert ann["num_keypoints"] == sum(v > 0 for v in ann["keypoints"][2::3])
        else:
            assert "keypoints" not in ann


def test_triangle_keypoints_are_unambiguous_and_on_the_corners(small):
    """Tall triangles: the apex is far from both base corners, and apex -> base_left ->
    base_right always turns the same way (a flip swaps the base corners). Visible
    keypoints are pixel indices: with the loaders' + 0.5 they lie in the box."""
    triangle_id = THING_CLASSES.index("triangle") + 1
    checked = 0
    for split in ("train", "val"):
        data = json.loads(small.instances_json(split).read_text())
        for ann in data["annotations"]:
            if ann["category_id"] != triangle_id:
                continue
            kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(3, 3)
            x, y, w, h = ann["bbox"]
            for px, py, v in kps:
                if v == 2:
                    assert x - 0.02 <= px + 0.5 <= x + w + 0.02
                    assert y - 0.02 <= py + 0.5 <= y + h + 0.02
            if not (kps[:, 2] > 0).all():
                continue
            apex, left, right = kps[:, :2]
            base = np.linalg.norm(right - left)
            assert min(np.linalg.norm(left - apex), np.linalg.norm(right - apex)) > 1.4 * base
            (ax, ay), (bx, by) = left - apex, right - apex
            assert ax * by - ay * bx < 0  # clockwise on screen (y down)
            checked += 1
    assert checked >= 3


def test_semantic_maps_use_the_declared_classes(small):
    n_classes = len(STUFF_CLASSES) + len(THING_CLASSES)
    for path in small.sem_seg_dir("val").glob("*.png"):
        sem = np.asarray(Image.open(path))
        assert sem.dtype == np.uint8 and sem.max() < n_classes


def test_pycocotools_reads_the_annotations(small):
    coco_mod = pytest.importorskip("pycocotools.coco")
    coco = coco_mod.COCO(str(small.instances_json("val")))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(ann).sum() > 0


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="num_train"):
        synthetic_shapes(tmp_path, num_train=0)
    with pytest.raises(ValueError, match="image_size"):
        synthetic_shapes(tmp_path, image_size=8)
    with pytest.raises(ValueError, match="split"):
        synthetic_shapes(tmp_path, num_train=1, num_val=1, image_size=64, progress=False).image_dir(
            "test"
        )
