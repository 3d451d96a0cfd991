"""Small real models, datasets and metrics for the vt-engine tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from vt_engine import BaseModel, collect_results


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
