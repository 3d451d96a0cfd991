"""Mask R-CNN (small ResNet + FPN, CPU-sized) on the embedded synthetic shapes dataset.

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
classes = list(_data.thing_classes)

# Heads from detectron2's config keys; the backbone is built explicitly below.
_cfg = rcnn_cfg(len(classes))
_cfg.MODEL.MASK_ON = True
_cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
_cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
_cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_cfg.TEST.DETECTIONS_PER_IMAGE = 50

# A ResNet of one BasicBlock per stage, 16 to 128 channels: small enough for CPU training.
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

_train_records = load_coco_json(
    _data.instances_json("train"), _data.image_dir("train"), "shapes_train"
)
_val_records = load_coco_json(_data.instances_json("val"), _data.image_dir("val"), "shapes_val")
train_dataloader, val_dataloader = dataloaders(
    MapDataset(
        _train_records,
        DetectionDatasetMapper(True, augmentations=[RandomFlip(0.5)], use_instance_mask=True),
    ),
    MapDataset(_val_records, DetectionDatasetMapper(False, augmentations=[])),
)
val_evaluator = CocoMetric(
    ann_file=str(_data.instances_json("val")), metric=["bbox", "segm"], classwise=True
)

train_cfg, optim_wrapper, param_scheduler, default_hooks = training_schedule(3000)
randomness = dict(seed=0)
work_dir = os.path.join("outputs", "mask_rcnn_shapes")
