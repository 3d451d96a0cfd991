import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vt_metrics import IoUMetric

torch = pytest.importorskip("torch")
tmf = pytest.importorskip("torchmetrics.functional.classification")

CLASSES = [f"c{i}" for i in range(19)]


def metric(num_classes=19, **kwargs):
    m = IoUMetric(**kwargs)
    m.dataset_meta = {"classes": CLASSES[:num_classes]}
    return m


def samples(pred, label):
    """mmseg's SegDataSample.to_dict() layout, (1, H, W) tensors."""
    return [
        {
            "pred_sem_seg": {"data": torch.from_numpy(p)[None]},
            "gt_sem_seg": {"data": torch.from_numpy(g)[None]},
        }
        for p, g in zip(pred, label)
    ]


def areas(m, pred, label):
    m.process({}, samples(pred, label))
    matrix = m.results[0]
    intersect = np.diag(matrix)
    return intersect, matrix.sum(0) + matrix.sum(1) - intersect, matrix.sum(0), matrix.sum(1)


def oracle(pred, label, beta=1.0):
    """torchmetrics per-class scores over the whole data set (dataset-level)."""
    p, t = torch.from_numpy(pred).long(), torch.from_numpy(label).long()
    kw = {"num_classes": 19, "ignore_index": 255, "average": None}
    return {
        "IoU": tmf.multiclass_jaccard_index(p, t, **kw).numpy(),
        "Acc": tmf.multiclass_recall(p, t, **kw).numpy(),
        "Dice": tmf.multiclass_f1_score(p, t, **kw).numpy(),
        "Fscore": tmf.multiclass_fbeta_score(p, t, beta=float(beta), **kw).numpy(),
        "Precision": tmf.multiclass_precision(p, t, **kw).numpy(),
        "Recall": tmf.multiclass_recall(p, t, **kw).numpy(),
        "aAcc": tmf.multiclass_accuracy(
            p, t, num_classes=19, ignore_index=255, average="micro"
        ).item(),
    }


def random_pair(seed, shape):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 19, shape).astype(np.uint8)
    label[rng.random(shape) < 0.1] = 255
    return rng.integers(0, 19, shape), label


@pytest.mark.parametrize("beta", [1, 2, 0.5])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_matches_torchmetrics(make_label_pair, kind, beta):
    pred, label = (
        random_pair(0, (4, 40, 50)) if kind == "random" else make_label_pair(0, (4, 40, 50))
    )
    label[0, :, :] = np.where(label[0] == 3, 4, label[0])  # some classes absent or rare
    pred[pred == 7] = 8  # class 7 never predicted
    m = metric(iou_metrics=["mIoU", "mDice", "mFscore"], beta=beta)
    ret = m.total_area_to_metrics(*areas(m, pred, label), ["mIoU", "mDice", "mFscore"], None, beta)
    ref = oracle(pred, label, beta)
    assert set(ret) == {"aAcc", "IoU", "Acc", "Dice", "Fscore", "Precision", "Recall"}
    np.testing.assert_allclose(ret["aAcc"], ref["aAcc"], rtol=1e-6)
    for key in ("IoU", "Acc", "Dice", "Fscore", "Precision", "Recall"):
        defined = ~np.isnan(ret[key])  # torchmetrics reports 0 where mmseg has 0/0
        np.testing.assert_allclose(ret[key][defined], ref[key][defined], rtol=1e-5, err_msg=key)
    assert np.isnan(ret["Precision"][7]) and ret["IoU"][7] >= 0


