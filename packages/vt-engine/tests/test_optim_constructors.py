import pytest
import torch
from torch import nn

from vt_engine import (
    OPTIM_WRAPPER_CONSTRUCTORS,
    DefaultOptimWrapperConstructor,
    ForceDefaultOptimWrapperConstructor,
    LayerDecayOptimizerConstructor,
    LearningRateDecayOptimizerConstructor,
    OptimWrapper,
    build_optim_wrapper,
)

LR, WD = 0.01, 0.0001


class SubModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 2, kernel_size=1, groups=2)
        self.gn = nn.GroupNorm(2, 2)
        self.param1 = nn.Parameter(torch.ones(1))


class ExampleModel(nn.Module):
    """mmengine's test model: conv, bn, depthwise conv, shared sub-model."""

    def __init__(self):
        super().__init__()
        self.param1 = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(3, 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(4, 2, kernel_size=1)
        self.bn = nn.BatchNorm2d(2)
        self.sub = SubModel()
        self.dwconv = nn.Conv2d(2, 2, kernel_size=3, padding=1, groups=2)


def groups_by_name(model, optim_wrapper):
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for g in optim_wrapper.param_groups:
        for p in g["params"]:
            out[names[id(p)]] = g
    return out


def cfg(**optimizer):
    opt = dict(type="SGD", lr=LR, weight_decay=WD, momentum=0.9)
    opt.update(optimizer)
    return dict(type="OptimWrapper", optimizer=opt)


def test_seed_example_1_conv1d_norm_decay_mult():
    model = nn.Conv1d(1, 1, 1)
    ow = DefaultOptimWrapperConstructor(cfg(), dict(norm_decay_mult=0.0))(model)
    assert isinstance(ow, OptimWrapper) and isinstance(ow.optimizer, torch.optim.SGD)
    assert len(ow.param_groups) == 2  # one group per parameter, none is a norm
    for g in ow.param_groups:
        assert g["lr"] == LR and g["weight_decay"] == WD and g["momentum"] == 0.9


def test_seed_example_2_custom_keys_backbone():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
            self.cls_head = nn.Linear(4, 2)

    model = Model()
    c = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.01, weight_decay=0.95))
    ow = DefaultOptimWrapperConstructor(
        c, dict(custom_keys={"backbone": dict(lr_mult=0.1, decay_mult=0.9)})
    )(model)
    by_name = groups_by_name(model, ow)
    for name, g in by_name.items():
        if name.startswith("backbone"):
            assert (g["lr"], g["weight_decay"]) == pytest.approx((0.01 * 0.1, 0.95 * 0.9))
        else:
            assert (g["lr"], g["weight_decay"]) == (0.01, 0.95)


def test_no_paramwise_cfg_single_group():
    model = ExampleModel()
    ow = DefaultOptimWrapperConstructor(cfg())(model)
    assert len(ow.param_groups) == 1
    assert len(ow.param_groups[0]["params"]) == len(list(model.parameters()))


def test_all_multipliers_follow_mmengine_rules():
    model = ExampleModel()
    paramwise = dict(
        bias_lr_mult=2,
        bias_decay_mult=0.5,
        norm_decay_mult=0,
        dwconv_decay_mult=0.1,
        flat_decay_mult=0.3,
    )
    ow = DefaultOptimWrapperConstructor(cfg(), paramwise)(model)
    g = groups_by_name(model, ow)
    expected = {
        "param1": (LR, WD * 0.3),  # flat
        "conv1.weight": (LR, WD),
        "conv2.weight": (LR, WD),
        "conv2.bias": (LR * 2, WD * 0.5),
        "bn.weight": (LR, 0),
        "bn.bias": (LR, 0),  # norm bias: no bias_lr_mult, norm decay wins
        "sub.param1": (LR, WD * 0.3),
        "sub.conv1.weight": (LR, WD),  # grouped but not depthwise (in_channels != groups)
        "sub.conv1.bias": (LR * 2, WD * 0.5),
        "sub.gn.weight": (LR, 0),
        "sub.gn.bias": (LR, 0),
        "dwconv.weight": (LR, WD * 0.1),
        "dwconv.bias": (LR * 2, WD * 0.5),  # bias rule before depthwise rule
    }
    assert set(g) == set(expected)
    for name, (lr, wd) in expected.items():
        assert g[name]["lr"] == pytest.approx(lr), name
        assert g[name]["weight_decay"] == pytest.approx(wd), name


