"""The evaluator: feeds predictions to metrics that follow mmengine's ``BaseMetric``
contract and merges their results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["MetricLike", "Evaluator"]


@runtime_checkable
class MetricLike(Protocol):
    """What a metric provides (``vt_metrics.BaseMetric`` and mmengine's ``BaseMetric``):
    ``process`` per batch, ``evaluate(size)`` once, gathering across ranks itself."""

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None: ...

    def evaluate(self, size: int) -> dict[str, Any]: ...


class Evaluator:
    """Runs one or several metrics over a data set.

    Args:
        metrics: a metric or a list of metrics (objects with ``process(data_batch,
            data_samples)`` and ``evaluate(size) -> dict``).
    """

    def __init__(self, metrics: MetricLike | Sequence[MetricLike]) -> None:
        items = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
        for i, metric in enumerate(items):
            if not isinstance(metric, MetricLike):
                raise TypeError(
                    f"metrics[{i}]: expected an object with process(data_batch, data_samples) "
                    f"and evaluate(size), got {type(metric).__name__}"
                )
        self.metrics = items
        self.dataset_meta: dict[str, Any] | None = None

    def set_dataset_meta(self, meta: dict[str, Any] | None) -> None:
        """Give every metric the dataset's meta information (``dataset_meta``)."""
        self.dataset_meta = meta
        for metric in self.metrics:
            if hasattr(metric, "dataset_meta"):
                metric.dataset_meta = meta

    def process(self, data_samples: Sequence[Any], data_batch: Any = None) -> None:
        """Give one batch of predictions (and its input batch) to every metric."""
        for metric in self.metrics:
            metric.process(data_batch, data_samples)

    def evaluate(self, size: int) -> dict[str, Any]:
        """Every metric's ``evaluate(size)`` merged into one dict; duplicate names raise."""
        results: dict[str, Any] = {}
        for metric in self.metrics:
            out = metric.evaluate(size)
            clash = set(out) & set(results)
            if clash:
                raise ValueError(
                    f"metrics report the same names {sorted(clash)}; give them distinct prefixes"
                )
            results.update(out)
        return results
