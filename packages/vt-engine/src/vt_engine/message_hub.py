"""Run-time scalars and information shared by the loops and hooks (mmengine's
``MessageHub``): losses, learning rates and timings with their history, for smoothed
logging."""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

__all__ = ["HistoryBuffer", "MessageHub"]


class HistoryBuffer:
    """The last ``max_length`` values of one scalar (with their counts)."""

    def __init__(self, max_length: int = 1000) -> None:
        self._values: deque[float] = deque(maxlen=max_length)
        self._counts: deque[int] = deque(maxlen=max_length)

    def update(self, value: float, count: int = 1) -> None:
        self._values.append(float(value))
        self._counts.append(int(count))

    def mean(self, window: int | None = None) -> float:
        """Count-weighted mean of the last ``window`` values (all kept values if None)."""
        values = list(self._values)[-window:] if window else list(self._values)
        counts = list(self._counts)[-window:] if window else list(self._counts)
        if not values:
            raise ValueError("mean of an empty history")
        return sum(v * c for v, c in zip(values, counts)) / sum(counts)

    def current(self) -> float:
        if not self._values:
            raise ValueError("current value of an empty history")
        return self._values[-1]

    def __len__(self) -> int:
        return len(self._values)


class MessageHub:
    """Scalars with history (``update_scalar``) and latest-value information
    (``update_info``) of one run."""

    def __init__(self) -> None:
        self.log_scalars: dict[str, HistoryBuffer] = {}
        self.runtime_info: dict[str, Any] = {}

    def update_scalar(self, key: str, value: float | torch.Tensor, count: int = 1) -> None:
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"{key}: expected a scalar, got a tensor of shape {tuple(value.shape)}"
                )
            value = value.item()
        self.log_scalars.setdefault(key, HistoryBuffer()).update(value, count)

    def update_scalars(self, scalars: dict[str, float | torch.Tensor]) -> None:
        for key, value in scalars.items():
            self.update_scalar(key, value)

    def get_scalar(self, key: str) -> HistoryBuffer:
        if key not in self.log_scalars:
            raise KeyError(f"no scalar named {key!r}; known: {sorted(self.log_scalars)}")
        return self.log_scalars[key]

    def update_info(self, key: str, value: Any) -> None:
        self.runtime_info[key] = value

    def get_info(self, key: str, default: Any = None) -> Any:
        return self.runtime_info.get(key, default)

    def state_dict(self) -> dict[str, Any]:
        """The run-time information that is plain data (saved in checkpoints)."""
        return {
            k: v
            for k, v in self.runtime_info.items()
            if isinstance(v, (int, float, str, bool, list, tuple, dict))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.runtime_info.update(state)
