"""Wrappers that run mmdetection backbones and detectors with detectron2's conventions.

Modules given directly need no mmdet; mmdet (2.x API: ``forward_train`` /
``simple_test``) is imported only to build modules from config dicts and to convert
ground-truth masks to its mask structures.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from vt_layers import ShapeSpec
from vt_modeling.backbone import Backbone
from vt_modeling.meta_arch.rcnn import _NormalizedImagesMixin
from vt_structures import BitMasks, Boxes, ImageList, Instances

__all__ = ["MMDetBackbone", "MMDetDetector"]


def _import_mmdet(module: str, argument: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{argument}: {purpose} needs mmdet ({module}), which is not installed"
        ) from e


def _build_mmdet(cfg: Mapping[str, Any], kind: str, argument: str) -> nn.Module:
    """Build an mmdet module from a config dict with ``mmdet.models.build_<kind>``."""
    purpose = "building from an mmdet config dict (else pass an nn.Module)"
    models = _import_mmdet("mmdet.models", argument, purpose)
    try:  # mmdet asserts dict types: plain containers, then mmcv's ConfigDict
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    except ImportError:
        pass
    config_dict = _import_mmdet("mmcv.utils", argument, purpose).ConfigDict
    return getattr(models, f"build_{kind}")(config_dict(cfg))


def _as_module(value: Any, kind: str, argument: str) -> nn.Module:
    if isinstance(value, Mapping):
        return _build_mmdet(value, kind, argument)
    if not isinstance(value, nn.Module):
        raise TypeError(
            f"{argument}: expected an nn.Module or an mmdet config dict, got {type(value).__name__}"
        )
    return value


class MMDetBackbone(Backbone):
    """Wrapper of mmdetection backbones to use in detectron2.

    mmdet backbones produce list/tuple of tensors, while detectron2 backbones produce a
    dict of tensors. This class wraps the given backbone to produce output in
    detectron2's convention, so it can be used in place of detectron2 backbones. As mmdet
    expects, the ``init_weights()`` of the backbone and neck (of each module of a neck
    ``nn.Sequential``), where they have one, runs on construction.
    """

    def __init__(
        self,
        backbone: nn.Module | Mapping[str, Any],
        neck: nn.Module | Mapping[str, Any] | None = None,
        *,
        output_shapes: Sequence[ShapeSpec],
        output_names: Sequence[str] | None = None,
    ):
        """
        Args:
            backbone (nn.Module | Mapping): either a backbone module or a mmdet config dict
                that defines a backbone. The backbone takes a 4D image tensor and returns a
                sequence of tensors.
            neck (nn.Module | Mapping | None): either a backbone module or a mmdet config dict
                that defines a neck. The neck takes outputs of backbone and returns a
                sequence of tensors. If None, no neck is used.
            output_shapes (Sequence[ShapeSpec]): shape for every output of the backbone (or
                neck, if given). stride and channels are often needed.
            output_names (Sequence[str] | None): names for every output of the backbone (or
                neck, if given). By default, will use "out0", "out1", ...
        """
        super().__init__()
        self.backbone = _as_module(backbone, "backbone", "backbone")
        self.neck = None if neck is None else _as_module(neck, "neck", "neck")
        # mmdet modules initialise their weights and frozen stages in init_weights()/train().
        for module in (self.backbone, self.neck):
            if module is None:
                continue
            parts = module if isinstance(module, nn.Sequential) else [module]
            for part in parts:
                if callable(getattr(part, "init_weights", None)):
                    part.init_weights()
            module.train()

        output_shapes = list(output_shapes)
        if not output_shapes or not all(isinstance(s, ShapeSpec) for s in output_shapes):
            raise TypeError("output_shapes: expected a non-empty sequence of ShapeSpec")
        if not output_names:
            output_names = [f"out{i}" for i in range(len(output_shapes))]
        output_names = list(output_names)
        if len(output_names) != len(output_shapes) or len(set(output_names)) != len(output_names):
            raise ValueError(
                f"output_names: expected {len(output_shapes)} distinct names (one per "
                f"output_shapes entry), got {output_names}"
            )
        self._output_shapes = output_shapes
        self._output_names = output_names

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            x (Tensor[N, C, H, W]): the images.

        Returns:
            dict[str, Tensor]: the outputs of the backbone (or neck) by ``output_names``.
        """
        outs = self.backbone(x)
        if self.neck is not None:
            outs = self.neck(outs)
        if not isinstance(outs, (list, tuple)):
            raise TypeError(
                f"backbone: the mmdet backbone (or neck) must return a list/tuple of tensors, "
                f"got {type(outs).__name__}"
            )
        if len(outs) != len(self._output_shapes):
            raise ValueError(
                "output_shapes: its length does not match the outputs of the mmdet backbone: "
                f"{len(outs)} != {len(self._output_shapes)}"
            )
        return dict(zip(self._output_names, outs))

    def output_shape(self) -> dict[str, ShapeSpec]:
        """The given ``output_shapes`` by ``output_names``."""
        return dict(zip(self._output_names, self._output_shapes))


