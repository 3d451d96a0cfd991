"""Generalized R-CNN and the proposal-only network."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vt_layers import move_device_like
from vt_modeling.backbone import Backbone
from vt_modeling.config import configurable
from vt_modeling.postprocessing import detector_postprocess
from vt_modeling.registries import (
    META_ARCH_REGISTRY,
    build_backbone,
    build_proposal_generator,
    build_roi_heads,
)
from vt_modeling.utils.drawing import convert_image_to_rgb, draw_boxes
from vt_modeling.utils.events import get_event_storage
from vt_structures import ImageList, Instances

__all__ = ["GeneralizedRCNN", "ProposalNetwork"]


def _rescale_outputs(
    results: list[Instances],
    batched_inputs: list[dict[str, Any]],
    image_sizes: list[tuple[int, int]],
    key: str,
) -> list[dict[str, Instances]]:
    """Per image, ``{key: results}`` rescaled to the input's "height" and "width"
    (default: the size the model saw)."""
    processed = []
    for results_per_image, input_per_image, image_size in zip(results, batched_inputs, image_sizes):
        height = input_per_image.get("height", image_size[0])
        width = input_per_image.get("width", image_size[1])
        processed.append({key: detector_postprocess(results_per_image, height, width)})
    return processed


class _NormalizedImagesMixin:
    """Pixel normalisation and padding shared by the meta-architectures."""

    backbone: Backbone
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def _register_pixel_stats(self, pixel_mean: Any, pixel_std: Any) -> None:
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)  # type: ignore[attr-defined]
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)  # type: ignore[attr-defined]
        if self.pixel_mean.shape != self.pixel_std.shape:
            raise ValueError(
                f"pixel_mean and pixel_std have different shapes: {pixel_mean} and {pixel_std}"
            )

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _move_to_current_device(self, x: torch.Tensor) -> torch.Tensor:
        return move_device_like(x, self.pixel_mean)

    def preprocess_image(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        """Normalize, pad and batch the input images."""
        images = [self._move_to_current_device(x["image"]) for x in batched_inputs]
        images = [(x - self.pixel_mean) / self.pixel_std for x in images]
        return ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )

    def _gt_instances(
        self, batched_inputs: list[dict[str, Any]], *keys: str
    ) -> list[Instances] | None:
        for key in keys:
            if key in batched_inputs[0]:
                return [x[key].to(self.device) for x in batched_inputs]
        return None


@META_ARCH_REGISTRY.register()
class GeneralizedRCNN(_NormalizedImagesMixin, nn.Module):
    """Generalized R-CNN. Any model that contains the following three components:

    1. Per-image feature extraction (aka backbone)
    2. Region proposal generation
    3. Per-region feature extraction and prediction
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module | None,
        roi_heads: nn.Module,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
        input_format: str | None = None,
        vis_period: int = 0,
    ):
        """
        Args:
            backbone: a backbone module, must follow the Backbone interface.
            proposal_generator: a module that generates proposals using backbone features;
                None uses the precomputed "proposals" of the inputs.
            roi_heads: a ROI head that performs per-region computation.
            pixel_mean: per-channel mean used to normalize the input.
            pixel_std: per-channel std used to normalize the input.
            input_format: describe the meaning of channels of input, e.g. "RGB" or "BGR".
            vis_period: the period to run visualization (see :meth:`visualize_training`);
                0 disables it. Training then needs an active EventStorage.
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.input_format = input_format
        self.vis_period = vis_period
        self._register_pixel_stats(pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "proposal_generator": build_proposal_generator(cfg, backbone.output_shape()),
            "roi_heads": build_roi_heads(cfg, backbone.output_shape()),
            "input_format": cfg.INPUT.FORMAT,
            "vis_period": cfg.VIS_PERIOD,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: a list, batched outputs of a dataset mapper. Each item is a
                dict with "image" (Tensor in (C, H, W) format), "instances" (ground truth
                Instances, training), "proposals" (precomputed, optional), and "height",
                "width" (the desired output resolution, inference).

        Returns:
            dict[str, Tensor] of losses in training; at inference, a list of dicts, one per
            image, with "instances" (Instances with "pred_boxes", "scores",
            "pred_classes", and "pred_masks"/"pred_keypoints" when enabled).
        """
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = self._gt_instances(batched_inputs, "instances")
        features = self.backbone(images.tensor)
        if self.proposal_generator is not None:
            proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        else:
            if "proposals" not in batched_inputs[0]:
                raise ValueError(
                    "batched_inputs: 'proposals' are required without a proposal generator"
                )
            proposals = [x["proposals"].to(self.device) for x in batched_inputs]
            proposal_losses = {}
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        if self.vis_period > 0:
            storage = get_event_storage()
            if storage.iter % self.vis_period == 0:
                self.visualize_training(batched_inputs, proposals)
        return {**detector_losses, **proposal_losses}

    def inference(
        self,
        batched_inputs: list[dict[str, Any]],
        detected_instances: list[Instances] | None = None,
        do_postprocess: bool = True,
    ) -> Any:
        """Run inference on the given inputs.

        Args:
            batched_inputs (list[dict]): same as in :meth:`forward`.
            detected_instances (None or list[Instances]): if not None, contains an
                Instances object per image with known boxes and classes; only the
                remaining heads (masks, keypoints) run on them.
            do_postprocess (bool): whether to apply post-processing on the outputs.

        Returns:
            With ``do_postprocess``, a list of {"instances": Instances} at the requested
            resolution; otherwise a list of Instances at the input resolution.
        """
        if self.training:
            raise RuntimeError("inference() needs the model in eval mode")
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        if detected_instances is None:
            if self.proposal_generator is not None:
                proposals, _ = self.proposal_generator(images, features, None)
            else:
                proposals = [x["proposals"].to(self.device) for x in batched_inputs]
            results, _ = self.roi_heads(images, features, proposals, None)
        else:
            detected_instances = [x.to(self.device) for x in detected_instances]
            results = self.roi_heads.forward_with_given_boxes(features, detected_instances)
        if do_postprocess:
            return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)
        return results

    @staticmethod
    def _postprocess(
        instances: list[Instances],
        batched_inputs: list[dict[str, Any]],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Instances]]:
        """Rescale the output instances to the target size."""
        return _rescale_outputs(instances, batched_inputs, image_sizes, "instances")

    def visualize_training(
        self, batched_inputs: list[dict[str, Any]], proposals: list[Instances]
    ) -> None:
        """Put in the current EventStorage the first image of the batch with its ground
        truth boxes (left) and its 20 top-scoring proposals (right), side by side:
        an image Tensor[3, H, 2W] (uint8 RGB).

        Args:
            batched_inputs (list[dict]): the model inputs, with "image" and "instances".
            proposals (list[Instances]): the proposals of each image, with
                "proposal_boxes" sorted by score.
        """
        storage = get_event_storage()
        max_vis_prop = 20
        input, prop = batched_inputs[0], proposals[0]  # only one image of the batch
        img = convert_image_to_rgb(input["image"], self.input_format)
        anno_img = draw_boxes(img, input["instances"].gt_boxes.tensor, color=(0, 255, 0))
        prop_img = draw_boxes(img, prop.proposal_boxes.tensor[:max_vis_prop], color=(255, 128, 0))
        vis_name = "Left: GT bounding boxes;  Right: Predicted proposals"
        storage.put_image(vis_name, torch.cat([anno_img, prop_img], dim=2))


@META_ARCH_REGISTRY.register()
class ProposalNetwork(_NormalizedImagesMixin, nn.Module):
    """A meta architecture that only predicts object proposals."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
    ):
        """
        Args:
            backbone: a backbone module, must follow the Backbone interface.
            proposal_generator: a module that generates proposals using backbone features.
            pixel_mean: per-channel mean used to normalize the input.
            pixel_std: per-channel std used to normalize the input.
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self._register_pixel_stats(pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "proposal_generator": build_proposal_generator(cfg, backbone.output_shape()),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: same as in :meth:`GeneralizedRCNN.forward`.

        Returns:
            dict of losses in training; at inference a list of dicts with "proposals"
            (Instances with "proposal_boxes" and "objectness_logits").
        """
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        gt_instances = self._gt_instances(batched_inputs, "instances", "targets")
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        if self.training:
            return proposal_losses
        return _rescale_outputs(proposals, batched_inputs, images.image_sizes, "proposals")
