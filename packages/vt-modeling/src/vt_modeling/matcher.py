"""Assign each prediction to at most one ground truth by match quality."""

from __future__ import annotations

import itertools

import torch

__all__ = ["Matcher"]


class Matcher:
    """Match predicted elements (e.g. anchors) to ground-truth elements.

    Each prediction gets the ground truth with the highest quality (e.g. IoU)
    and a label from the interval that quality falls in: with thresholds
    ``[0.3, 0.7]`` and labels ``[0, -1, 1]``, quality in [0, 0.3) is labelled 0
    (negative), [0.3, 0.7) -1 (ignore) and [0.7, inf) 1 (positive).
    """

    def __init__(
        self, thresholds: list[float], labels: list[int], allow_low_quality_matches: bool = False
    ):
        """
        Args:
            thresholds (list[float]): increasing thresholds splitting the quality range.
            labels (list[int]): len(thresholds) + 1 labels in {-1, 0, 1}.
            allow_low_quality_matches (bool): also label 1 the predictions that have the
                highest quality for some ground truth (ties included), even below the
                positive threshold (as in Faster R-CNN).
        """
        thresholds = [float(t) for t in thresholds]
        if not thresholds or thresholds[0] < 0:
            raise ValueError(
                f"thresholds: expected a non-empty list of non-negative values, got {thresholds}"
            )
        if any(low > high for low, high in itertools.pairwise(thresholds)):
            raise ValueError(f"thresholds: expected increasing values, got {thresholds}")
        if any(label not in (-1, 0, 1) for label in labels):
            raise ValueError(f"labels: expected values in {{-1, 0, 1}}, got {labels}")
        if len(labels) != len(thresholds) + 1:
            raise ValueError(
                f"labels: expected {len(thresholds) + 1} labels for {len(thresholds)} thresholds"
            )
        self.thresholds = [-float("inf"), *thresholds, float("inf")]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            match_quality_matrix (Tensor[M, N]): quality of ground truth m with prediction n.

        Returns:
            matches (Tensor[N] int64): the matched ground-truth index of each prediction.
            match_labels (Tensor[N] int8): -1 ignore, 0 negative, 1 positive.
        """
        if match_quality_matrix.dim() != 2:
            raise ValueError(
                f"match_quality_matrix: expected 2 dimensions, got {match_quality_matrix.dim()}"
            )
        num_predictions = match_quality_matrix.shape[1]
        if match_quality_matrix.numel() == 0:
            matches = match_quality_matrix.new_full((num_predictions,), 0, dtype=torch.int64)
            match_labels = match_quality_matrix.new_full(
                (num_predictions,), self.labels[0], dtype=torch.int8
            )
            return matches, match_labels
        if not bool((match_quality_matrix >= 0).all()):
            raise ValueError("match_quality_matrix: expected non-negative values")

        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = matches.new_full(matches.size(), 1, dtype=torch.int8)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            in_range = (matched_vals >= low) & (matched_vals < high)
            match_labels[in_range] = label
        if self.allow_low_quality_matches:
            self.set_low_quality_matches_(match_labels, match_quality_matrix)
        return matches, match_labels

    def set_low_quality_matches_(
        self, match_labels: torch.Tensor, match_quality_matrix: torch.Tensor
    ) -> None:
        """Label 1 every prediction that has the highest quality for some ground truth.

        The prediction keeps its highest-quality ground truth as its match, which
        may differ from the ground truth it is the best prediction for.
        """
        highest_quality_foreach_gt, _ = match_quality_matrix.max(dim=1)
        _, pred_inds = torch.nonzero(
            match_quality_matrix == highest_quality_foreach_gt[:, None], as_tuple=True
        )
        match_labels[pred_inds] = 1
