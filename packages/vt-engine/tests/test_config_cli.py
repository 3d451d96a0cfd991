import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from vt_engine import Config, Runner, cli, read_checkpoint

CONFIG = textwrap.dedent(
    """
    import torch
    from vt_engine import CheckpointHook, LoggerHook
    from vt_engine_toys import ToyDataset, ToyMetric, ToyModel

    torch.manual_seed(0)
    model = ToyModel()
    work_dir = {work_dir!r}
    train_dataloader = dict(dataset=ToyDataset(16), batch_size=4, sampler="infinite")
    val_dataloader = dict(dataset=ToyDataset(8, seed=1), batch_size=4, shuffle=False)
    val_evaluator = ToyMetric()
    train_cfg = dict(by_epoch=False, max_iters=8, val_interval=4)
    optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9))
    param_scheduler = [dict(type="MultiStepLR", milestones=[2], gamma=0.5, by_epoch=False)]
    default_hooks = dict(
        checkpoint=CheckpointHook(interval=2, by_epoch=False), logger=LoggerHook(interval=2, progress_bar=False)
    )
    randomness = dict(seed=3)
    _private = "not config"
    """
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "toy_config.py"
    path.write_text(CONFIG.format(work_dir=str(tmp_path / "from_config")))
    return path


def test_config_fromfile_and_overrides(config_file):
    cfg = Config.fromfile(config_file)
    assert "torch" not in cfg and "_private" not in cfg and "ToyModel" not in cfg
    assert cfg.train_cfg["max_iters"] == 8 and isinstance(cfg.model, torch.nn.Module)
    cfg.merge_from_dotlist(
        [
            "train_cfg.max_iters=3",
            "optim_wrapper.optimizer.lr=0.5",
            "param_scheduler.0.gamma=0.1",
            "new_key=[1, 2]",
            "name=abc",
        ]
    )
    assert cfg.train_cfg["max_iters"] == 3 and cfg.optim_wrapper["optimizer"]["lr"] == 0.5
    assert cfg.param_scheduler[0]["gamma"] == 0.1 and cfg.new_key == [1, 2] and cfg.name == "abc"
    with pytest.raises(KeyError, match="nope"):
        cfg.merge_from_dotlist(["nope.x=1"])
    with pytest.raises(ValueError, match="object"):
        cfg.merge_from_dotlist(["model.net=1"])
    with pytest.raises(ValueError, match="key=value"):
        cfg.merge_from_dotlist(["oops"])
    with pytest.raises(ValueError, match=r"\.py"):
        Config.fromfile(config_file.with_suffix(".yaml"))
    runner = Runner.from_cfg(cfg)
    assert runner.cfg is cfg and runner.seed == 3


def test_vt_train_then_vt_test(config_file, tmp_path, capsys):
    work = tmp_path / "cli_work"
    assert (
        cli.train_main(
            [str(config_file), "--work-dir", str(work), "--cfg-options", "train_cfg.max_iters=6"]
        )
        == 0
    )
    assert (work / "iter_6").is_dir() and not (work / "iter_8").exists()
    ckpt = read_checkpoint(work / "iter_6")
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005)  # MultiStepLR applied
    # resume continues to the config's 8 iterations
    assert cli.train_main([str(config_file), "--work-dir", str(work), "--resume"]) == 0
    assert read_checkpoint(work / "iter_8")["meta"]["iter"] == 8
    capsys.readouterr()
    assert (
        cli.test_main(
            [str(config_file), str(work / "iter_8"), "--work-dir", str(tmp_path / "eval")]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    printed = dict(line.split(": ") for line in lines if " - INFO - " not in line)
    assert set(printed) == {"mse", "mae", "count"} and printed["count"] == "8"
    scalars = next((work).glob("*/vis_data/scalars.json"))
    assert all("step" in json.loads(x) for x in scalars.read_text().splitlines())
    assert cli.main(["bogus"]) == 2


def test_help_and_console_script(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.test_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "checkpoint" in out and "--cfg-options" in out
    exe = Path(sys.executable).parent / "vt-train"
    if not exe.exists():
        pytest.skip("package not installed with its console scripts")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--resume" in proc.stdout and "--cfg-options" in proc.stdout


def test_vt_visualize_draws_ground_truth(tmp_path, capsys):
    from PIL import Image

    config = tmp_path / "seg_config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from vt_engine_toys import ToySegDataset
            val_dataloader = dict(dataset=ToySegDataset({str(tmp_path)!r}, n=3), batch_size=1)
            work_dir = {str(tmp_path / "w")!r}
            """
        )
    )
    out = tmp_path / "gt"
    assert cli.visualize_main([str(config), "--num", "2", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["img_0.png", "img_1.png"]
    drawn = np.asarray(Image.open(out / "img_0.png")).astype(int)
    original = np.asarray(Image.open(tmp_path / "img_0.png")).astype(int)
    assert (
        drawn.shape == original.shape and (drawn != original).any()
    )  # ground truth only: one panel
    assert "wrote 2 images" in capsys.readouterr().out
