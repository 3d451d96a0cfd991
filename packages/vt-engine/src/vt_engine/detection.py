"""Detection training glue: dataset dicts -> model inputs, and detectron2-style models
(a list of dicts in, losses or instances out) trained by the :class:`~vt_engine.Runner`."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

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


class DetectionDatasetMapper:
    """Map a dataset dict (detectron2's format) to a model input: read the image,
    augment it, and turn its annotations into ``Instances`` (detectron2's ``DatasetMapper``).

    Args:
        is_train: keep and transform the annotations (training); otherwise drop them.
        augmentations: applied in order to the image and its annotations.
        image_format: "RGB" or "BGR" channel order of the image tensor.
        use_instance_mask: keep polygon masks as ``gt_masks``.
        use_keypoint: keep ``gt_keypoints``.
        keypoint_flip_indices: for each keypoint, the index of its mirror (needed
            with flips when ``use_keypoint``).
        recompute_boxes: recompute boxes from the transformed masks.
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

    def __call__(self, dataset_dict: dict[str, Any]) -> dict[str, Any]:
        """
        Returns:
            dict: the input dict with "image" (uint8 Tensor[C, H, W]) and, in training,
            "instances" (annotations without crowd regions, empty boxes removed).
        """
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"])
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if self.image_format == "BGR":
            image = image[:, :, ::-1]
        image, transforms = apply_augmentations(self.augmentations, np.ascontiguousarray(image))
        image_size = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
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
    """A map-style dataset applying ``mapper`` to each item of a list."""

    def __init__(self, items: Sequence[Any], mapper: Any) -> None:
        self.items = list(items)
        self.mapper = mapper

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
    sample.update(out)
    instances = out.get("instances")
    if isinstance(instances, Instances):
        pred = {}
        for field, name in _PRED_FIELDS.items():
            if instances.has(field):
                value = instances.get(field)
                pred[name] = (value.tensor if hasattr(value, "tensor") else value).detach().cpu()
        sample["pred_instances"] = pred
    return sample


def trivial_batch_collator(batch: Sequence[Any]) -> list[Any]:
    """Keep a batch as the list of its samples (detectron2-style models take a list of dicts)."""
    return list(batch)


class DetectionModel(BaseModel):
    """Runs a detectron2-style model (``model(list[dict])``: losses in training mode,
    ``[{"instances": ...}]`` in eval mode) under the Runner's ``BaseModel`` contract.

    In "predict" mode each output dict also carries the input's "image_id" (and
    "img_id"), "file_name", "height" and "width", and the predictions as
    "pred_instances" (``bboxes``, ``scores``, ``labels``, ``masks``, ``keypoints``), the
    layout :class:`vt_metrics.CocoMetric` and the visualizer read.

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