class MMDetDetector(_NormalizedImagesMixin, nn.Module):
    """Wrapper of a mmdetection detector model, for detection and instance segmentation.

    Input/output formats of this class follow detectron2's convention, so a mmdetection
    model can be trained and evaluated in detectron2. The detector follows mmdet's
    interface: ``forward_train(img, img_metas, gt_bboxes, gt_labels[, gt_masks=])``
    returns a dict of losses and metrics, ``simple_test(img, img_metas, rescale=)``
    returns per image a list of per-class ``ndarray[K, 5]`` (boxes and score), or a
    tuple of that and per-class lists of masks. The detector's non-loss training outputs
    (e.g. accuracies) of the last step are kept in ``metrics`` (dict[str, float]).
    """

    def __init__(
        self,
        detector: nn.Module | Mapping[str, Any],
        *,
        size_divisibility: int = 32,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
    ):
        """
        Args:
            detector (nn.Module | Mapping): a mmdet detector, or a mmdet config dict that
                defines a detector.
            size_divisibility (int): pad input images to multiple of this number.
            pixel_mean (tuple[float, ...]): per-channel mean to normalize input image.
            pixel_std (tuple[float, ...]): per-channel stddev to normalize input image.
        """
        super().__init__()
        self.detector = _as_module(detector, "detector", "detector")
        self.size_divisibility = size_divisibility
        self._register_pixel_stats(pixel_mean, pixel_std)
        self.metrics: dict[str, float] = {}

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: a list, batched outputs of a dataset mapper. Each item is a
                dict with "image" (Tensor in (C, H, W) format), "instances" (ground truth
                Instances with "gt_boxes", "gt_classes" and optionally "gt_masks",
                training) and optionally "height", "width" (the output resolution, for
                all inputs or for none).

        Returns:
            In training, a dict of losses (the detector's values whose name contains
            "loss", averaged; the others go to :attr:`metrics`). In inference, a list of
            dicts, one per image, with "instances" (Instances with "pred_boxes", "scores",
            "pred_classes" and, for mask results, "pred_masks").
        """
        images = [self._move_to_current_device(x["image"]) for x in batched_inputs]
        images = [(x - self.pixel_mean) / self.pixel_std for x in images]
        tensor = ImageList.from_tensors(images, size_divisibility=self.size_divisibility).tensor
        rescale_set = {"height" in x for x in batched_inputs}
        if len(rescale_set) != 1:
            raise ValueError("batched_inputs: some inputs have 'height'/'width', some do not")
        rescale = rescale_set.pop()

        metas = []
        output_shapes = []
        padh, padw = tensor.shape[-2:]
        for input_per_image in batched_inputs:
            c, h, w = input_per_image["image"].shape
            meta: dict[str, Any] = {"img_shape": (h, w, c), "ori_shape": (h, w, c)}
            if rescale:
                out_h, out_w = input_per_image["height"], input_per_image["width"]
                meta["scale_factor"] = np.array([w / out_w, h / out_h] * 2, dtype="float32")
                meta["ori_shape"] = (out_h, out_w, c)
                output_shapes.append((out_h, out_w))
            else:
                meta["scale_factor"] = 1.0
                output_shapes.append((h, w))
            meta["flip"] = False
            meta["pad_shape"] = (padh, padw, c)
            metas.append(meta)

        if self.training:
            gt_instances = self._gt_instances(batched_inputs, "instances")
            if gt_instances is None:
                raise ValueError('batched_inputs: training needs "instances" per image')
            kwargs = {}
            if gt_instances[0].has("gt_masks"):
                kwargs["gt_masks"] = [
                    _to_mmdet_masks(x.gt_masks, x.image_size) for x in gt_instances
                ]
            losses_and_metrics = self.detector.forward_train(
                tensor,
                metas,
                [x.gt_boxes.tensor for x in gt_instances],
                [x.gt_classes for x in gt_instances],
                **kwargs,
            )
            losses, self.metrics = _parse_losses(losses_and_metrics)
            return losses
        results = self.detector.simple_test(tensor, metas, rescale=rescale)
        return [
            {"instances": _convert_mmdet_result(r, shape)}
            for r, shape in zip(results, output_shapes)
        ]


def _to_mmdet_masks(masks: Any, shape: tuple[int, int]) -> Any:
    mm_core = _import_mmdet("mmdet.core", "gt_masks", "converting masks to mmdet's structures")
    if isinstance(masks, BitMasks):
        return mm_core.BitmapMasks(masks.tensor.cpu().numpy(), shape[0], shape[1])
    return mm_core.PolygonMasks(masks.polygons, shape[0], shape[1])


def _convert_mmdet_result(result: Any, shape: tuple[int, int]) -> Instances:
    """Instances from one image's mmdet result: per-class box arrays (Tensor[K, 5]-like,
    x0, y0, x1, y1, score), optionally with per-class lists of (H, W) masks."""
    if isinstance(result, tuple):
        bbox_result, segm_result = result
        if isinstance(segm_result, tuple):  # (masks, mask scores)
            segm_result = segm_result[0]
    else:
        bbox_result, segm_result = result, None

    per_class = [torch.as_tensor(b, dtype=torch.float32).reshape(-1, 5) for b in bbox_result]
    bboxes = torch.cat(per_class) if per_class else torch.zeros(0, 5)
    labels = torch.cat(
        [torch.full((len(b),), i, dtype=torch.int32) for i, b in enumerate(per_class)]
        or [torch.zeros(0, dtype=torch.int32)]
    )
    inst = Instances(shape)
    inst.pred_boxes = Boxes(bboxes[:, :4])
    inst.scores = bboxes[:, 4]
    inst.pred_classes = labels
    if segm_result is not None and len(labels) > 0:
        masks = [torch.as_tensor(m) for m in itertools.chain(*segm_result)]
        inst.pred_masks = torch.stack(masks, dim=0)
    return inst


def _parse_losses(losses: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Split mmdet's outputs into averaged losses and (scalar) metrics, as mmdet's
    ``BaseDetector._parse_losses``."""
    parsed: dict[str, torch.Tensor] = {}
    metrics: dict[str, float] = {}
    for name, value in losses.items():
        if isinstance(value, torch.Tensor):
            value = value.mean()
        elif isinstance(value, list) and all(isinstance(v, torch.Tensor) for v in value):
            value = sum((v.mean() for v in value), torch.zeros(()))
        else:
            raise TypeError(f"{name}: expected a tensor or a list of tensors from the detector")
        if "loss" in name:
            parsed[name] = value
        else:
            metrics[name] = float(value.detach().cpu())
    return parsed, metrics
