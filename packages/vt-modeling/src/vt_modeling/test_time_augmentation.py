"""Test-time augmentation of R-CNN models: multi-scale and flipped inference."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from vt_modeling.config import configurable
from vt_modeling.meta_arch import GeneralizedRCNN
from vt_modeling.postprocessing import detector_postprocess
from vt_modeling.roi_heads.fast_rcnn import fast_rcnn_inference_single_image
from vt_modeling.roi_heads.keypoint_head import keypoint_rcnn_inference
from vt_structures import Boxes, Instances
from vt_structures.transforms import (
    HFlipTransform,
    NoOpTransform,
    RandomFlip,
    ResizeShortestEdge,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
    apply_augmentations,
)

__all__ = ["DatasetMapperTTA", "GeneralizedRCNNWithTTA"]


class DatasetMapperTTA:
    """Turn one input dict into the list of its augmented versions: each size in
    ``min_sizes`` (shortest edge, longest edge at most ``max_size``), flipped or not.

    Each output dict holds the augmented "image" (Tensor[C, H, W]) and "transforms"
    (:class:`TransformList`) that maps coordinates of the original image
    (``height`` x ``width``) to the augmented one.
    """

    @configurable
    def __init__(self, min_sizes: list[int], max_size: int, flip: bool):
        """
        Args:
            min_sizes (list[int]): the shortest-edge sizes.
            max_size (int): the largest size of the longer edge.
            flip (bool): also run on the horizontally flipped image.
        """
        if not min_sizes or any(not isinstance(s, int) or s <= 0 for s in min_sizes):
            raise ValueError(f"min_sizes: expected positive ints, got {min_sizes!r}")
        if max_size <= 0:
            raise ValueError(f"max_size: expected a positive size, got {max_size!r}")
        self.min_sizes = list(min_sizes)
        self.max_size = max_size
        self.flip = bool(flip)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        return {
            "min_sizes": list(cfg.TEST.AUG.MIN_SIZES),
            "max_size": cfg.TEST.AUG.MAX_SIZE,
            "flip": cfg.TEST.AUG.FLIP,
        }

    def __call__(self, dataset_dict: dict[str, Any]) -> list[dict[str, Any]]:
        """
        Args:
            dataset_dict (dict): with "image" (Tensor[C, H, W]) and optionally "height"
                and "width", the original size ("image" may be a resized version of it).

        Returns:
            list[dict]: ``len(min_sizes) * (1 + flip)`` augmented copies of the input.
        """
        image = dataset_dict.get("image")
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise ValueError("dataset_dict['image']: expected a Tensor[C, H, W]")
        shape = tuple(image.shape[1:])
        orig_shape = (
            int(dataset_dict.get("height", shape[0])),
            int(dataset_dict.get("width", shape[1])),
        )
        # The given image may already be resized from the original one.
        pre_tfm: Transform = (
            ResizeTransform(orig_shape[0], orig_shape[1], shape[0], shape[1])
            if shape != orig_shape
            else NoOpTransform()
        )
        aug_candidates = []
        for min_size in self.min_sizes:
            resize = ResizeShortestEdge(min_size, self.max_size)
            aug_candidates.append([resize])
            if self.flip:
                aug_candidates.append([resize, RandomFlip(prob=1.0)])
        ret = []
        for aug in aug_candidates:
            new_image, tfms = apply_augmentations(aug, image)
            dic = copy.copy(dataset_dict)
            dic["transforms"] = TransformList([pre_tfm, tfms])
            dic["image"] = new_image
            ret.append(dic)
        return ret


class GeneralizedRCNNWithTTA(nn.Module):
    """Run a :class:`GeneralizedRCNN` on augmented versions of each image and merge
    the results.

    The boxes of all augmentations are mapped back to the original image and merged
    with per-class NMS. The masks and keypoints are then predicted for the merged boxes
    on every augmentation: mask probabilities and keypoint heatmap logits (both in box
    coordinates; flipped back, and for keypoints left and right swapped) are averaged,
    and the keypoints are decoded from the averaged heatmaps in the original image.
    Precomputed proposals are not supported.
    """

    def __init__(
        self,
        cfg: Any,
        model: GeneralizedRCNN,
        tta_mapper: Any | None = None,
        batch_size: int = 3,
        *,
        keypoint_flip_indices: Sequence[int] | None = None,
    ):
        """
        Args:
            cfg (CfgNode): the config of the model.
            model (GeneralizedRCNN): the model to run (in eval mode).
            tta_mapper (callable): turns an input dict into a list of augmented dicts,
                each with "transforms"; defaults to ``DatasetMapperTTA(cfg)``.
            batch_size (int): number of augmented images per inference batch.
            keypoint_flip_indices (list[int] or None): for each keypoint, the index of its
                mirror (e.g. left eye <-> right eye); needed by keypoint models when an
                augmentation flips the image.
        """
        super().__init__()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        if not isinstance(model, GeneralizedRCNN):
            raise TypeError(f"model: expected a GeneralizedRCNN, got {type(model).__name__}")
        if keypoint_flip_indices is not None:
            keypoint_flip_indices = list(keypoint_flip_indices)
            num_keypoints = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
            if sorted(keypoint_flip_indices) != list(range(num_keypoints)):
                raise ValueError(
                    "keypoint_flip_indices: expected a permutation of the "
                    f"{num_keypoints} keypoints (MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS), "
                    f"got {keypoint_flip_indices!r}"
                )
        if cfg.MODEL.LOAD_PROPOSALS:
            raise ValueError(
                "MODEL.LOAD_PROPOSALS: test-time augmentation of precomputed proposals is "
                "not supported"
            )
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        self.cfg = cfg.clone()
        self.model = model
        self.tta_mapper = tta_mapper if tta_mapper is not None else DatasetMapperTTA(cfg)
        self.batch_size = batch_size
        self.keypoint_flip_indices = keypoint_flip_indices

    @contextmanager
    def _turn_off_roi_heads(self, attrs: list[str]) -> Iterator[None]:
        """Temporarily set the given boolean attributes of the ROI heads to False."""
        roi_heads = self.model.roi_heads
        old = {attr: getattr(roi_heads, attr) for attr in attrs if hasattr(roi_heads, attr)}
        for attr in old:
            setattr(roi_heads, attr, False)
        try:
            yield
        finally:
            for attr, value in old.items():
                setattr(roi_heads, attr, value)

    def _batch_inference(
        self,
        batched_inputs: list[dict[str, Any]],
        detected_instances: list[Instances] | None = None,
    ) -> list[Instances]:
        """Inference (without postprocessing) on the inputs, ``batch_size`` at a time."""
        outputs = []
        for start in range(0, len(batched_inputs), self.batch_size):
            inputs = batched_inputs[start : start + self.batch_size]
            instances = (
                None
                if detected_instances is None
                else detected_instances[start : start + self.batch_size]
            )
            outputs.extend(self.model.inference(inputs, instances, do_postprocess=False))
        return outputs

    def __call__(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Instances]]:
        """
        Args:
            batched_inputs (list[dict]): as for :class:`GeneralizedRCNN`, each with
                "image" (Tensor[C, H, W]) and optionally "height" and "width".

        Returns:
            list[dict]: per image, {"instances": Instances} at ("height", "width") with
            "pred_boxes", "scores", "pred_classes" and, when the model predicts them,
            "pred_masks", "pred_keypoints" and "pred_keypoint_heatmaps".
        """
        results = []
        for x in batched_inputs:
            if "image" not in x:
                raise ValueError("batched_inputs: each input needs an 'image'")
            x = copy.copy(x)
            if "height" not in x and "width" not in x:
                x["height"], x["width"] = x["image"].shape[1:3]
            results.append(self._inference_one_image(x))
        return results

    def _inference_one_image(self, input: dict[str, Any]) -> dict[str, Instances]:
        orig_shape = (int(input["height"]), int(input["width"]))
        augmented_inputs, tfms = self._get_augmented_inputs(input)
        mask_on = getattr(self.model.roi_heads, "mask_on", False)
        keypoint_on = getattr(self.model.roi_heads, "keypoint_on", False)
        mirrors = any(tfm.reflections % 2 == 1 for tfm in tfms)
        if keypoint_on and mirrors and self.keypoint_flip_indices is None:
            raise ValueError(
                "keypoint_flip_indices: needed to merge the keypoints of flipped "
                "augmentations (left and right keypoints swap)"
            )
        # Boxes first: masks and keypoints are predicted only for the merged boxes.
        with self._turn_off_roi_heads(["mask_on", "keypoint_on"]):
            all_boxes, all_scores, all_classes = self._get_augmented_boxes(augmented_inputs, tfms)
        merged_instances = self._merge_detections(all_boxes, all_scores, all_classes, orig_shape)
        if mask_on or keypoint_on:
            augmented_instances = self._rescale_detected_boxes(
                augmented_inputs, merged_instances, tfms
            )
            outputs = self._batch_inference(augmented_inputs, augmented_instances)
            if mask_on:
                merged_instances.pred_masks = self._reduce_pred_masks(outputs, tfms)
            if keypoint_on:
                heatmaps = self._reduce_pred_keypoint_heatmaps(outputs, tfms)
                keypoint_rcnn_inference(heatmaps, [merged_instances])
            merged_instances = detector_postprocess(merged_instances, *orig_shape)
        return {"instances": merged_instances}

    def _get_augmented_inputs(
        self, input: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[Transform]]:
        augmented_inputs = self.tta_mapper(input)
        tfms = [x.pop("transforms") for x in augmented_inputs]
        return augmented_inputs, tfms

    def _get_augmented_boxes(
        self, augmented_inputs: list[dict[str, Any]], tfms: list[Transform]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = self._batch_inference(augmented_inputs)
        all_boxes, all_scores, all_classes = [], [], []
        for output, tfm in zip(outputs, tfms):
            # Map the boxes back to the original image.
            all_boxes.append(tfm.inverse().apply_box(output.pred_boxes.tensor))
            all_scores.append(output.scores)
            all_classes.append(output.pred_classes)
        return torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_classes)

    def _merge_detections(
        self,
        all_boxes: torch.Tensor,
        all_scores: torch.Tensor,
        all_classes: torch.Tensor,
        shape_hw: tuple[int, int],
    ) -> Instances:
        num_classes = self.cfg.MODEL.ROI_HEADS.NUM_CLASSES
        # One score column per class (+ background) so that NMS runs per class.
        all_scores_2d = all_scores.new_zeros(len(all_boxes), num_classes + 1)
        all_scores_2d[torch.arange(len(all_boxes), device=all_boxes.device), all_classes] = (
            all_scores
        )
        merged_instances, _ = fast_rcnn_inference_single_image(
            all_boxes,
            all_scores_2d,
            shape_hw,
            1e-8,
            self.cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            self.cfg.TEST.DETECTIONS_PER_IMAGE,
        )
        return merged_instances

    def _rescale_detected_boxes(
        self,
        augmented_inputs: list[dict[str, Any]],
        merged_instances: Instances,
        tfms: list[Transform],
    ) -> list[Instances]:
        augmented_instances = []
        for input, tfm in zip(augmented_inputs, tfms):
            aug_instances = Instances(tuple(input["image"].shape[1:3]))
            aug_instances.pred_boxes = Boxes(tfm.apply_box(merged_instances.pred_boxes.tensor))
            aug_instances.pred_classes = merged_instances.pred_classes
            aug_instances.scores = merged_instances.scores
            augmented_instances.append(aug_instances)
        return augmented_instances

    def _reduce_pred_masks(self, outputs: list[Instances], tfms: list[Transform]) -> torch.Tensor:
        # Masks are predicted in box coordinates: undo the flips, as the box mapping did.
        masks = [_undo_flips(output.pred_masks, tfm) for output, tfm in zip(outputs, tfms)]
        return torch.stack(masks, dim=0).mean(dim=0)

    def _reduce_pred_keypoint_heatmaps(
        self, outputs: list[Instances], tfms: list[Transform]
    ) -> torch.Tensor:
        # Heatmaps are in box coordinates too; a mirror also swaps left and right keypoints.
        heatmaps = []
        for output, tfm in zip(outputs, tfms):
            maps = _undo_flips(output.pred_keypoint_heatmaps, tfm)
            if tfm.reflections % 2 == 1:
                maps = maps[:, self.keypoint_flip_indices]
            heatmaps.append(maps)
        return torch.stack(heatmaps, dim=0).mean(dim=0)


def _undo_flips(maps: torch.Tensor, tfm: Transform) -> torch.Tensor:
    """Maps in box coordinates (Tensor[R, C, S, S]) of an augmented image, mirrored
    back to the orientation of the original image."""
    tfms = list(tfm.transforms) if isinstance(tfm, TransformList) else [tfm]
    dims = [
        dim
        for dim, kind in ((3, HFlipTransform), (2, VFlipTransform))
        if sum(isinstance(t, kind) for t in tfms) % 2 == 1
    ]
    return maps.flip(dims=dims) if dims else maps
