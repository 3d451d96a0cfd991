import numpy as np
import pytest

from vt_metrics import CityscapesMetric

Image = pytest.importorskip("PIL.Image")

# Official label ids of the 19 train ids (cityscapesScripts labels.py).
TRAIN_TO_ID = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
AVG_PERSON, AVG_RIDER, AVG_CAR = 3462.4756337644, 3930.4788056518, 12794.0202738185

# A 3 x 4 image. Ground-truth label ids, instance ids (> 1000: label_id * 1000 + k)
# and predicted train ids (road 0, sidewalk 1, building 2, person 11, rider 12, car 13).
GT_IDS = np.array([[7, 7, 26, 26], [24, 24, 0, 0], [25, 25, 25, 11]], dtype=np.uint8)
INSTANCES = np.array(
    [[7, 7, 26000, 26001], [24000, 24000, 0, 0], [25000, 25000, 25000, 11]], dtype=np.uint16
)
PRED_TRAIN = np.array([[0, 1, 13, 13], [11, 13, 0, 255], [11, 12, 2, 2]])

# Derived by hand from the confusion matrix (rows: ground truth, columns: prediction):
# 7->7, 7->8, 26->26 x2, 24->24, 24->26, 0->7, 0->0, 25->24, 25->25, 25->11, 11->11.
# False positives only count rows of evaluated classes (not id 0).
CLASS_IOU = {
    "road": 1 / 2,
    "sidewalk": 0 / 1,
    "building": 1 / 2,
    "person": 1 / 3,
    "rider": 1 / 3,
    "car": 2 / 3,
}
CATEGORY_IOU = {"flat": 2 / 2, "construction": 1 / 2, "human": 3 / 5, "vehicle": 2 / 3}
# Instances: car 26000 and 26001 (1 px, right), person 24000 (2 px, 1 right),
# rider 25000 (3 px, 1 right, 2 in the human category); weight = mean size / size.
W_PERSON, W_RIDER, W_CAR = AVG_PERSON / 2, AVG_RIDER / 3, AVG_CAR / 1
CLASS_IIOU = {
    "person": W_PERSON / (2 * W_PERSON + 1),  # fp: the rider pixel predicted person
    "rider": W_RIDER / (3 * W_RIDER + 0),
    "car": 2 * W_CAR / (2 * W_CAR + 1),  # fp: the person pixel predicted car
}
CATEGORY_IIOU = {
    "human": (W_PERSON + 2 * W_RIDER) / ((W_PERSON + 2 * W_RIDER) + 0 + (W_PERSON + W_RIDER)),
    "vehicle": 2 * W_CAR / (2 * W_CAR + 1),
}


def mean(d):
    return sum(d.values()) / len(d)


def write_gt(tmp_path, stem="aachen_000000_000019"):
    Image.fromarray(GT_IDS).save(tmp_path / f"{stem}_gtFine_labelIds.png")
    Image.fromarray(INSTANCES).save(tmp_path / f"{stem}_gtFine_instanceIds.png")
    return str(tmp_path / f"{stem}_gtFine_labelTrainIds.png")  # what mmseg's sample holds


def test_hand_derived_iou_and_iiou_from_official_files(tmp_path):
    m = CityscapesMetric(output_dir=str(tmp_path / "out"))
    sample = {"pred_sem_seg": {"data": PRED_TRAIN[None]}, "seg_map_path": write_gt(tmp_path)}
    m.process({}, [sample])
    out = m.evaluate(1)
    assert out == pytest.approx(
        {
            "averageScoreClasses": mean(CLASS_IOU),
            "averageScoreCategories": mean(CATEGORY_IOU),
            "averageScoreInstClasses": mean(CLASS_IIOU),
            "averageScoreInstCategories": mean(CATEGORY_IIOU),
        },
        rel=1e-12,
    )
    assert not (tmp_path / "out").exists()  # keep_results=False: no files


