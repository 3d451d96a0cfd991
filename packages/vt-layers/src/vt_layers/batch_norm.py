"""Normalisation layers: FrozenBatchNorm2d, NaiveSyncBatchNorm, channel-wise LayerNorm, get_norm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vt_layers.wrappers import BatchNorm2d

__all__ = [
    "FrozenBatchNorm2d",
    "LayerNorm",
    "NaiveSyncBatchNorm",
    "get_norm",
]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d where the batch statistics and the affine parameters are fixed.

    It contains non-trainable buffers called "weight" and "bias", "running_mean",
    "running_var", initialized to perform identity transformation.

    The pretrained backbone models from Caffe2 only contain "weight" and "bias", which
    are computed from the original four parameters of BN. The affine transform
    ``x * weight + bias`` will perform the equivalent computation of
    ``(x - running_mean) / sqrt(running_var) * weight + bias``. When loading a backbone
    model from Caffe2, "running_mean" and "running_var" will be left unchanged as
    identity transformation.

    Other pretrained backbone models may contain all 4 parameters (a ``BatchNorm2d``
    state dict also carries ``num_batches_tracked``, which is ignored).

    The forward is implemented by ``F.batch_norm(..., training=False)``.

    Args:
        num_features: number of channels ``C`` of the ``(N, C, H, W)`` input.
        eps: added to the variance for numerical stability.
    """

    _version = 3

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        # 1 - eps makes the default an exact identity: 1 / sqrt(var + eps) == 1.
        self.register_buffer("running_var", torch.ones(num_features) - eps)
        self.register_buffer("num_batches_tracked", None, persistent=False)

    def scale_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel affine transform this layer computes, ``x * scale + bias``.

        Returns:
            Tensor[C]: scale; Tensor[C]: bias.
        """
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            # F.batch_norm's backward would also compute the gradients of weight and bias
            # (extra memory); the folded affine transform does not.
            scale, bias = self.scale_and_bias()
            scale = scale.reshape(1, -1, 1, 1)
            bias = bias.reshape(1, -1, 1, 1)
            out_dtype = x.dtype  # may be half
            return x * scale.to(out_dtype) + bias.to(out_dtype)
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=False,
            eps=self.eps,
        )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Caffe2 checkpoints carry only weight and bias: keep the current statistics
        # (the identity unless loaded before). BatchNorm2d checkpoints carry
        # num_batches_tracked, which a frozen layer has no use for.
        for name in ("running_mean", "running_var"):
            if prefix + name not in state_dict:
                state_dict[prefix + name] = getattr(self, name).detach().clone()
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, eps={self.eps}"

    def __repr__(self) -> str:
        return f"FrozenBatchNorm2d({self.extra_repr()})"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Convert all BatchNorm/SyncBatchNorm in module into FrozenBatchNorm.

        Args:
            module (torch.nn.Module): the module to convert.

        Returns:
            If module is BatchNorm/SyncBatchNorm, returns a new module. Otherwise, inplace
            convert module and return it.

        Similar to ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``.
        """
        if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            res = cls(module.num_features, eps=module.eps)
            if module.affine:
                res.weight.data = module.weight.data.clone().detach()
                res.bias.data = module.bias.data.clone().detach()
            if module.running_mean is not None:
                res.running_mean.data = module.running_mean.data.clone()
                res.running_var.data = module.running_var.data.clone()
            res.num_batches_tracked = module.num_batches_tracked
            return res
        for name, child in module.named_children():
            new_child = cls.convert_frozen_batchnorm(child)
            if new_child is not child:
                module.add_module(name, new_child)
        return module


class LayerNorm(nn.Module):
    """A LayerNorm variant, popularized by Transformers, that normalizes over the channel dimension.

    Point-wise mean and variance normalization over the channel dimension of inputs of
    shape ``(batch_size, channels, height, width)``: https://arxiv.org/abs/2201.03545.

    Args:
        normalized_shape: number of channels.
        eps: added to the variance for numerical stability.
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.normalized_shape = (normalized_shape,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class _DifferentiableAllReduce(torch.autograd.Function):
    """Sum over all ranks; the gradient of every rank's input is the sum of all gradients."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor) -> torch.Tensor:
        output = input.clone()
        dist.all_reduce(output)
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.clone()
        dist.all_reduce(grad)
        return grad


def _world_size() -> int:
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size()


