import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from vt_modeling_toys import tiny_resnet_fpn

from vt_layers import ShapeSpec
from vt_modeling import (
    PIXEL_SAMPLERS,
    BasePixelSampler,
    OHEMPixelSampler,
    SemanticSegmentor,
    SemSegFPNHead,
    build_model,
    build_pixel_sampler,
    build_sem_seg_head,
    get_cfg,
)

IGNORE = 255


def sem_seg_cfg(num_classes=3):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "GN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    return cfg


def tiny_segmentor(num_classes=3, pixel_sampler=None):
    backbone = tiny_resnet_fpn()
    shapes = {k: v for k, v in backbone.output_shape().items() if k != "p6"}
    head = SemSegFPNHead(
        shapes,
        num_classes=num_classes,
        conv_dims=32,
        common_stride=4,
        norm="GN",
        ignore_value=IGNORE,
        pixel_sampler=pixel_sampler,
    )
    return SemanticSegmentor(
        backbone=backbone,
        sem_seg_head=head,
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
    )


def two_region_input(h=64, w=64):
    """A bright disc (class 1) on a dark background (class 0)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2
    image = torch.where(disc, 200.0, 40.0).expand(3, h, w).clone()
    return {"image": image, "sem_seg": disc.long(), "height": h, "width": w}


def test_build_from_config_with_detectron2_state_dict_names():
    torch.manual_seed(0)
    model = build_model(sem_seg_cfg())
    assert isinstance(model, SemanticSegmentor)
    head = model.sem_seg_head
    assert isinstance(head, SemSegFPNHead)
    assert head.in_features == ["p2", "p3", "p4", "p5"]
    assert head.ignore_value == 255 and head.common_stride == 4
    keys = set(model.state_dict())
    assert {
        "sem_seg_head.p2.0.weight",
        "sem_seg_head.p2.0.norm.weight",
        "sem_seg_head.p3.0.weight",
        "sem_seg_head.p4.2.weight",
        "sem_seg_head.p5.4.weight",
        "sem_seg_head.p5.4.norm.bias",
        "sem_seg_head.predictor.weight",
        "sem_seg_head.predictor.bias",
    } <= keys
    # p5 (stride 32) needs three conv + 2x upsample steps to reach stride 4
    assert "sem_seg_head.p5.6.weight" not in keys
    # with a norm the convs carry no bias
    assert "sem_seg_head.p2.0.bias" not in keys
    assert head.predictor.out_channels == 3


def test_build_head_from_config_matches_explicit_args():
    cfg = sem_seg_cfg(num_classes=5)
    cfg.MODEL.SEM_SEG_HEAD.NORM = ""
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p3", "p4"]
    shapes = {f"p{i}": ShapeSpec(channels=16, stride=2**i) for i in range(2, 7)}
    from_cfg = build_sem_seg_head(cfg, shapes)
    explicit = SemSegFPNHead(
        {"p4": shapes["p4"], "p3": shapes["p3"]},
        num_classes=5,
        conv_dims=32,
        common_stride=4,
        norm="",
        ignore_value=255,
    )
    assert from_cfg.in_features == explicit.in_features == ["p3", "p4"]
    sd_cfg, sd_explicit = from_cfg.state_dict(), explicit.state_dict()
    assert {k: v.shape for k, v in sd_cfg.items()} == {k: v.shape for k, v in sd_explicit.items()}
    assert "p3.0.bias" in sd_cfg


def test_head_rejects_empty_input_shape_and_missing_targets():
    with pytest.raises(ValueError, match="empty"):
        SemSegFPNHead({}, num_classes=2, conv_dims=8, common_stride=4)
    head = SemSegFPNHead(
        {"p2": ShapeSpec(channels=4, stride=4)}, num_classes=2, conv_dims=8, common_stride=4
    )
    with pytest.raises(ValueError, match="targets"):
        head({"p2": torch.rand(1, 4, 4, 4)})


def test_training_loss_finite_with_gradients():
    torch.manual_seed(0)
    model = tiny_segmentor()
    model.train()
    data = two_region_input(60, 70)  # not a multiple of the size divisibility
    data["sem_seg"][:5] = IGNORE
    losses = model([data, two_region_input(64, 64)])
    assert set(losses) == {"loss_sem_seg"}
    loss = losses["loss_sem_seg"]
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    head = model.sem_seg_head
    assert head.predictor.weight.grad is not None and head.predictor.weight.grad.abs().sum() > 0
    assert head.p5[0].weight.grad.abs().sum() > 0
    assert model.backbone.bottom_up.stem.conv1.weight.grad.abs().sum() > 0


def test_padding_is_ignored_and_loss_weight_scales():
    """The padded targets hold ignore_value: the loss is the cross entropy over the image."""
    torch.manual_seed(0)
    model = tiny_segmentor()
    model.train()
    model.backbone.eval()  # fixed normalisation statistics make the passes comparable
    data = two_region_input(50, 70)
    loss = model([data])["loss_sem_seg"]
    images = model.preprocess_image([data])
    assert images.tensor.shape[-2:] == (64, 96)
    logits = model.sem_seg_head.layers(model.backbone(images.tensor))
    logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
    expected = F.cross_entropy(logits[:, :, :50, :70], data["sem_seg"][None])
    torch.testing.assert_close(loss, expected)
    model.sem_seg_head.loss_weight = 2.5
    torch.testing.assert_close(model([data])["loss_sem_seg"], 2.5 * expected)


def test_training_without_targets_raises():
    model = tiny_segmentor()
    model.train()
    with pytest.raises(ValueError, match="sem_seg"):
        model([{"image": torch.rand(3, 32, 32)}])


def test_inference_output_at_requested_size():
    torch.manual_seed(0)
    model = tiny_segmentor(num_classes=4)
    model.eval()
    inputs = [
        {"image": torch.rand(3, 50, 70) * 255, "height": 100, "width": 140},
        {"image": torch.rand(3, 64, 64) * 255},
    ]
    with torch.no_grad():
        out = model(inputs)
    assert [o["sem_seg"].shape for o in out] == [(4, 100, 140), (4, 64, 64)]
    assert all(torch.isfinite(o["sem_seg"]).all() for o in out)


def stride1_head(pixel_sampler=None):
    return SemSegFPNHead(
        {"p1": ShapeSpec(channels=3, stride=1)},
        num_classes=3,
        conv_dims=4,
        common_stride=1,
        ignore_value=IGNORE,
        pixel_sampler=pixel_sampler,
    )


def test_ignored_pixels_do_not_change_the_loss():
    torch.manual_seed(0)
    head = stride1_head()
    logits = torch.randn(2, 3, 8, 8)
    targets = torch.randint(0, 3, (2, 8, 8))
    ignored = torch.rand(2, 8, 8) < 0.3
    targets[ignored] = IGNORE
    loss = head.losses(logits, targets)["loss_sem_seg"]
    changed = logits.clone()
    changed.permute(0, 2, 3, 1)[ignored] = torch.randn(int(ignored.sum()), 3) * 10
    torch.testing.assert_close(head.losses(changed, targets)["loss_sem_seg"], loss)
    valid = logits.permute(0, 2, 3, 1)[~ignored]
    torch.testing.assert_close(loss, F.cross_entropy(valid, targets[~ignored]))
    changed.permute(0, 2, 3, 1)[~ignored] += torch.randn(int((~ignored).sum()), 3)
    assert not torch.allclose(head.losses(changed, targets)["loss_sem_seg"], loss)


def logits_with_gt_probs(probs, labels):
    """Two-class logits (N, 2, H, W) giving each pixel ``probs`` on class ``labels``
    (labels of IGNORE are treated as class 1)."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    labels = torch.as_tensor(labels)
    logit = torch.log(p / (1 - p))
    positive = torch.where(labels == 0, -logit, logit)
    return torch.stack([torch.zeros_like(positive), positive], dim=1), labels[:, None]


