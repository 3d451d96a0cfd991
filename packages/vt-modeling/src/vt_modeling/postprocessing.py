"""Rescale model outputs to the resolution the caller asked for."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vt_structures import Instances, ROIMasks

__all__ = ["detector_postprocess", "sem_seg_postprocess"]


def detector_postprocess(
    results: Instances,
    output_height: int | torch.Tensor,
    output_width: int | torch.Tensor,
    mask_threshold: float = 0.5,
) -> Instances:
    """Resize the output instances to ``(output_height, output_width)``.

    The input images are often resized by the data loader; this maps the
    predictions back to the original (or any) resolution: boxes are scaled and
    clipped (empty boxes dropped), masks are pasted into full-image bit masks and
    keypoints are scaled.

    Args:
        results (Instances): the raw outputs of the detector, with ``pred_boxes`` (or
            ``proposal_boxes``), and optionally ``pred_masks`` and ``pred_keypoints``.
        output_height: the desired output height.
        output_width: the desired output width.
        mask_threshold (float): threshold of the pasted masks.

    Returns:
        Instances: the resized output.
    """
    if isinstance(output_width, torch.Tensor):
        # Tensors keep the computation traceable.
        output_width_tmp = output_width.float()
        output_height_tmp = output_height.float()
        new_size = torch.stack([output_height, output_width])
    else:
        new_size = (output_height, output_width)
        output_width_tmp, output_height_tmp = output_width, output_height
    scale_x = output_width_tmp / results.image_size[1]
    scale_y = output_height_tmp / results.image_size[0]
    results = Instances(new_size, **results.get_fields())

    if results.has("pred_boxes"):
        output_boxes = results.pred_boxes
    elif results.has("proposal_boxes"):
        output_boxes = results.proposal_boxes
    else:
        raise ValueError("results: predictions must contain 'pred_boxes' or 'proposal_boxes'")
    output_boxes.scale(scale_x, scale_y)
    output_boxes.clip(results.image_size)
    results = results[output_boxes.nonempty()]

    if results.has("pred_masks"):
        masks = results.pred_masks
        roi_masks = masks if isinstance(masks, ROIMasks) else ROIMasks(masks[:, 0, :, :])
        results.pred_masks = roi_masks.to_bitmasks(
            results.pred_boxes, output_height, output_width, mask_threshold
        ).tensor
    if results.has("pred_keypoints"):
        results.pred_keypoints[:, :, 0] *= scale_x
        results.pred_keypoints[:, :, 1] *= scale_y
    return results


def sem_seg_postprocess(
    result: torch.Tensor, img_size: tuple[int, int], output_height: int, output_width: int
) -> torch.Tensor:
    """Crop the padding off a semantic segmentation prediction and resize it.

    Args:
        result (Tensor[C, H, W]): logits; H, W are the padded input size.
        img_size (tuple): (height, width) of the input before padding.
        output_height: the desired output height.
        output_width: the desired output width.

    Returns:
        Tensor[C, output_height, output_width]: resized logits.
    """
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    return F.interpolate(
        result, size=(output_height, output_width), mode="bilinear", align_corners=False
    )[0]
