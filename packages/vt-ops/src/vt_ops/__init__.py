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
from vt_ops.confusion import confusion_matrix
from vt_ops.nms import batched_nms, batched_nms_rotated, nms, nms_rotated

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
    "get_num_threads",
    "nms",
    "nms_rotated",
    "register_torch_ops",
    "set_num_threads",
]

if sys.modules.get("torch") is not None:  # None: torch hidden, e.g. sys.modules["torch"] = None
    register_torch_ops()
