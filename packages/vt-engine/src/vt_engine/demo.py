"""The main job: train the default Mask R-CNN on the embedded shapes dataset, evaluate
it with COCO metrics, and draw its predictions on validation images.

Run with ``python -m vt_engine.demo`` (or ``nox -s demo``). Nothing is downloaded:
the dataset is generated into a cache directory on first use.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from vt_engine.config import Config
from vt_engine.configs import config_path
from vt_engine.runner import Runner
from vt_engine.visualization import Visualizer, read_image

__all__ = ["main"]

QUALITY_METRIC = "coco/bbox_mAP_50"
QUALITY_TARGET = 0.6
SCORE_THRESHOLD = 0.5  # predictions drawn in the pictures


def _format_table(metrics: dict[str, float]) -> str:
    rows = []
    for task in ("bbox", "segm"):
        names = ["mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l"]
        values = [metrics.get(f"coco/{task}_{n}") for n in names]
        if any(v is not None for v in values):
            # COCO reports -1 for an area range without ground truth
            rows.append((task, *("-" if v is None or v < 0 else f"{100 * v:.1f}" for v in values)))
    header = ("task", "AP", "AP50", "AP75", "APs", "APm", "APl")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).rjust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )


def _draw_predictions(
    runner: Runner, cfg: Config, out_dir: Path, num_images: int, classes: list[str], scale: int = 3
) -> list[Path]:
    """Draw ground truth (left) and predictions (right) of the first validation images,
    enlarged ``scale`` times so that small objects stay readable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = runner.model
    model.eval()
    visualizer = Visualizer(dataset_meta={"classes": classes})
    dataset = cfg["val_dataloader"].dataset
    written = []
    with torch.no_grad():
        for index in range(min(num_images, len(dataset))):
            (pred,) = model(**model.data_preprocessor([dataset[index]]), mode="predict")
            record = dataset.items[index]
            boxes = [a["bbox"] for a in record["annotations"]]
            gt = {
                "bboxes": [
                    [scale * x, scale * y, scale * (x + w), scale * (y + h)] for x, y, w, h in boxes
                ],
                "labels": [a["category_id"] for a in record["annotations"]],
            }
            p = pred["pred_instances"]
            keep = p["scores"] >= SCORE_THRESHOLD
            shown = {
                "bboxes": p["bboxes"][keep] * scale,
                "labels": p["labels"][keep],
                "scores": p["scores"][keep],
            }
            if "masks" in p:
                shown["masks"] = (
                    p["masks"][keep].repeat_interleave(scale, 1).repeat_interleave(scale, 2)
                )
            image = read_image(record["file_name"])
            image = image.repeat(scale, axis=0).repeat(scale, axis=1)
            path = out_dir / f"{Path(record['file_name']).stem}.png"
            sample = {"gt_instances": gt, "pred_instances": shown}
            visualizer.add_datasample(path.stem, image, sample, out_file=path)
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vt_engine.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--config", default=str(config_path("mask_rcnn_shapes")), help="Python config file"
    )
    parser.add_argument(
        "--work-dir", default=None, help="output folder (default: the config's work_dir)"
    )
    parser.add_argument(
        "--max-iters", type=int, default=None, help="training iterations (default: the config's)"
    )
    parser.add_argument("--num-images", type=int, default=8, help="validation images to draw")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    cfg = Config.fromfile(args.config)
    if args.work_dir:
        cfg["work_dir"] = args.work_dir
    if args.max_iters:
        cfg.merge_from_dotlist(
            [f"train_cfg.max_iters={args.max_iters}", f"train_cfg.val_interval={args.max_iters}"]
        )
    runner = Runner.from_cfg(cfg)
    runner.train()
    train_time = time.perf_counter() - start
    metrics = runner.val()
    out_dir = runner.log_dir / "predictions"
    pictures = _draw_predictions(
        runner, cfg, out_dir, args.num_images, list(cfg.get("classes", []))
    )
    total = time.perf_counter() - start

    print("\nCOCO evaluation on the validation split (%):")
    print(_format_table(metrics))
    per_class = {k: v for k, v in metrics.items() if k.endswith("_precision")}
    if per_class:
        print(
            "per-class AP (%): "
            + ", ".join(f"{k.removeprefix('coco/')}={100 * v:.1f}" for k, v in per_class.items())
        )
    device = "GPU" if torch.cuda.is_available() else "CPU"
    print(
        f"\ntrained {runner.iter} iterations on {device} in {train_time / 60:.1f} min; total {total / 60:.1f} min"
    )
    print(f"TensorBoard logs and checkpoints: {runner.log_dir}")
    print(f"pictures of predictions ({len(pictures)}): {out_dir}")
    quality = metrics.get(QUALITY_METRIC, 0.0)
    ok = quality >= QUALITY_TARGET
    print(
        f"quality: box AP50 = {100 * quality:.1f} (target >= {100 * QUALITY_TARGET:.0f}): {'reached' if ok else 'NOT reached'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
