"""Panoptic FPN: Generalized R-CNN plus a semantic segmentation head."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from vt_modeling.config import configurable
from vt_modeling.meta_arch.rcnn import GeneralizedRCNN
from vt_modeling.meta_arch.semantic_seg import _padded_sem_seg_targets
from vt_modeling.postprocessing import detector_postprocess, sem_seg_postprocess
from vt_modeling.registries import META_ARCH_REGISTRY, build_sem_seg_head
from vt_structures import Instances

__all__ = ["PanopticFPN", "combine_semantic_and_instance_outputs"]

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class PanopticFPN(GeneralizedRCNN):
    """Implement the paper Panoptic Feature Pyramid Networks (Kirillov et al., 2019)."""

    @configurable
    def __init__(
        self,
        *,
        sem_seg_head: nn.Module,
        combine_overlap_thresh: float = 0.5,
        combine_stuff_area_thresh: float = 4096,
        combine_instances_score_thresh: float = 0.5,
        **kwargs: Any,
    ):
        """
        Args:
            sem_seg_head (nn.Module): a module for the semantic segmentation head, called as
                ``sem_seg_head(features, targets)`` and returning ``(predictions, losses)``;
                it has an ``ignore_value`` used to pad targets.
            combine_overlap_thresh (float): combine masks into one instances if they have
                enough overlap.
            combine_stuff_area_thresh (float): ignore stuff areas smaller than this threshold.
            combine_instances_score_thresh (float): ignore instances whose score is smaller
                than this threshold.
            **kwargs (Any): the arguments of :class:`GeneralizedRCNN`; the proposal
                generator is required.
        """
        super().__init__(**kwargs)
        if self.proposal_generator is None:
            raise ValueError("proposal_generator: PanopticFPN needs a proposal generator")
        self.sem_seg_head = sem_seg_head
        self.combine_overlap_thresh = combine_overlap_thresh
        self.combine_stuff_area_thresh = combine_stuff_area_thresh
        self.combine_instances_score_thresh = combine_instances_score_thresh

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        ret = super().from_config(cfg)
        combine = cfg.MODEL.PANOPTIC_FPN.COMBINE
        ret.update(
            {
                "combine_overlap_thresh": combine.OVERLAP_THRESH,
                "combine_stuff_area_thresh": combine.STUFF_AREA_LIMIT,
                "combine_instances_score_thresh": combine.INSTANCES_CONFIDENCE_THRESH,
                "sem_seg_head": build_sem_seg_head(cfg, ret["backbone"].output_shape()),
            }
        )
        if not combine.ENABLED:
            logger.warning(
                "PANOPTIC_FPN.COMBINE.ENABLED is no longer used; "
                "model.inference(do_postprocess=) toggles the post-processing."
            )
        weight = cfg.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT
        if weight != 1.0:
            logger.warning(
                "PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT should be replaced by weights on each ROI head."
            )
            _scale_instance_loss_weights(ret["roi_heads"], weight)
        return ret

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: a list, batched outputs of a dataset mapper. Each item is a
                dict with "image" (Tensor in (C, H, W) format), "instances" (ground truth
                Instances) and "sem_seg" (Tensor[H, W] of class indices) in training, and
                optionally "height", "width": the output resolution used in inference.

        Returns:
            In training, a dict of losses: the R-CNN losses and "loss_sem_seg". In
            inference, a list of dicts, one per image, with "instances" (as
            :meth:`GeneralizedRCNN.forward`), "sem_seg" (Tensor[K, height, width], the
            per-class logits) and "panoptic_seg" (the return value of
            :func:`combine_semantic_and_instance_outputs`).
        """
        if not self.training:
            return self.inference(batched_inputs)
        for key in ("sem_seg", "instances"):
            if key not in batched_inputs[0]:
                raise ValueError(f'batched_inputs: training needs "{key}" ground truth per image')
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)

        gt_sem_seg = _padded_sem_seg_targets(self, batched_inputs)
        _, sem_seg_losses = self.sem_seg_head(features, gt_sem_seg)

        gt_instances = self._gt_instances(batched_inputs, "instances")
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        return {**sem_seg_losses, **proposal_losses, **detector_losses}

    def inference(  # type: ignore[override]
        self, batched_inputs: list[dict[str, Any]], do_postprocess: bool = True
    ) -> Any:
        """Run inference on the given inputs.

        Args:
            batched_inputs (list[dict]): same as in :meth:`forward`.
            do_postprocess (bool): whether to apply post-processing on the outputs.

        Returns:
            With ``do_postprocess``, the list of dicts described in :meth:`forward`;
            otherwise a tuple (list[Instances], Tensor[N, K, H, W]) of the raw detector
            outputs and semantic segmentation logits at the padded input size.
        """
        if self.training:
            raise RuntimeError("inference() needs the model in eval mode")
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        sem_seg_results, _ = self.sem_seg_head(features, None)
        proposals, _ = self.proposal_generator(images, features, None)
        detector_results, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return detector_results, sem_seg_results

        processed_results = []
        for sem_seg_result, detector_result, input_per_image, image_size in zip(
            sem_seg_results, detector_results, batched_inputs, images.image_sizes
        ):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            sem_seg_r = sem_seg_postprocess(sem_seg_result, image_size, height, width)
            detector_r = detector_postprocess(detector_result, height, width)
            panoptic_r = combine_semantic_and_instance_outputs(
                detector_r,
                sem_seg_r.argmax(dim=0),
                self.combine_overlap_thresh,
                self.combine_stuff_area_thresh,
                self.combine_instances_score_thresh,
            )
            processed_results.append(
                {"sem_seg": sem_seg_r, "instances": detector_r, "panoptic_seg": panoptic_r}
            )
        return processed_results