CTX = SimpleNamespace(ignore_index=IGNORE)


@pytest.mark.parametrize(
    ("thresh", "min_kept", "expected"),
    [
        # sorted probs 0.2 0.6 0.8 0.9: threshold max(sorted[min_kept], thresh)
        (0.7, 1, [0, 1, 1, 0]),
        (0.7, 3, [0, 1, 1, 1]),
        (0.7, 10, [0, 1, 1, 1]),  # min_kept beyond the count: the largest prob bounds
        (0.95, 1, [1, 1, 1, 1]),
        (0.1, 1, [0, 1, 0, 0]),  # sorted[1] = 0.6 wins over thresh
    ],
)
def test_ohem_threshold(thresh, min_kept, expected):
    logits, labels = logits_with_gt_probs([[[0.9, 0.2, 0.6, 0.8]]], [[[1, 0, 1, 0]]])
    weight = OHEMPixelSampler(CTX, thresh=thresh, min_kept=min_kept).sample(logits, labels)
    assert weight.shape == (1, 1, 4) and weight.dtype == torch.float64
    assert weight[0, 0].tolist() == expected


def test_ohem_threshold_skips_ignored_pixels():
    logits, labels = logits_with_gt_probs([[[0.9, 0.2, 0.6, 0.8]]], [[[1, IGNORE, 1, 0]]])
    weight = OHEMPixelSampler(CTX, thresh=0.7, min_kept=1).sample(logits, labels)
    # valid probs 0.6 0.8 0.9: threshold max(0.8, 0.7)
    assert weight[0, 0].tolist() == [0, 0, 1, 0]
    all_ignored = torch.full_like(labels, IGNORE)
    assert OHEMPixelSampler(CTX, thresh=0.7).sample(logits, all_ignored).sum() == 0


