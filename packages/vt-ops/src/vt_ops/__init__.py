"""vt_ops: compiled detection kernels for numpy arrays, torch tensors and cupy arrays.

Each function takes arrays of one library and returns arrays of the same kind
on the same device. Torch tensors go through custom ops registered in the
``torch.ops.vt_ops`` namespace (torch.compile, export and autograd aware).
"""

from __future__ import annotations

import sys

from vt_ops._build_info import build_info, cuda_available, get_num_threads, set_num_threads
from vt_ops._torch_registry import register_torch_ops
from vt_ops.boxes import box_ioa, box_iou
from vt_ops.deform_conv import deform_conv2d

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "box_ioa",
    "box_iou",
    "build_info",
    "cuda_available",
    "deform_conv2d",
    "get_num_threads",
    "register_torch_ops",
    "set_num_threads",
]

if "torch" in sys.modules:
    register_torch_ops()
