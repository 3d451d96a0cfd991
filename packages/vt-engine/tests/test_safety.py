"""Untrusted inputs: checkpoints that carry code, malformed COCO files, images that do not
decode, configs with typos, and training through bad samples."""

import json
import logging
import os
import pickle
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from vt_engine_toys import ToyDataset, ToyModel

from vt_engine import (
    Config,
    DetectionDatasetMapper,
    LoggerHook,
    MapDataset,
    Runner,
    SkipBadSamplesDataset,
    build_dataloader,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from vt_engine.datasets import (
    DatasetCatalog,
    load_coco_json,
    load_coco_panoptic_json,
    register_coco_instances,
)
from vt_engine.visualization import read_image
from vt_modeling import UnknownKeyError

# --- checkpoints ----------------------------------------------------------------------


class _Payload:
    """Unpickling this creates the directory ``marker``: a stand-in for any code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _evil_state(marker):
    return {"state_dict": ToyModel().state_dict(), "meta": {"epoch": 1}, "x": _Payload(marker)}


def _write_evil(kind, path, marker):
    if kind == "pth":
        torch.save(_evil_state(marker), path)
    elif kind == "legacy_pt":
        torch.save(_evil_state(marker), path, _use_new_zipfile_serialization=False)
    elif kind == "pkl":  # detectron2's format: numpy weights under "model"
        weights = {k: v.numpy() for k, v in ToyModel().state_dict().items()}
        with open(path, "wb") as f:
            pickle.dump({"model": weights, "x": _Payload(marker)}, f)
    elif kind == "dir":  # a checkpoint directory whose state.pth was tampered with
        save_checkpoint(path, ToyModel().state_dict(), {"meta": {"epoch": 1}})
        torch.save({"meta": {"epoch": 1}, "x": _Payload(marker)}, path / "state.pth")


def test_the_payload_runs_when_unpickled_without_protection(tmp_path):
    # the control: the payload is live, so the refusals below are what prevents it
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.is_dir()


@pytest.mark.parametrize("kind", ["pth", "legacy_pt", "pkl", "dir"])
def test_malicious_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, kind):
    path = tmp_path / {"pth": "m.pth", "legacy_pt": "m.pt", "pkl": "m.pkl", "dir": "ckpt"}[kind]
    marker = tmp_path / "pwned"
    _write_evil(kind, path, marker)
    expected = re.escape(str(path if kind != "dir" else path / "state.pth"))
    for load in (
        lambda: read_checkpoint(path),
        lambda: load_checkpoint(ToyModel(), path),
        lambda: Runner(model=ToyModel(), work_dir=tmp_path / "w").load_checkpoint(path),
    ):
        with pytest.raises(pickle.UnpicklingError, match=expected) as info:
            load()
        msg = str(info.value)
        assert "refusing to load" in msg and "makedirs" in msg  # names the offending global
        assert not marker.exists()


def test_resume_from_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    _write_evil("dir", tmp_path / "ckpt", marker)
    runner = Runner(
        model=ToyModel(),
        work_dir=tmp_path / "w",
        train_dataloader=dict(dataset=ToyDataset(8), batch_size=4),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        resume=tmp_path / "ckpt",
        default_hooks=dict(logger=LoggerHook(progress_bar=False), checkpoint=None),
    )
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        runner.train()
    assert not marker.exists()


# --- COCO JSON --------------------------------------------------------------------------


def _coco():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 20}],
        "categories": [{"id": 3, "name": "cat"}],
        "annotations": [
            {
                "id": 11,
                "image_id": 1,
                "category_id": 3,
                "bbox": [1, 2, 3, 4],
                "area": 12,
                "iscrowd": 0,
                "segmentation": [[1, 2, 4, 2, 4, 6]],
            }
        ],
    }


def _set(path, value):
    def edit(coco):
        target = coco
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return coco

    return edit


_DELETE = object()

BAD_COCO = {
    "top_level_list": (lambda c: [c], TypeError, "top level"),
    "no_images": (_set(["images"], _DELETE), ValueError, "no 'images'"),
    "no_annotations": (_set(["annotations"], _DELETE), ValueError, "no 'annotations'"),
    "no_categories": (_set(["categories"], _DELETE), ValueError, "no 'categories'"),
    "images_not_a_list": (_set(["images"], {"id": 1}), TypeError, "'images' must be a list"),
    "image_not_a_dict": (_set(["images", 0], 5), TypeError, r"images\[0\] must be a dict"),
    "image_without_file_name": (
        _set(["images", 0, "file_name"], _DELETE),
        ValueError,
        r"images\[0\] has no 'file_name'",
    ),
    "image_id_a_string": (_set(["images", 0, "id"], "1"), TypeError, r"images\[0\]\['id'\]"),
    "category_id_a_float": (
        _set(["categories", 0, "id"], 3.5),
        TypeError,
        r"categories\[0\]\['id'\]",
    ),
    "unknown_image_id": (
        _set(["annotations", 0, "image_id"], 99),
        ValueError,
        r"annotations\[0\] \(id 11\): 'image_id' 99 is not in 'images'",
    ),
    "unknown_category_id": (
        _set(["annotations", 0, "category_id"], 42),
        ValueError,
        r"annotations\[0\] \(id 11\): 'category_id' 42 is not in 'categories'",
    ),
    "bbox_of_3": (_set(["annotations", 0, "bbox"], [1, 2, 3]), ValueError, "'bbox' must be 4"),
    "bbox_of_strings": (
        _set(["annotations", 0, "bbox"], ["1", 2, 3, 4]),
        ValueError,
        "'bbox' must be 4 numbers",
    ),
    "segmentation_a_string": (
        _set(["annotations", 0, "segmentation"], "abc"),
        TypeError,
        r"\['segmentation'\]: expected polygons or an RLE dict, got str",
    ),
    "rle_without_size": (
        _set(["annotations", 0, "segmentation"], {"counts": "abc"}),
        ValueError,
        r"\['segmentation'\]: an RLE needs 'counts' and 'size'",
    ),
    "polygon_of_strings": (
        _set(["annotations", 0, "segmentation"], [[1, 2, "x", 4, 5, 6]]),
        TypeError,
        r"\['segmentation'\]: expected polygons",
    ),
    "keypoints_not_triples": (
        _set(["annotations", 0, "keypoints"], [1, 2, 2, 4]),
        ValueError,
        r"'keypoints' must be numbers \[x, y, v\] \* K",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_COCO))
def test_malformed_coco_json_names_file_and_field(tmp_path, case):
    edit, error, field = BAD_COCO[case]
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(edit(_coco())))
    with pytest.raises(error, match=field) as info:
        load_coco_json(path, tmp_path)
    assert str(path) in str(info.value)


def test_valid_coco_json_still_loads(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_coco()))
    (record,) = load_coco_json(path, tmp_path, "safety_ok")
    assert record["annotations"][0]["category_id"] == 0
    assert record["annotations"][0]["bbox"] == [1, 2, 3, 4]


def test_not_json_and_registered_dataset(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": not a valid JSON file"):
        load_coco_json(path, tmp_path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a valid JSON file"):
        load_coco_json(path, tmp_path)
    # a registered dataset loads lazily and reports the same error when first used
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BAD_COCO["unknown_image_id"][0](_coco())))
    register_coco_instances("safety_bad", {}, bad, tmp_path)
    try:
        with pytest.raises(ValueError, match=re.escape(str(bad)) + r".*'image_id' 99"):
            DatasetCatalog.get("safety_bad")
    finally:
        DatasetCatalog.remove("safety_bad")
    pan = tmp_path / "pan.json"
    pan.write_text(json.dumps({"annotations": [{"file_name": "x.png", "image_id": 1}]}))
    with pytest.raises(ValueError, match=re.escape(str(pan)) + r".*has no 'segments_info'"):
        load_coco_panoptic_json(pan, tmp_path, tmp_path, {})


# --- images -----------------------------------------------------------------------------


def _png(path, size=(6, 5)):
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)


def test_image_that_fails_to_decode_names_the_file(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match=re.escape(str(garbage)) + ": cannot decode"):
        read_image(garbage)
    _png(tmp_path / "big.png", (64, 64))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((tmp_path / "big.png").read_bytes()[:2000])
    with pytest.raises(ValueError, match=re.escape(str(truncated))):
        read_image(truncated)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        read_image(tmp_path / "missing.png")
    assert read_image(tmp_path / "big.png").shape == (64, 64, 3)


# --- bad samples ------------------------------------------------------------------------


class _FlakyDataset(ToyDataset):
    """ToyDataset whose samples ``bad`` raise (as a broken file would)."""

    def __init__(self, n, bad, error=OSError):
        super().__init__(n)
        self.bad = set(bad)
        self.error = error

    def __getitem__(self, i):
        if i in self.bad:
            raise self.error(f"broken record {i}")
        return super().__getitem__(i)


def _train(tmp_path, dataset, **loader):
    torch.manual_seed(0)
    runner = Runner(
        model=ToyModel(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=dataset, batch_size=4, **loader),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)),
        default_hooks=dict(logger=LoggerHook(progress_bar=False), checkpoint=None),
        randomness=dict(seed=1),
    )
    runner.train()
    return runner


def test_bad_sample_stops_training_by_default(tmp_path):
    with pytest.raises(OSError, match="broken record 5"):
        _train(tmp_path, _FlakyDataset(16, bad={5}))


def test_training_skips_bad_samples_when_configured(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vt_engine"):
        runner = _train(tmp_path, _FlakyDataset(16, bad={5, 9}), skip_bad_samples=True)
    dataset = runner.train_dataloader.dataset
    assert isinstance(dataset, SkipBadSamplesDataset)
    assert runner.iter == 8  # 2 epochs of 4 full batches: nothing was lost
    skipped = dataset.num_skipped
    assert skipped >= 4  # each bad sample is met once per epoch (and maybe as a replacement)
    assert runner.message_hub.get_info("skipped_samples") == skipped
    warnings = [r.getMessage() for r in caplog.records if "skipping bad" in r.getMessage()]
    assert len(warnings) == skipped
    assert any("sample 5: OSError: broken record 5" in w for w in warnings)
    assert dataset.metainfo == {"classes": ("value",)}  # attributes pass through
    log = next(runner.log_dir.glob("*.log")).read_text()
    assert f"skipped {skipped} bad training samples" in log


def test_gives_up_after_too_many_failures_in_a_row():
    dataset = SkipBadSamplesDataset(_FlakyDataset(8, bad=range(8)), max_refetch=3)
    with pytest.raises(RuntimeError, match=r"4 bad samples in a row \(max_refetch=3\)") as info:
        dataset[2]
    assert "broken record" in str(info.value) and isinstance(info.value.__cause__, OSError)
    assert dataset.num_skipped == 3
    # only the configured exception types count as bad samples
    dataset = SkipBadSamplesDataset(
        _FlakyDataset(8, bad={1}, error=KeyError), exceptions=(OSError,)
    )
    with pytest.raises(KeyError):
        dataset[1]
    assert dataset.num_skipped == 0
    with pytest.raises(ValueError, match="max_refetch"):
        SkipBadSamplesDataset(ToyDataset(4), max_refetch=-1)
    with pytest.raises(TypeError, match="exceptions"):
        SkipBadSamplesDataset(ToyDataset(4), exceptions=("OSError",))
    with pytest.raises(ValueError, match="non-empty"):
        SkipBadSamplesDataset(ToyDataset(0))


def test_skips_in_loader_workers_are_counted():
    dataset = SkipBadSamplesDataset(_FlakyDataset(12, bad={0, 7}), max_refetch=5)
    loader = DataLoader(dataset, batch_size=3, num_workers=2, shuffle=False)
    assert sum(len(b["index"]) for b in loader) == 12
    assert dataset.num_skipped >= 2  # counted in the worker processes


def test_undecodable_image_is_skipped_with_its_file_named(tmp_path, caplog):
    _png(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    records = [
        {"file_name": str(tmp_path / name), "height": 6, "width": 5, "image_id": i}
        for i, name in enumerate(["good.png", "bad.png"])
    ]
    mapped = MapDataset(records, DetectionDatasetMapper(False, augmentations=[]))
    with pytest.raises(ValueError, match=r"bad\.png"):
        mapped[1]
    dataset = SkipBadSamplesDataset(mapped, seed=0)
    with caplog.at_level(logging.WARNING, logger="vt_engine"):
        sample = dataset[1]
    assert sample["file_name"].endswith("good.png")
    assert f"sample 1 ({tmp_path / 'bad.png'})" in caplog.text
    assert "cannot decode" in caplog.text


# --- config typos -----------------------------------------------------------------------


def _runner_kwargs(tmp_path):
    return dict(
        model=ToyModel(),
        work_dir=tmp_path,
        train_dataloader=dict(dataset=ToyDataset(8), batch_size=4),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(logger=LoggerHook(progress_bar=False), checkpoint=None),
    )


TYPOS = {
    # where the typo is: (override of the runner arguments, key named, suggestion)
    "runner argument": (dict(trian_dataloader={}), "trian_dataloader", "train_dataloader"),
    "train_cfg": (dict(train_cfg=dict(by_epoch=True, max_epoch=1)), "max_epoch", "max_epochs"),
    "iter train_cfg": (
        dict(train_cfg=dict(by_epoch=False, max_iters=2, val_intervall=1)),
        "val_intervall",
        "val_interval",
    ),
    "val_cfg": (dict(val_cfg=dict(fp61=True)), "fp61", "fp16"),
    "env_cfg": (dict(env_cfg=dict(sync_nb="torch")), "sync_nb", "sync_bn"),
    "randomness": (dict(randomness=dict(seeds=1)), "seeds", "seed"),
    "dataloader": (
        dict(train_dataloader=dict(dataset=ToyDataset(8), batch_sizes=4)),
        "batch_sizes",
        "batch_size",
    ),
    "sampler": (
        dict(
            train_dataloader=dict(dataset=ToyDataset(8), batch_size=4, sampler=dict(shufle=False))
        ),
        "shufle",
        "shuffle",
    ),
    "default hook name": (dict(default_hooks=dict(chekpoint=None)), "chekpoint", "checkpoint"),
    "hook argument": (
        dict(custom_hooks=[dict(type="EMAHook", momentun=0.01)]),
        "momentun",
        "momentum",
    ),
    "optimizer argument": (
        dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentun=0.9))),
        "momentun",
        "momentum",
    ),
    "optim wrapper argument": (
        dict(optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_count=2)),
        "accumulative_count",
        "accumulative_counts",
    ),
    "paramwise_cfg": (
        dict(
            optim_wrapper=dict(
                optimizer=dict(type="SGD", lr=0.1, weight_decay=1e-4),
                paramwise_cfg=dict(norm_decay_mul=0.0),
            )
        ),
        "norm_decay_mul",
        "norm_decay_mult",
    ),
    "scheduler argument": (
        dict(param_scheduler=dict(type="LinearLR", start_factr=0.1)),
        "start_factr",
        "start_factor",
    ),
    "visualizer": (dict(visualizer=dict(backend=("local",))), "backend", "backends"),
}


@pytest.mark.parametrize("case", sorted(TYPOS))
def test_config_typo_names_the_key_and_the_closest_valid_one(tmp_path, case):
    override, key, suggestion = TYPOS[case]
    cfg = {**_runner_kwargs(tmp_path), **override}
    with pytest.raises(UnknownKeyError) as info:
        Runner.from_cfg(cfg).train()
    msg = str(info.value)
    assert f"{key!r}" in msg and f"did you mean {suggestion!r}" in msg, msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, TypeError)


def test_config_variables_that_are_not_near_misses_are_ignored(tmp_path):
    cfg = {**_runner_kwargs(tmp_path), "num_classes": 3, "data_root": "x", "_private": 1}
    Runner.from_cfg(cfg).train()


def test_cfg_option_typo_suggests_the_key():
    cfg = Config(optim_wrapper={"optimizer": {"lr": 0.1}})
    with pytest.raises(KeyError, match=r"unknown key 'optimzer'; did you mean 'optimizer'"):
        cfg.merge_from_dotlist(["optim_wrapper.optimzer.lr=0.2"])


def test_build_dataloader_skip_option_is_off_by_default():
    loader = build_dataloader(ToyDataset(4), batch_size=2, seed=0)
    assert not isinstance(loader.dataset, SkipBadSamplesDataset)
    loader = build_dataloader(
        ToyDataset(4), batch_size=2, seed=0, skip_bad_samples=True, max_refetch=2
    )
    assert isinstance(loader.dataset, SkipBadSamplesDataset) and loader.dataset.max_refetch == 2
