"""Proposal generators: RPN and its head, and the rotated RRPN."""

from __future__ import annotations

from vt_modeling.proposal_generator.proposal_utils import (
    add_ground_truth_to_proposals,
    find_top_rpn_proposals,
)
from vt_modeling.proposal_generator.rpn import RPN, StandardRPNHead
from vt_modeling.proposal_generator.rrpn import RRPN, find_top_rrpn_proposals

__all__ = [
    "RPN",
    "RRPN",
    "StandardRPNHead",
    "add_ground_truth_to_proposals",
    "find_top_rpn_proposals",
    "find_top_rrpn_proposals",
]
