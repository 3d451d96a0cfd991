"""Proposal generators: RPN and its head."""

from __future__ import annotations

from vt_modeling.proposal_generator.proposal_utils import (
    add_ground_truth_to_proposals,
    find_top_rpn_proposals,
)
from vt_modeling.proposal_generator.rpn import RPN, StandardRPNHead

__all__ = ["RPN", "StandardRPNHead", "add_ground_truth_to_proposals", "find_top_rpn_proposals"]