def test_custom_keys_longest_then_alphabetical_match():
    model = ExampleModel()
    custom_keys = {
        "param1": dict(lr_mult=10),
        "sub": dict(lr_mult=0.1, decay_mult=0),
        "sub.gn": dict(lr_mult=0.01),
        "non_exist_key": dict(lr_mult=0.0),
        "conv": dict(lr_mult=3.0),  # "onv2" and "conv" tie in length with ...
        "onv2": dict(lr_mult=5.0),  # ... each other; "conv" is alphabetically first
    }
    ow = DefaultOptimWrapperConstructor(cfg(), dict(custom_keys=custom_keys, norm_decay_mult=0))(
        model
    )
    g = groups_by_name(model, ow)
    assert g["param1"]["lr"] == pytest.approx(LR * 10)
    assert g["sub.param1"]["lr"] == pytest.approx(LR * 10)  # "param1" (6) beats "sub" (3)
    assert g["sub.gn.weight"]["lr"] == pytest.approx(LR * 0.01)
    assert g["sub.gn.weight"]["weight_decay"] == pytest.approx(WD)  # custom: norm rule ignored
    assert g["sub.conv1.weight"]["lr"] == pytest.approx(LR * 3.0)  # "conv" (4) beats "sub"
    assert g["conv2.weight"]["lr"] == pytest.approx(LR * 3.0)  # "conv" < "onv2"
    assert g["bn.weight"]["weight_decay"] == 0  # not custom: norm_decay_mult applies
    assert g["sub.param1"]["lr_mult"] == 10  # custom settings are copied into the group


def test_force_default_settings_override_custom_keys():
    model = ExampleModel()
    paramwise = dict(
        custom_keys={
            "bn": dict(lr_mult=0.5, decay_mult=3.0),
            "conv2": dict(lr_mult=0.7, decay_mult=0.7),
        },
        norm_decay_mult=0.0,
        bias_lr_mult=2.0,
    )
    plain = groups_by_name(model, DefaultOptimWrapperConstructor(cfg(), paramwise)(model))
    assert plain["bn.weight"]["weight_decay"] == pytest.approx(WD * 3.0)
    assert plain["conv2.bias"]["lr"] == pytest.approx(LR * 0.7)

    forced = groups_by_name(
        model,
        ForceDefaultOptimWrapperConstructor(cfg(), dict(paramwise, force_default_settings=True))(
            model
        ),
    )
    assert forced["bn.weight"]["weight_decay"] == 0  # norm_decay_mult overrides custom 3.0
    assert forced["bn.weight"]["lr"] == pytest.approx(LR * 0.5)  # no default lr rule: custom
    assert forced["conv2.bias"]["lr"] == pytest.approx(LR * 2.0)  # bias_lr_mult overrides 0.7
    assert forced["conv2.weight"]["lr"] == pytest.approx(LR * 0.7)
    assert forced["conv2.weight"]["weight_decay"] == pytest.approx(WD * 0.7)

    not_forced = groups_by_name(
        model,
        ForceDefaultOptimWrapperConstructor(cfg(), dict(paramwise, force_default_settings=False))(
            model
        ),
    )
    assert not_forced["bn.weight"]["weight_decay"] == pytest.approx(WD * 3.0)


def test_bypass_duplicate_and_frozen_params():
    model = ExampleModel()
    model.sub.shared = model.conv2  # the same parameters under two parents
    model.sub.param1.requires_grad_(False)
    with pytest.raises(ValueError, match="more than one parameter group"):
        DefaultOptimWrapperConstructor(cfg(), dict(bias_lr_mult=2))(model)
    ow = DefaultOptimWrapperConstructor(cfg(), dict(bias_lr_mult=2, bypass_duplicate=True))(model)
    n = sum(len(g["params"]) for g in ow.param_groups)
    assert n == len(list(model.parameters()))  # conv2 counted once
    frozen = next(g for g in ow.param_groups if g["params"][0] is model.sub.param1)
    assert frozen["lr"] == LR  # frozen: optimizer defaults only


