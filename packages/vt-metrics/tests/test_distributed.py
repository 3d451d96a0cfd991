"""BaseMetric.evaluate across two torch.distributed (gloo) processes."""

import os
import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from metrics_dist_worker import _data, _worker  # noqa: E402

from vt_metrics import DepthMetric, IoUMetric  # noqa: E402


@pytest.mark.parametrize("collect_device", ["cpu", "gpu"])
def test_two_ranks_equal_one_process(collect_device):
    import torch.multiprocessing as mp

    pred, label, gt, depth = _data()
    iou = IoUMetric(iou_metrics=["mIoU", "mFscore"])
    iou.dataset_meta = {"classes": list("abcd")}
    iou.process({}, [{"pred_sem_seg": p, "gt_sem_seg": g} for p, g in zip(pred, label)])
    d = DepthMetric()
    d.process({}, [{"pred_depth_map": p, "gt_depth_map": g} for p, g in zip(depth, gt)])
    expected = (iou.evaluate(), d.evaluate())

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        procs = [
            ctx.Process(target=_worker, args=(r, 2, init_file, collect_device, queue))
            for r in range(2)
        ]
        for p in procs:
            p.start()
        outs = sorted(queue.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
    for _, iou_out, depth_out, order_out in outs:  # every rank receives the metrics
        assert order_out == {"order": list(range(len(pred)))}
        assert iou_out == expected[0]
        assert depth_out.keys() == expected[1].keys()
        np.testing.assert_allclose(list(depth_out.values()), list(expected[1].values()), rtol=1e-12)
