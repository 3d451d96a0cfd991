"""COCO evaluation, end to end from an in-memory ground-truth dict and result list to the
12 stats: vt_metrics.COCOEvaluator vs pycocotools, faster-coco-eval and hotcoco.

The synthetic set has the size of COCO val2017 evaluations (5 000 images, ~6.4
ground truths and ~39 detections per image, 80 categories; --quick: 500 images).
Masks are compressed RLEs (as detectron2 writes results), so the peers' in-place
conversions of their inputs are no-ops after the warm-up and every round does the
same work. Each tool gets its own copy of the inputs. Before timing, every peer's
stats are compared with ours.

    PYTHONPATH=ci python packages/vt-metrics/benchmarks/bench_coco_eval.py [--quick]
"""

from __future__ import annotations

import contextlib
import copy
import io
import sys
from typing import Any

import numpy as np
from benchlib import Case, main

import vt_ops
from vt_metrics import COCOEvaluator

GTS_PER_IMAGE = 6.4
DETS_PER_IMAGE = 38.8
NUM_CATEGORIES = 80


def make_dataset(num_images: int, segm: bool, seed: int = 0) -> tuple[dict, list]:
    """COCO-like ground truth and results; detections jitter ground truths or are random."""
    rng = np.random.default_rng(seed)
    h = rng.integers(300, 640, num_images)
    w = rng.integers(300, 640, num_images)
    img_ids = np.arange(1, num_images + 1)
    images = [{"id": int(i), "height": int(a), "width": int(b)} for i, a, b in zip(img_ids, h, w)]
    categories = [{"id": int(c), "name": f"c{c}"} for c in range(1, NUM_CATEGORIES + 1)]

    n_gt = rng.poisson(GTS_PER_IMAGE, num_images)
    gt_img = np.repeat(np.arange(num_images), n_gt)
    size = np.exp(rng.uniform(np.log(4), np.log(300), (len(gt_img), 2)))
    size = np.minimum(size, np.stack([w[gt_img], h[gt_img]], 1) - 2)
    xy = rng.uniform(0, 1, (len(gt_img), 2)) * (np.stack([w[gt_img], h[gt_img]], 1) - size)
    gt_box = np.concatenate([xy, size], 1).round(2)
    gt_cat = rng.integers(1, NUM_CATEGORIES + 1, len(gt_img))
    crowd = rng.random(len(gt_img)) < 0.01

    n_dt = rng.poisson(DETS_PER_IMAGE, num_images)
    dt_img = np.repeat(np.arange(num_images), n_dt)
    # ~half of the detections jitter a ground truth of their image, the rest are random
    gt_start = np.concatenate([[0], np.cumsum(n_gt)])
    has_gt = n_gt[dt_img] > 0
    src = gt_start[dt_img] + (rng.random(len(dt_img)) * np.maximum(n_gt[dt_img], 1)).astype(int)
    near = has_gt & (rng.random(len(dt_img)) < 0.5)
    src = np.where(near, src, 0)
    rand_size = np.exp(rng.uniform(np.log(4), np.log(300), (len(dt_img), 2)))
    rand_size = np.minimum(rand_size, np.stack([w[dt_img], h[dt_img]], 1) - 2)
    rand_xy = rng.uniform(0, 1, (len(dt_img), 2)) * (
        np.stack([w[dt_img], h[dt_img]], 1) - rand_size
    )
    jitter = gt_box[src] + rng.normal(0, 0.08, (len(dt_img), 4)) * gt_box[src][:, [2, 3, 2, 3]]
    jitter[:, 2:] = np.maximum(jitter[:, 2:], 1)
    dt_box = np.where(near[:, None], jitter, np.concatenate([rand_xy, rand_size], 1))
    dt_cat = np.where(near, gt_cat[src], rng.integers(1, NUM_CATEGORIES + 1, len(dt_img)))
    score = rng.random(len(dt_img)).round(3)

    gt_area = gt_box[:, 2] * gt_box[:, 3]
    gt_segm = dt_segm = None
    if segm:  # box masks as compressed RLE strings, as written to results json
        gt_segm = _box_rles(gt_box, h[gt_img], w[gt_img])
        dt_segm = _box_rles(dt_box, h[dt_img], w[dt_img])
        gt_area = vt_ops.rle_area(gt_segm).astype(float)
    anns = []
    for i in range(len(gt_img)):
        ann = {
            "id": i + 1,
            "image_id": int(img_ids[gt_img[i]]),
            "category_id": int(gt_cat[i]),
            "bbox": gt_box[i].tolist(),
            "area": float(gt_area[i]),
            "iscrowd": int(crowd[i]),
        }
        if segm:
            ann["segmentation"] = gt_segm[i]
        anns.append(ann)
    dets = []
    for i in range(len(dt_img)):
        det = {
            "image_id": int(img_ids[dt_img[i]]),
            "category_id": int(dt_cat[i]),
            "bbox": dt_box[i].tolist(),
            "score": float(score[i]),
        }
        if segm:
            det["segmentation"] = dt_segm[i]
        dets.append(det)
    return {"images": images, "annotations": anns, "categories": categories}, dets


