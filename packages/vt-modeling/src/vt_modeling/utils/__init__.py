"""Utilities of the models: training events and drawing for training visualisations."""

from __future__ import annotations

from vt_modeling.utils.drawing import convert_image_to_rgb, draw_boxes
from vt_modeling.utils.events import (
    EventStorage,
    HistoryBuffer,
    get_event_storage,
    try_get_event_storage,
)

__all__ = [
    "EventStorage",
    "HistoryBuffer",
    "convert_image_to_rgb",
    "draw_boxes",
    "get_event_storage",
    "try_get_event_storage",
]