def test_compute_metrics_reports_rounded_percentages_as_mmseg(make_label_pair):
    pred, label = make_label_pair(1, (3, 32, 48))
    m = metric(iou_metrics=["mIoU", "mDice", "mFscore"])
    m.process({}, samples(pred, label))
    ref = oracle(pred, label)
    out = m.evaluate(len(pred))
    assert list(out) == ["aAcc", "mIoU", "mAcc", "mDice", "mFscore", "mPrecision", "mRecall"]
    assert out["aAcc"] == round(ref["aAcc"] * 100, 2)
    keep = label != 255
    in_gt = np.bincount(label[keep], minlength=19) > 0
    in_union = in_gt | (np.bincount(pred[keep], minlength=19) > 0)
    assert not in_gt.all()  # absent classes are skipped by the means (NaN), not counted as 0
    assert out["mIoU"] == round(float(np.mean(ref["IoU"][in_union])) * 100, 2)
    assert out["mRecall"] == out["mAcc"] == round(float(np.mean(ref["Recall"][in_gt])) * 100, 2)
    assert m.results == []


def test_dataset_level_not_per_image_average():
    # Image 1: class 0 everywhere, right. Image 2: 1 pixel of class 1, wrong.
    pred = [np.zeros((10, 10), np.int64), np.zeros((1, 1), np.int64)]
    label = [np.zeros((10, 10), np.uint8), np.ones((1, 1), np.uint8)]
    m = metric(num_classes=2)
    for p, g in zip(pred, label):
        m.process({}, [{"pred_sem_seg": p, "gt_sem_seg": g}])  # plain numpy fields
    ret = m.evaluate()
    assert ret["aAcc"] == round(100 / 101 * 100, 2)  # per image it would be 50 %
    assert ret["mIoU"] == round((100 / 101 + 0) / 2 * 100, 2)


def test_absent_classes_are_nan_unless_nan_to_num():
    pred = np.array([[0, 0, 1, 1]])
    label = np.array([[0, 0, 0, 1]])
    ret = IoUMetric.total_area_to_metrics(
        *IoUMetric.intersect_and_union(pred, label, 3, 255), ["mIoU", "mFscore"]
    )
    assert np.isnan(ret["IoU"][2]) and np.isnan(ret["Acc"][2]) and np.isnan(ret["Precision"][2])
    np.testing.assert_allclose(ret["IoU"][:2], [2 / 3, 1 / 2])
    ret = IoUMetric.total_area_to_metrics(
        *IoUMetric.intersect_and_union(pred, label, 3, 255), ["mIoU", "mFscore"], nan_to_num=-1
    )
    assert ret["IoU"][2] == -1 and ret["Fscore"][2] == -1 and ret["Acc"][2] == -1
    m = metric(num_classes=3, nan_to_num=0)
    m.process({}, [{"pred_sem_seg": {"data": pred}, "gt_sem_seg": {"data": label}}])
    assert m.evaluate()["mIoU"] == round((2 / 3 + 1 / 2 + 0) / 3 * 100, 2)


def test_intersect_and_union_equals_mmseg_histc_method(make_label_pair):
    pred, label = make_label_pair(2, (60, 70))
    p, g = torch.from_numpy(pred), torch.from_numpy(label).long()
    mask = g != 255
    pm, gm = p[mask], g[mask]
    inter = pm[pm == gm]
    hist = lambda x: torch.histc(x.float(), bins=19, min=0, max=18)  # noqa: E731
    expected = (hist(inter), hist(pm) + hist(gm) - hist(inter), hist(pm), hist(gm))
    ours = IoUMetric.intersect_and_union(p, g, 19, 255)
    for a, b in zip(ours, expected):
        assert isinstance(a, torch.Tensor) and a.dtype == torch.int64
        torch.testing.assert_close(a.float(), b)
    for a, b in zip(IoUMetric.intersect_and_union(pred, label, 19, 255), expected):
        np.testing.assert_array_equal(a, b.numpy())


