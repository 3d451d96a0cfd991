"""Dataset registry and catalog (detectron2's ``DatasetCatalog`` / ``MetadataCatalog``),
loaders of COCO instances/keypoints/panoptic JSON and of semantic segmentation folders
into detectron2's list-of-dicts format, and the repeat-factor and aspect-ratio batching
helpers of detectron2's training data pipeline."""

from __future__ import annotations

import itertools
import json
import logging
import math
import multiprocessing
import os
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset
from tqdm.auto import tqdm

from vt_engine.data import ResumableSampler, _check_dataset, sync_random_seed
from vt_engine.dist import get_rank, get_world_size
from vt_structures import BoxMode

__all__ = [
    "DatasetCatalog",
    "MetadataCatalog",
    "Metadata",
    "coco_category_subset",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_sem_seg",
    "merge_to_panoptic",
    "panoptic_stuff_label_map",
    "register_coco_instances",
    "RepeatFactorTrainingSampler",
    "AspectRatioGroupedDataset",
    "SkipBadSamplesDataset",
]

logger = logging.getLogger("vt_engine")


class _DatasetCatalog(dict):
    """Name -> function returning the dataset's ``list[dict]`` (called on every ``get``)."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        if not callable(func):
            raise TypeError("func: expected a callable returning a list of dicts")
        if name in self:
            raise KeyError(f"dataset {name!r} is already registered")
        self[name] = func

    def get(self, name: str) -> list[dict]:  # type: ignore[override]
        try:
            func = self[name]
        except KeyError:
            raise KeyError(
                f"dataset {name!r} is not registered; available: {', '.join(sorted(self))}"
            ) from None
        return func()

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)


DatasetCatalog = _DatasetCatalog()


class Metadata:
    """Attributes of a dataset (``thing_classes``, ``thing_colors``, ``stuff_classes``,
    ``keypoint_names``, ``keypoint_flip_map``, ``ignore_label``, ...). An attribute, once
    set, may only be set again to the same value."""

    def __init__(self, name: str = "") -> None:
        object.__setattr__(self, "name", name)

    def __getattr__(self, key: str) -> Any:
        raise AttributeError(
            f"metadata of {self.name!r} has no {key!r}; it has {sorted(self.as_dict())}"
        )

    def __setattr__(self, key: str, value: Any) -> None:
        old = self.__dict__.get(key, _MISSING)
        if old is not _MISSING and old != value:
            raise AssertionError(
                f"metadata {key!r} of {self.name!r} is already {old!r}; cannot set it to {value!r}"
            )
        object.__setattr__(self, key, value)

    def set(self, **kwargs: Any) -> Metadata:
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_MISSING = object()


class _MetadataCatalog(dict):
    """Name -> :class:`Metadata`, created on first ``get``."""

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        if name not in self:
            self[name] = Metadata(name)
        return self[name]

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)


MetadataCatalog = _MetadataCatalog()


def _read_json(path: str | os.PathLike | Mapping[str, Any]) -> Any:
    if isinstance(path, Mapping):
        return path
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, "rb") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a valid JSON file: {e}") from e


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _records(coco: Any, key: str, json_file: Any, fields: dict[str, Callable[[Any], bool]]) -> list:
    """``coco[key]``, checked to be a list of dicts with ``fields`` (name -> type test)."""
    records = coco[key]
    if not isinstance(records, list):
        raise TypeError(f"{json_file}: {key!r} must be a list, got {type(records).__name__}")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise TypeError(f"{json_file}: {key}[{i}] must be a dict, got {type(record).__name__}")
        for field, ok in fields.items():
            if field not in record:
                raise ValueError(f"{json_file}: {key}[{i}] has no {field!r}")
            if not ok(record[field]):
                raise TypeError(
                    f"{json_file}: {key}[{i}][{field!r}] has the wrong type: {record[field]!r}"
                )
    return records


def _check_segmentation(seg: Any, where: str) -> None:
    if isinstance(seg, dict):
        size = seg.get("size")
        if "counts" not in seg or not (
            isinstance(size, (list, tuple)) and len(size) == 2 and all(map(_is_int, size))
        ):
            raise ValueError(
                f"{where}['segmentation']: an RLE needs 'counts' and 'size' [height, width], "
                f"got keys {sorted(seg)}"
            )
    elif isinstance(seg, list):
        for poly in seg:
            if not isinstance(poly, list) or not all(map(_is_number, poly)):
                raise TypeError(
                    f"{where}['segmentation']: expected polygons (lists of numbers), got {poly!r}"
                )
    else:
        raise TypeError(
            f"{where}['segmentation']: expected polygons or an RLE dict, got {type(seg).__name__}"
        )


def load_coco_json(
    json_file: str | os.PathLike | Mapping[str, Any],
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    extra_annotation_keys: Sequence[str] | None = None,
) -> list[dict]:
    """Load COCO instances (and keypoints) annotations into detectron2's format.

    Each record has ``file_name``, ``height``, ``width``, ``image_id`` and
    ``annotations``: dicts with ``bbox`` (XYWH), ``bbox_mode`` (``BoxMode.XYWH_ABS``),
    ``category_id``, ``iscrowd`` and, when present, ``segmentation`` (polygons or
    RLE) and ``keypoints`` (``[x, y, v] * K``; 0.5 is added to x and y as detectron2
    does, turning COCO's integer pixel indices into continuous coordinates).

    Args:
        json_file: the COCO JSON file, or its content (e.g. from :func:`coco_category_subset`).
        image_root: the directory of the images.
        dataset_name: if given, its metadata gets ``thing_classes`` (sorted by COCO id),
            ``thing_dataset_id_to_contiguous_id`` and, for keypoints, ``keypoint_names``;
            category ids are mapped to contiguous ids ``0..C-1``.
        extra_annotation_keys: more annotation keys to copy.

    Raises:
        ValueError: the file is not JSON, lacks ``images``/``annotations``/``categories``,
            or an annotation names an unknown image or category id or has a bad ``bbox``,
            ``segmentation`` or ``keypoints``; the message names the file and the field.
        TypeError: a record or field of the wrong type (also named).
    """
    coco = _read_json(json_file)
    source = "json_file (a dict)" if isinstance(json_file, Mapping) else str(json_file)
    if not isinstance(coco, dict):
        raise TypeError(
            f"{source}: expected a COCO dict at the top level, got {type(coco).__name__}"
        )
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"{source}: not a COCO instances file (no {key!r})")
    cats = _records(
        coco, "categories", source, {"id": _is_int, "name": lambda x: isinstance(x, str)}
    )
    images = _records(
        coco,
        "images",
        source,
        {
            "id": _is_int,
            "file_name": lambda x: isinstance(x, str),
            "height": _is_int,
            "width": _is_int,
        },
    )
    annotations = _records(
        coco, "annotations", source, {"image_id": _is_int, "category_id": _is_int}
    )
    cats = sorted(cats, key=lambda c: c["id"])
    cat_ids = {c["id"] for c in cats}
    image_ids = {img["id"] for img in images}
    if len(image_ids) != len(images):
        raise ValueError(f"{source}: 'images' has repeated ids")
    id_map = None
    if dataset_name is not None:
        meta = MetadataCatalog.get(dataset_name)
        id_map = {c["id"]: i for i, c in enumerate(cats)}
        meta.set(thing_classes=[c["name"] for c in cats], thing_dataset_id_to_contiguous_id=id_map)
        if cats and "keypoints" in cats[0]:
            meta.set(keypoint_names=list(cats[0]["keypoints"]))
    anns_by_image: dict[Any, list[dict]] = defaultdict(list)
    for i, ann in enumerate(annotations):
        where = f"{source}: annotations[{i}] (id {ann.get('id')})"
        if ann["image_id"] not in image_ids:
            raise ValueError(f"{where}: 'image_id' {ann['image_id']} is not in 'images'")
        if ann["category_id"] not in cat_ids:
            raise ValueError(f"{where}: 'category_id' {ann['category_id']} is not in 'categories'")
        bbox = ann.get("bbox")
        if bbox is not None and not (
            isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))
        ):
            raise ValueError(
                f"{where}: 'bbox' must be 4 numbers [x, y, width, height], got {bbox!r}"
            )
        if ann.get("segmentation"):
            _check_segmentation(ann["segmentation"], where)
        kpts = ann.get("keypoints")
        if kpts is not None and not (
            isinstance(kpts, list) and len(kpts) % 3 == 0 and all(map(_is_number, kpts))
        ):
            raise ValueError(f"{where}: 'keypoints' must be numbers [x, y, v] * K, got {kpts!r}")
        anns_by_image[ann["image_id"]].append(ann)
    keys = ["iscrowd", "bbox", "keypoints", "category_id", *(extra_annotation_keys or ())]
    records = []
    skipped = 0
    images = sorted(images, key=lambda im: im["id"])
    for img in tqdm(
        images,
        desc=f"loading {Path(source).name}",
        disable=len(images) < 10_000 or get_rank() != 0,
    ):
        objs = []
        for ann in anns_by_image.get(img["id"], []):
            if ann.get("ignore", 0) != 0:
                raise ValueError(f"{source}: the 'ignore' annotation flag is not supported")
            obj = {key: ann[key] for key in keys if key in ann}
            seg = ann.get("segmentation")
            if seg:
                if isinstance(seg, list):
                    seg = [poly for poly in seg if len(poly) % 2 == 0 and len(poly) >= 6]
                    if not seg:
                        skipped += 1
                        continue
                obj["segmentation"] = seg
            if "keypoints" in obj:
                obj["keypoints"] = [
                    v + 0.5 if i % 3 != 2 else v for i, v in enumerate(obj["keypoints"])
                ]
            obj["bbox_mode"] = BoxMode.XYWH_ABS
            obj.setdefault("iscrowd", 0)
            if id_map is not None:
                obj["category_id"] = id_map[obj["category_id"]]
            objs.append(obj)
        records.append(
            {
                "file_name": os.path.join(str(image_root), img["file_name"]),
                "height": img["height"],
                "width": img["width"],
                "image_id": img["id"],
                "annotations": objs,
            }
        )
    if skipped:
        logger.warning(
            "load_coco_json: skipped %d annotations with invalid polygons in %s", skipped, source
        )
    return records


def load_coco_panoptic_json(
    json_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    meta: dict[str, Any],
) -> list[dict]:
    """Load COCO panoptic annotations: records with ``file_name`` (``.jpg`` next to the
    PNG name), ``image_id``, ``pan_seg_file_name`` and ``segments_info`` (category ids
    mapped through ``meta["thing_dataset_id_to_contiguous_id"]`` or
    ``meta["stuff_dataset_id_to_contiguous_id"]``, with ``isthing``)."""
    data = _read_json(json_file)
    if not isinstance(data, dict) or "annotations" not in data:
        raise ValueError(f"{json_file}: not a COCO panoptic file (no 'annotations')")
    _records(
        data,
        "annotations",
        json_file,
        {
            "file_name": lambda x: isinstance(x, str),
            "image_id": lambda x: x is not None,
            "segments_info": lambda x: isinstance(x, list),
        },
    )
    things = meta.get("thing_dataset_id_to_contiguous_id", {})
    stuff = meta.get("stuff_dataset_id_to_contiguous_id", {})
    records = []
    for ann in data["annotations"]:
        segments = []
        for seg in ann["segments_info"]:
            seg = dict(seg)
            cid = seg["category_id"]
            if cid in things:
                seg["category_id"], seg["isthing"] = things[cid], True
            elif cid in stuff:
                seg["category_id"], seg["isthing"] = stuff[cid], False
            else:
                raise ValueError(
                    f"{json_file}: category id {cid} is in neither thing nor stuff ids of meta"
                )
            segments.append(seg)
        records.append(
            {
                "file_name": os.path.join(
                    str(image_dir), os.path.splitext(ann["file_name"])[0] + ".jpg"
                ),
                "image_id": ann["image_id"],
                "pan_seg_file_name": os.path.join(str(gt_dir), ann["file_name"]),
                "segments_info": segments,
            }
        )
    if not records:
        raise ValueError(f"{json_file}: no panoptic annotations")
    return records


def load_sem_seg(
    gt_root: str | os.PathLike,
    image_root: str | os.PathLike,
    gt_ext: str = "png",
    image_ext: str = "jpg",
) -> list[dict]:
    """Pair images and label maps of two folders by relative path without extension:
    records with ``file_name`` and ``sem_seg_file_name``. Images without a label map
    (or the reverse) raise a ValueError naming a few."""
    gt_root, image_root = Path(gt_root), Path(image_root)

    def index(root: Path, ext: str) -> dict[str, Path]:
        return {str(p.relative_to(root).with_suffix("")): p for p in sorted(root.rglob(f"*.{ext}"))}

    gts, images = index(gt_root, gt_ext), index(image_root, image_ext)
    if not images:
        raise ValueError(f"no *.{image_ext} images under {image_root}")
    unmatched = sorted(set(gts) ^ set(images))
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} images and label maps do not pair up between {image_root} and {gt_root}, e.g. {unmatched[:3]}"
        )
    return [{"file_name": str(images[k]), "sem_seg_file_name": str(gts[k])} for k in sorted(images)]


def coco_category_subset(
    json_file: str | os.PathLike | Mapping[str, Any], category_names: Sequence[str]
) -> dict[str, Any]:
    """A COCO dataset restricted to some categories: their ``categories`` entries and
    annotations; every image is kept. Load it with :func:`load_coco_json`, evaluate on it
    with ``vt_metrics.CocoMetric(ann_file=...)`` (e.g. a keypoint detector trained on
    the one category that has keypoints).

    Args:
        json_file (str or dict): the COCO JSON file, or its content.
        category_names (list[str]): names of the categories to keep, each present in
            the file.
    """
    coco = _read_json(json_file)
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"json_file: not a COCO instances file (no {key!r})")
    names = [c["name"] for c in coco["categories"]]
    missing = [n for n in category_names if n not in names]
    if missing or not category_names:
        raise ValueError(
            f"category_names: expected some of the file's categories {names}, got {list(category_names)}"
        )
    categories = [c for c in coco["categories"] if c["name"] in category_names]
    ids = {c["id"] for c in categories}
    return {
        **coco,
        "categories": categories,
        "annotations": [a for a in coco["annotations"] if a["category_id"] in ids],
    }


def merge_to_panoptic(detection_dicts: Sequence[dict], sem_seg_dicts: Sequence[dict]) -> list[dict]:
    """Dataset dicts for panoptic segmentation: each detection dict updated with the
    semantic segmentation dict (e.g. from :func:`load_sem_seg`) of the same
    ``file_name``, so that it carries ``annotations`` and ``sem_seg_file_name``
    (detectron2's ``merge_to_panoptic``)."""
    by_file = {d["file_name"]: d for d in sem_seg_dicts}
    if not by_file:
        raise ValueError("sem_seg_dicts: expected at least one dataset dict")
    merged = []
    for det in detection_dicts:
        if det["file_name"] not in by_file:
            raise ValueError(f"sem_seg_dicts: no entry for {det['file_name']}")
        merged.append({**det, **by_file[det["file_name"]]})
    return merged


def panoptic_stuff_label_map(
    classes: Sequence[str], stuff_classes: Sequence[str], ignore_value: int = 255
) -> np.ndarray:
    """The lookup table from a semantic label map over ``classes`` (label ``i`` is
    ``classes[i]``) to Panoptic FPN's semantic targets, detectron2's "panoptic_stuff"
    labels: 0 for every thing, ``1 + j`` for ``stuff_classes[j]``, ``ignore_value`` for
    values that name no class (e.g. an ignore value already in the map).

    Args:
        classes (list[str]): the classes of the label map, in label order.
        stuff_classes (list[str]): the stuff classes among them, in the order of the
            semantic head's classes 1, 2, ...; the others are things.
        ignore_value (int): the target of the labels that name no class.

    Returns:
        ndarray[L] of int64: ``table[label]`` is the target of ``label``, for every
        ``label < L = max(256, len(classes))``; pass it as ``sem_seg_label_map`` to
        :class:`~vt_engine.DetectionDatasetMapper`.
    """
    classes, stuff_classes = list(classes), list(stuff_classes)
    for name, names in (("classes", classes), ("stuff_classes", stuff_classes)):
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: expected distinct names, got {names}")
    missing = [s for s in stuff_classes if s not in classes]
    if missing or not stuff_classes:
        raise ValueError(f"stuff_classes: expected some of classes {classes}, got {stuff_classes}")
    if 0 <= ignore_value <= len(stuff_classes):
        raise ValueError(
            f"ignore_value: expected a value outside the targets 0..{len(stuff_classes)}, "
            f"got {ignore_value}"
        )
    table = np.full(max(256, len(classes)), ignore_value, dtype=np.int64)
    for label, name in enumerate(classes):
        table[label] = 1 + stuff_classes.index(name) if name in stuff_classes else 0
    return table


def register_coco_instances(
    name: str, metadata: dict[str, Any], json_file: str | os.PathLike, image_root: str | os.PathLike
) -> None:
    """Register a COCO-format instances dataset under ``name`` (loaded lazily by
    :func:`load_coco_json`) with ``metadata`` plus its paths and ``evaluator_type="coco"``."""
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=str(json_file), image_root=str(image_root), evaluator_type="coco", **metadata
    )


class RepeatFactorTrainingSampler(ResumableSampler):
    """Infinite training sampler that repeats images with rare categories (LVIS-style).

    Each pass, image ``i`` appears ``floor(r_i)`` times plus once more with probability
    ``frac(r_i)`` (stochastic rounding), in shuffled order; ranks take strided shares.

    Args:
        repeat_factors (Tensor[N]): the repeat factor of each image, >= 0.
        shuffle: shuffle each pass.
        seed: the same on every rank; None draws one on rank 0.
    """

    def __init__(
        self, repeat_factors: torch.Tensor, shuffle: bool = True, seed: int | None = None
    ) -> None:
        factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        if factors.ndim != 1 or len(factors) == 0 or (factors < 0).any():
            raise ValueError(
                "repeat_factors: expected a non-empty 1-D tensor of non-negative values"
            )
        self._int_part = torch.trunc(factors)
        self._frac_part = factors - self._int_part
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.rank = get_rank()
        self.world_size = get_world_size()

    @staticmethod
    def repeat_factors_from_category_frequency(
        dataset_dicts: Sequence[dict], repeat_thresh: float
    ) -> torch.Tensor:
        """``r_i = max over categories c in image i of max(1, sqrt(t / f(c)))`` where
        ``f(c)`` is the fraction of images containing ``c`` and ``t = repeat_thresh``."""
        counts: dict[int, int] = defaultdict(int)
        for record in dataset_dicts:
            for cat in {ann["category_id"] for ann in record["annotations"]}:
                counts[cat] += 1
        n = len(dataset_dicts)
        cat_factor = {c: max(1.0, math.sqrt(repeat_thresh / (k / n))) for c, k in counts.items()}
        factors = [
            max((cat_factor[ann["category_id"]] for ann in record["annotations"]), default=1.0)
            for record in dataset_dicts
        ]
        return torch.tensor(factors, dtype=torch.float32)

    def _indices(self, generator: torch.Generator) -> torch.Tensor:
        rands = torch.rand(len(self._frac_part), generator=generator)
        reps = self._int_part + (rands < self._frac_part).float()
        indices = torch.repeat_interleave(torch.arange(len(reps)), reps.long())
        if self.shuffle:
            indices = indices[torch.randperm(len(indices), generator=generator)]
        return indices

    def _infinite(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from self._indices(g).tolist()

    def __iter__(self) -> Iterator[int]:
        mine = itertools.islice(self._infinite(), self.rank, None, self.world_size)
        return itertools.islice(mine, self._take_start(), None)

    def __len__(self) -> int:
        return len(self._int_part)

    def set_epoch(self, epoch: int) -> None:
        """No-op: an infinite stream has no epochs."""


class AspectRatioGroupedDataset(IterableDataset):
    """Batches of ``batch_size`` samples that all have ``width > height`` or all
    ``width <= height`` (less padding when images are batched), from an iterable of
    samples with ``width`` and ``height`` (keys or attributes). Yields lists of samples;
    a partial batch of one group waits until it is full."""

    def __init__(self, dataset: Any, batch_size: int) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = batch_size

    @staticmethod
    def _size(sample: Any) -> tuple[float, float]:
        if isinstance(sample, dict):
            return sample["width"], sample["height"]
        return sample.width, sample.height

    def __iter__(self) -> Iterator[list[Any]]:
        buckets: list[list[Any]] = [[], []]
        for sample in self.dataset:
            w, h = self._size(sample)
            bucket = buckets[0 if w > h else 1]
            bucket.append(sample)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()


class SkipBadSamplesDataset(Dataset):
    """A map-style dataset wrapper that survives bad samples: when loading or mapping a
    sample raises (an image that does not decode, a broken annotation), the sample is
    skipped with a warning naming it and the error, and another one, drawn at random, is
    returned instead (as detectron2's ``MapDataset`` and mmengine's ``max_refetch`` do).
    After ``max_refetch`` replacements in a row also fail, it gives up with a
    RuntimeError naming the last failure.

    Skips are counted in :attr:`num_skipped`, shared with the data loader's worker
    processes; the train loops publish it as ``skipped_samples`` on the runner's message
    hub and the runner logs the total at the end of training. Enable it with
    ``build_dataloader(..., skip_bad_samples=True)`` (also in a runner's
    ``train_dataloader`` dict).

    Args:
        dataset: the map-style dataset (``__len__`` and ``__getitem__``); its other
            attributes (``metainfo``...) are reachable through the wrapper.
        max_refetch (int): replacement samples tried, after a failure, before giving up.
        exceptions (tuple[type[Exception], ...]): what counts as a bad sample; other
            exceptions propagate.
        seed (int): seed of the choice of replacements.
    """

    def __init__(
        self,
        dataset: Any,
        max_refetch: int = 10,
        exceptions: tuple[type[BaseException], ...] = (Exception,),
        seed: int = 0,
    ) -> None:
        if _check_dataset(dataset) == 0:
            raise ValueError("dataset: expected a non-empty dataset")
        if not isinstance(max_refetch, int) or max_refetch < 0:
            raise ValueError(f"max_refetch: expected a non-negative int, got {max_refetch!r}")
        exceptions = tuple(exceptions)
        if not exceptions or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in exceptions
        ):
            raise TypeError(f"exceptions: expected exception classes, got {exceptions!r}")
        self.dataset = dataset
        self.max_refetch = max_refetch
        self.exceptions = exceptions
        self._rng = random.Random(seed)
        # shared memory: skips counted in loader worker processes reach the main process
        self._num_skipped = multiprocessing.Value("q", 0)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("dataset", "_num_skipped"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    @property
    def num_skipped(self) -> int:
        """How many samples were skipped so far (in this process and its loader workers)."""
        return int(self._num_skipped.value)

    def describe(self, index: int) -> str:
        """``"sample 3 (path/to/image.jpg)"``: the index and, when the wrapped dataset
        tells it (``get_data_info(i)`` as mmengine's, or a list ``items`` of dicts as
        :class:`MapDataset`), the file."""
        record: Any = None
        try:
            if callable(getattr(self.dataset, "get_data_info", None)):
                record = self.dataset.get_data_info(index)
            elif isinstance(getattr(self.dataset, "items", None), Sequence):
                record = self.dataset.items[index]
        except Exception:
            record = None
        name = None
        if isinstance(record, dict):
            name = record.get("file_name") or record.get("img_path")
        return f"sample {index}" + (f" ({name})" if name else "")

    def __getitem__(self, index: int) -> Any:
        failures = 0
        while True:
            try:
                return self.dataset[index]
            except self.exceptions as e:
                failures += 1
                what = f"{self.describe(index)}: {type(e).__name__}: {e}"
                if failures > self.max_refetch:
                    raise RuntimeError(
                        f"{failures} bad samples in a row (max_refetch={self.max_refetch}); "
                        f"giving up. The last was {what}"
                    ) from e
                with self._num_skipped.get_lock():
                    self._num_skipped.value += 1
                logger.warning("skipping bad %s", what)
                index = self._rng.randrange(len(self.dataset))
