"""Worker of the two-rank test (test_distributed.py): a module of its own so that the
processes it spawns can import it by name (conftest puts this folder on sys.path)."""

import numpy as np
import torch
import torch.distributed as dist

from vt_metrics import BaseMetric, DepthMetric, IoUMetric


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