def test_batches_accumulate_and_tensor_numpy_inputs_agree(make_label_pair):
    pred, label = make_label_pair(3, (6, 24, 30))
    whole = metric()
    whole.process({}, samples(pred, label))
    split = metric()
    split.process({}, samples(pred[:2], label[:2]))
    split.process(
        {},
        [
            {"pred_sem_seg": {"data": p[None]}, "gt_sem_seg": {"data": g}}
            for p, g in zip(pred[2:], label[2:])
        ],
    )
    np.testing.assert_array_equal(whole.results[0], split.results[0])
    mixed = metric()  # torch prediction, numpy ground truth
    mixed.process(
        {}, [{"pred_sem_seg": torch.from_numpy(p), "gt_sem_seg": g} for p, g in zip(pred, label)]
    )
    np.testing.assert_array_equal(whole.results[0], mixed.results[0])
    assert whole.evaluate() == split.evaluate() == mixed.evaluate()


def test_prefix_ignore_index_and_errors(make_label_pair):
    pred, label = make_label_pair(4, (2, 16, 16))
    label[label == 255] = 0
    m = metric(prefix="val", ignore_index=0)
    m.process({}, samples(pred, label))
    matrix = m.results[0]
    assert matrix[0].sum() == 0  # label 0 ignored
    assert set(m.evaluate()) == {"val/aAcc", "val/mIoU", "val/mAcc"}
    with pytest.raises(ValueError, match="iou_metrics"):
        IoUMetric(iou_metrics=["mAP"])
    with pytest.raises(ValueError, match="collect_device"):
        IoUMetric(collect_device="tpu")
    with pytest.raises(ValueError, match="dataset_meta"):
        IoUMetric().process({}, samples(pred, label))
    with pytest.raises(ValueError, match=r"label: .* outside \[0, 5\)"):
        metric(num_classes=5).process({}, samples(pred, label))
    with pytest.raises(KeyError, match="gt_sem_seg"):
        metric().process({}, [{"pred_sem_seg": pred[0]}])
    with pytest.warns(UserWarning, match="empty"):
        assert np.isnan(metric().evaluate()["mIoU"])


def test_output_dir_and_format_only(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    pred = np.array([[0, 1], [2, 149]])
    m = metric(output_dir=str(tmp_path), format_only=True)
    m.process(
        {},
        [
            {
                "pred_sem_seg": {"data": pred},
                "img_path": "/data/a/img_001.jpg",
                "reduce_zero_label": True,
            }
        ],
    )
    m.process({}, [{"pred_sem_seg": {"data": pred}, "img_path": "img_002.png"}])
    assert m.evaluate() == {}
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "img_001.png")), pred + 1)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "img_002.png")), pred)
    with pytest.raises(ValueError, match="output_dir"):
        IoUMetric(format_only=True)


NO_TORCH = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any import of torch now fails
    import numpy as np
    import vt_metrics, vt_ops
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, (3, 20, 30)).astype(np.uint8)
    label[:, :2] = 255
    pred = np.where(rng.random(label.shape) < 0.7, label, rng.integers(0, 5, label.shape))
    pred[label == 255] = 0
    m = vt_metrics.IoUMetric(iou_metrics=["mIoU", "mDice"])
    m.dataset_meta = {"classes": list("abcde")}
    m.process({}, [{"pred_sem_seg": {"data": p}, "gt_sem_seg": {"data": g}} for p, g in zip(pred, label)])
    out = m.evaluate(3)
    keep = label != 255
    inter = np.bincount(label[keep][pred[keep] == label[keep]], minlength=5)
    area_l = np.bincount(label[keep], minlength=5)
    area_p = np.bincount(pred[keep], minlength=5)
    assert out["mIoU"] == round(float(np.mean(inter / (area_l + area_p - inter))) * 100, 2), out
    assert out["aAcc"] == round(inter.sum() / area_l.sum() * 100, 2), out
    d = vt_metrics.DepthMetric()
    gt = rng.random((8, 8)) + 0.5
    d.process({}, [{"pred_depth_map": {"data": gt * 1.1}, "gt_depth_map": {"data": gt}}])
    assert abs(d.evaluate()["abs_rel"] - 0.1) < 1e-12
    assert sys.modules["torch"] is None
    print("ok")
    """
)


def test_runs_without_torch():
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
