import numpy as np
import pytest

from vt_metrics import DepthMetric


def reference(gt, pred):
    """The formulas of mmseg's DepthMetric._calc_all_metrics, written out in numpy."""
    ratio = np.maximum(gt / pred, pred / gt)
    d = np.log(pred) - np.log(gt)
    return {
        "d1": np.mean(ratio < 1.25),
        "d2": np.mean(ratio < 1.25**2),
        "d3": np.mean(ratio < 1.25**3),
        "abs_rel": np.mean(np.abs(pred - gt) / gt),
        "sq_rel": np.mean((pred - gt) ** 2 / gt),
        "rmse": np.sqrt(np.mean((pred - gt) ** 2)),
        "rmse_log": np.sqrt(np.mean(d**2)),
        "log10": np.mean(np.abs(np.log10(pred) - np.log10(gt))),
        "silog": np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2),
    }


def depth_pair(seed, shape=(480, 640)):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.1, 12.0, shape)
    gt[rng.random(shape) < 0.1] = 0  # missing depth
    pred = np.clip(gt * rng.lognormal(0, 0.2, shape), 0.05, None)
    return gt, pred


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"min_depth_eval": 1e-3, "max_depth_eval": 10.0, "crop_type": "nyu_crop"}],
)
def test_matches_numpy_reference_averaged_over_images(kwargs):
    m = DepthMetric(**kwargs)
    per_image = []
    for seed in range(3):
        gt, pred = depth_pair(seed)
        m.process(
            {},
            [
                {
                    "pred_depth_map": {"data": pred[None].astype(np.float32)},
                    "gt_depth_map": {"data": gt[None]},
                }
            ],
        )
        valid = (gt > kwargs.get("min_depth_eval", 0.0)) & (
            gt < kwargs.get("max_depth_eval", np.inf)
        )
        if kwargs.get("crop_type"):
            crop = np.zeros_like(valid)
            crop[45:471, 41:601] = True
            valid &= crop
        per_image.append(reference(gt[valid], pred.astype(np.float32).astype(np.float64)[valid]))
    out = m.evaluate(3)
    assert list(out) == list(DepthMetric.METRICS)
    for key in DepthMetric.METRICS:
        np.testing.assert_allclose(
            out[key], np.mean([r[key] for r in per_image]), rtol=1e-12, err_msg=key
        )


def test_torch_inputs_subset_and_prefix():
    torch = pytest.importorskip("torch")
    gt, pred = depth_pair(5, (30, 40))
    m = DepthMetric(depth_metrics=["rmse", "d1"], prefix="depth")
    m.process(
        {},
        [
            {
                "pred_depth_map": {"data": torch.from_numpy(pred)[None]},
                "gt_depth_map": {"data": torch.from_numpy(gt)[None]},
            }
        ],
    )
    ref = reference(gt[gt > 0], pred[gt > 0])
    out = m.evaluate()
    assert list(out) == ["depth/rmse", "depth/d1"]
    np.testing.assert_allclose(out["depth/rmse"], ref["rmse"], rtol=1e-12)


def test_output_dir_writes_scaled_uint16_png(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    pred = np.array([[0.5, 1.0], [2.25, 10.0]], dtype=np.float32)
    m = DepthMetric(output_dir=str(tmp_path), format_only=True, depth_scale_factor=1000)
    m.process({}, [{"pred_depth_map": {"data": pred}, "img_path": "x/rgb_0001.jpg"}])
    assert m.evaluate() == {}
    np.testing.assert_array_equal(
        np.array(Image.open(tmp_path / "rgb_0001.png")), [[500, 1000], [2250, 10000]]
    )


def test_errors_and_empty_images():
    with pytest.raises(ValueError, match="depth_metrics"):
        DepthMetric(depth_metrics=["mae"])
    with pytest.raises(ValueError, match="crop_type"):
        DepthMetric(crop_type="kitti")
    m = DepthMetric()
    with pytest.raises(ValueError, match="shape"):
        m.process({}, [{"pred_depth_map": np.ones((2, 3)), "gt_depth_map": np.ones((3, 2))}])
    m.process({}, [{"pred_depth_map": np.ones((2, 2)), "gt_depth_map": np.zeros((2, 2))}])
    assert np.isnan(m.evaluate()["rmse"])  # no valid pixel: NaN, as mmseg
