"""Datasets that ship with vt (generated locally; nothing is downloaded)."""

from __future__ import annotations

from vt_engine.datasets.synthetic_shapes import (
    KEYPOINT_NAMES,
    STUFF_CLASSES,
    THING_CLASSES,
    SyntheticShapes,
    synthetic_shapes,
)

__all__ = [
    "KEYPOINT_NAMES",
    "STUFF_CLASSES",
    "THING_CLASSES",
    "SyntheticShapes",
    "synthetic_shapes",
]
