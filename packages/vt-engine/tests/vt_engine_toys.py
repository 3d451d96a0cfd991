"""Small real models, datasets and metrics for the vt-engine tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vt_engine import (
    BaseModel,
    Hook,
    LoggerHook,
    Runner,
    all_gather_object,
    collect_results,
    get_rank,
    get_world_size,
)
from vt_engine.model import unwrap_model


def _stack(x):
    return torch.stack(list(x)) if isinstance(x, (list, tuple)) else x


class ToyModel(BaseModel):
    """A two-layer regression MLP (with optional dropout, to exercise RNG state)."""

    def __init__(self, dropout: float = 0.0, in_features: int = 4, norm: bool = False):
        super().__init__()
        layers = [nn.Linear(in_features, 16)]
        if norm:
            layers.append(nn.BatchNorm1d(16))
        layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, inputs, targets=None, index=None, mode="tensor"):
        out = self.net(_stack(inputs)).squeeze(-1)
        if mode == "loss":
            return {"loss_mse": F.mse_loss(out, _stack(targets))}
        if mode == "predict":
            return [
                {"pred": p.item(), "target": t.item(), "index": int(i)}
                for p, t, i in zip(out, _stack(targets), _stack(index))
            ]
        return out


class ToyDataset(Dataset):
    """Fixed random linear-regression samples."""

    def __init__(self, n: int = 32, in_features: int = 4, seed: int = 0):
        self.metainfo = {"classes": ("value",)}
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, in_features, generator=g)
        w = torch.randn(in_features, generator=g)
        self.y = self.x @ w + 0.1 * torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"inputs": self.x[i], "targets": self.y[i], "index": torch.tensor(i)}


class ToyMetric:
    """mmengine BaseMetric contract: mean squared and absolute error over the data set,
    gathered across ranks in dataset order."""

    def __init__(self, prefix: str = ""):
        self.results = []
        self.prefix = prefix
        self.dataset_meta = None

    def process(self, data_batch, data_samples):
        self.results.extend((s["index"], s["pred"], s["target"]) for s in data_samples)

    def compute_metrics(self, results):
        preds = torch.tensor([p for _, p, _ in results], dtype=torch.float64)
        targets = torch.tensor([t for _, _, t in results], dtype=torch.float64)
        return {
            f"{self.prefix}mse": ((preds - targets) ** 2).mean().item(),
            f"{self.prefix}mae": (preds - targets).abs().mean().item(),
            f"{self.prefix}count": len(results),
        }

    def evaluate(self, size):
        results = collect_results(self.results, size)
        self.results = []
        return self.compute_metrics(results)


class _ParamTrace(Hook):
    """Records the flattened parameters after every training iteration."""

    priority = "LOWEST"

    def __init__(self):
        self.trace = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        params = unwrap_model(runner.model).parameters()
        self.trace.append(torch.cat([p.detach().flatten() for p in params]).clone())


def ddp_train_worker(work_dir: str, out_file: str, global_batch: int) -> None:
    """Train ToyModel for 2 epochs with a global batch of ``global_batch`` split over the
    ranks, validate, and (on rank 0) save every rank's parameter trace and the metrics."""
    torch.manual_seed(123)
    trace = _ParamTrace()
    runner = Runner(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(dataset=ToyDataset(32), batch_size=global_batch // get_world_size()),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=2),
        val_dataloader=dict(dataset=ToyDataset(16, seed=1), batch_size=4, shuffle=False),
        val_evaluator=ToyMetric(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
        default_hooks=dict(logger=LoggerHook(progress_bar=False), checkpoint=None),
        custom_hooks=[trace],
        randomness=dict(seed=5),
    )
    runner.train()
    metrics = {
        k[len("val/") :]: v
        for k, v in runner.message_hub.runtime_info.items()
        if k.startswith("val/")
    }
    traces = all_gather_object(torch.stack(trace.trace))
    if get_rank() == 0:
        torch.save({"traces": traces, "metrics": metrics, "world_size": get_world_size()}, out_file)


class PixelData:
    def __init__(self, data):
        self.data = data


class SegSample:
    """Shaped like vt_structures.SegDataSample: img_path, gt_sem_seg, pred_sem_seg."""

    def __init__(self, img_path, gt_sem_seg, pred_sem_seg=None):
        self.img_path = img_path
        self.gt_sem_seg = PixelData(gt_sem_seg)
        self.pred_sem_seg = None if pred_sem_seg is None else PixelData(pred_sem_seg)


class ToySegDataset(Dataset):
    """RGB images saved as PNG files with random 3-class label maps."""

    def __init__(self, root, n=5, size=8):
        from PIL import Image

        g = torch.Generator().manual_seed(0)
        self.metainfo = {
            "classes": ("a", "b", "c"),
            "palette": [(255, 0, 0), (0, 255, 0), (0, 0, 255)],
        }
        self.items = []
        for i in range(n):
            img = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8)
            path = f"{root}/img_{i}.png"
            Image.fromarray(img.numpy()).save(path)
            self.items.append((img, path, torch.randint(0, 3, (1, size, size), generator=g)))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        img, path, seg = self.items[i]
        return {"inputs": img.permute(2, 0, 1).float() / 255, "data_samples": SegSample(path, seg)}


class ToySegModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.conv(_stack(inputs))
        if mode == "loss":
            target = torch.cat([s.gt_sem_seg.data for s in data_samples])
            return {"loss_ce": F.cross_entropy(logits, target)}
        if mode == "predict":
            for s, pred in zip(data_samples, logits.argmax(1, keepdim=True)):
                s.pred_sem_seg = PixelData(pred)
            return list(data_samples)
        return logits


class PixelAccuracy:
    def __init__(self):
        self.results = []

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append((s.pred_sem_seg.data == s.gt_sem_seg.data).float().mean().item())

    def evaluate(self, size):
        results = collect_results(self.results, size)
        self.results = []
        return {"aAcc": 100 * sum(results) / len(results)}
