"""An embedded, generated detection/segmentation dataset: no downloads.

Deterministic synthetic scenes of four shape categories (circle, rectangle,
triangle, star) with varied size, colour, rotation and occlusion on textured
two-region backgrounds ("wall" above a tilted horizon, "floor" below).
Triangles are tall isosceles ones (height 1.4 to 2 times the base), so that their
apex stays distinct from the two base corners at any rotation. Each split is
written in COCO format: instance polygons (the visible parts, exact after
occlusion), keypoints for triangles (apex, base_left, base_right; COCO's pixel
indices, so a corner at continuous x is written x - 0.5), semantic maps and COCO
panoptic annotations. Files are generated on first use into a cache directory
and are byte-identical for the same parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.ops import unary_union
from tqdm import tqdm

__all__ = [
    "KEYPOINT_NAMES",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "SyntheticShapes",
    "synthetic_shapes",
]

FORMAT_VERSION = 2
THING_CLASSES = ("circle", "rectangle", "triangle", "star")
STUFF_CLASSES = ("wall", "floor")
KEYPOINT_NAMES = ("apex", "base_left", "base_right")  # of triangles
KEYPOINT_FLIP_MAP = (("base_left", "base_right"),)
# Semantic map values: stuff first, then things; 255 is never written but is the ignore value.
SEM_SEG_CLASSES = STUFF_CLASSES + THING_CLASSES
IGNORE_LABEL = 255

_MIN_VISIBLE_FRACTION = 0.4  # an occluded object keeps at least this much of its area
_MIN_VISIBLE_AREA = 60.0  # pixels
_MIN_PART_AREA = 4.0  # drop slivers left by occlusion
_RECTANGLE_ASPECT = (0.6, 1.2)  # height / width
# height / base: a narrow apex (28 to 39 degrees) against wide base angles, so the apex
# keypoint cannot be mistaken for a base corner (near-equilateral ones would be ambiguous).
_TRIANGLE_ASPECT = (1.4, 2.0)


@dataclass(frozen=True)
class SyntheticShapes:
    """Where a generated dataset lives, and its metadata."""

    root: Path
    seed: int
    image_size: int
    num_train: int
    num_val: int

    def image_dir(self, split: str) -> Path:
        return self.root / "images" / _check_split(split)

    def instances_json(self, split: str) -> Path:
        return self.root / "annotations" / f"instances_{_check_split(split)}.json"

    def panoptic_json(self, split: str) -> Path:
        return self.root / "annotations" / f"panoptic_{_check_split(split)}.json"

    def panoptic_dir(self, split: str) -> Path:
        return self.root / "panoptic" / _check_split(split)

    def sem_seg_dir(self, split: str) -> Path:
        return self.root / "sem_seg" / _check_split(split)

    @property
    def thing_classes(self) -> tuple[str, ...]:
        return THING_CLASSES

    @property
    def stuff_classes(self) -> tuple[str, ...]:
        return STUFF_CLASSES

    @property
    def sem_seg_classes(self) -> tuple[str, ...]:
        return SEM_SEG_CLASSES

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return KEYPOINT_NAMES

    @property
    def keypoint_flip_map(self) -> tuple[tuple[str, str], ...]:
        return KEYPOINT_FLIP_MAP


def _check_split(split: str) -> str:
    if split not in ("train", "val"):
        raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
    return split


def default_root() -> Path:
    """``$VT_DATA_DIR``, else ``~/.cache/vt/datasets``."""
    env = os.environ.get("VT_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "vt" / "datasets"


def synthetic_shapes(
    root: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    num_train: int = 800,
    num_val: int = 100,
    image_size: int = 256,
    force: bool = False,
    progress: bool = True,
) -> SyntheticShapes:
    """Generate the dataset (once) and return where it lives.

    Args:
        root: parent directory of the cache (default :func:`default_root`); the
            dataset goes in a sub-directory named after its parameters.
        seed: every image is drawn from a generator seeded by (seed, split, index).
        num_train: number of training images.
        num_val: number of validation images.
        image_size: images are square, ``image_size`` pixels wide.
        force: regenerate even when a complete copy exists.
        progress: show a progress bar while generating.

    Returns:
        SyntheticShapes: paths to images and annotations of both splits.
    """
    for name, value, low in (
        ("num_train", num_train, 1),
        ("num_val", num_val, 1),
        ("image_size", image_size, 64),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    params = {
        "version": FORMAT_VERSION,
        "seed": seed,
        "num_train": num_train,
        "num_val": num_val,
        "image_size": image_size,
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    base = Path(root) if root is not None else default_root()
    dataset = SyntheticShapes(
        base / f"shapes-v{FORMAT_VERSION}-{digest}", seed, image_size, num_train, num_val
    )
    marker = dataset.root / "COMPLETE.json"
    if marker.exists() and not force and json.loads(marker.read_text()) == params:
        return dataset
    if dataset.root.exists():
        shutil.rmtree(dataset.root)
    tmp = dataset.root.with_name(dataset.root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    partial = SyntheticShapes(tmp, seed, image_size, num_train, num_val)
    for split, count in (("train", num_train), ("val", num_val)):
        _write_split(partial, split, count, progress)
    (tmp / "COMPLETE.json").write_text(json.dumps(params, sort_keys=True))
    tmp.rename(dataset.root)
    return dataset


# ----------------------------------------------------------------------------- geometry


def _shape_polygon(
    category: str, cx: float, cy: float, size: float, angle: float, aspect: float
) -> Polygon:
    if category == "circle":
        poly = Point(cx, cy).buffer(size / 2, quad_segs=16)
    elif category == "rectangle":
        poly = box(cx - size / 2, cy - size * aspect / 2, cx + size / 2, cy + size * aspect / 2)
    elif category == "triangle":
        poly = Polygon(_triangle_points(cx, cy, size, aspect))
    else:  # star
        outer, inner = size / 2, size / 5
        points = [
            (
                cx + (outer if k % 2 == 0 else inner) * math.sin(math.pi * k / 5),
                cy - (outer if k % 2 == 0 else inner) * math.cos(math.pi * k / 5),
            )
            for k in range(10)
        ]
        poly = Polygon(points)
    return poly if category == "circle" else affinity.rotate(poly, angle, origin=(cx, cy))


def _triangle_points(cx: float, cy: float, size: float, aspect: float) -> list[tuple[float, float]]:
    """Apex, base_left, base_right of an isosceles triangle (base ``size``, height
    ``size * aspect``) before rotation."""
    h = size * aspect
    return [(cx, cy - h / 2), (cx - size / 2, cy + h / 2), (cx + size / 2, cy + h / 2)]


def _rotate_points(
    points: list[tuple[float, float]], angle: float, cx: float, cy: float
) -> list[tuple[float, float]]:
    # shapely.affinity.rotate: positive angle is counter-clockwise in a y-up frame.
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    return [
        (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
        for x, y in points
    ]


def _parts(geom: Any) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom] if not geom.is_empty else []
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]


def _acceptable(visible: Any, full_area: float) -> bool:
    parts = [p for p in _parts(visible) if p.area >= _MIN_PART_AREA]
    if any(p.interiors for p in parts):
        return False  # COCO polygons cannot have holes
    area = sum(p.area for p in parts)
    return area >= _MIN_VISIBLE_AREA and area >= _MIN_VISIBLE_FRACTION * full_area


# ----------------------------------------------------------------------------- scenes


def _texture(rng: np.random.Generator, h: int, w: int, kind: int) -> np.ndarray:
    base = rng.uniform(60, 200, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(6, 24)
    if kind == 0:  # stripes
        pattern = np.sin(2 * np.pi * (xx * math.cos(rng.uniform(0, np.pi)) + yy) / period)
    else:  # checker
        pattern = np.sign(np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period))
    amplitude = rng.uniform(8, 25)
    noise = rng.normal(0, 6, size=(h, w, 1))
    img = base[None, None, :] + amplitude * pattern[..., None] + noise
    return np.clip(img, 0, 255)


def _make_scene(rng: np.random.Generator, size: int) -> dict[str, Any]:
    image_box = box(0, 0, size, size)
    # Tilted horizon: wall above, floor below.
    left_y = rng.uniform(0.3, 0.7) * size
    right_y = left_y + rng.uniform(-0.15, 0.15) * size
    floor = Polygon([(0, left_y), (size, right_y), (size, size), (0, size)])
    objects: list[dict[str, Any]] = []
    target = int(rng.integers(2, 7))
    attempts = 0
    while len(objects) < target and attempts < 60:
        attempts += 1
        category = THING_CLASSES[int(rng.integers(len(THING_CLASSES)))]
        obj_size = float(rng.uniform(0.12, 0.38) * size)
        cx, cy = (float(v) for v in rng.uniform(0.05 * size, 0.95 * size, size=2))
        angle = float(rng.uniform(-180, 180))
        if category == "rectangle":
            aspect = float(rng.uniform(*_RECTANGLE_ASPECT))
        elif category == "triangle":
            aspect = float(rng.uniform(*_TRIANGLE_ASPECT))
        else:
            aspect = 1.0
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        poly = _shape_polygon(category, cx, cy, obj_size, angle, aspect)
        visible = poly.intersection(image_box)
        if not _acceptable(visible, poly.area):
            continue
        # The new shape occludes the earlier ones: all must stay acceptable.
        occluded = [o["visible"].difference(poly) for o in objects]
        if not all(_acceptable(v, o["full_area"]) for v, o in zip(occluded, objects)):
            continue
        for o, v in zip(objects, occluded):
            o["visible"] = v
        obj = {
            "category": category,
            "polygon": poly,
            "visible": visible,
            "full_area": poly.area,
            "color": color,
        }
        if category == "triangle":
            obj["keypoints"] = _rotate_points(
                _triangle_points(cx, cy, obj_size, aspect), angle, cx, cy
            )
        objects.append(obj)
    # Keypoint visibility is decided once every occluder is known.
    covered_after = [
        unary_union([o["polygon"] for o in objects[i + 1 :]]) for i in range(len(objects))
    ]
    for obj, cover in zip(objects, covered_after):
        if "keypoints" not in obj:
            continue
        kps = []
        for x, y in obj["keypoints"]:
            # COCO keypoints are pixel indices (pixel i is centred on i + 0.5, and loaders
            # add 0.5): write the pixel the corner lies in, so that it is back on the
            # corner, inside the box, once loaded.
            xy = [round(max(x - 0.5, 0.0), 2), round(max(y - 0.5, 0.0), 2)]
            if not (0 <= x < size and 0 <= y < size):
                kps += [0.0, 0.0, 0]
            elif not cover.is_empty and cover.contains(Point(x, y)):
                kps += [*xy, 1]  # labelled, occluded
            else:
                kps += [*xy, 2]
        obj["keypoints"] = kps
    return {
        "floor": floor,
        "objects": objects,
        "textures": (int(rng.integers(2)), int(rng.integers(2))),
    }


def _render(
    rng: np.random.Generator, scene: dict[str, Any], size: int
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """RGB image, semantic map (uint8) and panoptic segment-index map (int32, 0-based)."""
    wall = _texture(rng, size, size, scene["textures"][0])
    floor = _texture(rng, size, size, scene["textures"][1])
    floor_mask_img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(floor_mask_img).polygon(list(scene["floor"].exterior.coords), fill=1)
    floor_mask = np.asarray(floor_mask_img, dtype=bool)
    rgb = np.where(floor_mask[..., None], floor, wall).astype(np.uint8)
    image = Image.fromarray(rgb)
    sem = Image.fromarray(floor_mask.astype(np.uint8) * SEM_SEG_CLASSES.index("floor"))
    # segment index: 0 wall, 1 floor, 2 + k for object k
    seg = Image.fromarray(floor_mask.astype(np.uint8))
    draw_rgb, draw_sem, draw_seg = ImageDraw.Draw(image), ImageDraw.Draw(sem), ImageDraw.Draw(seg)
    for k, obj in enumerate(scene["objects"]):
        coords = [(float(x), float(y)) for x, y in obj["polygon"].exterior.coords]
        shade = tuple(max(0, c - 40) for c in obj["color"])
        draw_rgb.polygon(coords, fill=obj["color"], outline=shade)
        draw_sem.polygon(coords, fill=SEM_SEG_CLASSES.index(obj["category"]))
        draw_seg.polygon(coords, fill=2 + k)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, size=(size, size, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return image, np.asarray(sem, dtype=np.uint8), np.asarray(seg, dtype=np.int32)


def _polygon_list(geom: Any) -> list[list[float]]:
    polys = []
    for part in _parts(geom):
        if part.area < _MIN_PART_AREA:
            continue
        coords = list(part.exterior.coords)[:-1]
        polys.append([round(float(v), 2) for xy in coords for v in xy])
    return polys


def _bbox_xywh(geom: Any) -> list[float]:
    x1, y1, x2, y2 = geom.bounds
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def _id_to_rgb(segment_id: int) -> tuple[int, int, int]:
    return segment_id % 256, (segment_id // 256) % 256, segment_id // 65536


def _categories() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    things = []
    for i, name in enumerate(THING_CLASSES):
        cat: dict[str, Any] = {"id": i + 1, "name": name, "supercategory": "shape"}
        if name == "triangle":
            cat["keypoints"] = list(KEYPOINT_NAMES)
            cat["skeleton"] = [[1, 2], [2, 3], [3, 1]]
        things.append(cat)
    panoptic = [
        {**{k: c[k] for k in ("id", "name", "supercategory")}, "isthing": 1} for c in things
    ]
    panoptic += [
        {
            "id": len(THING_CLASSES) + 1 + i,
            "name": name,
            "supercategory": "background",
            "isthing": 0,
        }
        for i, name in enumerate(STUFF_CLASSES)
    ]
    return things, panoptic


def _write_split(dataset: SyntheticShapes, split: str, count: int, progress: bool) -> None:
    size = dataset.image_size
    for d in (dataset.image_dir(split), dataset.panoptic_dir(split), dataset.sem_seg_dir(split)):
        d.mkdir(parents=True, exist_ok=True)
    dataset.instances_json(split).parent.mkdir(parents=True, exist_ok=True)
    thing_cats, panoptic_cats = _categories()
    stuff_ids = {name: len(THING_CLASSES) + 1 + i for i, name in enumerate(STUFF_CLASSES)}
    images, annotations, panoptic_annotations = [], [], []
    split_code = 0 if split == "train" else 1
    for index in tqdm(
        range(count), desc=f"generating shapes/{split}", disable=not progress, unit="img"
    ):
        rng = np.random.default_rng([dataset.seed, split_code, index])
        scene = _make_scene(rng, size)
        image, sem, seg = _render(rng, scene, size)
        image_id = index + 1
        file_name = f"{index:06d}.png"
        image.save(dataset.image_dir(split) / file_name)
        Image.fromarray(sem).save(dataset.sem_seg_dir(split) / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})

        segments_info = []
        panoptic_rgb = np.zeros((size, size, 3), dtype=np.uint8)
        for seg_index, name in enumerate(STUFF_CLASSES):
            mask = seg == seg_index
            if mask.any():
                segments_info.append(_segment_info(seg_index + 1, stuff_ids[name], mask))
                panoptic_rgb[mask] = _id_to_rgb(seg_index + 1)
        for k, obj in enumerate(scene["objects"]):
            ann_id = len(annotations) + 1
            polygons = _polygon_list(obj["visible"])
            visible_area = sum(p.area for p in _parts(obj["visible"]) if p.area >= _MIN_PART_AREA)
            ann = {
                "id": ann_id,
                "image_id": image_id,
                "category_id": THING_CLASSES.index(obj["category"]) + 1,
                "segmentation": polygons,
                "area": round(visible_area, 2),
                "bbox": _bbox_xywh(obj["visible"]),
                "iscrowd": 0,
            }
            if "keypoints" in obj:
                ann["keypoints"] = obj["keypoints"]
                ann["num_keypoints"] = sum(1 for v in obj["keypoints"][2::3] if v > 0)
            annotations.append(ann)
            mask = seg == 2 + k
            if mask.any():
                segment_id = 100 + k  # distinct from stuff segment ids 1, 2
                segments_info.append(_segment_info(segment_id, ann["category_id"], mask))
                panoptic_rgb[mask] = _id_to_rgb(segment_id)
        Image.fromarray(panoptic_rgb).save(dataset.panoptic_dir(split) / file_name)
        panoptic_annotations.append(
            {"image_id": image_id, "file_name": file_name, "segments_info": segments_info}
        )

    info = {
        "description": "vt synthetic shapes",
        "version": str(FORMAT_VERSION),
        "seed": dataset.seed,
    }
    instances = {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": thing_cats,
    }
    dataset.instances_json(split).write_text(json.dumps(instances, sort_keys=True))
    panoptic = {
        "info": info,
        "images": images,
        "annotations": panoptic_annotations,
        "categories": panoptic_cats,
    }
    dataset.panoptic_json(split).write_text(json.dumps(panoptic, sort_keys=True))


def _segment_info(segment_id: int, category_id: int, mask: np.ndarray) -> dict[str, Any]:
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return {
        "id": segment_id,
        "category_id": category_id,
        "iscrowd": 0,
        "area": int(mask.sum()),
        "bbox": [x1, y1, x2 - x1, y2 - y1],
    }


def dataset_summary(dataset: SyntheticShapes) -> dict[str, Any]:
    """Counts per split (images, instances per category, triangles with keypoints)."""
    summary: dict[str, Any] = {
        "root": str(dataset.root),
        **{k: v for k, v in asdict(dataset).items() if k != "root"},
    }
    for split in ("train", "val"):
        data = json.loads(dataset.instances_json(split).read_text())
        per_cat = {c["name"]: 0 for c in data["categories"]}
        names = {c["id"]: c["name"] for c in data["categories"]}
        for ann in data["annotations"]:
            per_cat[names[ann["category_id"]]] += 1
        summary[split] = {"images": len(data["images"]), "instances": per_cat}
    return summary