def test_statistics_accumulate_over_images(tmp_path):
    m = CityscapesMetric(output_dir=str(tmp_path / "out"))
    path = write_gt(tmp_path)
    m.process({}, [{"pred_sem_seg": PRED_TRAIN, "seg_map_path": path}] * 2)
    # Twice the same image: every count and weighted count doubles.
    double_iiou = {
        "person": 2 * W_PERSON / (4 * W_PERSON + 2),
        "rider": 1 / 3,
        "car": 4 * W_CAR / (4 * W_CAR + 2),
    }
    out = m.evaluate(2)
    assert out["averageScoreClasses"] == pytest.approx(mean(CLASS_IOU), rel=1e-12)
    assert out["averageScoreInstClasses"] == pytest.approx(mean(double_iiou), rel=1e-12)


def test_train_id_ground_truth_without_instances():
    torch = pytest.importorskip("torch")
    gt_train = np.full(GT_IDS.shape, 255)
    for train_id, label_id in enumerate(TRAIN_TO_ID):
        gt_train[label_id == GT_IDS] = train_id
    m = CityscapesMetric(output_dir="unused", prefix="cs")
    m.process(
        {},
        [
            {
                "pred_sem_seg": {"data": torch.from_numpy(PRED_TRAIN)[None]},
                "gt_sem_seg": {"data": torch.from_numpy(gt_train)[None]},
            }
        ],
    )
    out = m.evaluate()
    assert set(out) == {
        "cs/averageScoreClasses",
        "cs/averageScoreCategories",
    }  # no instances: no iIoU
    assert out["cs/averageScoreClasses"] == pytest.approx(mean(CLASS_IOU), rel=1e-12)
    assert out["cs/averageScoreCategories"] == pytest.approx(mean(CATEGORY_IOU), rel=1e-12)


def test_format_only_writes_label_id_pngs(tmp_path):
    m = CityscapesMetric(output_dir=str(tmp_path), format_only=True, keep_results=True)
    train_ids = np.array([list(range(10)), [*range(10, 19), 255]])
    m.process(
        {},
        [
            {
                "pred_sem_seg": {"data": train_ids[None]},
                "img_path": "test/berlin/berlin_000000_000019_leftImg8bit.png",
            }
        ],
    )
    assert m.evaluate() == {}
    written = np.array(Image.open(tmp_path / "berlin_000000_000019_leftImg8bit.png"))
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(
        written, [TRAIN_TO_ID[:10], [*TRAIN_TO_ID[10:], 0]]
    )  # 255 -> unlabeled


def test_errors():
    with pytest.raises(ValueError, match="keep_results"):
        CityscapesMetric(output_dir="x", format_only=True)
    m = CityscapesMetric(output_dir="x")
    with pytest.raises(ValueError, match=r"pred_sem_seg: train ids .* found \[19\]"):
        m.process({}, [{"pred_sem_seg": np.array([[19, 0]]), "gt_sem_seg": np.array([[0, 0]])}])
    with pytest.raises(KeyError, match="format_only"):
        m.process({}, [{"pred_sem_seg": np.array([[1, 0]])}])
    with pytest.raises(ValueError, match="shape"):
        m.process({}, [{"pred_sem_seg": np.array([[1, 0]]), "gt_sem_seg": np.array([[1, 0, 0]])}])


# The pieces of the Cityscapes definitions the slow reference below needs.
IGNORED_IDS = {0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30}
CATEGORY_OF = {
    **dict.fromkeys(range(7), "void"),
    **dict.fromkeys([7, 8, 9, 10], "flat"),
    **dict.fromkeys([11, 12, 13, 14, 15, 16], "construction"),
    **dict.fromkeys([17, 18, 19, 20], "object"),
    **dict.fromkeys([21, 22], "nature"),
    23: "sky",
    **dict.fromkeys([24, 25], "human"),
    **dict.fromkeys(range(26, 34), "vehicle"),
}
AVG_SIZE = {
    24: AVG_PERSON,
    25: AVG_RIDER,
    26: AVG_CAR,
    27: 27855.1264367816,
    28: 35732.1511111111,
    31: 67583.7075812274,
    32: 6298.7200839748,
    33: 4672.3249222261,
}
INSTANCE_CATEGORIES = {"human": [24, 25], "vehicle": list(range(26, 34))}


