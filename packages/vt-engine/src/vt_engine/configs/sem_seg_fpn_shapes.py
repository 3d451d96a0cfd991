"""Semantic FPN (a small ResNet + FPN with Panoptic FPN's semantic head, CPU-sized) on
the semantic maps of the embedded synthetic shapes dataset: wall, floor and the four
shapes, evaluated with mIoU.

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
    load_sem_seg,
)
from vt_engine.configs._common import dataloaders, shapes_dataset, small_resnet, training_schedule
from vt_metrics import IoUMetric
from vt_modeling import FPN, OHEMPixelSampler, SemanticSegmentor, SemSegFPNHead
from vt_structures.transforms import RandomFlip, ResizeShortestEdge

_data = shapes_dataset()
classes = list(_data.sem_seg_classes)
_ignore_index = 255

_features = ["p2", "p3", "p4", "p5"]
_backbone = FPN(
    small_resnet(out_features=["res2", "res3", "res4", "res5"]),
    in_features=["res2", "res3", "res4", "res5"],
    out_channels=32,
)
_head = SemSegFPNHead(
    {f: _backbone.output_shape()[f] for f in _features},
    num_classes=len(classes),
    conv_dims=32,
    common_stride=4,
    # GroupNorm's 32 groups over 32 channels would normalise each channel alone
    norm="BN",
    ignore_value=_ignore_index,
)
# Wall and floor hold 85% of the pixels, each shape 2 to 5%: trained on every pixel, the
# head leaves half the shape pixels to the background. Online hard example mining (the
# pixels of probability < 0.7, at least 1/8 of each image) trains on the hard pixels,
# mostly the shapes'.
_head.pixel_sampler = OHEMPixelSampler(_head, thresh=0.7, min_kept=_data.image_size**2 // 8)
model = DetectionModel(
    SemanticSegmentor(
        backbone=_backbone,
        sem_seg_head=_head,
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
    )
)


def _records(split):
    return load_sem_seg(_data.sem_seg_dir(split), _data.image_dir(split), "png", "png")


_size = _data.image_size
train_dataloader, val_dataloader = dataloaders(
    MapDataset(
        _records("train"),
        # scale jitter: the label maps follow the image (nearest neighbour)
        DetectionDatasetMapper(
            True,
            augmentations=[
                ResizeShortestEdge((_size * 3 // 4, _size * 5 // 4), sample_style="range"),
                RandomFlip(0.5),
            ],
        ),
    ),
    MapDataset(
        _records("val"),
        DetectionDatasetMapper(False, augmentations=[]),
        metainfo={"classes": classes},
    ),
)
val_evaluator = IoUMetric(ignore_index=_ignore_index, iou_metrics=["mIoU"])

train_cfg, optim_wrapper, param_scheduler, default_hooks = training_schedule(2000, decay="poly")
randomness = dict(seed=0)
work_dir = os.path.join("outputs", "sem_seg_fpn_shapes")
