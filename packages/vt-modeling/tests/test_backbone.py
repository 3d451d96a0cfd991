import pytest
import torch

from vt_layers import FrozenBatchNorm2d, ShapeSpec
from vt_modeling import get_cfg
from vt_modeling.backbone import (
    BACKBONE_REGISTRY,
    FPN,
    BasicStem,
    BottleneckBlock,
    DeformBottleneckBlock,
    LastLevelMaxPool,
    ResNet,
    build_backbone,
)


def r50(norm="BN", out_features=("res2", "res3", "res4", "res5"), freeze_at=0, stride_in_1x1=True):
    stem = BasicStem(in_channels=3, out_channels=64, norm=norm)
    stages = ResNet.make_default_stages(50, stride_in_1x1=stride_in_1x1, norm=norm)
    return ResNet(stem, stages, out_features=list(out_features), freeze_at=freeze_at)


def test_resnet50_output_shapes_strides_channels():
    model = r50().eval()
    shapes = model.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        "res2": (256, 4),
        "res3": (512, 8),
        "res4": (1024, 16),
        "res5": (2048, 32),
    }
    out = model(torch.rand(1, 3, 64, 96))
    for name, feature in out.items():
        assert feature.shape == (
            1,
            shapes[name].channels,
            64 // shapes[name].stride,
            96 // shapes[name].stride,
        )


def test_resnet50_parameter_count_equals_torchvision_without_fc():
    torchvision = pytest.importorskip("torchvision")
    ours = sum(p.numel() for p in r50().parameters())
    tv = torchvision.models.resnet50()
    expected = sum(p.numel() for p in tv.parameters()) - sum(p.numel() for p in tv.fc.parameters())
    assert ours == expected


def _torchvision_to_ours(tv_state):
    mapped = {}
    for key, value in tv_state.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        k = key.replace("conv1.", "stem.conv1.", 1) if key.startswith("conv1.") else key
        k = k.replace("bn1.", "stem.conv1.norm.", 1) if key.startswith("bn1.") else k
        for i in range(1, 5):
            k = k.replace(f"layer{i}.", f"res{i + 1}.", 1) if k.startswith(f"layer{i}.") else k
        for j in range(1, 4):
            k = k.replace(f".bn{j}.", f".conv{j}.norm.")
        k = k.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.", ".shortcut.norm.")
        mapped[k] = value
    return mapped


def test_resnet50_equals_torchvision_with_the_same_weights():
    torchvision = pytest.importorskip("torchvision")
    tv = torchvision.models.resnet50().eval()
    # torchvision puts the stride in the 3x3 conv
    ours = r50(stride_in_1x1=False, out_features=("res5",)).eval()
    missing, unexpected = (
        ours.load_state_dict(_torchvision_to_ours(tv.state_dict()), strict=True),
        None,
    )
    assert unexpected is None and not missing.missing_keys
    x = torch.rand(2, 3, 96, 64)
    with torch.no_grad():
        expected = torch.nn.Sequential(*list(tv.children())[:-2])(x)
        torch.testing.assert_close(ours(x)["res5"], expected, rtol=1e-4, atol=1e-4)


def test_freeze_2_freezes_stem_and_res2_and_freezes_their_bn():
    model = r50(freeze_at=2)
    for name, p in model.named_parameters():
        frozen = name.startswith(("stem.", "res2."))
        assert p.requires_grad != frozen, name
    assert isinstance(model.stem.conv1.norm, FrozenBatchNorm2d)
    assert isinstance(model.res2[0].conv1.norm, FrozenBatchNorm2d)
    assert isinstance(model.res3[0].conv1.norm, torch.nn.BatchNorm2d)


def test_make_stage_per_block_arguments():
    blocks = ResNet.make_stage(
        BottleneckBlock,
        3,
        in_channels=16,
        out_channels=64,
        bottleneck_channels=16,
        stride_per_block=[2, 1, 1],
    )
    assert [b.stride for b in blocks] == [2, 1, 1]
    assert blocks[0].in_channels == 16 and blocks[1].in_channels == 64
    with pytest.raises(ValueError, match="stride_per_block: expected 3 values"):
        ResNet.make_stage(
            BottleneckBlock,
            3,
            in_channels=16,
            out_channels=64,
            bottleneck_channels=16,
            stride_per_block=[2],
        )


def test_out_features_validated():
    with pytest.raises(ValueError, match="out_features"):
        r50(out_features=("res6",))


