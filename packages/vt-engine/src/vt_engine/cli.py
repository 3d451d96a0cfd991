"""Command-line entry points: ``vt-train``, ``vt-test`` (alias ``vt-eval``) and ``vt-visualize``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vt_engine.config import Config
from vt_engine.runner import Runner

__all__ = ["train_main", "test_main", "visualize_main"]

_OVERRIDES_HELP = (
    "override config entries: key=value pairs, dotted keys reach into dicts and lists, values "
    "are Python literals (e.g. train_cfg.max_iters=100 optim_wrapper.optimizer.lr=0.01)"
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work-dir", help="where checkpoints and logs go (overrides the config's work_dir)"
    )
    parser.add_argument(
        "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help=_OVERRIDES_HELP
    )
    parser.add_argument(
        "--launcher",
        choices=["none", "pytorch"],
        default="none",
        help="'pytorch' when started by torchrun for distributed runs (default: none)",
    )


def _load(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dotlist(args.cfg_options)
    if args.work_dir:
        cfg["work_dir"] = args.work_dir
    if "work_dir" not in cfg:
        raise SystemExit("error: the config has no work_dir; pass --work-dir")
    cfg["launcher"] = args.launcher
    return cfg


def train_main(argv: Sequence[str] | None = None) -> int:
    """``vt-train CONFIG [--work-dir DIR] [--resume [CKPT]] [--cfg-options K=V ...]``."""
    parser = argparse.ArgumentParser(
        prog="vt-train",
        description=(
            "Train a model described by a Python config file. The config defines variables "
            "named like the Runner's arguments: model, work_dir, train_dataloader, train_cfg, "
            "optim_wrapper, param_scheduler, val_dataloader, val_evaluator, default_hooks..."
        ),
        epilog="distributed: torchrun --nproc-per-node 2 -m vt_engine.cli train CONFIG --launcher pytorch",
    )
    parser.add_argument("config", help="path of the .py config file")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="resume from CKPT, or without a value from the work dir's last checkpoint",
    )
    _common(parser)
    args = parser.parse_args(argv)
    cfg = _load(args)
    if args.resume:
        cfg["resume"] = args.resume
    Runner.from_cfg(cfg).train()
    return 0


def test_main(argv: Sequence[str] | None = None) -> int:
    """``vt-test CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options K=V ...]``."""
    parser = argparse.ArgumentParser(
        prog="vt-test",
        description=(
            "Evaluate a checkpoint on the test data of a Python config file (test_dataloader "
            "and test_evaluator; falls back to val_dataloader and val_evaluator) and print the metrics."
        ),
    )
    parser.add_argument("config", help="path of the .py config file")
    parser.add_argument(
        "checkpoint", help="checkpoint directory, .safetensors, .pth or detectron2 .pkl file"
    )
    _common(parser)
    args = parser.parse_args(argv)
    cfg = _load(args)
    cfg["load_from"] = args.checkpoint
    cfg["resume"] = False
    runner = Runner.from_cfg(cfg)
    if runner.test_dataloader is not None and runner.test_evaluator is not None:
        metrics = runner.test()
    else:
        metrics = runner.val()
    for key, value in metrics.items():
        print(f"{key}: {value}")
    return 0


def visualize_main(argv: Sequence[str] | None = None) -> int:
    """``vt-visualize CONFIG [--split val] [--num 20] [--output-dir DIR]``."""
    from pathlib import Path

    from torch.utils.data import DataLoader

    from vt_engine.visualization import Visualizer, image_from_tensor, read_image

    parser = argparse.ArgumentParser(
        prog="vt-visualize",
        description=(
            "Draw the ground truth of the first samples of a config's dataset (semantic maps, "
            "panoptic maps, instances with boxes, masks and keypoints) into PNG files, to check "
            "annotations and data pipelines before training. Each sample is a dict whose "
            "'data_samples' entry holds gt_sem_seg / gt_panoptic_seg / gt_instances; the image "
            "is read from its img_path, or taken from the sample's 'inputs' tensor."
        ),
    )
    parser.add_argument("config", help="path of the .py config file")
    parser.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default="val",
        help="which dataloader's dataset (default: val)",
    )
    parser.add_argument(
        "--num", type=int, default=20, help="number of samples to draw (default: 20)"
    )
    parser.add_argument(
        "--output-dir", default="vis_gt", help="where the PNG files go (default: ./vis_gt)"
    )
    parser.add_argument(
        "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help=_OVERRIDES_HELP
    )
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dotlist(args.cfg_options)
    loader = cfg.get(f"{args.split}_dataloader")
    if loader is None:
        raise SystemExit(f"error: the config has no {args.split}_dataloader")
    dataset = loader.dataset if isinstance(loader, DataLoader) else loader["dataset"]
    visualizer = Visualizer(dataset_meta=getattr(dataset, "metainfo", None))
    out_dir = Path(args.output_dir)
    count = min(args.num, len(dataset))
    for i in range(count):
        sample = dataset[i]
        data_sample = sample.get("data_samples") if isinstance(sample, dict) else None
        img_path = getattr(data_sample, "img_path", None)
        if img_path is not None:
            image = read_image(img_path)
        elif isinstance(sample, dict) and "inputs" in sample:
            image = image_from_tensor(sample["inputs"])
        else:
            raise SystemExit(f"error: sample {i} has neither data_samples.img_path nor inputs")
        name = Path(img_path).stem if img_path is not None else f"{args.split}_{i}"
        visualizer.add_datasample(
            name,
            image,
            data_sample,
            draw_gt=True,
            draw_pred=False,
            out_file=out_dir / f"{name}.png",
        )
    print(f"wrote {count} images to {out_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vt_engine.cli {train,test} ...`` (for torchrun, which runs modules)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "test"):
        print(
            "usage: python -m vt_engine.cli {train,test} ...  (see vt-train --help, vt-test --help)"
        )
        return 2
    return train_main(argv[1:]) if argv[0] == "train" else test_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
