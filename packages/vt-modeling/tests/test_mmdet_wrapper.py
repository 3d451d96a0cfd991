import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from vt_layers import ShapeSpec
from vt_modeling import MMDetBackbone, MMDetDetector, SemanticSegmentor, SemSegFPNHead
from vt_structures import BitMasks, Boxes, Instances

HAS_MMDET = importlib.util.find_spec("mmdet") is not None


class ToyBackbone(nn.Module):
    """mmdet-style: a tuple of features at strides 4, 8, 16."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.stages = nn.ModuleList([nn.Conv2d(c, 2 * c, 3, stride=2, padding=1) for c in (8, 16)])
        self.init_calls = 0

    def init_weights(self):
        self.init_calls += 1

    def forward(self, x):
        outs = [self.stem(x)]
        for stage in self.stages:
            outs.append(stage(outs[-1]))
        return tuple(outs)


class ToyNeck(nn.Module):
    """mmdet-style: a list of 12-channel features, one per input."""

    def __init__(self):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Conv2d(c, 12, 1) for c in (8, 16, 32)])

    def forward(self, feats):
        return [conv(f) for conv, f in zip(self.lateral, feats)]


def shapes(channels=(8, 16, 32)):
    return [ShapeSpec(channels=c, stride=s) for c, s in zip(channels, (4, 8, 16))]


def test_backbone_wraps_a_module_with_default_names():
    toy = ToyBackbone()
    backbone = MMDetBackbone(toy, output_shapes=shapes())
    assert toy.init_calls == 1 and backbone.training
    assert backbone.output_shape() == dict(zip(["out0", "out1", "out2"], shapes()))
    out = backbone(torch.rand(2, 3, 64, 96))
    assert list(out) == ["out0", "out1", "out2"]
    for name, spec in backbone.output_shape().items():
        assert out[name].shape == (2, spec.channels, 64 // spec.stride, 96 // spec.stride)


def test_backbone_with_neck_and_names_feeds_a_detectron2_head():
    names = ["p2", "p3", "p4"]
    backbone = MMDetBackbone(
        ToyBackbone(), ToyNeck(), output_shapes=shapes((12, 12, 12)), output_names=names
    )
    assert backbone.output_shape() == dict(zip(names, shapes((12, 12, 12))))
    out = backbone(torch.rand(1, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p2": (1, 12, 8, 8),
        "p3": (1, 12, 4, 4),
        "p4": (1, 12, 2, 2),
    }
    head = SemSegFPNHead(
        backbone.output_shape(), num_classes=3, conv_dims=8, common_stride=4, norm=None
    )
    model = SemanticSegmentor(
        backbone=backbone, sem_seg_head=head, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3
    )
    batch = [{"image": torch.rand(3, 32, 48), "sem_seg": torch.randint(0, 3, (32, 48))}]
    losses = model(batch)
    losses["loss_sem_seg"].backward()
    assert backbone.backbone.stem.weight.grad is not None
    model.eval()
    assert model(batch)[0]["sem_seg"].shape == (3, 32, 48)


def test_backbone_bad_arguments():
    with pytest.raises(ValueError, match="output_names"):
        MMDetBackbone(ToyBackbone(), output_shapes=shapes(), output_names=["a", "b"])
    with pytest.raises(ValueError, match="output_names"):
        MMDetBackbone(ToyBackbone(), output_shapes=shapes(), output_names=["a", "a", "b"])
    with pytest.raises(TypeError, match="output_shapes"):
        MMDetBackbone(ToyBackbone(), output_shapes=[(8, 4)])
    with pytest.raises(TypeError, match="backbone"):
        MMDetBackbone("resnet", output_shapes=shapes())
    with pytest.raises(ValueError, match="output_shapes"):
        MMDetBackbone(ToyBackbone(), output_shapes=shapes()[:2])(torch.rand(1, 3, 32, 32))
    with pytest.raises(TypeError, match="list/tuple"):
        MMDetBackbone(nn.Identity(), output_shapes=shapes())(torch.rand(1, 3, 32, 32))


@pytest.mark.skipif(HAS_MMDET, reason="mmdet is installed")
def test_config_dicts_need_mmdet():
    cfg = {"type": "ResNet", "depth": 50}
    with pytest.raises(ImportError, match=r"backbone: .*needs mmdet"):
        MMDetBackbone(cfg, output_shapes=shapes())
    with pytest.raises(ImportError, match=r"neck: .*needs mmdet"):
        MMDetBackbone(ToyBackbone(), {"type": "FPN"}, output_shapes=shapes())
    with pytest.raises(ImportError, match=r"detector: .*needs mmdet"):
        MMDetDetector({"type": "MaskRCNN"}, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)


class ToyDetector(nn.Module):
    """mmdet 2.x detector interface: records its inputs, returns fixed results."""

    def __init__(self, with_masks=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.with_masks = with_masks
        self.calls = []

    def forward_train(self, img, img_metas, gt_bboxes, gt_labels, **kwargs):
        self.calls.append((img, img_metas, gt_bboxes, gt_labels, kwargs))
        return {
            "loss_cls": self.weight * img.mean(),
            "loss_bbox": [self.weight * 2, self.weight * torch.tensor([1.0, 3.0])],
            "acc": torch.tensor(75.0),
        }

    def simple_test(self, img, img_metas, rescale=False):
        self.calls.append((img, img_metas, rescale))
        results = []
        for meta in img_metas:
            h, w = meta["ori_shape"][:2]
            bbox_result = [
                np.array([[1, 2, 10, 12, 0.9], [3, 4, 8, 9, 0.5]], dtype=np.float32),
                np.zeros((0, 5), dtype=np.float32),
                np.array([[0, 0, 5, 5, 0.7]], dtype=np.float32),
            ]
            if not self.with_masks:
                results.append(bbox_result)
                continue
            masks = [[np.zeros((h, w), dtype=bool) for _ in b] for b in bbox_result]
            masks[0][0][2:12, 1:10] = True
            results.append((bbox_result, masks))
        return results


def detector_input(h, w, **extra):
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[1.0, 2, 20, 22]]))
    inst.gt_classes = torch.tensor([2])
    return {"image": torch.full((3, h, w), 10.0), "instances": inst, **extra}


def test_detector_training_metas_and_losses():
    toy = ToyDetector()
    model = MMDetDetector(toy, pixel_mean=[4.0] * 3, pixel_std=[2.0] * 3)
    model.train()
    losses = model([detector_input(40, 50), detector_input(30, 70)])
    img, metas, gt_bboxes, gt_labels, kwargs = toy.calls[-1]
    assert img.shape == (2, 3, 64, 96)  # padded to multiples of 32
    assert img[0, :, :40, :50].eq(3.0).all() and img[0, :, 40:].eq(0).all()
    assert metas[1] == {
        "img_shape": (30, 70, 3),
        "ori_shape": (30, 70, 3),
        "scale_factor": 1.0,
        "flip": False,
        "pad_shape": (64, 96, 3),
    }
    assert torch.equal(gt_bboxes[0], torch.tensor([[1.0, 2, 20, 22]]))
    assert gt_labels[1].tolist() == [2] and kwargs == {}
    # losses averaged (lists summed), metrics kept apart
    assert set(losses) == {"loss_cls", "loss_bbox"}
    assert losses["loss_bbox"].item() == pytest.approx(4.0)
    assert model.metrics == {"acc": 75.0}
    sum(losses.values()).backward()
    assert toy.weight.grad is not None

    with pytest.raises(ValueError, match="instances"):
        model([{"image": torch.zeros(3, 32, 32)}])
    toy.forward_train = lambda *args, **kwargs: {"loss_cls": 1.0}
    with pytest.raises(TypeError, match="loss_cls"):
        model([detector_input(32, 32)])


@pytest.mark.skipif(HAS_MMDET, reason="mmdet is installed")
def test_detector_mask_targets_need_mmdet():
    model = MMDetDetector(ToyDetector(), pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)
    batch = [detector_input(32, 32)]
    batch[0]["instances"].gt_masks = BitMasks(torch.zeros(1, 32, 32, dtype=torch.bool))
    with pytest.raises(ImportError, match=r"gt_masks: .*needs mmdet"):
        model(batch)


def test_detector_inference_to_instances():
    toy = ToyDetector(with_masks=True)
    model = MMDetDetector(toy, size_divisibility=16, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)
    model.eval()
    out = model([detector_input(40, 50, height=80, width=100)])
    _, metas, rescale = toy.calls[-1]
    assert rescale is True
    assert metas[0]["ori_shape"] == (80, 100, 3) and metas[0]["pad_shape"] == (48, 64, 3)
    np.testing.assert_allclose(metas[0]["scale_factor"], [0.5, 0.5, 0.5, 0.5])
    inst = out[0]["instances"]
    assert inst.image_size == (80, 100)
    assert inst.pred_boxes.tensor.tolist() == [[1, 2, 10, 12], [3, 4, 8, 9], [0, 0, 5, 5]]
    assert inst.scores.tolist() == pytest.approx([0.9, 0.5, 0.7])
    assert inst.pred_classes.dtype == torch.int32 and inst.pred_classes.tolist() == [0, 0, 2]
    assert inst.pred_masks.shape == (3, 80, 100) and inst.pred_masks.dtype == torch.bool
    assert inst.pred_masks[0].sum() == 90 and inst.pred_masks[1:].sum() == 0

    toy.with_masks = False
    inst = model([detector_input(40, 50)])[0]["instances"]
    assert inst.image_size == (40, 50) and not inst.has("pred_masks") and len(inst) == 3
    with pytest.raises(ValueError, match="height"):
        model([detector_input(40, 50), detector_input(40, 50, height=40, width=50)])