def r50_fpn_cfg():
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    return cfg


def test_fpn_outputs_p2_to_p6():
    backbone = build_backbone(r50_fpn_cfg()).eval()
    assert isinstance(backbone, FPN) and backbone.size_divisibility == 32
    shapes = backbone.output_shape()
    assert list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    assert all(s.channels == 256 for s in shapes.values())
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]
    out = backbone(torch.rand(1, 3, 128, 64))
    assert [tuple(v.shape[-2:]) for v in out.values()] == [
        (32, 16),
        (16, 8),
        (8, 4),
        (4, 2),
        (2, 1),
    ]


def test_retinanet_fpn_has_p6_p7_from_res5():
    cfg = r50_fpn_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_retinanet_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    backbone = build_backbone(cfg)
    assert list(backbone.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]
    assert "top_block.p6.weight" in backbone.state_dict()


def test_fpn_avg_fuse_and_bad_arguments():
    bottom_up = r50(out_features=("res4", "res5"))
    fpn_sum = FPN(bottom_up, ["res4", "res5"], 32, fuse_type="sum").eval()
    fpn_avg = FPN(bottom_up, ["res4", "res5"], 32, fuse_type="avg").eval()
    fpn_avg.load_state_dict(fpn_sum.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(fpn_sum(x)["p4"], fpn_avg(x)["p4"])
        torch.testing.assert_close(fpn_sum(x)["p5"], fpn_avg(x)["p5"])  # top level: no fusion
    with pytest.raises(ValueError, match="fuse_type"):
        FPN(bottom_up, ["res4", "res5"], 32, fuse_type="max")
    with pytest.raises(ValueError, match="not outputs"):
        FPN(bottom_up, ["res3", "res4"], 32)
    with pytest.raises(TypeError, match="bottom_up"):
        FPN(torch.nn.Identity(), ["res4"], 32, top_block=LastLevelMaxPool())


def expected_r50_fpn_backbone_keys():
    """detectron2's R50-FPN backbone state_dict keys (FrozenBN: 4 buffers per norm)."""
    norm = ["weight", "bias", "running_mean", "running_var"]
    keys = ["backbone.bottom_up.stem.conv1.weight"]
    keys += [f"backbone.bottom_up.stem.conv1.norm.{n}" for n in norm]
    for stage, blocks in zip(range(2, 6), [3, 4, 6, 3]):
        for b in range(blocks):
            prefix = f"backbone.bottom_up.res{stage}.{b}"
            convs = (
                ["shortcut", "conv1", "conv2", "conv3"] if b == 0 else ["conv1", "conv2", "conv3"]
            )
            for conv in convs:
                keys.append(f"{prefix}.{conv}.weight")
                keys += [f"{prefix}.{conv}.norm.{n}" for n in norm]
    for level in range(2, 6):
        keys += [f"backbone.fpn_lateral{level}.{p}" for p in ("weight", "bias")]
        keys += [f"backbone.fpn_output{level}.{p}" for p in ("weight", "bias")]
    return keys


def test_r50_fpn_state_dict_keys_match_detectron2():
    backbone = build_backbone(r50_fpn_cfg())
    keys = sorted(f"backbone.{k}" for k in backbone.state_dict())
    assert keys == sorted(expected_r50_fpn_backbone_keys())


def test_deform_stages_from_config():
    cfg = r50_fpn_cfg()
    cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, False, True, True]
    cfg.MODEL.RESNETS.DEFORM_MODULATED = True
    backbone = build_backbone(cfg).eval()
    assert isinstance(backbone.bottom_up.res4[0], DeformBottleneckBlock)
    assert backbone.bottom_up.res4[0].conv2_offset.out_channels == 27
    out = backbone(torch.rand(1, 3, 64, 64))
    assert out["p5"].shape == (1, 256, 2, 2)


def test_backbone_registry_lists_and_rejects():
    assert "build_resnet_backbone" in BACKBONE_REGISTRY
    assert "build_resnet_fpn_backbone" in repr(BACKBONE_REGISTRY)
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "no_such_backbone"
    with pytest.raises(KeyError, match="build_resnet_backbone"):
        build_backbone(cfg, ShapeSpec(channels=3))


def test_resnet18_from_config():
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    backbone = build_backbone(cfg)
    assert backbone.output_shape()["res5"].channels == 512
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
    with pytest.raises(ValueError, match="RES2_OUT_CHANNELS"):
        build_backbone(cfg)
