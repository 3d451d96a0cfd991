"""Keypoint R-CNN (small ResNet + FPN, CPU-sized) on the triangles of the embedded
synthetic shapes dataset: each triangle carries three keypoints (apex, base_left,
base_right; base_left and base_right swap under a horizontal flip). Evaluated with COCO
box and keypoint AP.

Every value calls a real constructor. Sizes can be overridden from the command line,
e.g. ``vt-train <this file> --cfg-options train_cfg.max_iters=200``; the dataset size
and the image size follow ``VT_SHAPES_NUM_TRAIN``, ``VT_SHAPES_NUM_VAL`` and
``VT_SHAPES_IMAGE_SIZE``.
"""

import os

from vt_engine import (
    DetectionDatasetMapper,
    DetectionModel,
    MapDataset,
    coco_category_subset,
    keypoint_hflip_indices,
    load_coco_json,
)
from vt_engine.configs._common import (
    dataloaders,
    rcnn_cfg,
    shapes_dataset,
    small_resnet_fpn,
    training_schedule,
)
from vt_metrics import CocoMetric
from vt_modeling import (
    GeneralizedRCNN,
    build_proposal_generator,
    build_roi_heads,
)
from vt_structures.transforms import RandomFlip

_data = shapes_dataset()
# Only triangles have keypoints: a one-class detector, as COCO's person keypoints.
classes = ["triangle"]
keypoint_names = list(_data.keypoint_names)
keypoint_flip_map = [list(pair) for pair in _data.keypoint_flip_map]
# OKS falloff per keypoint: about the mean of COCO's (0.025 for eyes to 0.107 for hips).
kpt_oks_sigmas = [0.07, 0.07, 0.07]

_cfg = rcnn_cfg(len(classes))
_cfg.MODEL.KEYPOINT_ON = True
_cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = len(keypoint_names)
_cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (64, 64, 64, 64)
# 7x7 features give 28x28 heatmaps: about a cell per pixel for these 15-50 px shapes
# (detectron2's 14 -> 56 suits people hundreds of pixels tall).
_cfg.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION = 7
_cfg.TEST.DETECTIONS_PER_IMAGE = 20

_backbone = small_resnet_fpn()
model = DetectionModel(
    GeneralizedRCNN(
        backbone=_backbone,
        proposal_generator=build_proposal_generator(_cfg, _backbone.output_shape()),
        roi_heads=build_roi_heads(_cfg, _backbone.output_shape()),
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
        input_format="RGB",
    )
)

_train_json = coco_category_subset(_data.instances_json("train"), classes)
_val_json = coco_category_subset(_data.instances_json("val"), classes)
# As detectron2, training skips images without an instance of the category.
_train_records = [
    r
    for r in load_coco_json(_train_json, _data.image_dir("train"), "shapes_triangles_train")
    if r["annotations"]
]
_val_records = load_coco_json(_val_json, _data.image_dir("val"), "shapes_triangles_val")
train_dataloader, val_dataloader = dataloaders(
    MapDataset(
        _train_records,
        DetectionDatasetMapper(
            True,
            augmentations=[RandomFlip(0.5)],
            use_keypoint=True,
            keypoint_flip_indices=keypoint_hflip_indices(keypoint_names, keypoint_flip_map),
        ),
    ),
    MapDataset(_val_records, DetectionDatasetMapper(False, augmentations=[])),
)
val_evaluator = CocoMetric(
    ann_file=_val_json, metric=["bbox", "keypoints"], kpt_oks_sigmas=kpt_oks_sigmas
)

train_cfg, optim_wrapper, param_scheduler, default_hooks = training_schedule(3000)
randomness = dict(seed=0)
work_dir = os.path.join("outputs", "keypoint_rcnn_shapes")
