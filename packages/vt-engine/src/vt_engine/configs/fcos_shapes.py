"""FCOS (small ResNet + FPN P3-P7, CPU-sized) on the embedded synthetic shapes dataset.

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
from vt_engine.configs._common import dataloaders, shapes_dataset, small_resnet, training_schedule
from vt_metrics import CocoMetric
from vt_modeling import FCOS, FPN, FCOSHead, LastLevelP6P7
from vt_structures.transforms import RandomFlip

_data = shapes_dataset()
classes = list(_data.thing_classes)

_fpn_channels = 64
_backbone = FPN(
    small_resnet(out_features=["res3", "res4", "res5"]),
    in_features=["res3", "res4", "res5"],
    out_channels=_fpn_channels,
    top_block=LastLevelP6P7(_fpn_channels, _fpn_channels, in_feature="p5"),
)
_in_features = ["p3", "p4", "p5", "p6", "p7"]
_shapes = [_backbone.output_shape()[f] for f in _in_features]
model = DetectionModel(
    FCOS(
        backbone=_backbone,
        head=FCOSHead(
            input_shape=_shapes,
            num_classes=len(classes),
            conv_dims=[_fpn_channels] * 2,
            norm="GN",
            prior_prob=0.01,
        ),
        head_in_features=_in_features,
        num_classes=len(classes),
        center_sampling_radius=1.5,
        test_score_thresh=0.05,
        test_nms_thresh=0.6,
        max_detections_per_image=50,
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
    )
)

_train_records = load_coco_json(
    _data.instances_json("train"), _data.image_dir("train"), "shapes_train"
)
_val_records = load_coco_json(_data.instances_json("val"), _data.image_dir("val"), "shapes_val")
train_dataloader, val_dataloader = dataloaders(
    MapDataset(_train_records, DetectionDatasetMapper(True, augmentations=[RandomFlip(0.5)])),
    MapDataset(_val_records, DetectionDatasetMapper(False, augmentations=[])),
)
val_evaluator = CocoMetric(ann_file=str(_data.instances_json("val")), metric="bbox", classwise=True)

train_cfg, optim_wrapper, param_scheduler, default_hooks = training_schedule(
    3000, clip_grad=dict(max_norm=10.0)
)
randomness = dict(seed=0)
work_dir = os.path.join("outputs", "fcos_shapes")