def test_dcn_offset_lr_mult():
    class ModulatedDeformConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(2, 2, 3, 3))
            self.conv_offset = nn.Conv2d(2, 27, 3)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.dcn = ModulatedDeformConv()
            self.conv = nn.Conv2d(2, 2, 1)

    model = Model()
    ow = DefaultOptimWrapperConstructor(
        cfg(), dict(dcn_offset_lr_mult=0.1, bias_lr_mult=2.0, flat_decay_mult=0.5)
    )(model)
    g = groups_by_name(model, ow)
    assert g["dcn.conv_offset.weight"]["lr"] == pytest.approx(LR * 0.1)
    assert g["dcn.conv_offset.bias"]["lr"] == pytest.approx(LR * 0.1)
    assert g["dcn.conv_offset.bias"]["weight_decay"] == WD  # no bias/flat decay for DCN
    assert g["conv.bias"]["lr"] == pytest.approx(LR * 2.0)
    assert g["conv.bias"]["weight_decay"] == pytest.approx(WD * 0.5)


def test_validation_errors():
    with pytest.raises(TypeError, match="optim_wrapper_cfg"):
        DefaultOptimWrapperConstructor([1])
    with pytest.raises(ValueError, match="optimizer"):
        DefaultOptimWrapperConstructor(dict(type="OptimWrapper"))
    with pytest.raises(ValueError, match="weight_decay"):
        DefaultOptimWrapperConstructor(
            dict(optimizer=dict(type="SGD", lr=0.1)), dict(norm_decay_mult=0)
        )
    with pytest.raises(ValueError, match="weight_decay"):
        DefaultOptimWrapperConstructor(
            dict(optimizer=dict(type="SGD", lr=0.1)), dict(custom_keys={"a": dict(decay_mult=0)})
        )
    with pytest.raises(TypeError, match="custom_keys"):
        DefaultOptimWrapperConstructor(cfg(), dict(custom_keys=[1]))
    with pytest.raises(KeyError, match="Did you mean"):
        DefaultOptimWrapperConstructor(dict(optimizer=dict(type="SGDD", lr=0.1)))(nn.Linear(1, 1))


def test_build_optim_wrapper_from_dict_with_wrapper_options():
    model = ExampleModel()
    ow = build_optim_wrapper(
        model,
        dict(
            type="AmpOptimWrapper",
            dtype="bfloat16",
            accumulative_counts=2,
            clip_grad=dict(max_norm=1.0),
            optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
            constructor="ForceDefaultOptimWrapperConstructor",
            paramwise_cfg=dict(norm_decay_mult=0.0, force_default_settings=True),
        ),
    )
    assert type(ow).__name__ == "AmpOptimWrapper" and ow.accumulative_counts == 2
    assert isinstance(ow.optimizer, torch.optim.AdamW)
    assert groups_by_name(model, ow)["bn.weight"]["weight_decay"] == 0
    assert build_optim_wrapper(model, ow) is ow
    assert "LearningRateDecayOptimizerConstructor" in OPTIM_WRAPPER_CONSTRUCTORS


# -- layer-wise lr decay ------------------------------------------------------------------


class ConvNeXt(nn.Module):
    """Parameter names of mmpretrain's ConvNeXt (depths 1, 1, 6, 1)."""

    def __init__(self):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Conv2d(2, 2, 1) for _ in range(4)])
        self.stages = nn.ModuleList(
            [nn.Sequential(*[nn.Conv2d(2, 2, 1) for _ in range(d)]) for d in (1, 1, 6, 1)]
        )


class BEiT(nn.Module):
    def __init__(self, depth=3):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 2))
        self.patch_embed = nn.Conv2d(3, 2, 1)
        self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(depth)])


