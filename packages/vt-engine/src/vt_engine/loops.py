"""Training, validation and test loops (mmengine's loop classes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from vt_engine.data import InfiniteSampler, ResumableSampler
from vt_engine.datasets import RepeatFactorTrainingSampler
from vt_engine.evaluator import Evaluator

if TYPE_CHECKING:
    from vt_engine.runner import Runner

__all__ = ["EpochBasedTrainLoop", "IterBasedTrainLoop", "ValLoop", "TestLoop"]


def _samplers(dataloader: Any) -> list[Any]:
    found = [
        getattr(dataloader, "sampler", None),
        getattr(getattr(dataloader, "batch_sampler", None), "sampler", None),
    ]
    return [s for s in found if s is not None]


def _skip_batches(dataloader: DataLoader, n_batches: int) -> None:
    """Make the next iteration of ``dataloader`` start ``n_batches`` batches in, through
    the sampler's ``set_start_index`` (exact and without loading the skipped data)."""
    if n_batches <= 0:
        return
    batch_size = getattr(dataloader, "batch_size", None)
    for sampler in _samplers(dataloader):
        if isinstance(sampler, ResumableSampler) and batch_size:
            sampler.set_start_index(n_batches * batch_size)
            return
    raise ValueError(
        "resuming inside an epoch needs a ResumableSampler (DefaultSampler, InfiniteSampler, "
        "RepeatFactorTrainingSampler) and a fixed batch_size"
    )


def _set_epoch(dataloader: Any, epoch: int) -> None:
    for sampler in _samplers(dataloader):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


class _TrainLoop:
    """State, progress properties and the training step shared by both train loops."""

    def __init__(
        self,
        runner: Runner,
        dataloader: DataLoader,
        max_epochs: int,
        max_iters: int,
        val_begin: int,
        val_interval: int,
    ) -> None:
        self.runner = runner
        self.dataloader = dataloader
        self._max_epochs = max_epochs
        self._max_iters = max_iters
        self.val_begin = val_begin
        self.val_interval = val_interval
        self._epoch = 0
        self._iter = 0
        self.stop_training = False

    @property
    def max_epochs(self) -> int:
        return self._max_epochs

    @property
    def max_iters(self) -> int:
        return self._max_iters

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def iter(self) -> int:
        return self._iter

    def _should_validate(self, progress: int, last: int) -> bool:
        """Validate after ``progress`` (epochs or iterations) of ``last``?"""
        return (
            self.runner.val_loop is not None
            and progress >= self.val_begin
            and (progress % self.val_interval == 0 or progress == last)
        )

    def _train_step(self, batch_idx: int, data_batch: Any) -> None:
        runner = self.runner
        runner.call_hook("before_train_iter", batch_idx=batch_idx, data_batch=data_batch)
        outputs = runner.model.train_step(data_batch, optim_wrapper=runner.optim_wrapper)
        skipped = getattr(self.dataloader.dataset, "num_skipped", None)
        if skipped is not None:  # a SkipBadSamplesDataset
            runner.message_hub.update_info("skipped_samples", skipped)
        runner.call_hook(
            "after_train_iter", batch_idx=batch_idx, data_batch=data_batch, outputs=outputs
        )
        self._iter += 1


class EpochBasedTrainLoop(_TrainLoop):
    """Trains for ``max_epochs`` passes over ``dataloader``; validates after epochs
    ``val_begin, val_begin + val_interval, ...`` and after the last."""

    def __init__(
        self,
        runner: Runner,
        dataloader: DataLoader,
        max_epochs: int,
        val_begin: int = 1,
        val_interval: int = 1,
    ) -> None:
        if not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs: expected a positive int, got {max_epochs!r}")
        max_iters = max_epochs * len(dataloader)
        super().__init__(runner, dataloader, max_epochs, max_iters, val_begin, val_interval)

    def run(self) -> Any:
        runner = self.runner
        runner.call_hook("before_train")
        runner.optim_wrapper.initialize_count_status(runner.model, self._iter, self._max_iters)
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            if self._should_validate(self._epoch, self._max_epochs):
                runner.val_loop.run()
        runner.call_hook("after_train")
        return runner.model

    def run_epoch(self) -> None:
        self.runner.call_hook("before_train_epoch")
        self.runner.model.train()
        start = self._iter - self._epoch * len(self.dataloader)
        _skip_batches(self.dataloader, start)
        for idx, data_batch in enumerate(self.dataloader, start=max(start, 0)):
            self.run_iter(idx, data_batch)
        self.runner.call_hook("after_train_epoch")
        self._epoch += 1

    def run_iter(self, idx: int, data_batch: Any) -> None:
        self._train_step(idx, data_batch)


