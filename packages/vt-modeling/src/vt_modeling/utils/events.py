"""Training events (detectron2.utils.events): an :class:`EventStorage` that models write
scalars and images to while they train, found through :func:`get_event_storage`.

The trainer opens the storage around each iteration::

    with EventStorage(start_iter) as storage:
        for it in range(start_iter, max_iter):
            storage.iter = it
            losses = model(batch)  # may call get_event_storage().put_image(...)
            ...  # write storage.vis_data and storage.latest() to TensorBoard
            storage.clear_images()
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = ["EventStorage", "HistoryBuffer", "get_event_storage", "try_get_event_storage"]

_CURRENT_STORAGE_STACK: list[EventStorage] = []


def get_event_storage() -> EventStorage:
    """The innermost :class:`EventStorage` being used.

    Raises:
        RuntimeError: when called outside a ``with EventStorage(...)`` context.
    """
    if not _CURRENT_STORAGE_STACK:
        raise RuntimeError(
            "get_event_storage() has to be called inside a 'with EventStorage(...)' context!"
        )
    return _CURRENT_STORAGE_STACK[-1]


def try_get_event_storage() -> EventStorage | None:
    """The innermost :class:`EventStorage` being used, or None outside of any."""
    return _CURRENT_STORAGE_STACK[-1] if _CURRENT_STORAGE_STACK else None


class HistoryBuffer:
    """The history of one scalar: ``(value, iteration)`` pairs, the last ``max_length``
    of them kept, with window statistics (fvcore's ``HistoryBuffer``)."""

    def __init__(self, max_length: int = 1000000) -> None:
        """
        Args:
            max_length (int): the number of most recent values kept.
        """
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length: expected a positive int, got {max_length!r}")
        self._data: deque[tuple[float, float]] = deque(maxlen=max_length)
        self._count = 0
        self._global_avg = 0.0

    def update(self, value: float, iteration: float | None = None) -> None:
        """Add ``value`` at ``iteration`` (default: the number of values added so far)."""
        if iteration is None:
            iteration = self._count
        self._data.append((float(value), iteration))
        self._count += 1
        self._global_avg += (float(value) - self._global_avg) / self._count

    def latest(self) -> float:
        """The last value added."""
        if not self._data:
            raise ValueError("latest value of an empty history")
        return self._data[-1][0]

    def median(self, window_size: int) -> float:
        """The median of the last ``window_size`` values."""
        return statistics.median(self._window(window_size))

    def avg(self, window_size: int) -> float:
        """The mean of the last ``window_size`` values."""
        return statistics.fmean(self._window(window_size))

    def global_avg(self) -> float:
        """The mean of every value added (including those no longer kept)."""
        return self._global_avg

    def values(self) -> list[tuple[float, float]]:
        """The kept ``(value, iteration)`` pairs, oldest first."""
        return list(self._data)

    def _window(self, window_size: int) -> list[float]:
        if not self._data:
            raise ValueError("statistics of an empty history")
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_size: expected a positive int, got {window_size!r}")
        return [v for v, _ in itertools.islice(reversed(self._data), window_size)]

    def __len__(self) -> int:
        return len(self._data)


def _check_image(img: Any) -> Any:
    if not isinstance(img, (torch.Tensor, np.ndarray)):
        raise TypeError(f"img_tensor: expected a Tensor or ndarray, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(
            f"img_tensor: expected an RGB image of shape (3, H, W), got {tuple(img.shape)}"
        )
    is_float = img.is_floating_point() if isinstance(img, torch.Tensor) else img.dtype.kind == "f"
    is_uint8 = img.dtype in (torch.uint8, np.uint8)
    if not (is_float or is_uint8):
        raise TypeError(f"img_tensor: expected a uint8 or float image, got {img.dtype}")
    return img.detach().cpu() if isinstance(img, torch.Tensor) else img


class EventStorage:
    """Keeps the scalars and images that code reports during training, tagged with the
    current iteration; :func:`get_event_storage` finds the innermost one in use.

    Use it as a context manager: ``with EventStorage(start_iter) as storage: ...``.
    """

    def __init__(self, start_iter: int = 0) -> None:
        """
        Args:
            start_iter (int): the iteration number to start with.
        """
        self._history: dict[str, HistoryBuffer] = {}
        self._smoothing_hints: dict[str, bool] = {}
        self._latest_scalars: dict[str, tuple[float, int]] = {}
        self._iter = int(start_iter)
        self._current_prefix = ""
        self._vis_data: list[tuple[str, Any, int]] = []

    def put_image(self, img_name: str, img_tensor: Any) -> None:
        """Add an image to be shown (e.g. in TensorBoard) at the current iteration.

        Args:
            img_name (str): the name of the image.
            img_tensor (Tensor[3, H, W] or ndarray[3, H, W]): an RGB image, uint8 in
                [0, 255] or float in [0, 1].
        """
        self._vis_data.append((img_name, _check_image(img_tensor), self._iter))

    def put_scalar(
        self, name: str, value: float, smoothing_hint: bool = True, cur_iter: int | None = None
    ) -> None:
        """Add a scalar ``value`` to the history of ``name`` (prefixed by the current
        :meth:`name_scope`).

        Args:
            name (str): the name of the scalar.
            value (float): its value (a one-element tensor works too).
            smoothing_hint (bool): whether the value is noisy and should be smoothed when
                logged; the same for every call with this name.
            cur_iter (int): the iteration of the value; default: the current iteration.
        """
        name = self._current_prefix + name
        cur_iter = self._iter if cur_iter is None else int(cur_iter)
        value = float(value)
        self._history.setdefault(name, HistoryBuffer()).update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)
        existing_hint = self._smoothing_hints.setdefault(name, smoothing_hint)
        if existing_hint != smoothing_hint:
            raise ValueError(f"smoothing_hint: scalar {name!r} was put with a different one")

    def put_scalars(
        self, *, smoothing_hint: bool = True, cur_iter: int | None = None, **kwargs: float
    ) -> None:
        """Put several scalars: ``storage.put_scalars(loss=1.0, accuracy=0.5)``.

        Args:
            smoothing_hint (bool): as in :meth:`put_scalar`, for every scalar.
            cur_iter (int): as in :meth:`put_scalar`, for every scalar.
            **kwargs (float): the scalars, by name.
        """
        for name, value in kwargs.items():
            self.put_scalar(name, value, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def history(self, name: str) -> HistoryBuffer:
        """The :class:`HistoryBuffer` of the scalar ``name``."""
        if name not in self._history:
            raise KeyError(f"No history metric available for {name}!")
        return self._history[name]

    def histories(self) -> dict[str, HistoryBuffer]:
        """Every scalar's :class:`HistoryBuffer`, by name."""
        return self._history

    def latest(self) -> dict[str, tuple[float, int]]:
        """The latest ``(value, iteration)`` of every scalar, by name."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        """As :meth:`latest`, with the median of the last ``window_size`` values instead
        of the latest value for the scalars put with ``smoothing_hint=True``."""
        return {
            name: (
                self._history[name].median(window_size) if self._smoothing_hints[name] else v,
                it,
            )
            for name, (v, it) in self._latest_scalars.items()
        }

    def smoothing_hints(self) -> dict[str, bool]:
        """The ``smoothing_hint`` of every scalar, by name."""
        return self._smoothing_hints

    def step(self) -> None:
        """Move to the next iteration."""
        self._iter += 1

    @property
    def iter(self) -> int:
        """The current iteration (settable)."""
        return self._iter

    @iter.setter
    def iter(self, val: int) -> None:
        self._iter = int(val)

    @property
    def iteration(self) -> int:
        """Same as :attr:`iter`."""
        return self._iter

    @property
    def vis_data(self) -> list[tuple[str, Any, int]]:
        """The images put since the last :meth:`clear_images`: ``(name, image, iteration)``."""
        return self._vis_data

    def clear_images(self) -> None:
        """Drop the images put so far (call after writing them out)."""
        self._vis_data = []

    @contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        """Prefix the names of the scalars put inside the context with ``name + "/"``."""
        old_prefix = self._current_prefix
        self._current_prefix = name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old_prefix

    def __enter__(self) -> EventStorage:
        _CURRENT_STORAGE_STACK.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not _CURRENT_STORAGE_STACK or _CURRENT_STORAGE_STACK[-1] is not self:
            raise RuntimeError("EventStorage: contexts must be exited in the reverse order")
        _CURRENT_STORAGE_STACK.pop()
