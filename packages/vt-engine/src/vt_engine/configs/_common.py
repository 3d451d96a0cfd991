"""Pieces the shipped shapes configs share: the embedded dataset, sized from the
environment, and the CPU-sized ResNet they put under their FPN."""

from __future__ import annotations

import itertools
import os

from vt_engine.synthetic_shapes import SyntheticShapes, synthetic_shapes
from vt_modeling import BasicBlock, BasicStem, ResNet

__all__ = ["shapes_dataset", "small_resnet"]

RESNET_CHANNELS = (16, 16, 32, 64, 128)  # stem, then res2..res5


def shapes_dataset() -> SyntheticShapes:
    """The embedded shapes dataset, generated on first use; ``VT_SHAPES_NUM_TRAIN``
    (default 800), ``VT_SHAPES_NUM_VAL`` (100) and ``VT_SHAPES_IMAGE_SIZE`` (128) size it."""
    return synthetic_shapes(
        num_train=int(os.environ.get("VT_SHAPES_NUM_TRAIN", 800)),
        num_val=int(os.environ.get("VT_SHAPES_NUM_VAL", 100)),
        image_size=int(os.environ.get("VT_SHAPES_IMAGE_SIZE", 128)),
    )


def small_resnet(out_features: list[str], norm: str = "BN") -> ResNet:
    """A ResNet of one BasicBlock per stage, 16 to 128 channels (res2..res5 at strides
    4 to 32): small enough to train on a CPU."""
    stages = [
        ResNet.make_stage(
            BasicBlock,
            1,
            in_channels=cin,
            out_channels=cout,
            stride_per_block=[1 if i == 0 else 2],
            norm=norm,
        )
        for i, (cin, cout) in enumerate(itertools.pairwise(RESNET_CHANNELS))
    ]
    return ResNet(BasicStem(3, RESNET_CHANNELS[0], norm=norm), stages, out_features=out_features)
