import contextlib
import copy
import io
import sys
from pathlib import Path

import numpy as np
import pytest

# Helper modules of the tests (metrics_dist_worker.py) must be importable by name,
# also in the processes the distributed tests spawn.
sys.path.insert(0, str(Path(__file__).parent))


def structured_label_pair(seed: int, shape, num_classes: int = 19, ignore_index: int = 255):
    """A ground-truth map of rectangular regions with some ignored pixels, and a
    prediction that agrees with it on most pixels (int64 pred, uint8 label)."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, dtype=np.int64)
    for img in label.reshape(-1, shape[-2], shape[-1]):
        for _ in range(10):
            y, x = rng.integers(0, shape[-2]), rng.integers(0, shape[-1])
            h, w = rng.integers(1, shape[-2] + 1), rng.integers(1, shape[-1] + 1)
            img[y : y + h, x : x + w] = rng.integers(0, num_classes)
    pred = label.copy()
    noise = rng.random(shape) < 0.25
    pred[noise] = rng.integers(0, num_classes, int(noise.sum()))
    label[rng.random(shape) < 0.05] = ignore_index
    return pred, label.astype(np.uint8)


@pytest.fixture
def make_label_pair():
    return structured_label_pair


def _polygon(rng, x, y, w, h, n=None):
    """A random star-shaped polygon inside the box (x, y, w, h), flattened."""
    n = n or int(rng.integers(3, 12))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.4, 1.0, n)
    px = x + w / 2 + np.cos(t) * r * w / 2
    py = y + h / 2 + np.sin(t) * r * h / 2
    return np.stack([px, py], 1).reshape(-1).round(2).tolist()


def make_coco(
    seed: int,
    *,
    n_images: int = 40,
    n_cats: int = 6,
    segm: bool = False,
    keypoints: bool = False,
    max_gts: int = 8,
    max_dets: int = 25,
    crowd_p: float = 0.1,
    zero_id: bool = False,
):
    """A random COCO ground truth and results exercising pycocotools' corner cases.

    Areas span small / medium / large, some ground truths are crowds, scores are
    quantised (ties), some images have nothing, one category has no ground truth and
    one has no detection, detections include pure false positives.
    """
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    cats = [{"id": int(c), "name": f"c{c}"} for c in rng.choice(100, n_cats, replace=False) + 1]
    cat_ids = [c["id"] for c in cats]
    no_gt_cat, no_dt_cat = cat_ids[0], cat_ids[1]
    images, anns, dets = [], [], []
    ann_id = 0 if zero_id else 1
    img_ids = rng.choice(10 * n_images, n_images, replace=False) + 1
    for img_id in img_ids.tolist():
        hgt, wid = int(rng.integers(80, 400)), int(rng.integers(80, 400))
        images.append({"id": img_id, "height": hgt, "width": wid})
        n_gt = int(rng.integers(0, max_gts + 1)) if rng.random() > 0.1 else 0
        img_gts, polys = [], []
        for _ in range(n_gt):
            bw, bh = np.exp(rng.uniform(np.log(3), np.log(min(hgt, wid) - 1), 2))
            x, y = rng.uniform(0, wid - bw), rng.uniform(0, hgt - bh)
            cat = int(rng.choice(cat_ids[1:]))
            crowd = int(rng.random() < crowd_p)
            ann = {
                "id": ann_id,
                "image_id": img_id,
                "category_id": cat,
                "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
                "area": float(bw * bh * rng.uniform(0.5, 1.0)),
                "iscrowd": crowd,
            }
            ann_id += 1
            if segm:
                kind = rng.integers(0, 3)
                poly = [_polygon(rng, x, y, bw, bh) for _ in range(int(rng.integers(1, 3)))]
                rle = mask_utils.merge(mask_utils.frPyObjects(poly, hgt, wid))
                if crowd or kind == 1:  # uncompressed RLE, as COCO stores crowds
                    m = mask_utils.decode(rle)
                    flat = np.asfortranarray(m).reshape(-1, order="F")
                    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
                    counts = np.diff(np.concatenate([[0], change])).tolist()
                    ann["segmentation"] = {"size": [hgt, wid], "counts": counts}
                elif kind == 2:
                    ann["segmentation"] = {"size": [hgt, wid], "counts": rle["counts"].decode()}
                else:
                    ann["segmentation"] = poly
                ann["area"] = float(mask_utils.area(rle))
            if keypoints:
                kp = np.zeros((17, 3))
                vis = rng.random(17) < rng.uniform(0, 1)
                kp[:, 0] = rng.uniform(x, x + bw, 17)
                kp[:, 1] = rng.uniform(y, y + bh, 17)
                kp[:, 2] = np.where(vis, 2, 0)
                kp[~vis, :2] = 0
                ann["keypoints"] = kp.reshape(-1).round(2).tolist()
                ann["num_keypoints"] = int(vis.sum())
            anns.append(ann)
            img_gts.append(ann)
            polys.append(poly if segm else None)
        n_dt = int(rng.integers(0, max_dets + 1)) if rng.random() > 0.1 else 0
        for _ in range(n_dt):
            source = None
            if img_gts and rng.random() < 0.7:
                source = int(rng.integers(len(img_gts)))
                g = img_gts[source]
                x, y, bw, bh = g["bbox"]
                j = rng.normal(0, 0.06, 4) * [bw, bh, bw, bh]
                x, y, bw, bh = x + j[0], y + j[1], max(bw + j[2], 1), max(bh + j[3], 1)
                cat = g["category_id"] if rng.random() < 0.9 else int(rng.choice(cat_ids))
            else:
                bw, bh = np.exp(rng.uniform(np.log(3), np.log(min(hgt, wid) - 1), 2))
                x, y = rng.uniform(0, wid - bw), rng.uniform(0, hgt - bh)
                cat = int(rng.choice(cat_ids))
            if cat == no_dt_cat:
                cat = no_gt_cat
            det = {
                "image_id": img_id,
                "category_id": cat,
                "score": float(np.round(rng.random(), 1)),
            }
            if not segm or seed % 2:  # segm results with boxes take the box area (loadRes)
                det["bbox"] = [float(x), float(y), float(bw), float(bh)]
            if segm:
                if source is not None and rng.random() < 0.7:
                    poly = [
                        (np.array(p) + rng.normal(0, 1.0, len(p))).tolist() for p in polys[source]
                    ]
                else:
                    poly = [_polygon(rng, x, y, bw, bh)]
                rle = mask_utils.merge(mask_utils.frPyObjects(poly, hgt, wid))
                det["segmentation"] = {"size": [hgt, wid], "counts": rle["counts"].decode()}
            if keypoints:
                if img_gts and "keypoints" in img_gts[0] and rng.random() < 0.7:
                    g = np.array(img_gts[int(rng.integers(len(img_gts)))]["keypoints"]).reshape(
                        17, 3
                    )
                    kp = g.copy()
                    kp[:, :2] += rng.normal(0, 1, (17, 2))
                else:
                    kp = np.stack(
                        [rng.uniform(0, wid, 17), rng.uniform(0, hgt, 17), np.ones(17)], 1
                    )
                det["keypoints"] = kp.reshape(-1).round(2).tolist()
            dets.append(det)
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, dets


def pycocotools_eval(gt, dets, iou_type, **params):
    """Run pycocotools on deep copies (it mutates its inputs), silently."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        for key, value in params.items():
            setattr(ev.params, key, value)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.fixture
def coco_data():
    """The make_coco factory (conftest is not importable in importlib mode)."""
    return make_coco


@pytest.fixture
def reference():
    """pycocotools_eval, the oracle."""
    return pycocotools_eval
