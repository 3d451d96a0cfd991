"""Pieces the shipped shapes configs share: the embedded dataset, sized from the
environment, the CPU-sized ResNet they put under their FPN, their data loaders and
their training schedule."""

from __future__ import annotations

import itertools
import os
from typing import Any

from torch.utils.data import DataLoader, Dataset

from vt_engine.data import build_dataloader
from vt_engine.detection import trivial_batch_collator
from vt_engine.hooks import CheckpointHook, LoggerHook
from vt_engine.synthetic_shapes import SyntheticShapes, synthetic_shapes
from vt_modeling import FPN, BasicBlock, BasicStem, CfgNode, LastLevelMaxPool, ResNet, get_cfg

__all__ = [
    "dataloaders",
    "rcnn_cfg",
    "shapes_dataset",
    "small_resnet",
    "small_resnet_fpn",
    "training_schedule",
]

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


def small_resnet_fpn() -> FPN:
    """:func:`small_resnet` under an FPN of 32 channels, P2 to P6 (strides 4 to 64)."""
    return FPN(
        small_resnet(out_features=["res2", "res3", "res4", "res5"]),
        in_features=["res2", "res3", "res4", "res5"],
        out_channels=32,
        top_block=LastLevelMaxPool(),
    )


def rcnn_cfg(num_classes: int) -> CfgNode:
    """detectron2 config keys of the R-CNN heads on :func:`small_resnet_fpn` for
    ``num_classes`` categories: an RPN on P2 to P6 with one anchor size per level, a
    two-fc box head on P2 to P5, and proposal budgets sized for small images."""
    cfg = get_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 500
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 500
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 200
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 128
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 128
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 256
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    return cfg


def dataloaders(train: Dataset, val: Dataset, batch_size: int = 4) -> tuple[DataLoader, DataLoader]:
    """The training loader (infinite, shuffled, seeded) and the validation loader (in
    order) of two datasets of mapped dataset dicts, batched as lists."""
    train_loader = build_dataloader(
        train, batch_size=batch_size, sampler="infinite", collate_fn=trivial_batch_collator, seed=0
    )
    val_loader = build_dataloader(
        val,
        batch_size=batch_size,
        sampler="default",
        shuffle=False,
        collate_fn=trivial_batch_collator,
        seed=0,
    )
    return train_loader, val_loader


def training_schedule(
    max_iters: int,
    *,
    lr: float = 0.02,
    clip_grad: dict[str, Any] | None = None,
    decay: str = "step",
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """``train_cfg``, ``optim_wrapper``, ``param_scheduler`` and ``default_hooks`` of an
    iteration-based schedule: SGD (momentum 0.9, weight decay 1e-4) at ``lr`` after a
    linear warm-up of 100 iterations, then either x0.1 at 75% and 90% of ``max_iters``
    (``decay="step"``) or a polynomial decay (``"poly"``, power 0.9); one validation and
    one checkpoint at the end."""
    if decay == "step":
        milestones = [int(max_iters * 0.75), int(max_iters * 0.9)]
        main = dict(type="MultiStepLR", by_epoch=False, milestones=milestones, gamma=0.1)
    elif decay == "poly":
        main = dict(
            type="PolyLR", eta_min=1e-4, power=0.9, by_epoch=False, begin=100, end=max_iters
        )
    else:
        raise ValueError(f'decay: expected "step" or "poly", got {decay!r}')
    optim_wrapper: dict[str, Any] = dict(
        optimizer=dict(type="SGD", lr=lr, momentum=0.9, weight_decay=1e-4)
    )
    if clip_grad is not None:
        optim_wrapper["clip_grad"] = clip_grad
    return (
        dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters),
        optim_wrapper,
        [dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=100), main],
        dict(
            logger=LoggerHook(interval=20),
            checkpoint=CheckpointHook(interval=max_iters, by_epoch=False, max_keep_ckpts=1),
        ),
    )
