"""Sampling of positive and negative training examples."""

from __future__ import annotations

import torch

__all__ = ["subsample_labels"]


def subsample_labels(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly sample a subset of positive and negative examples.

    Returns at most ``num_samples`` indices; at most ``num_samples * positive_fraction``
    are positives, and negatives fill the rest when positives are too few.

    Args:
        labels (Tensor[N]): -1 ignore, ``bg_label`` background ("negative"),
            anything else foreground ("positive").
        num_samples (int): total number of indices to return.
        positive_fraction (float): wanted fraction of positives, in [0, 1].
        bg_label (int): the label of background.

    Returns:
        pos_idx, neg_idx (Tensor[int64]): indices of the sampled positives and negatives.
    """
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction: expected a value in [0, 1], got {positive_fraction}")
    if num_samples < 0:
        raise ValueError(f"num_samples: expected a non-negative int, got {num_samples}")
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]

    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)

    perm1 = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm2 = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    return positive[perm1], negative[perm2]
