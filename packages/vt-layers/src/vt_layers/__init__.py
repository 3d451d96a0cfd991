"""vt_layers: the detectron2.layers API over vt-ops kernels, and IoU mask encoders/decoders."""

from __future__ import annotations

from vt_layers import encoders
from vt_layers.aspp import ASPP
from vt_layers.batch_norm import FrozenBatchNorm2d, LayerNorm, NaiveSyncBatchNorm, get_norm
from vt_layers.blocks import CNNBlockBase, DepthwiseSeparableConv2d
from vt_layers.deform_conv import DeformConv, ModulatedDeformConv
from vt_layers.losses import (
    ciou_loss,
    diou_loss,
    giou_loss,
    sigmoid_focal_loss,
    sigmoid_focal_loss_star,
    smooth_l1_loss,
)
from vt_layers.mask_ops import (
    paste_mask_in_image_old,
    paste_masks_in_image,
    paste_masks_in_image_fast,
)
from vt_layers.nms import batched_nms, batched_nms_rotated, nms, nms_rotated
from vt_layers.roi_align import ROIAlign, ROIAlignRotated, roi_align, roi_align_rotated
from vt_layers.shape_spec import ShapeSpec
from vt_layers.weight_init import c2_msra_fill, c2_xavier_fill
from vt_layers.wrappers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Linear,
    cat,
    cpu_channels_last,
    cross_entropy,
    empty_input_loss_func_wrapper,
    interpolate,
    move_device_like,
    nonzero_tuple,
    shapes_to_tensor,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # normalization
    "FrozenBatchNorm2d",
    "LayerNorm",
    "NaiveSyncBatchNorm",
    "get_norm",
    "BatchNorm2d",
    # convolutions and blocks
    "Conv2d",
    "ConvTranspose2d",
    "Linear",
    "CNNBlockBase",
    "DepthwiseSeparableConv2d",
    "ASPP",
    "ShapeSpec",
    "c2_msra_fill",
    "c2_xavier_fill",
    # deformable convolution
    "DeformConv",
    "ModulatedDeformConv",
    # pooling and NMS
    "ROIAlign",
    "ROIAlignRotated",
    "roi_align",
    "roi_align_rotated",
    "nms",
    "batched_nms",
    "nms_rotated",
    "batched_nms_rotated",
    # masks
    "paste_masks_in_image",
    "paste_masks_in_image_fast",
    "paste_mask_in_image_old",
    # helpers
    "cat",
    "cpu_channels_last",
    "cross_entropy",
    "empty_input_loss_func_wrapper",
    "interpolate",
    "move_device_like",
    "nonzero_tuple",
    "shapes_to_tensor",
    # losses
    "ciou_loss",
    "diou_loss",
    "giou_loss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "smooth_l1_loss",
    # IoU mask encoders/decoders
    "encoders",
]
