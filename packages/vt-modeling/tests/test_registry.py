import pytest

from vt_modeling.registry import Registry


def make():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        def __init__(self, a=1, b=2):
            self.a, self.b = a, b

    def beta(x=0):
        return ("beta", x)

    reg.register(beta)
    reg.register(beta, name="gamma")
    return reg, Alpha


def test_register_get_contains_len_iter():
    reg, alpha = make()
    assert reg.get("Alpha") is alpha
    assert "beta" in reg and "gamma" in reg and "delta" not in reg
    assert len(reg) == 3
    assert [name for name, _ in reg] == ["Alpha", "beta", "gamma"]
    assert reg.get("gamma")(3) == ("beta", 3)


def test_duplicate_name_raises():
    reg, alpha = make()
    with pytest.raises(KeyError, match="already registered in 'THING'"):
        reg.register(alpha)


def test_unknown_name_suggests_close_matches():
    reg, _ = make()
    with pytest.raises(KeyError, match=r"No object named 'Alfa'.*Did you mean 'Alpha'"):
        reg.get("Alfa")


def test_build_from_dict_with_kwargs_and_callable_type():
    reg, alpha = make()
    obj = reg.build(dict(type="Alpha", a=5), b=7)
    assert isinstance(obj, alpha) and (obj.a, obj.b) == (5, 7)
    assert reg.build({"type": lambda x: x * 2, "x": 4}) == 8
    with pytest.raises(KeyError, match="missing the 'type' key"):
        reg.build({"a": 1})
    with pytest.raises(TypeError, match="expected a dict"):
        reg.build("Alpha")


def test_repr_is_a_table():
    reg, _ = make()
    text = repr(reg)
    assert text.splitlines()[0] == "Registry of THING:"
    assert any(line.strip().startswith("gamma") for line in text.splitlines())


def test_model_registries_exist_and_list_known_names():
    import vt_modeling

    names = [
        "META_ARCH",
        "BACKBONE",
        "PROPOSAL_GENERATOR",
        "RPN_HEAD",
        "ANCHOR_GENERATOR",
        "ROI_HEADS",
        "ROI_BOX_HEAD",
        "ROI_MASK_HEAD",
        "ROI_KEYPOINT_HEAD",
        "SEM_SEG_HEADS",
    ]
    for name in names:
        registry = getattr(vt_modeling, f"{name}_REGISTRY")
        assert isinstance(registry, Registry) and registry.name == name
        assert "called with" in registry.__doc__
    assert "DefaultAnchorGenerator" in vt_modeling.ANCHOR_GENERATOR_REGISTRY
    with pytest.raises(KeyError, match="DefaultAnchorGenerator"):
        vt_modeling.ANCHOR_GENERATOR_REGISTRY.get("Nope")


def test_precomputed_proposals_build_no_generator():
    import vt_modeling

    cfg = vt_modeling.get_cfg()
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedProposals"
    assert vt_modeling.build_proposal_generator(cfg, {}) is None


def test_build_with_a_typo_in_an_argument_suggests_it():
    reg = Registry("THINGS")

    @reg.register()
    class Thing:
        def __init__(self, depth: int = 1, width: int = 2) -> None:
            self.depth = depth

    assert reg.build(dict(type="Thing", depth=3)).depth == 3
    with pytest.raises(
        TypeError, match=r"THINGS cfg of type 'Thing': unknown key 'dept'; did you mean 'depth'"
    ):
        reg.build(dict(type="Thing", dept=3))


def test_build_checks_arguments_through_kwargs_and_configurable():
    from vt_modeling.config import CfgNode, configurable

    reg = Registry("MORE")

    class Base:
        def __init__(self, depth: int = 1) -> None:
            self.depth = depth

    @reg.register()
    class Child(Base):
        def __init__(self, *args, **kwargs) -> None:  # forwards to Base
            super().__init__(*args, **kwargs)

    @reg.register()
    class Configured:
        @configurable
        def __init__(self, width: int = 2) -> None:
            self.width = width

        @classmethod
        def from_config(cls, cfg, scale=1):
            return {"width": cfg.WIDTH * scale}

    assert reg.build(dict(type="Child", depth=4)).depth == 4
    with pytest.raises(TypeError, match=r"unknown key 'dpth'; did you mean 'depth'"):
        reg.build(dict(type="Child", dpth=4))
    cfg = CfgNode({"WIDTH": 3})
    assert reg.build(dict(type="Configured", cfg=cfg, scale=2)).width == 6
    assert reg.build(dict(type="Configured", width=5)).width == 5
    with pytest.raises(TypeError, match=r"unknown key 'widht'; did you mean 'width'"):
        reg.build(dict(type="Configured", widht=5))
