"""BaseMetric.evaluate across two torch.distributed (gloo) processes."""

import os
import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from vt_metrics import BaseMetric, DepthMetric, IoUMetric  # noqa: E402


class OrderMetric(BaseMetric):
    """Returns the sample indices it receives, to check gathering order and truncation."""

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return {"order": list(results)}


def _data(n=7):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (n, 12, 10)).astype(np.uint8)
    pred = np.where(rng.random(label.shape) < 0.6, label, rng.integers(0, 4, label.shape))
    gt = rng.uniform(1, 5, (n, 6, 6))
    return pred, label, gt, gt * rng.uniform(0.8, 1.2, gt.shape)


def _worker(rank, world, init_file, collect_device, queue):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    pred, label, gt, depth = _data()
    iou = IoUMetric(collect_device=collect_device, iou_metrics=["mIoU", "mFscore"])
    iou.dataset_meta = {"classes": list("abcd")}
    d = DepthMetric(collect_device=collect_device)
    for i in range(rank, len(pred), world):  # a distributed sampler's split
        iou.process(
            {},
            [
                {
                    "pred_sem_seg": {"data": torch.from_numpy(pred[i])},
                    "gt_sem_seg": {"data": label[i]},
                }
            ],
        )
        d.process({}, [{"pred_depth_map": {"data": depth[i]}, "gt_depth_map": {"data": gt[i]}}])
    order = OrderMetric(collect_device=collect_device)
    indices = list(range(rank, len(pred), world))
    order.process({}, indices + ([0] if len(indices) < 4 else []))  # a sampler pads to 4 per rank
    queue.put((rank, iou.evaluate(len(pred)), d.evaluate(len(pred)), order.evaluate(len(pred))))
    dist.destroy_process_group()


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
