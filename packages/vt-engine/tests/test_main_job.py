"""The default Mask R-CNN config learns: a shortened schedule on a small subset of the
embedded dataset gets a box AP50 far above chance (the full run is the demo)."""

import pytest

from vt_engine import Config, Runner
from vt_engine.configs import config_path


@pytest.mark.slow
def test_default_mask_rcnn_config_learns_the_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("VT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VT_SHAPES_NUM_TRAIN", "120")
    monkeypatch.setenv("VT_SHAPES_NUM_VAL", "24")
    cfg = Config.fromfile(config_path("mask_rcnn_shapes"))
    cfg["work_dir"] = str(tmp_path / "work")
    cfg.merge_from_dotlist(["train_cfg.max_iters=400", "train_cfg.val_interval=400"])
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val()
    # Random predictions score ~0; the full 3000-iteration schedule reaches far more.
    assert metrics["coco/bbox_mAP_50"] > 0.25, metrics
    assert metrics["coco/segm_mAP_50"] > 0.15, metrics
    assert (runner.log_dir / "predictions").exists() is False  # only the demo draws pictures


def test_config_path_lists_the_shipped_configs():
    assert config_path("mask_rcnn_shapes").name == "mask_rcnn_shapes.py"
    with pytest.raises(FileNotFoundError, match="mask_rcnn_shapes"):
        config_path("no_such_config")
