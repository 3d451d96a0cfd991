"""vt_structures: detection data structures with detectron2 semantics.

Boxes, rotated boxes, per-image instances, padded image batches, instance
masks, keypoints, geometric transforms (``vt_structures.transforms``) and the
mmseg-style :class:`SegDataSample`. Pairwise box overlaps run on vt-ops kernels.
"""

from __future__ import annotations

from vt_structures import transforms
from vt_structures.boxes import (
    Boxes,
    BoxMode,
    matched_pairwise_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)
from vt_structures.data_sample import BaseDataElement, PixelData, SegDataSample
from vt_structures.image_list import ImageList
from vt_structures.instances import Instances
from vt_structures.keypoints import Keypoints, heatmaps_to_keypoints, keypoints_to_heatmap
from vt_structures.masks import (
    BitMasks,
    PolygonMasks,
    ROIMasks,
    paste_masks_in_image,
    polygon_area,
    polygons_to_bitmask,
    rasterize_polygons_within_box,
)
from vt_structures.rotated_boxes import RotatedBoxes, pairwise_iou_rotated, scale_rotated_boxes
from vt_structures.transforms import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # boxes
    "BoxMode",
    "Boxes",
    "pairwise_intersection",
    "pairwise_iou",
    "pairwise_ioa",
    "pairwise_point_box_distance",
    "matched_pairwise_iou",
    "RotatedBoxes",
    "pairwise_iou_rotated",
    "scale_rotated_boxes",
    # instances and batches
    "Instances",
    "ImageList",
    # masks
    "BitMasks",
    "PolygonMasks",
    "ROIMasks",
    "polygon_area",
    "polygons_to_bitmask",
    "rasterize_polygons_within_box",
    "paste_masks_in_image",
    # keypoints
    "Keypoints",
    "keypoints_to_heatmap",
    "heatmaps_to_keypoints",
    # transforms
    "transforms",
    "Transform",
    "NoOpTransform",
    "ResizeTransform",
    "HFlipTransform",
    "VFlipTransform",
    "CropTransform",
    "PadTransform",
    "TransformList",
    # segmentation data samples
    "BaseDataElement",
    "PixelData",
    "SegDataSample",
]
