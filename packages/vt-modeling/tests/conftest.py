"""Fixtures shared by the vt-modeling tests: tiny detectors for the compile and export
tests; the test toys module (vt_modeling_toys.py) on sys.path."""

import sys
from pathlib import Path

import pytest
import torch

from vt_modeling import build_model, get_cfg


def _tiny_resnet_fpn_cfg(arch):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = arch
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    # Random weights: GroupNorm keeps activations (and so the predictions) in range.
    cfg.MODEL.RESNETS.NORM = "GN"
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    return cfg


@pytest.fixture(scope="session")
def tiny_mask_rcnn():
    """A Mask R-CNN R18-FPN with narrow heads, random weights, in eval mode, with a
    score threshold of 0 so that it detects something."""
    cfg = _tiny_resnet_fpn_cfg("GeneralizedRCNN")
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 300
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.fixture(scope="session", params=["RetinaNet", "FCOS"])
def tiny_dense_detector(request):
    """A RetinaNet or FCOS R18-FPN (P3-P7) with one-conv heads, random weights, in eval
    mode, with a score threshold low enough that it detects something."""
    cfg = _tiny_resnet_fpn_cfg(request.param)
    cfg.MODEL.BACKBONE.NAME = "build_retinanet_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.PIXEL_STD = [57.0, 57.0, 57.0]
    cfg.MODEL.RETINANET.NUM_CLASSES = 3
    cfg.MODEL.RETINANET.NUM_CONVS = 1
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.008
    cfg.MODEL.FCOS.NUM_CLASSES = 3
    cfg.MODEL.FCOS.NUM_CONVS = 1
    cfg.MODEL.FCOS.NORM = ""
    cfg.MODEL.FCOS.SCORE_THRESH_TEST = 0.05
    torch.manual_seed(0)
    return build_model(cfg).eval()


# the shared test toys (vt_modeling_toys.py) must be importable by name
sys.path.insert(0, str(Path(__file__).parent))
