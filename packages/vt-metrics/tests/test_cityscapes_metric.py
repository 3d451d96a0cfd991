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
