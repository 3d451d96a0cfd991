"""Detection training glue: dataset dicts -> model inputs, and detectron2-style models
(a list of dicts in, losses or instances out) trained by the :class:`~vt_engine.Runner`."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from vt_engine.datasets import MetadataCatalog
from vt_engine.model import BaseModel
from vt_engine.visualization import read_image
from vt_modeling import EventStorage
from vt_structures import Boxes, BoxMode, Instances, Keypoints, PolygonMasks
from vt_structures.transforms import Augmentation, Transform, apply_augmentations

__all__ = [
    "DetectionDatasetMapper",
    "DetectionModel",
    "MapDataset",
    "annotations_to_instances",
    "create_keypoint_hflip_indices",
    "keypoint_hflip_indices",
    "read_sem_seg",
    "transform_instance_annotations",
    "trivial_batch_collator",
]


def transform_instance_annotations(
    annotation: dict[str, Any],
    transforms: Transform,
    image_size: tuple[int, int],
    keypoint_flip_indices: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Apply ``transforms`` to one instance annotation (detectron2's dataset format).

    The box becomes XYXY_ABS and is clipped to the image; polygons and keypoints are
    transformed (keypoints outside the image become unlabeled).
    """
    annotation = dict(annotation)
    bbox = BoxMode.convert(annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS)
    bbox = transforms.apply_box(np.asarray([bbox], dtype=np.float64))[0]
    h, w = image_size
    annotation["bbox"] = np.minimum(np.maximum(bbox, 0), [w, h, w, h]).tolist()
    annotation["bbox_mode"] = BoxMode.XYXY_ABS
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation]
        annotation["segmentation"] = [p.reshape(-1) for p in transforms.apply_polygons(polygons)]
    elif segmentation is not None:
        raise ValueError(
            "annotation['segmentation']: only polygon annotations are supported by this mapper"
        )
    if "keypoints" in annotation:
        keypoints = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(1, -1, 3)
        keypoints = transforms.apply_keypoints(keypoints, keypoint_flip_indices)[0]
        outside = (
            (keypoints[:, 0] < 0)
            | (keypoints[:, 1] < 0)
            | (keypoints[:, 0] >= w)
            | (keypoints[:, 1] >= h)
        )
        keypoints[outside, 2] = 0
        annotation["keypoints"] = keypoints
    return annotation


