"""vt_ops: compiled detection kernels for numpy arrays, torch tensors and cupy arrays.

Each function takes arrays of one library and returns arrays of the same kind
on the same device. Torch tensors go through custom ops registered in the
``torch.ops.vt_ops`` namespace (torch.compile, export and autograd aware).
"""

from __future__ import annotations

import sys

from vt_ops._build_info import build_info, cuda_available, get_num_threads, set_num_threads
from vt_ops._torch_registry import register_torch_ops
from vt_ops.boxes import box_ioa, box_iou, box_iou_rotated
from vt_ops.coco import (
    PackedRLE,
    coco_accumulate,
    coco_box_iou,
    coco_group_order,
    coco_grouped_iou,
    coco_grouped_oks,
    coco_match,
    records_fields,
    rle_area,
    rle_decode,
    rle_encode,
    rle_from_objects,
    rle_iou,
    rle_merge,
    rle_pack,
    rle_to_bbox,
    rle_unpack,
)
from vt_ops.confusion import confusion_matrix
from vt_ops.deform_conv import deform_conv2d
from vt_ops.nms import batched_nms, batched_nms_rotated, nms, nms_rotated
from vt_ops.onnx import onnx_translation_table
from vt_ops.roi_ops import roi_align, roi_align_rotated, roi_pool

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "batched_nms",
    "batched_nms_rotated",
    "box_ioa",
    "box_iou",
    "box_iou_rotated",
    "build_info",
    "confusion_matrix",
    "cuda_available",
    "deform_conv2d",
    "get_num_threads",
    "nms",
    "nms_rotated",
    "onnx_translation_table",
    "register_torch_ops",
    "roi_align",
    "roi_align_rotated",
    "roi_pool",
    "set_num_threads",
    # COCO masks (pycocotools.mask equivalents) and evaluation kernels
    "PackedRLE",
    "rle_pack",
    "rle_unpack",
    "rle_encode",
    "rle_decode",
    "rle_area",
    "rle_to_bbox",
    "rle_merge",
    "rle_iou",
    "rle_from_objects",
    "coco_box_iou",
    "coco_group_order",
    "coco_grouped_iou",
    "coco_grouped_oks",
    "coco_match",
    "coco_accumulate",
    "records_fields",
]

if sys.modules.get("torch") is not None:  # None: torch hidden, e.g. sys.modules["torch"] = None
    register_torch_ops()
