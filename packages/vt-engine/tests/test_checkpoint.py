import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vt_engine import checkpoint as ckpt_module
from vt_engine import find_latest_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint


class Net(nn.Module):
    def __init__(self, out=3):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, out)


def test_save_and_read_round_trip_with_tied_weights(tmp_path):
    model = Net()
    model.fc2 = model.fc  # tied: the same tensors under two names
    state = {
        "meta": {"iter": 3},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
    }
    save_checkpoint(tmp_path / "c", model.state_dict(), state, record_last=True)
    ckpt = read_checkpoint(tmp_path / "c")
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt["state_dict"][k], v)
    assert ckpt["meta"] == {"iter": 3} and ckpt["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert find_latest_checkpoint(tmp_path) == tmp_path / "c"


def test_exception_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    old = Net()
    save_checkpoint(tmp_path / "iter_1", old.state_dict(), {"meta": {"iter": 1}}, record_last=True)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(
            tmp_path / "iter_2", Net().state_dict(), {"meta": {"iter": 2}}, record_last=True
        )
    with pytest.raises(OSError, match="disk full"):  # overwriting an existing checkpoint
        save_checkpoint(
            tmp_path / "iter_1", Net().state_dict(), {"meta": {"iter": 9}}, record_last=True
        )
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_1", "last_checkpoint"]
    latest = find_latest_checkpoint(tmp_path)
    assert latest.name == "iter_1"
    model = Net(out=3)
    ckpt = load_checkpoint(model, latest, strict=True)
    assert ckpt["meta"]["iter"] == 1
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), old.state_dict().values())
    )


def test_kill_during_write_keeps_previous_checkpoint(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        import safetensors.torch
        from vt_engine import checkpoint as c
        torch.manual_seed(0)
        weights = {{"w": torch.randn(64, 64)}}
        c.save_checkpoint({str(tmp_path / "iter_1")!r}, weights, {{"meta": {{"iter": 1}}}}, record_last=True)
        real = safetensors.torch.save_file
        def dying_save(tensors, filename, metadata=None):
            real(tensors, filename, metadata)
            with open(filename, "r+b") as f:
                f.truncate(100)  # half-written
            os.kill(os.getpid(), signal.SIGKILL)
        c._save_safetensors = dying_save
        c.save_checkpoint({str(tmp_path / "iter_2")!r}, {{"w": torch.zeros(64, 64)}}, {{"meta": {{"iter": 2}}}}, record_last=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    latest = find_latest_checkpoint(tmp_path)
    assert latest.name == "iter_1"
    assert not (tmp_path / "iter_2").exists()
    torch.manual_seed(0)
    assert torch.equal(read_checkpoint(latest)["state_dict"]["w"], torch.randn(64, 64))


def test_load_reports_missing_unexpected_and_shape_mismatch(tmp_path, caplog):
    src = Net(out=5)
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}  # as saved from DDP
    sd["module.extra.weight"] = torch.ones(2)
    del sd["module.bn.running_var"]
    torch.save({"state_dict": sd, "meta": {"epoch": 1}}, tmp_path / "m.pth")
    model = Net(out=3)
    with caplog.at_level("WARNING", logger="vt_engine"):
        ckpt = load_checkpoint(model, tmp_path / "m.pth")
    report = ckpt["incompatible_keys"]
    assert report.missing_keys == ["bn.running_var"]
    assert report.unexpected_keys == ["extra.weight"]
    assert report.shape_mismatches == [("fc.weight", (5, 4), (3, 4)), ("fc.bias", (5,), (3,))]
    assert "shape mismatch for fc.weight" in caplog.text and "extra.weight" in caplog.text
    assert torch.equal(model.conv.weight, src.conv.weight)  # the rest was loaded
    assert not torch.equal(model.fc.bias[:3], src.fc.bias[:3])
    with pytest.raises(RuntimeError, match="shape mismatch"):
        load_checkpoint(Net(out=3), tmp_path / "m.pth", strict=True)


def test_torch_load_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": Net().state_dict(), "x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError):
        read_checkpoint(tmp_path / "evil.pth")


def test_safetensors_file_and_detectron2_pickle(tmp_path):
    src = Net()
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    model = Net()
    load_checkpoint(model, tmp_path / "w.safetensors", strict=True)
    assert torch.equal(model.fc.weight, src.fc.weight)

    # detectron2 .pkl: numpy arrays under "model" with its own key names
    d2 = {
        "model": {k: v.numpy() for k, v in src.state_dict().items()},
        "__author__": "Detectron2 Model Zoo",
    }
    with open(tmp_path / "model_final.pkl", "wb") as f:
        pickle.dump(d2, f)
    model = Net()
    load_checkpoint(model, tmp_path / "model_final.pkl", strict=True)
    assert torch.equal(model.conv.weight, src.conv.weight)
    assert torch.equal(model.bn.num_batches_tracked, src.bn.num_batches_tracked)

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"model": {"w": np.zeros(2)}, "hook": subprocess.Popen}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_checkpoint(tmp_path / "evil.pkl")


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        read_checkpoint(tmp_path / "empty")
    with pytest.raises(TypeError, match="tensor"):
        save_checkpoint(tmp_path / "bad", {"w": 3}, {})
    assert find_latest_checkpoint(tmp_path) is None
