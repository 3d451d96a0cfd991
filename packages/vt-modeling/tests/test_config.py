import pytest
import yaml

from vt_modeling.config import (
    CfgNode,
    UnknownKeyError,
    check_keys,
    check_kwargs,
    configurable,
    get_cfg,
)


def test_get_cfg_has_detectron2_keys_and_is_a_copy():
    cfg = get_cfg()
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS == (10.0, 10.0, 5.0, 5.0)
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[32, 64, 128, 256, 512]]
    cfg.MODEL.RESNETS.DEPTH = 101
    assert get_cfg().MODEL.RESNETS.DEPTH == 50


def test_merge_from_file_with_base(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "MODEL:\n  RESNETS:\n    DEPTH: 101\n  ROI_HEADS:\n    NUM_CLASSES: 3\nSOLVER:\n  BASE_LR: 0.02\n"
    )
    (tmp_path / "child.yaml").write_text(
        "_BASE_: base.yaml\nMODEL:\n  ROI_HEADS:\n    NUM_CLASSES: 7\n"
    )
    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "child.yaml"))
    assert cfg.MODEL.RESNETS.DEPTH == 101  # from the base
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 7  # child overrides
    assert cfg.SOLVER.BASE_LR == 0.02


def test_unknown_key_is_named():
    cfg = get_cfg()
    with pytest.raises(KeyError, match=r"MODEL\.NOT_A_KEY"):
        cfg.merge_from_list(["MODEL.NOT_A_KEY", 1])


def test_merge_from_list_casts_and_checks_types():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.5", "MODEL.RPN.IN_FEATURES", "['p2', 'p3']"])
    assert cfg.SOLVER.BASE_LR == 0.5 and cfg.MODEL.RPN.IN_FEATURES == ["p2", "p3"]
    with pytest.raises(ValueError):
        cfg.merge_from_list(["SOLVER.BASE_LR", "'abc'"])
    with pytest.raises(KeyError, match="_BASE_"):
        cfg.merge_from_list(["_BASE_", "x.yaml"])


def test_freeze_and_dump_round_trip():
    cfg = get_cfg()
    cfg.freeze()
    with pytest.raises(AttributeError):
        cfg.SEED = 3
    loaded = CfgNode(yaml.safe_load(cfg.dump()))
    assert loaded.MODEL.PIXEL_MEAN == list(cfg.MODEL.PIXEL_MEAN)
    assert loaded.SOLVER.STEPS == list(cfg.SOLVER.STEPS)


class Head:
    @configurable
    def __init__(self, num_classes: int, dim: int = 4):
        self.num_classes, self.dim = num_classes, dim

    @classmethod
    def from_config(cls, cfg, dim=8):
        return {"num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES, "dim": dim}


def test_configurable_class_explicit_config_and_override():
    cfg = get_cfg()
    assert vars(Head(num_classes=3)) == {"num_classes": 3, "dim": 4}
    assert vars(Head(cfg)) == {"num_classes": 80, "dim": 8}
    assert vars(Head(cfg, dim=16)) == {"num_classes": 80, "dim": 16}
    assert vars(Head(cfg=cfg, num_classes=5)) == {"num_classes": 5, "dim": 8}


def test_configurable_function():
    @configurable(from_config=lambda cfg, scale=1: {"a": cfg.SOLVER.IMS_PER_BATCH * scale})
    def f(a, b=1):
        return a + b

    assert f(1) == 2
    assert f(get_cfg()) == 17
    assert f(get_cfg(), scale=2, b=0) == 32


def test_configurable_requires_from_config():
    class NoFromConfig:
        @configurable
        def __init__(self, a=1):
            self.a = a

    assert NoFromConfig(a=2).a == 2
    with pytest.raises(AttributeError, match="no 'from_config'"):
        NoFromConfig(get_cfg())


def test_typo_in_merge_from_list_suggests_the_closest_key():
    cfg = get_cfg()
    with pytest.raises(
        KeyError, match=r"MODEL\.ROI_HEADS\.NUM_CLASS; did you mean 'MODEL\.ROI_HEADS\.NUM_CLASSES'"
    ):
        cfg.merge_from_list(["MODEL.ROI_HEADS.NUM_CLASS", 3])
    with pytest.raises(KeyError, match=r"MODLE\.WEIGHTS; did you mean 'MODEL'"):
        cfg.merge_from_list(["MODLE.WEIGHTS", "x.pth"])
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80  # nothing was merged


def test_typo_in_yaml_names_file_key_and_suggestion(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("SOLVER:\n  BASE_LR: 0.1\nMODEL:\n  RESNETS:\n    DEPTHS: 101\n")
    cfg = get_cfg()
    with pytest.raises(UnknownKeyError) as info:
        cfg.merge_from_file(str(path))
    msg = str(info.value)
    assert str(path) in msg and "MODEL.RESNETS.DEPTHS" in msg
    assert "did you mean 'MODEL.RESNETS.DEPTH'?" in msg
    assert isinstance(info.value, KeyError) and cfg.SOLVER.BASE_LR != 0.1
    other = CfgNode({"INPUT": {"MIN_SIZE_TRAINN": (640,)}})
    with pytest.raises(
        KeyError, match=r"INPUT\.MIN_SIZE_TRAINN; did you mean 'INPUT\.MIN_SIZE_TRAIN'"
    ):
        cfg.merge_from_other_cfg(other)


def test_typo_without_close_match_and_new_allowed():
    cfg = get_cfg()
    with pytest.raises(UnknownKeyError) as info:
        cfg.merge_from_list(["MODEL.ZZZZZZZZ", 1])
    assert "did you mean" not in str(info.value)
    cfg.MODEL.set_new_allowed(True)
    cfg.merge_from_other_cfg(CfgNode({"MODEL": {"NEW_KEY": 1}}))
    assert cfg.MODEL.NEW_KEY == 1


def test_check_keys_and_kwargs():
    check_keys(["a"], ["a", "b"], "x")
    with pytest.raises(
        UnknownKeyError, match=r"train_cfg: unknown key 'max_epoch'; did you mean 'max_epochs'\?"
    ):
        check_keys(["max_epoch"], ["max_epochs", "val_interval"], "train_cfg")

    def f(a, *, bb=1):
        return a

    check_kwargs(f, ["a", "bb"], "f")
    with pytest.raises(TypeError, match=r"unknown key 'b'; did you mean 'bb'"):
        check_kwargs(f, ["b"], "f")
    check_kwargs(lambda **kw: kw, ["anything"], "g")


def test_yaml_with_python_tags_is_refused_by_default(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"SEED: !!python/object/apply:os.makedirs ['{marker}']\n")
    with pytest.raises(yaml.constructor.ConstructorError):
        get_cfg().merge_from_file(str(path))
    assert not marker.exists()
