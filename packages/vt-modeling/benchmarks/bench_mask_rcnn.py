"""Mask R-CNN R50-FPN next to torchvision's ``maskrcnn_resnet50_fpn``.

Both models have random weights and see the same 2 x 3 x 512 x 512 batch, which neither
resizes (torchvision: ``min_size=max_size=512``; ours takes the images as given, padded
to a multiple of 32). The architectures match: ResNet-50 + FPN (P2-P6), RPN with 1000
proposals per level before NMS and 1000 per image after it at inference (2000 / 1000 in
training), a 2-fc box head on 7x7 ROIAlign features, a 4-conv mask head on 14x14
features, 91 class logits. Random-weight detectors score every class about equally, so
both keep all detections (score threshold 0) up to 100 per image: the mask head and
the mask pasting then see the same count on both sides (printed before the table). A
second inference case uses detectron2's default threshold, 0.05 (its detection counts
are printed too).

Inference runs in eval mode under ``torch.no_grad()``. Forward+backward runs in
training mode on 3 synthetic boxes + bit masks per image and back-propagates the sum of
the losses; both backbones use frozen batch norm and train from res3 on (detectron2's
``FREEZE_AT=2``, torchvision's ``trainable_backbone_layers=3``). Threads:
``VT_BENCH_THREADS`` (default 2, the cores of the reference machine).

    PYTHONPATH=ci python packages/vt-modeling/benchmarks/bench_mask_rcnn.py [--quick]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

import torch
import torchvision
from benchlib import Case, main
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d as TVFrozenBatchNorm2d

from vt_modeling import build_model, get_cfg
from vt_structures import BitMasks, Boxes, Instances

BATCH, SIZE = 2, 512
NUM_CLASSES = 90  # torchvision's default 91 logits include the background
DETECTIONS_PER_IMAGE = 100


def mask_rcnn_r50_fpn_cfg() -> Any:
    """detectron2's mask_rcnn_R_50_FPN config, sized for 512 x 512 inputs."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 2000
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 4
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    # torchvision's normalisation (RGB, ImageNet mean and std): both models see the same
    # input values, which keeps random-weight activations in the same range.
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
    cfg.MODEL.PIXEL_STD = [58.395, 57.12, 57.375]
    cfg.INPUT.MIN_SIZE_TEST = SIZE
    cfg.INPUT.MAX_SIZE_TEST = SIZE
    cfg.TEST.DETECTIONS_PER_IMAGE = DETECTIONS_PER_IMAGE
    return cfg


def torchvision_mask_rcnn(frozen_backbone: bool) -> nn.Module:
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        min_size=SIZE,
        max_size=SIZE,
        rpn_pre_nms_top_n_train=2000,
        rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_train=1000,
        rpn_post_nms_top_n_test=1000,
        box_score_thresh=0.0,
        box_detections_per_img=DETECTIONS_PER_IMAGE,
    )
    if frozen_backbone:
        # What maskrcnn_resnet50_fpn builds with pretrained weights: frozen BN, the
        # stem and layer1 not trained.
        _freeze_batch_norm(model.backbone.body)
        for name, param in model.backbone.body.named_parameters():
            if not name.startswith(("layer2", "layer3", "layer4")):
                param.requires_grad_(False)
    return model


def _freeze_batch_norm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = TVFrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.load_state_dict(child.state_dict(), strict=False)
            setattr(module, name, frozen)
        else:
            _freeze_batch_norm(child)


def synthetic_targets(generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image, 3 random boxes (Tensor[3, 4]) and their filled-box bit masks."""
    out = []
    for _ in range(BATCH):
        xy = torch.rand(3, 2, generator=generator) * (SIZE * 0.6)
        wh = torch.rand(3, 2, generator=generator) * (SIZE * 0.3) + 32
        boxes = torch.cat([xy, xy + wh], dim=1).round()
        masks = torch.zeros(3, SIZE, SIZE, dtype=torch.bool)
        for m, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
            m[y0:y1, x0:x1] = True
        out.append((boxes, masks))
    return out


def cases(args: argparse.Namespace) -> Iterator[Case]:
    if args.device != "cpu":
        raise ValueError("bench_mask_rcnn: only --device cpu is measured")
    torch.set_num_threads(int(os.environ.get("VT_BENCH_THREADS", "2")))
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(BATCH, 3, SIZE, SIZE, generator=gen) * 255
    ours_inputs = [{"image": img} for img in images]
    tv_inputs = list(images / 255)  # torchvision takes [0, 1] images and normalises itself

    torch.manual_seed(0)
    ours = build_model(mask_rcnn_r50_fpn_cfg()).eval()
    tv = torchvision_mask_rcnn(frozen_backbone=False).eval()

    def ours_inference():
        with torch.no_grad():
            return ours(ours_inputs)

    def tv_inference():
        with torch.no_grad():
            return tv(tv_inputs)

    for thresh in (0.0, 0.05):
        ours.roi_heads.box_predictor.test_score_thresh = thresh
        tv.roi_heads.score_thresh = thresh
        n_ours = [len(r["instances"]) for r in ours_inference()]
        n_tv = [len(r["boxes"]) for r in tv_inference()]
        print(
            f"  score threshold {thresh}: detections per image: ours {n_ours}, torchvision {n_tv}",
            flush=True,
        )
        yield Case(
            f"inference, 2x3x512x512, score threshold {thresh}",
            ours_inference,
            tv_inference,
            "torchvision",
        )

    targets = synthetic_targets(gen)
    ours_train_inputs = []
    for d, (boxes, masks) in zip(ours_inputs, targets):
        inst = Instances((SIZE, SIZE))
        inst.gt_boxes = Boxes(boxes)
        inst.gt_classes = torch.tensor([0, 1, 2])
        inst.gt_masks = BitMasks(masks)
        ours_train_inputs.append({"image": d["image"], "instances": inst})
    tv_targets = [
        {"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "masks": masks.to(torch.uint8)}
        for boxes, masks in targets
    ]
    ours.train()
    tv_train = torchvision_mask_rcnn(frozen_backbone=True).train()

    def ours_forward_backward():
        losses = ours(ours_train_inputs)
        sum(losses.values()).backward()
        ours.zero_grad(set_to_none=True)

    def tv_forward_backward():
        losses = tv_train(tv_inputs, tv_targets)
        sum(losses.values()).backward()
        tv_train.zero_grad(set_to_none=True)

    yield Case(
        "forward+backward (training), 2x3x512x512",
        ours_forward_backward,
        tv_forward_backward,
        "torchvision",
    )


if __name__ == "__main__":
    main("vt-modeling Mask R-CNN R50-FPN vs torchvision (CPU)", cases)