class Segmentor(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.decode_head = nn.Conv2d(2, 3, 1)


def lr_wd(model, ow):
    g = groups_by_name(model, ow)
    return {n: (grp["lr"], grp["weight_decay"], grp["group_name"]) for n, grp in g.items()}


def test_convnext_layer_wise_decay_matches_mmseg_layer_ids():
    model = Segmentor(ConvNeXt())
    c = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05))
    num_layers, rate = 6, 0.5
    ow = LearningRateDecayOptimizerConstructor(
        c, dict(num_layers=num_layers, decay_rate=rate, decay_type="layer_wise")
    )(model)
    got = lr_wd(model, ow)
    n = num_layers + 2
    layer_of = {
        "backbone.downsample_layers.0": 0,
        "backbone.downsample_layers.1": 2,
        "backbone.downsample_layers.2": 3,
        "backbone.downsample_layers.3": num_layers,
        "backbone.stages.0.0": 1,
        "backbone.stages.1.0": 2,
        "backbone.stages.2.0": 3,
        "backbone.stages.2.2": 3,
        "backbone.stages.2.3": 4,
        "backbone.stages.2.5": 4,
        "backbone.stages.3.0": num_layers,
        "decode_head": num_layers + 1,
    }
    for prefix, layer in layer_of.items():
        lr, wd, group = got[f"{prefix}.weight"]
        assert lr == pytest.approx(rate ** (n - layer - 1)), prefix
        assert (wd, group) == (0.05, f"layer_{layer}_decay")
        lr, wd, group = got[f"{prefix}.bias"]
        assert lr == pytest.approx(rate ** (n - layer - 1)) and wd == 0.0
        assert group == f"layer_{layer}_no_decay"


def test_convnext_stage_wise_decay():
    model = Segmentor(ConvNeXt())
    c = dict(optimizer=dict(type="AdamW", lr=2.0, weight_decay=0.05))
    ow = LearningRateDecayOptimizerConstructor(
        c, dict(num_layers=12, decay_rate=0.9, decay_type="stage_wise")
    )(model)
    got = lr_wd(model, ow)
    n = 14
    for name, stage in [
        ("backbone.downsample_layers.2.weight", 0),
        ("backbone.stages.0.0.weight", 1),
        ("backbone.stages.3.0.weight", 4),
        ("decode_head.weight", n - 1),
    ]:
        assert got[name][0] == pytest.approx(2.0 * 0.9 ** (n - stage - 1)), name


def test_beit_layer_decay_constructor_equals_layer_wise_vit():
    model = Segmentor(BEiT(depth=3))
    c = dict(optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05))
    with pytest.warns(DeprecationWarning):
        old = LayerDecayOptimizerConstructor(c, dict(num_layers=3, layer_decay_rate=0.9))(model)
    new = LearningRateDecayOptimizerConstructor(
        c, dict(num_layers=3, decay_rate=0.9, decay_type="layer_wise")
    )(model)
    assert lr_wd(model, old) == lr_wd(model, new)
    got = lr_wd(model, new)
    n = 5
    for name, layer in [
        ("backbone.cls_token", 0),
        ("backbone.patch_embed.weight", 0),
        ("backbone.layers.0.weight", 1),
        ("backbone.layers.2.weight", 3),
        ("decode_head.weight", n - 1),
    ]:
        assert got[name][0] == pytest.approx(0.9 ** (n - layer - 1)), name
    assert got["backbone.cls_token"][1] == 0.05  # 3-D: decayed (the bare-name check never matches)


def test_lr_decay_errors():
    c = dict(optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05))
    with pytest.raises(ValueError, match="num_layers"):
        LearningRateDecayOptimizerConstructor(c, dict(decay_rate=0.9))
    with pytest.raises(ValueError, match="decay_type"):
        LearningRateDecayOptimizerConstructor(c, dict(num_layers=2, decay_rate=0.9, decay_type="x"))
    with pytest.raises(ValueError, match="backbone"):
        LearningRateDecayOptimizerConstructor(c, dict(num_layers=2, decay_rate=0.9))(
            nn.Linear(2, 2)
        )
    with pytest.raises(NotImplementedError, match="stage_wise"):
        LearningRateDecayOptimizerConstructor(
            c, dict(num_layers=2, decay_rate=0.9, decay_type="stage_wise")
        )(Segmentor(BEiT()))
    with pytest.raises(ValueError, match="layer_decay_rate"), pytest.warns(DeprecationWarning):
        LayerDecayOptimizerConstructor(c, dict(num_layers=2))