def test_ohem_top_min_kept_losses_per_batch():
    probs = [[[0.9, 0.2, 0.6, 0.8]], [[0.3, 0.95, 0.1, 0.5]]]
    labels = [[[1, 0, 1, IGNORE]], [[0, 1, IGNORE, 1]]]
    logits, labels = logits_with_gt_probs(probs, labels)
    weight = OHEMPixelSampler(CTX, min_kept=2).sample(logits.float(), labels)
    assert weight.shape == (2, 1, 4) and weight.dtype == torch.float32
    # 2 * 2 kept over the batch: the lowest valid probs 0.2 0.3 0.5 0.6 (0.1 is ignored)
    assert weight[:, 0].tolist() == [[0, 1, 1, 0], [1, 0, 0, 1]]
    assert OHEMPixelSampler(CTX, min_kept=100).sample(logits, labels).sum() == 6


def test_ohem_ranks_with_the_context_pixel_losses():
    class Context:
        ignore_index = -1

        def pixel_losses(self, logits, labels):
            return torch.arange(labels.numel(), dtype=logits.dtype).view_as(labels)

    logits, labels = logits_with_gt_probs([[[0.9, 0.2, 0.6, 0.8]]], [[[1, 0, 1, 0]]])
    weight = OHEMPixelSampler(Context(), min_kept=2).sample(logits, labels)
    assert weight[0, 0].tolist() == [0, 0, 1, 1]


def test_ohem_bad_inputs():
    with pytest.raises(TypeError, match="ignore_index"):
        OHEMPixelSampler(object())
    with pytest.raises(ValueError, match="min_kept"):
        OHEMPixelSampler(CTX, min_kept=0)
    sampler = OHEMPixelSampler(CTX)
    with pytest.raises(ValueError, match="seg_label"):
        sampler.sample(torch.rand(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="seg_logit"):
        sampler.sample(torch.rand(2, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError):
        BasePixelSampler()


def test_build_pixel_sampler():
    head = stride1_head()
    sampler = build_pixel_sampler(dict(type="OHEMPixelSampler", thresh=0.7), context=head)
    assert isinstance(sampler, OHEMPixelSampler) and "OHEMPixelSampler" in PIXEL_SAMPLERS
    assert sampler.context is head and sampler.thresh == 0.7 and sampler.min_kept == 100000
    # the cfg's keys take precedence over the defaults
    sampler = build_pixel_sampler(
        dict(type="OHEMPixelSampler", min_kept=5), context=head, min_kept=9
    )
    assert sampler.min_kept == 5
    with pytest.raises(KeyError, match="Did you mean"):
        build_pixel_sampler(dict(type="OHEMPixelSampl"), context=head)
    with pytest.raises(TypeError, match="cfg"):
        build_pixel_sampler("OHEMPixelSampler")


def test_head_applies_pixel_sampler_weights():
    torch.manual_seed(0)
    head = stride1_head()
    logits = torch.randn(2, 3, 6, 6)
    targets = torch.randint(0, 3, (2, 6, 6))
    targets[0, 0] = IGNORE
    plain = head.losses(logits, targets)["loss_sem_seg"]
    # keeping every valid pixel is the plain loss
    head.pixel_sampler = OHEMPixelSampler(head, min_kept=1000)
    torch.testing.assert_close(head.losses(logits, targets)["loss_sem_seg"], plain)
    # keeping the k hardest averages their losses
    head.pixel_sampler = OHEMPixelSampler(head, min_kept=5)
    pixel = F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="none")
    expected = pixel.flatten().topk(10).values.mean()
    torch.testing.assert_close(head.losses(logits, targets)["loss_sem_seg"], expected)


def test_overfit_one_two_region_image():
    """The whole path is wired: a tiny model learns a 64 x 64 two-region map."""
    torch.manual_seed(0)
    model = tiny_segmentor(num_classes=2)
    model.train()
    data = two_region_input()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = model([data])["loss_sem_seg"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": data["image"]}])
    accuracy = (out["sem_seg"].argmax(0) == data["sem_seg"]).float().mean()
    assert accuracy > 0.9, f"pixel accuracy {accuracy:.3f}"
    assert math.isfinite(loss.item())