def _scale_instance_loss_weights(roi_heads: nn.Module, weight: float) -> None:
    """Multiply the loss weights of the box predictor(s) and the mask head by ``weight``.

    A dict weight of a box predictor lists only the losses it re-weights (detectron2 then
    leaves "loss_cls" at 1); both its losses are scaled here.
    """
    predictors = roi_heads.box_predictor
    if not isinstance(predictors, nn.ModuleList):
        predictors = [predictors]
    for predictor in predictors:
        loss_weight = {"loss_cls": 1.0, "loss_box_reg": 1.0, **predictor.loss_weight}
        predictor.loss_weight = {k: v * weight for k, v in loss_weight.items()}
    if getattr(roi_heads, "mask_head", None) is not None:
        roi_heads.mask_head.loss_weight = roi_heads.mask_head.loss_weight * weight


def combine_semantic_and_instance_outputs(
    instance_results: Instances,
    semantic_results: torch.Tensor,
    overlap_threshold: float,
    stuff_area_thresh: float,
    instances_score_thresh: float,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Combine instance and semantic predictions into a panoptic segmentation.

    The combining logic of panopticapi's "combine_semantic_and_instance_predictions.py":
    instances are pasted by decreasing score (those below ``instances_score_thresh`` are
    dropped; an instance whose mask lies more than ``overlap_threshold`` over the segments
    already pasted, or lies wholly over them, is dropped, otherwise only its uncovered
    pixels are kept), then each
    semantic class but 0 (the class of all "things" in the semantic head) fills the pixels
    still empty, when they are at least ``stuff_area_thresh`` (and at least one). Unlike
    detectron2, no segment is ever empty, even with ``overlap_threshold >= 1`` or
    ``stuff_area_thresh <= 0``.

    Args:
        instance_results (Instances): output of :func:`detector_postprocess`, with
            "scores", "pred_classes" and "pred_masks" (Tensor[N, H, W]).
        semantic_results (Tensor[H, W]): the contiguous semantic category id per pixel.
        overlap_threshold (float): largest fraction of an instance's mask that may already
            be covered.
        stuff_area_thresh (float): smallest area of a stuff segment.
        instances_score_thresh (float): smallest score of an instance.

    Returns:
        tuple: ``panoptic_seg`` (Tensor[H, W] of int32): the segment id of each pixel,
        0 for none, segments numbered from 1; ``segments_info`` (list[dict]): one dict per
        segment with "id", "isthing", "category_id" and "area" (its pixel count), plus
        "score" and "instance_id" (index in ``instance_results``) for things.
    """
    if not isinstance(semantic_results, torch.Tensor) or semantic_results.dtype.is_floating_point:
        raise TypeError("semantic_results: expected an integer Tensor[H, W] of category ids")
    if semantic_results.dim() != 2:
        raise ValueError(
            f"semantic_results: expected Tensor[H, W], got shape {tuple(semantic_results.shape)}"
        )
    for field in ("scores", "pred_classes", "pred_masks"):
        if not instance_results.has(field):
            raise ValueError(f'instance_results: missing the "{field}" field')
    masks = instance_results.pred_masks
    if masks.dim() != 3 or masks.shape[1:] != semantic_results.shape:
        raise ValueError(
            f"instance_results: pred_masks must be Tensor[N, {semantic_results.shape[0]}, "
            f"{semantic_results.shape[1]}] like semantic_results, got {tuple(masks.shape)}"
        )

    panoptic_seg = torch.zeros_like(semantic_results, dtype=torch.int32)
    instance_masks = masks.to(dtype=torch.bool, device=panoptic_seg.device)
    scores = instance_results.scores
    segments_info: list[dict[str, Any]] = []
    current_segment_id = 0

    for inst_id in torch.argsort(scores, descending=True, stable=True).tolist():
        score = scores[inst_id].item()
        if score < instances_score_thresh:
            break
        mask = instance_masks[inst_id]
        mask_area = mask.sum().item()
        if mask_area == 0:
            continue
        intersect_area = (mask & (panoptic_seg > 0)).sum().item()
        # a fully covered mask would make an empty segment (possible at threshold >= 1)
        if intersect_area / mask_area > overlap_threshold or intersect_area == mask_area:
            continue
        if intersect_area > 0:
            mask = mask & (panoptic_seg == 0)
        current_segment_id += 1
        panoptic_seg[mask] = current_segment_id
        segments_info.append(
            {
                "id": current_segment_id,
                "isthing": True,
                "score": score,
                "category_id": instance_results.pred_classes[inst_id].item(),
                "instance_id": inst_id,
                "area": mask_area - intersect_area,
            }
        )

    for semantic_label in torch.unique(semantic_results).tolist():
        if semantic_label == 0:  # the semantic head's single "things" class
            continue
        mask = (semantic_results == semantic_label) & (panoptic_seg == 0)
        mask_area = mask.sum().item()
        if mask_area == 0 or mask_area < stuff_area_thresh:
            continue
        current_segment_id += 1
        panoptic_seg[mask] = current_segment_id
        segments_info.append(
            {
                "id": current_segment_id,
                "isthing": False,
                "category_id": semantic_label,
                "area": mask_area,
            }
        )
    return panoptic_seg, segments_info
