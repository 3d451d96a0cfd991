"""Selecting the top proposals of a proposal generator, and adding ground truth."""

from __future__ import annotations

import math

import torch

from vt_layers import move_device_like
from vt_modeling._masked_nms import masked_batched_nms
from vt_structures import Boxes, Instances

__all__ = ["add_ground_truth_to_proposals", "find_top_rpn_proposals", "rpn_candidates"]


def find_top_rpn_proposals(
    proposals: list[torch.Tensor],
    pred_objectness_logits: list[torch.Tensor],
    image_sizes: list[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> list[Instances]:
    """For each feature map, keep the ``pre_nms_topk`` highest scoring proposals, then
    per image clip them, drop small ones, apply NMS (independently per level) and keep
    the ``post_nms_topk`` highest scoring ones overall.

    Args:
        proposals (list[Tensor[N, Hi*Wi*A, 4]]): decoded proposals of each level.
        pred_objectness_logits (list[Tensor[N, Hi*Wi*A]]): their objectness logits.
        image_sizes (list[tuple]): (h, w) of each image.
        nms_thresh (float): IoU threshold of NMS.
        pre_nms_topk (int): proposals kept per level before NMS.
        post_nms_topk (int): proposals kept per image after NMS.
        min_box_size (float): proposals with a side below this are removed.
        training (bool): raise on non-finite predictions instead of dropping them.

    Returns:
        list[Instances]: per image, ``proposal_boxes`` and ``objectness_logits`` sorted
        by decreasing objectness.
    """
    return _find_top_proposals(
        proposals,
        pred_objectness_logits,
        image_sizes,
        nms_thresh,
        pre_nms_topk,
        post_nms_topk,
        min_box_size,
        training,
        Boxes,
    )


def _find_top_proposals(
    proposals: list[torch.Tensor],
    pred_objectness_logits: list[torch.Tensor],
    image_sizes: list[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
    box_type: type[Boxes],
) -> list[Instances]:
    """:func:`find_top_rpn_proposals` for boxes of ``box_type`` (``Boxes`` or
    ``RotatedBoxes``, suppressed with the matching NMS)."""
    num_images = len(image_sizes)
    device = proposals[0].device
    topk_scores, topk_proposals, level_ids = [], [], []
    batch_idx = move_device_like(torch.arange(num_images, device=device), proposals[0])
    for level_id, (proposals_i, logits_i) in enumerate(zip(proposals, pred_objectness_logits)):
        num_proposals_i = min(logits_i.shape[1], pre_nms_topk)
        topk_scores_i, topk_idx = logits_i.topk(num_proposals_i, dim=1)
        topk_proposals.append(proposals_i[batch_idx[:, None], topk_idx])
        topk_scores.append(topk_scores_i)
        level_ids.append(torch.full((num_proposals_i,), level_id, dtype=torch.int64, device=device))
    all_scores = torch.cat(topk_scores, dim=1)
    all_proposals = torch.cat(topk_proposals, dim=1)
    all_levels = torch.cat(level_ids, dim=0)

    results = []
    for n, image_size in enumerate(image_sizes):
        scores_per_img = all_scores[n]
        valid_mask = torch.isfinite(all_proposals[n]).all(dim=1) & torch.isfinite(scores_per_img)
        if training and not bool(valid_mask.all()):
            raise FloatingPointError(
                "Predicted boxes or scores contain Inf/NaN. Training has diverged."
            )
        boxes, valid_mask = rpn_candidates(
            all_proposals[n], valid_mask, image_size, min_box_size, box_type
        )
        keep = masked_batched_nms(boxes.tensor, scores_per_img, all_levels, valid_mask, nms_thresh)
        keep = keep[:post_nms_topk]
        res = Instances(image_size)
        res.proposal_boxes = boxes[keep]
        res.objectness_logits = scores_per_img[keep]
        results.append(res)
    return results


def rpn_candidates(
    boxes: torch.Tensor,
    valid: torch.Tensor,
    image_size: tuple[int, int],
    min_box_size: float,
    box_type: type[Boxes] = Boxes,
) -> tuple[Boxes, torch.Tensor]:
    """Clip the proposals of one image and mask out the small ones, as a mask rather
    than by indexing (no data-dependent shape, a graph break under ``torch.compile``).

    Args:
        boxes (Tensor[R, 4] or Tensor[R, 5]): proposals; those not ``valid`` may be
            non-finite.
        valid (Tensor[R] bool): the proposals with finite boxes and scores.
        image_size (tuple): (h, w) of the image.
        min_box_size (float): proposals with a side below this are masked out.
        box_type (type): ``Boxes`` or ``RotatedBoxes``, the type of the proposals.

    Returns:
        Boxes or RotatedBoxes: the clipped proposals (zeros where not valid); Tensor[R] bool: the valid
        ones that are large enough.
    """
    boxes = box_type(torch.where(valid[:, None], boxes, 0.0))
    boxes.clip(image_size)
    return boxes, boxes.nonempty(threshold=min_box_size) & valid


def add_ground_truth_to_proposals(
    gt: list[Instances] | list[Boxes], proposals: list[Instances]
) -> list[Instances]:
    """Append the ground-truth boxes of each image to its proposals (with a maximal
    objectness logit), so that the ROI heads always see some positives.

    Args:
        gt (list[Instances] | list[Boxes]): per image, Instances with ``gt_boxes`` (and
            other ``gt_*`` fields) or the boxes themselves.
        proposals (list[Instances]): per image, ``proposal_boxes`` and ``objectness_logits``.

    Returns:
        list[Instances]: the proposals with the ground truth appended.
    """
    if gt is None:
        raise ValueError("gt: ground truth is required to add it to the proposals")
    if len(proposals) != len(gt):
        raise ValueError(
            f"proposals and gt should have the same length, got {len(proposals)} and {len(gt)}"
        )
    return [
        _add_ground_truth_single_image(gt_i, proposals_i)
        for gt_i, proposals_i in zip(gt, proposals)
    ]


def _add_ground_truth_single_image(gt: Instances | Boxes, proposals: Instances) -> Instances:
    if isinstance(gt, Boxes):
        gt = Instances(proposals.image_size, gt_boxes=gt)
    gt_boxes = gt.gt_boxes
    device = proposals.objectness_logits.device
    # logit of a probability of almost 1
    gt_logit_value = math.log((1.0 - 1e-10) / (1 - (1.0 - 1e-10)))
    generated = {
        "proposal_boxes": gt_boxes,
        "objectness_logits": gt_logit_value * torch.ones(len(gt_boxes), device=device),
    }
    gt_proposal = Instances(proposals.image_size)
    for key in proposals.get_fields():
        if key in generated:
            gt_proposal.set(key, generated[key])
        elif gt.has(key):
            gt_proposal.set(key, gt.get(key))
        else:
            raise ValueError(f"The attribute '{key}' in `proposals` does not exist in `gt`")
    return Instances.cat([proposals, gt_proposal])
