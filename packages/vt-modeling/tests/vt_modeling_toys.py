"""Tiny detectors shared by the vt-modeling tests (importable by name: conftest.py puts
this folder on sys.path)."""

import itertools

from vt_modeling import (
    FPN,
    BasicBlock,
    BasicStem,
    GeneralizedRCNN,
    LastLevelMaxPool,
    LastLevelP6P7,
    ResNet,
    build_proposal_generator,
    build_roi_heads,
)

__all__ = ["tiny_rcnn", "tiny_resnet", "tiny_resnet_fpn"]

CHANNELS = (16, 16, 32, 64, 128)  # stem, then res2..res5


def tiny_resnet(out_features):
    """A 4-stage, one-block-per-stage ResNet of 16-128 channels (BN), built from
    explicit modules."""
    stem = BasicStem(3, CHANNELS[0], norm="BN")
    stages = [
        ResNet.make_stage(
            BasicBlock,
            1,
            in_channels=cin,
            out_channels=cout,
            stride_per_block=[1 if i == 0 else 2],
            norm="BN",
        )
        for i, (cin, cout) in enumerate(itertools.pairwise(CHANNELS))
    ]
    return ResNet(stem, stages, out_features=list(out_features))


def tiny_resnet_fpn(p3_to_p7=False):
    """:func:`tiny_resnet` under a 32-channel FPN: P2-P6 from res2-res5 (the R-CNN
    layout), or with ``p3_to_p7`` P3-P7 from res3-res5 (the RetinaNet layout)."""
    if p3_to_p7:
        in_features = ["res3", "res4", "res5"]
        bottom_up = tiny_resnet(in_features)
        top_block = LastLevelP6P7(CHANNELS[-1], 32)
    else:
        in_features = ["res2", "res3", "res4", "res5"]
        bottom_up = tiny_resnet(in_features)
        top_block = LastLevelMaxPool()
    return FPN(bottom_up, in_features, 32, top_block=top_block)


def tiny_rcnn(cfg):
    """A GeneralizedRCNN on :func:`tiny_resnet_fpn` (P2-P6) whose proposal generator and
    ROI heads come from ``cfg``."""
    backbone = tiny_resnet_fpn()
    shapes = backbone.output_shape()
    return GeneralizedRCNN(
        backbone=backbone,
        proposal_generator=build_proposal_generator(cfg, shapes),
        roi_heads=build_roi_heads(cfg, shapes),
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
    )
