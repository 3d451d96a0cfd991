"""Pixel samplers: per-pixel loss weights for semantic segmentation (mmseg's
``mmseg.structures.sampler``)."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from vt_modeling.registry import Registry

__all__ = ["PIXEL_SAMPLERS", "BasePixelSampler", "OHEMPixelSampler", "build_pixel_sampler"]

PIXEL_SAMPLERS = Registry("pixel sampler")
PIXEL_SAMPLERS.__doc__ = """Registry for pixel samplers, built by :func:`build_pixel_sampler`."""


def build_pixel_sampler(cfg: Mapping[str, Any], **default_args: Any) -> BasePixelSampler:
    """Build pixel sampler for segmentation map.

    Args:
        cfg: ``dict(type=name, **kwargs)``; its keys take precedence over ``default_args``.
        **default_args: default keyword arguments, e.g. ``context``.
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f"cfg: expected a dict with a 'type' key, got {type(cfg).__name__}")
    return PIXEL_SAMPLERS.build({**default_args, **cfg})


class BasePixelSampler(metaclass=ABCMeta):
    """Base class of pixel sampler."""

    def __init__(self, **kwargs: Any) -> None:
        """Accepts (and ignores) keyword arguments, so subclasses pass theirs up."""
        super().__init__()

    @abstractmethod
    def sample(self, seg_logit: torch.Tensor, seg_label: torch.Tensor) -> torch.Tensor:
        """Placeholder for sample function."""


@PIXEL_SAMPLERS.register()
class OHEMPixelSampler(BasePixelSampler):
    """Online Hard Example Mining Sampler for segmentation.

    The context (a segmentation head) provides ``ignore_index`` and, optionally, a
    ``pixel_losses(seg_logit, seg_label) -> Tensor[N, H, W]`` method ranking pixels when
    ``thresh`` is None (per-pixel cross entropy otherwise).

    Args:
        context (nn.Module): The context of sampler, e.g. a segmentation head.
        thresh (float, optional): The threshold for hard example selection. Below which,
            are prediction with low confidence. If not specified, the hard examples will be
            pixels of top ``min_kept`` loss. Default: None.
        min_kept (int, optional): The minimum number of predictions to keep (per image).
            Default: 100000.
    """

    def __init__(self, context: Any, thresh: float | None = None, min_kept: int = 100000) -> None:
        super().__init__()
        if not hasattr(context, "ignore_index"):
            raise TypeError(
                f"context: expected an object with an 'ignore_index' attribute, "
                f"got {type(context).__name__}"
            )
        if int(min_kept) != min_kept or min_kept < 1:
            raise ValueError(f"min_kept: expected a positive integer, got {min_kept!r}")
        self.context = context
        self.thresh = thresh
        self.min_kept = int(min_kept)

    def _pixel_losses(self, seg_logit: torch.Tensor, seg_label: torch.Tensor) -> torch.Tensor:
        pixel_losses = getattr(self.context, "pixel_losses", None)
        if pixel_losses is not None:
            return pixel_losses(seg_logit, seg_label)
        return F.cross_entropy(
            seg_logit, seg_label, ignore_index=self.context.ignore_index, reduction="none"
        )

    def sample(self, seg_logit: torch.Tensor, seg_label: torch.Tensor) -> torch.Tensor:
        """Sample pixels that have high loss or with low prediction confidence.

        Args:
            seg_logit (Tensor[N, C, H, W]): segmentation logits.
            seg_label (Tensor[N, 1, H, W]): segmentation label.

        Returns:
            Tensor[N, H, W]: segmentation weight, 1 for the kept pixels and 0 elsewhere,
            in the dtype of ``seg_logit``.
        """
        if seg_logit.dim() != 4:
            raise ValueError(f"seg_logit: expected (N, C, H, W), got {tuple(seg_logit.shape)}")
        if (
            seg_label.dim() != 4
            or seg_label.shape[1] != 1
            or seg_label.shape[0] != seg_logit.shape[0]
            or seg_label.shape[2:] != seg_logit.shape[2:]
        ):
            raise ValueError(
                f"seg_label: expected (N, 1, H, W) = {(seg_logit.shape[0], 1, *seg_logit.shape[2:])}"
                f", got {tuple(seg_label.shape)}"
            )
        with torch.no_grad():
            ignore_index = self.context.ignore_index
            seg_label = seg_label.squeeze(1).long()
            batch_kept = self.min_kept * seg_label.size(0)
            valid_mask = seg_label != ignore_index
            seg_weight = seg_logit.new_zeros(size=seg_label.size())
            valid_seg_weight = seg_weight[valid_mask]
            if self.thresh is not None:
                seg_prob = F.softmax(seg_logit, dim=1)
                gt = seg_label.clone().unsqueeze(1)
                gt[gt == ignore_index] = 0
                seg_prob = seg_prob.gather(1, gt).squeeze(1)
                valid_prob = seg_prob[valid_mask]
                sort_prob, _ = valid_prob.sort()
                if sort_prob.numel() > 0:
                    min_threshold = sort_prob[min(batch_kept, sort_prob.numel() - 1)].item()
                else:
                    min_threshold = 0.0
                threshold = max(min_threshold, self.thresh)
                valid_seg_weight[valid_prob < threshold] = 1.0
            else:
                losses = self._pixel_losses(seg_logit, seg_label)
                _, sort_indices = losses[valid_mask].sort(descending=True)
                valid_seg_weight[sort_indices[:batch_kept]] = 1.0
            seg_weight[valid_mask] = valid_seg_weight
            return seg_weight
