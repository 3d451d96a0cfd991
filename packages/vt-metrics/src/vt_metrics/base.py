"""The metric contract of mmengine's ``BaseMetric``."""

from __future__ import annotations

import copy
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from vt_metrics._dist import broadcast_object, collect_results

__all__ = ["BaseMetric"]


class BaseMetric(ABC):
    """Base class of a metric evaluated batch by batch (mmengine's contract).

    A runner calls :meth:`process` on every batch, then :meth:`evaluate` once
    with the data set size. ``process`` appends what it needs to
    ``self.results``; ``evaluate`` gathers the results of every
    torch.distributed rank (when a process group is initialised) on rank 0,
    calls :meth:`compute_metrics` there, adds ``prefix``, broadcasts the
    metrics to every rank and clears ``self.results``. Without
    torch.distributed nothing is imported from torch.

    Args:
        collect_device (str): where results are gathered across ranks: 'cpu'
            (pickled over a gloo group) or 'gpu' (over the default group, e.g.
            NCCL through the current CUDA device). Defaults to 'cpu'.
        prefix (str, optional): added to every metric name as ``prefix/name``
            to tell apart metrics of different evaluators; ``default_prefix``
            of the class when None.
        output_dir (str, optional): where subclasses write their predictions
            (e.g. PNG files for a test server).
        format_only (bool): only write the predictions in the submission
            format, computing no metric (for test sets without ground truth).
    """

    default_prefix: str | None = None

    def __init__(
        self,
        collect_device: str = "cpu",
        prefix: str | None = None,
        *,
        output_dir: str | None = None,
        format_only: bool = False,
    ) -> None:
        if collect_device not in ("cpu", "gpu"):
            raise ValueError(f"collect_device: expected 'cpu' or 'gpu', got {collect_device!r}")
        self.collect_device = collect_device
        self.prefix = prefix or self.default_prefix
        self.output_dir = output_dir
        self.format_only = bool(format_only)
        self.results: list[Any] = []
        self._dataset_meta: dict | None = None

    @property
    def dataset_meta(self) -> dict | None:
        """Meta information of the data set (e.g. ``classes``), set by the runner."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        self._dataset_meta = copy.deepcopy(dataset_meta)

    @abstractmethod
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Process one batch: store what :meth:`compute_metrics` needs in ``self.results``.

        Args:
            data_batch (Any): a batch from the data loader.
            data_samples (Sequence[Any]): the model's outputs for the batch.
        """

    @abstractmethod
    def compute_metrics(self, results: list) -> dict[str, Any]:
        """Compute the metrics from the gathered results of every batch.

        Args:
            results (list): ``self.results`` of every rank, in data set order.

        Returns:
            dict[str, Any]: metric names and values.
        """

    def evaluate(self, size: int | None = None) -> dict[str, Any]:
        """Gather the results of all ranks and compute the metrics.

        Args:
            size (int, optional): length of the data set: results beyond it
                (samples a distributed sampler repeats to even out the ranks)
                are dropped. None keeps everything.

        Returns:
            dict[str, Any]: the metrics, with ``prefix/`` when a prefix is set,
            on every rank.
        """
        if not self.results and not self.format_only:
            warnings.warn(
                f"{type(self).__name__} got empty `self.results`: process() must add the "
                "processed results to `self.results`.",
                stacklevel=2,
            )
        results = collect_results(self.results, size, self.collect_device)
        metrics = None
        if results is not None:
            metrics = self.compute_metrics(results)
            if self.prefix:
                metrics = {f"{self.prefix}/{k}": v for k, v in metrics.items()}
        metrics = broadcast_object(metrics)
        self.results.clear()
        return metrics