class NaiveSyncBatchNorm(BatchNorm2d):
    """A slower but correct alternative to ``nn.SyncBatchNorm``.

    In PyTorch<=1.5, ``nn.SyncBatchNorm`` has incorrect gradient when the batch size on
    each worker is different (e.g., when scale augmentation is used, or when it is
    applied to mask head). This layer all-reduces the per-worker mean and mean of squares
    with a differentiable all-reduce.

    Note:
        There isn't a single definition of Sync BatchNorm.

        When ``stats_mode==""``, this module computes overall statistics by using
        statistics of each worker with equal weight. The result is true statistics of all
        samples (as if they are all on one worker) only when all workers have the same
        (N, H, W). This mode does not support inputs with zero batch size.

        When ``stats_mode=="N"``, this module computes overall statistics by weighting the
        statistics of each worker by their ``N``. The result is true statistics of all
        samples (as if they are all on one worker) only when all workers have the same
        (H, W). It is slower than ``stats_mode==""``. Workers with zero batch size are
        supported; when all workers have zero batch size the running statistics are left
        unchanged.

        Even though the result of this module may not be the true statistics of all
        samples, it may still be reasonable because it might be preferable to assign
        equal weights to all workers, regardless of their (H, W) dimension, instead of
        putting larger weight on larger images.

    Unlike detectron2, ``running_var`` is updated with the unbiased variance (as
    ``torch.nn.BatchNorm2d`` and ``torch.nn.SyncBatchNorm`` do), using the total number
    of elements per channel over all workers.

    Outside training or without an initialized process group of more than one process,
    it is a plain ``BatchNorm2d``.

    Args:
        *args: as ``torch.nn.BatchNorm2d`` (``num_features, eps, momentum, ...``).
        stats_mode: ``""`` or ``"N"``, see above.
        **kwargs: as ``torch.nn.BatchNorm2d``.
    """

    def __init__(self, *args: Any, stats_mode: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if stats_mode not in ("", "N"):
            raise ValueError(
                f'NaiveSyncBatchNorm: stats_mode must be "" or "N", got {stats_mode!r}'
            )
        self._stats_mode = stats_mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        world_size = _world_size()
        if world_size == 1 or not self.training:
            return super().forward(input)
        if input.dim() != 4:
            raise ValueError(
                f"NaiveSyncBatchNorm: expected a 4-D (N, C, H, W) input, got shape {tuple(input.shape)}"
            )
        if self.momentum is None:
            raise ValueError(
                "NaiveSyncBatchNorm: momentum=None (cumulative average) is not supported"
            )

        B, C = input.shape[0], input.shape[1]
        half_input = input.dtype in (torch.float16, torch.bfloat16)
        out_dtype = input.dtype
        if half_input:
            input = input.float()
        hw = input.shape[2] * input.shape[3]

        if self._stats_mode == "":
            if B == 0:
                raise ValueError(
                    'NaiveSyncBatchNorm(stats_mode="") does not support zero batch size; '
                    'use stats_mode="N"'
                )
            mean = torch.mean(input, dim=[0, 2, 3])
            meansqr = torch.mean(input * input, dim=[0, 2, 3])
            vec = torch.cat([mean, meansqr], dim=0)
            vec = _DifferentiableAllReduce.apply(vec) * (1.0 / world_size)
            mean, meansqr = torch.split(vec, C)
            momentum = self.momentum
            # Exact when all workers have the same (N, H, W).
            count = input.new_tensor(float(world_size * B * hw))
        else:
            ones = input.new_ones([1])
            if B == 0:
                # Zero statistics that are still connected to the input's graph.
                vec = input.new_zeros([2 * C + 2]) + input.sum()
            else:
                mean = torch.mean(input, dim=[0, 2, 3])
                meansqr = torch.mean(input * input, dim=[0, 2, 3])
                vec = torch.cat([mean, meansqr, ones, ones * hw], dim=0)
            vec = _DifferentiableAllReduce.apply(vec * B)
            total_batch = vec[2 * C].detach()
            count = vec[2 * C + 1].detach()
            # No update of the running statistics when every worker is empty.
            momentum = total_batch.clamp(max=1) * self.momentum
            mean, meansqr = torch.split(vec[: 2 * C] / total_batch.clamp(min=1), C)

        var = meansqr - mean * mean
        invstd = torch.rsqrt(var + self.eps)
        weight = self.weight if self.affine else torch.ones_like(invstd)
        bias = self.bias if self.affine else torch.zeros_like(invstd)
        scale = weight * invstd
        bias = bias - mean * scale
        scale = scale.reshape(1, -1, 1, 1)
        bias = bias.reshape(1, -1, 1, 1)

        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                unbiased_var = var.detach() * count / (count - 1).clamp(min=1)
                self.running_mean += momentum * (mean.detach() - self.running_mean)
                self.running_var += momentum * (unbiased_var - self.running_var)
                self.num_batches_tracked += 1
        ret = input * scale + bias
        return ret.to(out_dtype) if half_input else ret


def get_norm(norm: str | Callable[[int], nn.Module] | None, out_channels: int) -> nn.Module | None:
    """Build a normalization layer.

    Args:
        norm (str or callable): either one of BN, SyncBN, FrozenBN, GN, nnSyncBN,
            naiveSyncBN, naiveSyncBN_N, LN; or a callable that takes a channel number and
            returns the normalization layer as a nn.Module. None or "" means no
            normalization.
        out_channels: number of channels to normalize.

    Returns:
        nn.Module or None: the normalization layer.

    "GN" is ``GroupNorm(32, out_channels)``; "LN" is the channel-wise :class:`LayerNorm`;
    "SyncBN" and "nnSyncBN" are ``torch.nn.SyncBatchNorm``.
    """
    if norm is None:
        return None
    if isinstance(norm, str):
        if not norm:
            return None
        try:
            norm = _NORMS[norm]
        except KeyError:
            raise ValueError(
                f"get_norm: unknown norm {norm!r}; expected one of {sorted(_NORMS)} or a callable"
            ) from None
    elif not callable(norm):
        raise TypeError(
            f"get_norm: norm must be a str, a callable or None, got {type(norm).__name__}"
        )
    return norm(out_channels)


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "BN": BatchNorm2d,
    "SyncBN": nn.SyncBatchNorm,
    "FrozenBN": FrozenBatchNorm2d,
    "GN": lambda channels: nn.GroupNorm(32, channels),
    "nnSyncBN": nn.SyncBatchNorm,
    "naiveSyncBN": NaiveSyncBatchNorm,
    "naiveSyncBN_N": lambda channels: NaiveSyncBatchNorm(channels, stats_mode="N"),
    "LN": LayerNorm,
}