def _box_rles(boxes: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> list[dict]:
    out = []
    for (hh, ww), idx in _group_by_size(heights, widths):
        rles = vt_ops.rle_from_objects(boxes[idx], int(hh), int(ww))
        out.extend(zip(idx.tolist(), rles))
    out.sort(key=lambda t: t[0])
    return [{"size": r["size"], "counts": r["counts"].decode()} for _, r in out]


def _group_by_size(heights: np.ndarray, widths: np.ndarray):
    key = heights.astype(np.int64) * 100000 + widths
    for k in np.unique(key):
        yield (k // 100000, k % 100000), np.flatnonzero(key == k)


def run_vt(gt: dict, dets: list, iou_type: str) -> np.ndarray:
    return COCOEvaluator(gt, iou_type).evaluate(dets).stats


def run_pycocotools_like(coco_cls: Any, eval_cls: Any, gt: dict, dets: list, iou_type: str):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_cls()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = eval_cls(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def run_hotcoco(gt: dict, dets: list, iou_type: str) -> np.ndarray:
    import hotcoco

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = hotcoco.COCO(gt)
        ev = hotcoco.COCOeval(coco_gt, coco_gt.load_res(dets), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def peers() -> dict[str, Any]:
    found: dict[str, Any] = {}
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    found["pycocotools"] = lambda g, d, t: run_pycocotools_like(COCO, COCOeval, g, d, t)
    try:
        from faster_coco_eval import COCO as FCOCO
        from faster_coco_eval import COCOeval_faster

        found["faster-coco-eval"] = lambda g, d, t: run_pycocotools_like(
            FCOCO, COCOeval_faster, g, d, t
        )
    except ImportError:
        print("faster-coco-eval not installed: skipped", file=sys.stderr)
    try:
        import hotcoco  # noqa: F401

        found["hotcoco"] = run_hotcoco
    except ImportError:
        print("hotcoco not installed: skipped", file=sys.stderr)
    return found


def make_cases(args):
    num_images = 500 if args.quick else 5000
    for iou_type in ("bbox", "segm"):
        gt, dets = make_dataset(num_images, segm=iou_type == "segm")
        name = f"{iou_type}: {num_images} images, {len(gt['annotations'])} gts, {len(dets)} dets"
        ours_gt, ours_dets = copy.deepcopy(gt), copy.deepcopy(dets)
        expected = run_vt(ours_gt, ours_dets, iou_type)
        for peer_name, peer in peers().items():
            peer_gt, peer_dets = copy.deepcopy(gt), copy.deepcopy(dets)
            got = peer(peer_gt, peer_dets, iou_type)
            diff = float(np.abs(got - expected).max())
            print(f"  {name} [{peer_name}]: max |stats diff| = {diff:.2e}", flush=True)
            if peer_name == "pycocotools" and diff > 1e-12:
                raise AssertionError(f"stats differ from pycocotools by {diff}")
            yield Case(
                name,
                ours=lambda g=ours_gt, d=ours_dets, t=iou_type: run_vt(g, d, t),
                peer=lambda p=peer, g=peer_gt, d=peer_dets, t=iou_type: p(g, d, t),
                peer_name=peer_name,
            )


if __name__ == "__main__":
    main("COCO evaluation (ground truth dict + result list -> stats)", make_cases)