class _InfiniteIterator:
    """Iterates a data loader forever, starting a new pass (with ``set_epoch``) when one ends."""

    def __init__(self, dataloader: DataLoader, epoch: int) -> None:
        self._dataloader = dataloader
        self._epoch = epoch
        _set_epoch(dataloader, epoch)
        self._iterator = iter(dataloader)

    def __next__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            self._epoch += 1
            _set_epoch(self._dataloader, self._epoch)
            self._iterator = iter(self._dataloader)
            return next(self._iterator)


class IterBasedTrainLoop(_TrainLoop):
    """Trains for ``max_iters`` iterations; validates after iterations
    ``val_begin, ..., k * val_interval`` and after the last. Resuming continues with
    exactly the batch the interrupted run would have seen next."""

    def __init__(
        self,
        runner: Runner,
        dataloader: DataLoader,
        max_iters: int,
        val_begin: int = 1,
        val_interval: int = 1000,
    ) -> None:
        if not isinstance(max_iters, int) or max_iters < 1:
            raise ValueError(f"max_iters: expected a positive int, got {max_iters!r}")
        super().__init__(runner, dataloader, 1, max_iters, val_begin, val_interval)

    def run(self) -> Any:
        runner = self.runner
        runner.call_hook("before_train")
        runner.call_hook("before_train_epoch")
        if self._iter > 0:
            per_pass = len(self.dataloader) if self._is_finite() else 0
            if per_pass:
                self._epoch = self._iter // per_pass
                _skip_batches(self.dataloader, self._iter % per_pass)
            else:
                _skip_batches(self.dataloader, self._iter)
        iterator = _InfiniteIterator(self.dataloader, self._epoch)
        runner.optim_wrapper.initialize_count_status(runner.model, self._iter, self._max_iters)
        while self._iter < self._max_iters and not self.stop_training:
            runner.model.train()
            data_batch = next(iterator)
            self._epoch = iterator._epoch
            self.run_iter(data_batch)
            if self._should_validate(self._iter, self._max_iters):
                runner.val_loop.run()
        runner.call_hook("after_train_epoch")
        runner.call_hook("after_train")
        return runner.model

    def _is_finite(self) -> bool:
        infinite = (InfiniteSampler, RepeatFactorTrainingSampler)
        return not any(isinstance(s, infinite) for s in _samplers(self.dataloader))

    def run_iter(self, data_batch: Any) -> None:
        self._train_step(self._iter, data_batch)


class _EvalLoop:
    _mode = "val"

    def __init__(
        self, runner: Runner, dataloader: DataLoader, evaluator: Evaluator, fp16: bool = False
    ) -> None:
        self.runner = runner
        self.dataloader = dataloader
        self.evaluator = evaluator
        self.fp16 = fp16
        meta = getattr(dataloader.dataset, "metainfo", None)
        if meta is not None:
            evaluator.set_dataset_meta(dict(meta))

    def run(self) -> dict[str, Any]:
        runner, mode = self.runner, self._mode
        runner.call_hook(f"before_{mode}")
        runner.call_hook(f"before_{mode}_epoch")
        runner.model.eval()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        runner.call_hook(f"after_{mode}_epoch", metrics=metrics)
        runner.call_hook(f"after_{mode}")
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Any) -> None:
        runner, mode = self.runner, self._mode
        runner.call_hook(f"before_{mode}_iter", batch_idx=idx, data_batch=data_batch)
        device_type = runner.device.type
        with torch.autocast(device_type, enabled=self.fp16):
            step = runner.model.val_step if mode == "val" else runner.model.test_step
            outputs = step(data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        runner.call_hook(
            f"after_{mode}_iter", batch_idx=idx, data_batch=data_batch, outputs=outputs
        )


class ValLoop(_EvalLoop):
    """One pass over the validation data: ``model.val_step`` per batch, the evaluator's
    ``process``, then ``evaluate(len(dataset))``; returns the metrics."""

    _mode = "val"


class TestLoop(_EvalLoop):
    """One pass over the test data with ``model.test_step``; returns the metrics."""

    _mode = "test"