def slow_reference(pairs):
    """The official evaluation, pixel by pixel and instance by instance."""
    conf = np.zeros((34, 34), dtype=np.int64)
    stats = {k: [0.0, 0.0] for k in [*AVG_SIZE, *INSTANCE_CATEGORIES]}
    for pred, gt, inst in pairs:
        for g, p in zip(gt.ravel(), pred.ravel()):
            conf[g, p] += 1
        for inst_id in np.unique(inst[inst > 1000]):
            label_id = int(inst_id // 1000)
            if label_id in IGNORED_IDS:
                continue
            mask = inst == inst_id
            size = mask.sum()
            tp = (pred[mask] == label_id).sum()
            w = AVG_SIZE[label_id] / size
            stats[label_id][0] += tp * w
            stats[label_id][1] += (size - tp) * w
            category = CATEGORY_OF[label_id]
            cat_tp = np.isin(pred[mask], INSTANCE_CATEGORIES[category]).sum()
            stats[category][0] += cat_tp * w
            stats[category][1] += (size - cat_tp) * w
    evaluated = [i for i in range(34) if i not in IGNORED_IDS]

    def score(tp, fn, fp):
        return tp / (tp + fp + fn) if tp + fp + fn else np.nan

    cls, cls_inst, cat, cat_inst = [], [], [], []
    for i in evaluated:
        fp = sum(conf[j, i] for j in evaluated if j != i)
        cls.append(score(conf[i, i], conf[i].sum() - conf[i, i], fp))
        if i in AVG_SIZE:
            cls_inst.append(score(*stats[i], fp))
    for category in dict.fromkeys(CATEGORY_OF.values()):
        ids = [i for i in evaluated if CATEGORY_OF[i] == category]
        if not ids:
            continue
        others = [j for j in evaluated if CATEGORY_OF[j] != category]
        tp = conf[np.ix_(ids, ids)].sum()
        cat.append(score(tp, conf[ids].sum() - tp, conf[np.ix_(others, ids)].sum()))
        if category in INSTANCE_CATEGORIES:
            fp = conf[np.ix_(others, INSTANCE_CATEGORIES[category])].sum()
            cat_inst.append(score(*stats[category], fp))
    return {
        "averageScoreClasses": np.nanmean(cls),
        "averageScoreInstClasses": np.nanmean(cls_inst),
        "averageScoreCategories": np.nanmean(cat),
        "averageScoreInstCategories": np.nanmean(cat_inst),
    }


def test_random_scenes_match_slow_reference(tmp_path):
    rng = np.random.default_rng(0)
    m = CityscapesMetric(output_dir=str(tmp_path / "out"))
    pairs = []
    for k in range(3):
        gt = rng.integers(0, 34, (24, 32)).astype(np.uint8)
        inst = gt.astype(np.uint16)
        for _ in range(12):  # rectangular instances of random instance classes (caravan included)
            label_id = int(rng.choice([24, 25, 26, 27, 28, 29, 31, 32, 33]))
            y, x, h, w = (
                rng.integers(0, 20),
                rng.integers(0, 28),
                rng.integers(1, 8),
                rng.integers(1, 8),
            )
            gt[y : y + h, x : x + w] = label_id
            inst[y : y + h, x : x + w] = label_id * 1000 + rng.integers(0, 3)
        train = np.array(TRAIN_TO_ID)
        truth_train = np.searchsorted(train, gt).clip(0, 18)
        pred_train = np.where(
            rng.random(gt.shape) < 0.6, truth_train, rng.integers(0, 19, gt.shape)
        )
        pred_train[rng.random(gt.shape) < 0.05] = 255
        stem = f"city_{k:06d}_000019"
        Image.fromarray(gt).save(tmp_path / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(inst).save(tmp_path / f"{stem}_gtFine_instanceIds.png")
        m.process(
            {},
            [
                {
                    "pred_sem_seg": pred_train,
                    "seg_map_path": str(tmp_path / f"{stem}_gtFine_labelTrainIds.png"),
                }
            ],
        )
        pred_ids = np.concatenate([train, [0]])[np.where(pred_train == 255, 19, pred_train)]
        pairs.append((pred_ids, gt.astype(np.int64), inst.astype(np.int64)))
    out = m.evaluate(3)
    expected = slow_reference(pairs)
    assert out.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(out[key], expected[key], rtol=1e-12, err_msg=key)