def annotations_to_instances(
    annotations: list[dict[str, Any]], image_size: tuple[int, int]
) -> Instances:
    """Instances with ``gt_boxes``, ``gt_classes`` and, when annotated, ``gt_masks``
    (PolygonMasks) and ``gt_keypoints`` from XYXY_ABS annotations."""
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations]
    target = Instances(image_size)
    target.gt_boxes = Boxes(torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
    target.gt_boxes.clip(image_size)
    target.gt_classes = torch.tensor(
        [int(a["category_id"]) for a in annotations], dtype=torch.int64
    )
    if annotations and "segmentation" in annotations[0]:
        target.gt_masks = PolygonMasks([a["segmentation"] for a in annotations])
    if annotations and "keypoints" in annotations[0]:
        keypoints = np.stack(
            [np.asarray(a["keypoints"], dtype=np.float32).reshape(-1, 3) for a in annotations]
        )
        target.gt_keypoints = Keypoints(torch.as_tensor(keypoints))
    return target


def keypoint_hflip_indices(
    keypoint_names: Sequence[str], flip_map: Sequence[tuple[str, str]]
) -> list[int]:
    """For each keypoint, the index of its mirror image under a horizontal flip.

    Args:
        keypoint_names (list[str]): the keypoints, in annotation order.
        flip_map (list[tuple[str, str]]): pairs of names that swap (e.g. left and right
            eye); keypoints in no pair map to themselves.

    Returns:
        list[int]: ``flip_indices[i]`` is the keypoint that becomes keypoint ``i``.
    """
    names = list(keypoint_names)
    if len(set(names)) != len(names):
        raise ValueError(f"keypoint_names: expected distinct names, got {names}")
    swap: dict[str, str] = {}
    for pair in flip_map:
        if len(pair) != 2 or any(name not in names for name in pair):
            raise ValueError(
                f"flip_map: expected pairs of names among {names}, got {tuple(pair)!r}"
            )
        a, b = pair
        if a in swap or b in swap:
            raise ValueError(f"flip_map: {a!r} or {b!r} appears in more than one pair")
        swap[a], swap[b] = b, a
    return [names.index(swap.get(name, name)) for name in names]


def create_keypoint_hflip_indices(dataset_names: str | Sequence[str]) -> list[int]:
    """:func:`keypoint_hflip_indices` of the ``keypoint_names`` and ``keypoint_flip_map``
    in the :class:`~vt_engine.MetadataCatalog` entry of the dataset(s) (detectron2's
    helper; several datasets must agree)."""
    names = [dataset_names] if isinstance(dataset_names, str) else list(dataset_names)
    if not names:
        raise ValueError("dataset_names: expected at least one dataset name")
    results = []
    for name in names:
        meta = MetadataCatalog.get(name)
        results.append(keypoint_hflip_indices(meta.keypoint_names, meta.keypoint_flip_map))
    if any(r != results[0] for r in results):
        raise ValueError(f"dataset_names: the datasets {names} have different keypoint flip maps")
    return results[0]


def read_sem_seg(file_name: str | os.PathLike[str]) -> np.ndarray:
    """The semantic label map stored in an 8- or 16-bit single-channel PNG (mode "L",
    "P", "I;16" or "I") as integer ndarray[H, W], values unchanged."""
    with Image.open(file_name) as img:
        if img.mode not in ("L", "P", "I;16", "I"):
            raise ValueError(
                f"sem_seg_file_name: expected a single-channel label map, got a {img.mode!r} "
                f"image: {file_name}"
            )
        return np.asarray(img)


def _relabel_sem_seg(
    sem_seg: np.ndarray, label_map: np.ndarray, file_name: str | os.PathLike[str]
) -> np.ndarray:
    """``label_map[sem_seg]``; a label beyond the table raises a ValueError naming the file."""
    if sem_seg.size and not 0 <= int(sem_seg.min()) <= int(sem_seg.max()) < len(label_map):
        raise ValueError(
            f"sem_seg_label_map: the labels {int(sem_seg.min())}..{int(sem_seg.max())} of "
            f"{file_name} are not all in the table of {len(label_map)} labels"
        )
    return label_map[sem_seg]


class DetectionDatasetMapper:
    """Map a dataset dict (detectron2's format) to a model input: read the image,
    augment it, and turn its annotations into ``Instances`` (detectron2's ``DatasetMapper``).

    A dict with a ``sem_seg_file_name`` (semantic segmentation, or panoptic FPN's
    semantic branch) also gets its label map, resized and flipped with the image, its
    labels optionally relabelled through ``sem_seg_label_map``.

    Args:
        is_train: keep and transform the annotations (training); otherwise drop them.
        augmentations: applied in order to the image and its annotations.
        image_format: "RGB" or "BGR" channel order of the image tensor.
        use_instance_mask: keep polygon masks as ``gt_masks``.
        use_keypoint: keep ``gt_keypoints``.
        keypoint_flip_indices: for each keypoint, the index of its mirror (needed
            with flips when ``use_keypoint``), e.g. from :func:`keypoint_hflip_indices`.
        recompute_boxes: recompute boxes from the transformed masks.
        sem_seg_label_map: a lookup table applied to the label map read from
            "sem_seg_file_name" (``label -> table[label]``, every label below its
            length), e.g. Panoptic FPN's stuff targets from
            :func:`~vt_engine.panoptic_stuff_label_map`.
    """

    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: Sequence[Augmentation],
        image_format: str = "RGB",
        use_instance_mask: bool = False,
        use_keypoint: bool = False,
        keypoint_flip_indices: Sequence[int] | None = None,
        recompute_boxes: bool = False,
        sem_seg_label_map: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format: expected 'RGB' or 'BGR', got {image_format!r}")
        if recompute_boxes and not use_instance_mask:
            raise ValueError("recompute_boxes requires use_instance_mask")
        self.is_train = is_train
        self.augmentations = list(augmentations)
        self.image_format = image_format
        self.use_instance_mask = use_instance_mask
        self.use_keypoint = use_keypoint
        self.keypoint_flip_indices = keypoint_flip_indices
        self.recompute_boxes = recompute_boxes
        self.sem_seg_label_map = None
        if sem_seg_label_map is not None:
            table = np.asarray(sem_seg_label_map)
            if table.ndim != 1 or table.size == 0 or table.dtype.kind not in "iu":
                raise ValueError(
                    "sem_seg_label_map: expected a non-empty 1-D table of integer labels, got "
                    f"shape {table.shape} of {table.dtype}"
                )
            self.sem_seg_label_map = table.astype(np.int64)

    def __call__(self, dataset_dict: dict[str, Any]) -> dict[str, Any]:
        """
        Returns:
            dict: the input dict with "image" (uint8 Tensor[C, H, W]); "sem_seg" (int64
            Tensor[H, W], the label map of "sem_seg_file_name" under the same geometric
            transforms as the image, relabelled by ``sem_seg_label_map``, which is then
            also kept as "sem_seg_label_map") when the dict names one; and, in training,
            "instances" (annotations without crowd regions, empty boxes removed).
        """
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"])
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if self.image_format == "BGR":
            image = image[:, :, ::-1]
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            sem_seg = read_sem_seg(dataset_dict["sem_seg_file_name"])
            if sem_seg.shape != image.shape[:2]:
                raise ValueError(
                    f"sem_seg_file_name: the label map is {sem_seg.shape[0]}x{sem_seg.shape[1]} "
                    f"but the image is {image.shape[0]}x{image.shape[1]}: "
                    f"{dataset_dict['sem_seg_file_name']}"
                )
            if self.sem_seg_label_map is not None:
                sem_seg = _relabel_sem_seg(
                    sem_seg, self.sem_seg_label_map, dataset_dict["sem_seg_file_name"]
                )
                dataset_dict["sem_seg_label_map"] = self.sem_seg_label_map
        image, transforms = apply_augmentations(self.augmentations, np.ascontiguousarray(image))
        image_size = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            sem_seg = transforms.apply_segmentation(sem_seg)
            dataset_dict["sem_seg"] = torch.as_tensor(np.ascontiguousarray(sem_seg, dtype=np.int64))
        annotations = dataset_dict.pop("annotations", None)
        if not self.is_train or annotations is None:
            return dataset_dict
        kept = []
        for obj in annotations:
            if obj.get("iscrowd", 0):
                continue
            obj = dict(obj)
            if not self.use_instance_mask:
                obj.pop("segmentation", None)
            if not self.use_keypoint:
                obj.pop("keypoints", None)
            kept.append(
                transform_instance_annotations(
                    obj, transforms, image_size, self.keypoint_flip_indices
                )
            )
        instances = annotations_to_instances(kept, image_size)
        if self.recompute_boxes:
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        dataset_dict["instances"] = instances[instances.gt_boxes.nonempty()]
        return dataset_dict


class MapDataset(Dataset):
    """A map-style dataset applying ``mapper`` to each item of a list.

    Args:
        items (list): the dataset dicts.
        mapper (callable): called on an item to produce a sample.
        metainfo (dict, optional): the dataset's meta information (e.g.
            ``{"classes": [...]}``), which the evaluation loops hand to the metrics as
            ``dataset_meta``.
    """

    def __init__(
        self, items: Sequence[Any], mapper: Any, metainfo: Mapping[str, Any] | None = None
    ) -> None:
        self.items = list(items)
        self.mapper = mapper
        self.metainfo = None if metainfo is None else dict(metainfo)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.mapper(self.items[index])


_INPUT_KEYS = ("image_id", "file_name", "height", "width")
_PRED_FIELDS = {
    "pred_boxes": "bboxes",
    "scores": "scores",
    "pred_classes": "labels",
    "pred_masks": "masks",
    "pred_keypoints": "keypoints",
}


def _prediction_sample(inp: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    sample = {k: inp[k] for k in _INPUT_KEYS if k in inp}
    if "image_id" in sample:
        sample["img_id"] = sample["image_id"]
    if "file_name" in sample:
        sample["img_path"] = sample["file_name"]
    sample.update(out)
    instances = out.get("instances")
    if isinstance(instances, Instances):
        pred = {}
        for field, name in _PRED_FIELDS.items():
            if instances.has(field):
                value = instances.get(field)
                pred[name] = (value.tensor if hasattr(value, "tensor") else value).detach().cpu()
        if "keypoints" in pred:
            # COCO keypoints are integer pixel indices: undo the 0.5 load_coco_json adds.
            pred["keypoints"] = pred["keypoints"].clone()
            pred["keypoints"][..., :2] -= 0.5
        sample["pred_instances"] = pred
    logits = out.get("sem_seg")
    if isinstance(logits, torch.Tensor):
        sample["pred_sem_seg"] = {"data": logits.detach().argmax(0, keepdim=True).cpu()}
        gt = _sem_seg_ground_truth(inp, tuple(logits.shape[-2:]))
        if gt is not None:
            sample["gt_sem_seg"] = {"data": gt[None]}
    panoptic = out.get("panoptic_seg")
    if isinstance(panoptic, tuple):
        segments, segments_info = panoptic
        sample["pred_panoptic_seg"] = {
            "data": segments.detach()[None].cpu(),
            "segments_info": list(segments_info),
        }
    return sample


def _sem_seg_ground_truth(inp: dict[str, Any], size: tuple[int, int]) -> torch.Tensor | None:
    """The label map at the prediction's size: the mapped "sem_seg" when the test-time
    transforms kept the size, else the original map of "sem_seg_file_name" (relabelled
    as the mapper relabelled "sem_seg")."""
    gt = inp.get("sem_seg")
    if isinstance(gt, torch.Tensor) and tuple(gt.shape[-2:]) == size:
        return gt.cpu()
    if "sem_seg_file_name" in inp:
        labels = read_sem_seg(inp["sem_seg_file_name"])
        if inp.get("sem_seg_label_map") is not None:
            labels = _relabel_sem_seg(labels, inp["sem_seg_label_map"], inp["sem_seg_file_name"])
        gt = torch.as_tensor(labels.astype(np.int64))
        if tuple(gt.shape) != size:
            raise ValueError(
                f"sem_seg_file_name: the label map is {tuple(gt.shape)}, the prediction {size}"
            )
        return gt
    return None


def trivial_batch_collator(batch: Sequence[Any]) -> list[Any]:
    """Keep a batch as the list of its samples (detectron2-style models take a list of dicts)."""
    return list(batch)


class DetectionModel(BaseModel):
    """Runs a detectron2-style model (``model(list[dict])``: losses in training mode,
    ``[{"instances": ...}]`` in eval mode) under the Runner's ``BaseModel`` contract.

    In "predict" mode each output dict also carries the input's "image_id" (and
    "img_id"), "file_name" (and "img_path"), "height" and "width", and the predictions
    as "pred_instances" (``bboxes``, ``scores``, ``labels``, ``masks``, ``keypoints``;
    keypoints in COCO's pixel-index convention), the layout
    :class:`vt_metrics.CocoMetric` and the visualizer read. A semantic segmentation
    output ("sem_seg" logits, Tensor[K, H, W]) adds "pred_sem_seg" (its argmax) and,
    when the input has a label map, "gt_sem_seg" (each ``{"data": Tensor[1, H, W]}``),
    what :class:`vt_metrics.IoUMetric` reads. A panoptic output (Panoptic FPN's
    "panoptic_seg", with its "instances" and "sem_seg", which feed both metrics) adds
    "pred_panoptic_seg": ``{"data": Tensor[1, H, W] of segment ids, "segments_info":
    [...]}``.

    In "loss" mode the wrapped model runs inside ``event_storage`` when one is set (by
    :class:`~vt_engine.EventStorageHook`), so that it can report images and scalars
    through ``get_event_storage()``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.event_storage: EventStorage | None = None

    def data_preprocessor(self, data: Any, training: bool = False) -> dict[str, Any]:
        # The wrapped model moves its inputs itself.
        return {"batched_inputs": list(data)}

    def forward(
        self, batched_inputs: list[dict[str, Any]], data_samples: Any = None, mode: str = "tensor"
    ) -> Any:
        if mode == "loss":
            if not self.training:
                raise RuntimeError("mode='loss' needs the model in training mode")
            if self.event_storage is None:
                return self.model(batched_inputs)
            with self.event_storage:
                return self.model(batched_inputs)
        if mode in ("predict", "tensor"):
            outputs = self.model(batched_inputs)
            if mode == "tensor":
                return outputs
            return [_prediction_sample(inp, out) for inp, out in zip(batched_inputs, outputs)]
        raise ValueError(f"mode: expected 'loss', 'predict' or 'tensor', got {mode!r}")
