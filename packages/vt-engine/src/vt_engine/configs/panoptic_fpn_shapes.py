"""Panoptic FPN (Mask R-CNN and a semantic FPN head on a small ResNet + FPN, CPU-sized)
on the embedded synthetic shapes dataset: the four shapes as things with masks; wall and
floor as stuff, the semantic head predicting "things" (class 0, every shape pixel),
wall and floor, detectron2's "panoptic_stuff" targets. Evaluated with COCO bbox and
segm AP on the instances and mIoU on the semantic output.

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
    load_sem_seg,
    merge_to_panoptic,
    panoptic_stuff_label_map,
)
from vt_engine.configs._common import (
    dataloaders,
    rcnn_cfg,
    shapes_dataset,
    small_resnet_fpn,
    training_schedule,
)
from vt_metrics import CocoMetric, IoUMetric
from vt_modeling import (
    PanopticFPN,
    SemSegFPNHead,
    build_proposal_generator,
    build_roi_heads,
)
from vt_structures.transforms import RandomFlip

_data = shapes_dataset()
classes = list(_data.thing_classes)
# the semantic head's classes: all things as one class 0, then the stuff
stuff_classes = ["things", *_data.stuff_classes]
_ignore_index = 255
_stuff_label_map = panoptic_stuff_label_map(
    _data.sem_seg_classes, _data.stuff_classes, ignore_value=_ignore_index
)

# Heads from detectron2's config keys; the backbone is built explicitly below.
_cfg = rcnn_cfg(len(classes))
_cfg.MODEL.MASK_ON = True
_cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
_cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
_cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_cfg.TEST.DETECTIONS_PER_IMAGE = 50

# A ResNet of one BasicBlock per stage, 16 to 128 channels: small enough for CPU training.
_backbone = small_resnet_fpn()
_shapes = _backbone.output_shape()
model = DetectionModel(
    PanopticFPN(
        backbone=_backbone,
        proposal_generator=build_proposal_generator(_cfg, _shapes),
        roi_heads=build_roi_heads(_cfg, _shapes),
        sem_seg_head=SemSegFPNHead(
            {f: _shapes[f] for f in ["p2", "p3", "p4", "p5"]},
            num_classes=len(stuff_classes),
            conv_dims=32,
            common_stride=4,
            loss_weight=0.5,  # detectron2's Panoptic FPN weight
            # GroupNorm's 32 groups over 32 channels would normalise each channel alone
            norm="BN",
            ignore_value=_ignore_index,
        ),
        # COCO's 4096 px stuff area limit (~800 px images), scaled to this image size
        combine_stuff_area_thresh=4096 * (_data.image_size / 800) ** 2,
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
        input_format="RGB",
    )
)


def _records(split):
    """Instance annotations joined with the semantic maps of the same images."""
    return merge_to_panoptic(
        load_coco_json(_data.instances_json(split), _data.image_dir(split), f"shapes_{split}"),
        load_sem_seg(_data.sem_seg_dir(split), _data.image_dir(split), "png", "png"),
    )


train_dataloader, val_dataloader = dataloaders(
    MapDataset(
        _records("train"),
        DetectionDatasetMapper(
            True,
            augmentations=[RandomFlip(0.5)],
            use_instance_mask=True,
            sem_seg_label_map=_stuff_label_map,
        ),
    ),
    MapDataset(
        _records("val"),
        DetectionDatasetMapper(False, augmentations=[], sem_seg_label_map=_stuff_label_map),
        metainfo={"classes": stuff_classes},  # the classes of the IoU metric
    ),
)
val_evaluator = [
    CocoMetric(ann_file=str(_data.instances_json("val")), metric=["bbox", "segm"], classwise=True),
    IoUMetric(ignore_index=_ignore_index, iou_metrics=["mIoU"]),
]

train_cfg, optim_wrapper, param_scheduler, default_hooks = training_schedule(3000)
randomness = dict(seed=0)
work_dir = os.path.join("outputs", "panoptic_fpn_shapes")
