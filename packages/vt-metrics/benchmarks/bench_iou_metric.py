"""IoUMetric's confusion-matrix accumulation against the peers' ways of counting.

Data set: ``--images`` label maps of 512 x 1024 with 19 classes (default 100,
Cityscapes-like: rectangular regions, 5 % ignored pixels, predictions right
on 75 % of the pixels). To stay frugal with memory, a pool of 10 distinct
image pairs is cycled.

Peers, each given the same arrays as ours:

- mmseg: ``IoUMetric.intersect_and_union`` per image (masking, then three
  ``torch.histc`` calls) and the sum of the per-image histograms, on int64
  tensors as mmseg's data samples hold them.
- numpy: ``numpy.bincount`` of ``label * C + pred`` over the non-ignored
  pixels, per image, summed.
- torchmetrics: ``MulticlassJaccardIndex`` updated per image (when installed),
  against our whole ``IoUMetric`` (process + evaluate), on 10 maps: its update
  takes over a second per map on a 2-core CPU.

Run: PYTHONPATH=ci python packages/vt-metrics/benchmarks/bench_iou_metric.py [--quick]
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from benchlib import Case, main

import vt_ops
from vt_metrics import IoUMetric

NUM_CLASSES, IGNORE, SHAPE, POOL = 19, 255, (512, 1024), 10


def make_pool(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(POOL):
        label = np.zeros(SHAPE, dtype=np.uint8)
        for _ in range(40):
            y, x = rng.integers(0, SHAPE[0]), rng.integers(0, SHAPE[1])
            h, w = rng.integers(16, SHAPE[0] // 2), rng.integers(16, SHAPE[1] // 2)
            label[y : y + h, x : x + w] = rng.integers(0, NUM_CLASSES)
        pred = label.astype(np.int64)
        noise = rng.random(SHAPE) < 0.25
        pred[noise] = rng.integers(0, NUM_CLASSES, int(noise.sum()))
        label[rng.random(SHAPE) < 0.05] = IGNORE
        pool.append((pred, label))
    return pool


def mmseg_intersect_and_union(pred_label, label, num_classes, ignore_index):
    """mmseg 1.x ``IoUMetric.intersect_and_union``, as written there."""
    mask = label != ignore_index
    pred_label = pred_label[mask]
    label = label[mask]
    intersect = pred_label[pred_label == label]
    area_intersect = torch.histc(
        intersect.float(), bins=num_classes, min=0, max=num_classes - 1
    ).cpu()
    area_pred_label = torch.histc(
        pred_label.float(), bins=num_classes, min=0, max=num_classes - 1
    ).cpu()
    area_label = torch.histc(label.float(), bins=num_classes, min=0, max=num_classes - 1).cpu()
    area_union = area_pred_label + area_label - area_intersect
    return area_intersect, area_union, area_pred_label, area_label


def cases(args):
    images = 10 if args.quick else 100
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    pool = make_pool()
    order = [i % POOL for i in range(images)]
    tensors = [
        (torch.from_numpy(p).to(device), torch.from_numpy(g).long().to(device)) for p, g in pool
    ]

    def ours_torch():
        out = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64, device=device)
        for i in order:
            vt_ops.confusion_matrix(*tensors[i], NUM_CLASSES, IGNORE, out=out)
        return out

    def mmseg():
        results = [mmseg_intersect_and_union(*tensors[i], NUM_CLASSES, IGNORE) for i in order]
        return [sum(r) for r in zip(*results)]

    expected = mmseg()
    got = IoUMetric.intersect_and_union(*tensors[0], NUM_CLASSES, IGNORE)  # sanity: same counts
    ref = mmseg_intersect_and_union(*tensors[0], NUM_CLASSES, IGNORE)
    assert all(torch.equal(a.float(), b) for a, b in zip(got, ref))
    assert torch.equal(ours_torch().diagonal().cpu().float(), expected[0])
    yield Case(
        f"{images} maps 512x1024, int64 tensors", ours_torch, mmseg, "mmseg per-image histc", sync
    )

    if device.type == "cpu":

        def ours_numpy():
            out = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
            for i in order:
                vt_ops.confusion_matrix(*pool[i], NUM_CLASSES, IGNORE, out=out)
            return out

        def numpy_bincount():
            out = np.zeros(NUM_CLASSES * NUM_CLASSES, dtype=np.int64)
            for i in order:
                pred, label = pool[i]
                keep = label != IGNORE
                out += np.bincount(
                    label[keep].astype(np.int64) * NUM_CLASSES + pred[keep],
                    minlength=NUM_CLASSES * NUM_CLASSES,
                )
            return out.reshape(NUM_CLASSES, NUM_CLASSES)

        assert np.array_equal(ours_numpy(), numpy_bincount())
        yield Case(
            f"{images} maps, numpy int64 pred / uint8 label",
            ours_numpy,
            numpy_bincount,
            "numpy.bincount",
        )

    try:
        from torchmetrics.classification import MulticlassJaccardIndex
    except ImportError:
        print("  torchmetrics not installed: skipping the IoUMetric vs torchmetrics case")
        return

    order = order[:10]
    samples = [
        {"pred_sem_seg": {"data": p[None]}, "gt_sem_seg": {"data": g[None]}} for p, g in tensors
    ]

    def ours_metric():
        metric = IoUMetric()
        metric.dataset_meta = {"classes": [str(c) for c in range(NUM_CLASSES)]}
        for i in order:
            metric.process({}, [samples[i]])
        with contextlib.redirect_stdout(io.StringIO()):  # the per-class table
            return metric.evaluate(len(order))

    def torchmetrics_jaccard():
        metric = MulticlassJaccardIndex(NUM_CLASSES, ignore_index=IGNORE, average=None).to(device)
        for i in order:
            metric.update(*tensors[i])
        return metric.compute()

    iou = torchmetrics_jaccard()
    assert abs(ours_metric()["mIoU"] - round(float(iou.mean()) * 100, 2)) < 1e-9
    yield Case(
        f"IoUMetric, {len(order)} maps", ours_metric, torchmetrics_jaccard, "torchmetrics", sync
    )


if __name__ == "__main__":
    main("IoUMetric: confusion-matrix accumulation (19 classes, 512x1024)", cases)
