"""Optimizer wrapper constructors: build an optimizer wrapper for a model from dict configs,
with per-parameter learning rate and weight decay rules (seed 004, mmseg/mmengine)."""

from __future__ import annotations

import inspect
import json
import logging
import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from vt_engine.dist import get_rank
from vt_engine.optim_wrapper import OptimWrapper
from vt_engine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from vt_modeling import check_keys

__all__ = [
    "DefaultOptimWrapperConstructor",
    "ForceDefaultOptimWrapperConstructor",
    "LearningRateDecayOptimizerConstructor",
    "LayerDecayOptimizerConstructor",
    "build_optim_wrapper",
    "get_layer_id_for_convnext",
    "get_stage_id_for_convnext",
    "get_layer_id_for_vit",
]

logger = logging.getLogger("vt_engine")

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)
# Deformable convolutions are recognised by class name so that vt-engine does not import
# the layer libraries that define them (vt_layers, torchvision, mmcv).
_DCN_CLASS_NAMES = frozenset(
    {
        "DeformConv",
        "ModulatedDeformConv",
        "DeformConv2d",
        "ModulatedDeformConv2d",
        "DeformConv2dPack",
        "ModulatedDeformConv2dPack",
    }
)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or type(module).__name__ in (
        "FrozenBatchNorm2d",
        "NaiveSyncBatchNorm",
    )


@OPTIM_WRAPPER_CONSTRUCTORS.register()
class DefaultOptimWrapperConstructor:
    """Builds an optimizer wrapper whose parameter groups follow ``paramwise_cfg``.

    By default every parameter shares the optimizer's settings. ``paramwise_cfg`` may hold:

    - ``custom_keys`` (dict): if a key is a substring of a parameter's full name
      (``prefix.name``), the parameter gets ``lr = base_lr * lr_mult`` and
      ``weight_decay = base_wd * decay_mult`` from ``custom_keys[key]`` (any other entry is
      copied into the group) and the rules below are skipped. The longest matching key
      wins; among keys of equal length, the alphabetically first.
    - ``bias_lr_mult``: multiplies the lr of biases (not of norm layers nor DCN offsets).
    - ``bias_decay_mult``: multiplies the weight decay of biases (not of norm layers,
      depthwise convs nor DCN offsets).
    - ``norm_decay_mult``: multiplies the weight decay of norm layer weights and biases.
    - ``flat_decay_mult``: multiplies the weight decay of all other 1-D parameters.
    - ``dwconv_decay_mult``: multiplies the weight decay of depthwise conv parameters.
    - ``dcn_offset_lr_mult``: multiplies the lr of the ``conv_offset`` layers of
      deformable convs (overriding ``bias_lr_mult`` for their bias).
    - ``bypass_duplicate`` (bool): skip parameters already added (shared modules).

    Args:
        optim_wrapper_cfg: ``dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=...),
            **wrapper_kwargs)``; ``type`` defaults to ``"OptimWrapper"``; both ``type``
            entries may be names in :data:`OPTIM_WRAPPERS` / :data:`OPTIMIZERS` or classes.
        paramwise_cfg: the parameter-wise options above.

    Example::

        optim_wrapper_cfg = dict(type="OptimWrapper",
                                 optimizer=dict(type="SGD", lr=0.01, weight_decay=0.95))
        paramwise_cfg = dict(custom_keys={"backbone": dict(lr_mult=0.1, decay_mult=0.9)})
        optim_wrapper = DefaultOptimWrapperConstructor(optim_wrapper_cfg, paramwise_cfg)(model)
        # model.backbone: lr 0.01 * 0.1, weight_decay 0.95 * 0.9; model.cls_head: 0.01, 0.95
    """

    # the paramwise_cfg keys a constructor reads; a subclass lists the keys it adds
    paramwise_keys: ClassVar[tuple[str, ...]] = (
        "custom_keys",
        "bias_lr_mult",
        "bias_decay_mult",
        "norm_decay_mult",
        "dwconv_decay_mult",
        "flat_decay_mult",
        "dcn_offset_lr_mult",
        "bypass_duplicate",
    )

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(
                f"optim_wrapper_cfg: expected a dict, got {type(optim_wrapper_cfg).__name__}"
            )
        if "optimizer" not in optim_wrapper_cfg:
            raise ValueError("optim_wrapper_cfg: missing the 'optimizer' key")
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        self.optimizer_cfg = dict(self.optim_wrapper_cfg.pop("optimizer"))
        if "type" not in self.optimizer_cfg:
            raise ValueError("optim_wrapper_cfg['optimizer']: missing the 'type' key")
        self.paramwise_cfg = {} if paramwise_cfg is None else paramwise_cfg
        self.base_lr = self.optimizer_cfg.get("lr", None)
        self.base_wd = self.optimizer_cfg.get("weight_decay", None)
        self._validate_cfg()

    def _validate_cfg(self) -> None:
        if not isinstance(self.paramwise_cfg, dict):
            raise TypeError(
                f"paramwise_cfg: expected a dict or None, got {type(self.paramwise_cfg).__name__}"
            )
        known = {k for cls in type(self).__mro__ for k in vars(cls).get("paramwise_keys", ())}
        check_keys(self.paramwise_cfg, known, f"paramwise_cfg of {type(self).__name__}")
        custom_keys = self.paramwise_cfg.get("custom_keys", {})
        if not isinstance(custom_keys, dict):
            raise TypeError(
                f"paramwise_cfg['custom_keys']: expected a dict, got {type(custom_keys).__name__}"
            )
        for key, value in custom_keys.items():
            if not isinstance(value, dict):
                raise TypeError(f"paramwise_cfg['custom_keys'][{key!r}]: expected a dict")
            if "decay_mult" in value and self.base_wd is None:
                raise ValueError(
                    f"paramwise_cfg['custom_keys'][{key!r}] sets decay_mult, so the optimizer "
                    "config needs a weight_decay"
                )
        for key in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult", "flat_decay_mult"):
            if key in self.paramwise_cfg and self.base_wd is None:
                raise ValueError(
                    f"paramwise_cfg sets {key}, so the optimizer config needs a weight_decay"
                )
        for key in ("bias_lr_mult", "dcn_offset_lr_mult"):
            if key in self.paramwise_cfg and self.base_lr is None:
                raise ValueError(f"paramwise_cfg sets {key}, so the optimizer config needs an lr")

    @staticmethod
    def _is_in(param_group: dict, param_group_list: list[dict]) -> bool:
        ids = {id(p) for g in param_group_list for p in g["params"]}
        return any(id(p) in ids for p in param_group["params"])

    def _apply_default_rules(
        self,
        param_group: dict,
        name: str,
        param: torch.Tensor,
        module: nn.Module,
        prefix: str,
        is_dcn_module: bool,
    ) -> None:
        cfg = self.paramwise_cfg
        bias_lr_mult = cfg.get("bias_lr_mult")
        bias_decay_mult = cfg.get("bias_decay_mult")
        norm_decay_mult = cfg.get("norm_decay_mult")
        dwconv_decay_mult = cfg.get("dwconv_decay_mult")
        flat_decay_mult = cfg.get("flat_decay_mult")
        dcn_offset_lr_mult = cfg.get("dcn_offset_lr_mult")
        is_norm = _is_norm(module)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups

        if name == "bias" and not (is_norm or is_dcn_module) and bias_lr_mult is not None:
            param_group["lr"] = self.base_lr * bias_lr_mult
        if (
            "conv_offset" in prefix
            and is_dcn_module
            and dcn_offset_lr_mult is not None
            and isinstance(module, nn.Conv2d)
        ):
            param_group["lr"] = self.base_lr * dcn_offset_lr_mult
        if self.base_wd is None:
            return
        if is_norm and norm_decay_mult is not None:
            param_group["weight_decay"] = self.base_wd * norm_decay_mult
        elif name == "bias" and not is_dcn_module and bias_decay_mult is not None:
            param_group["weight_decay"] = self.base_wd * bias_decay_mult
        elif is_dwconv and dwconv_decay_mult is not None:
            param_group["weight_decay"] = self.base_wd * dwconv_decay_mult
        elif param.ndim == 1 and not is_dcn_module and flat_decay_mult is not None:
            param_group["weight_decay"] = self.base_wd * flat_decay_mult

    def _force_default(self) -> bool:
        return False

    def add_params(
        self,
        params: list[dict],
        module: nn.Module,
        prefix: str = "",
        is_dcn_module: int | float | bool | None = None,
    ) -> None:
        """Append one param group per parameter of ``module`` (recursively) to ``params``.

        Args:
            params: the list of param groups, modified in place.
            module: the module whose parameters are added.
            prefix: the module's name in the model.
            is_dcn_module: whether ``module`` is a child of a deformable conv (its
                ``conv_offset`` layer gets ``dcn_offset_lr_mult``).
        """
        custom_keys = self.paramwise_cfg.get("custom_keys", {})
        # longest first; sorting alphabetically first keeps that order among equal lengths
        sorted_keys = sorted(sorted(custom_keys), key=len, reverse=True)
        bypass_duplicate = self.paramwise_cfg.get("bypass_duplicate", False)
        force_default = self._force_default()

        for name, param in module.named_parameters(recurse=False):
            param_group: dict[str, Any] = {"params": [param]}
            full_name = f"{prefix}.{name}" if prefix else name
            if bypass_duplicate and self._is_in(param_group, params):
                logger.warning(
                    "%s is duplicate; it is bypassed with bypass_duplicate=True", full_name
                )
                continue
            if not param.requires_grad:
                params.append(param_group)
                continue
            is_custom = False
            for key in sorted_keys:
                if key in f"{prefix}.{name}":
                    is_custom = True
                    settings = custom_keys[key]
                    param_group["lr"] = self.base_lr * settings.get("lr_mult", 1.0)
                    if self.base_wd is not None:
                        param_group["weight_decay"] = self.base_wd * settings.get("decay_mult", 1.0)
                    param_group.update(settings)
                    break
            if not is_custom or force_default:
                self._apply_default_rules(
                    param_group, name, param, module, prefix, bool(is_dcn_module)
                )
            params.append(param_group)
            for key, value in param_group.items():
                if key != "params":
                    logger.debug("paramwise_options -- %s:%s=%s", full_name, key, value)

        child_is_dcn = type(module).__name__ in _DCN_CLASS_NAMES
        for child_name, child in module.named_children():
            child_prefix = f"{prefix}.{child_name}" if prefix else child_name
            self.add_params(params, child, prefix=child_prefix, is_dcn_module=child_is_dcn)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper for ``model`` (a DDP wrapper is unwrapped)."""
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        optim_wrapper_cfg = dict(self.optim_wrapper_cfg)
        optim_wrapper_cfg.setdefault("type", "OptimWrapper")
        optimizer_cfg = dict(self.optimizer_cfg)
        optimizer_cls = optimizer_cfg["type"]
        if isinstance(optimizer_cls, str):
            optimizer_cls = OPTIMIZERS.get(optimizer_cls)
        first_arg = next(iter(inspect.signature(optimizer_cls).parameters))
        if not self.paramwise_cfg:
            optimizer_cfg[first_arg] = model.parameters()
        else:
            groups: list[dict] = []
            self.add_params(groups, model)
            optimizer_cfg[first_arg] = groups
        optimizer_cfg["type"] = optimizer_cls
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, optimizer=optimizer)


@OPTIM_WRAPPER_CONSTRUCTORS.register()
class ForceDefaultOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """:class:`DefaultOptimWrapperConstructor` with ``paramwise_cfg["force_default_settings"]``.

    When ``force_default_settings`` is true, the default rules (``bias_lr_mult``,
    ``norm_decay_mult``, ...) are applied after ``custom_keys`` too, so they override the
    custom settings of the parameters they match.
    """

    paramwise_keys: ClassVar[tuple[str, ...]] = ("force_default_settings",)

    def _force_default(self) -> bool:
        return bool(self.paramwise_cfg.get("force_default_settings", False))


def get_layer_id_for_convnext(var_name: str, max_layer_id: int) -> int:
    """Layer id of a ConvNeXt parameter (full name starting with ``backbone.``) for
    layer-wise lr decay: stem and stage 0 are layers 0-1, stage 2 blocks are grouped by
    three, stage 3 is ``max_layer_id``, and everything outside the backbone
    ``max_layer_id + 1``."""
    if var_name in ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed"):
        return 0
    if var_name.startswith("backbone.downsample_layers"):
        stage_id = int(var_name.split(".")[2])
        return {0: 0, 1: 2, 2: 3}.get(stage_id, max_layer_id)
    if var_name.startswith("backbone.stages"):
        stage_id = int(var_name.split(".")[2])
        block_id = int(var_name.split(".")[3])
        if stage_id == 0:
            return 1
        if stage_id == 1:
            return 2
        if stage_id == 2:
            return 3 + block_id // 3
        return max_layer_id
    return max_layer_id + 1


def get_stage_id_for_convnext(var_name: str, max_stage_id: int) -> int:
    """Stage id of a ConvNeXt parameter for stage-wise lr decay: embeddings and
    downsampling layers 0, stage ``i`` is ``i + 1``, the rest ``max_stage_id - 1``."""
    if var_name in ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed"):
        return 0
    if var_name.startswith("backbone.downsample_layers"):
        return 0
    if var_name.startswith("backbone.stages"):
        return int(var_name.split(".")[2]) + 1
    return max_stage_id - 1


def get_layer_id_for_vit(var_name: str, max_layer_id: int) -> int:
    """Layer id of a ViT/BEiT/MAE parameter: embeddings 0, ``backbone.layers.i`` is
    ``i + 1``, the rest ``max_layer_id - 1``."""
    if var_name in ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed"):
        return 0
    if var_name.startswith("backbone.patch_embed"):
        return 0
    if var_name.startswith("backbone.layers"):
        return int(var_name.split(".")[2]) + 1
    return max_layer_id - 1


@OPTIM_WRAPPER_CONSTRUCTORS.register()
class LearningRateDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Different learning rates for different layers of the backbone (ConvNeXt, BEiT, MAE).

    ``paramwise_cfg`` holds ``num_layers`` (the backbone's depth), ``decay_rate`` and
    ``decay_type``: ``"layer_wise"`` (ConvNeXt via :func:`get_layer_id_for_convnext`,
    BEiT/MAE via :func:`get_layer_id_for_vit`, chosen by the backbone's class name),
    ``"layer_wise_vit"`` (always :func:`get_layer_id_for_vit`) or ``"stage_wise"``
    (ConvNeXt, :func:`get_stage_id_for_convnext`). With ``n = num_layers + 2``, a
    parameter of layer ``i`` gets ``lr = base_lr * decay_rate ** (n - i - 1)``. 1-D
    parameters and biases get weight decay 0, the others the optimizer's. The model
    must have a ``backbone`` attribute; parameter names are the model's full names.
    """

    paramwise_keys: ClassVar[tuple[str, ...]] = ("num_layers", "decay_rate", "decay_type")

    def _validate_cfg(self) -> None:
        super()._validate_cfg()
        for key in ("num_layers", "decay_rate"):
            if key not in self.paramwise_cfg:
                raise ValueError(f"paramwise_cfg: {type(self).__name__} needs {key!r}")
        decay_type = self.paramwise_cfg.get("decay_type", "layer_wise")
        if decay_type not in ("layer_wise", "layer_wise_vit", "stage_wise"):
            raise ValueError(
                "paramwise_cfg['decay_type']: expected 'layer_wise', 'layer_wise_vit' or "
                f"'stage_wise', got {decay_type!r}"
            )
        if self.base_lr is None:
            raise ValueError("optim_wrapper_cfg['optimizer']: needs an lr for lr decay")

    def _layer_id(self, name: str, backbone_name: str, num_layers: int) -> int:
        decay_type = self.paramwise_cfg.get("decay_type", "layer_wise")
        if decay_type == "layer_wise_vit":
            return get_layer_id_for_vit(name, num_layers)
        if decay_type == "layer_wise":
            if "ConvNeXt" in backbone_name:
                return get_layer_id_for_convnext(name, self.paramwise_cfg["num_layers"])
            if "BEiT" in backbone_name or "MAE" in backbone_name:
                return get_layer_id_for_vit(name, num_layers)
        elif "ConvNeXt" in backbone_name:  # stage_wise
            return get_stage_id_for_convnext(name, num_layers)
        raise NotImplementedError(
            f"{type(self).__name__}: decay_type {decay_type!r} is not supported for a "
            f"{backbone_name} backbone"
        )

    def add_params(self, params: list[dict], module: nn.Module, **kwargs: Any) -> None:
        """Append one param group per (layer id, decay or no_decay) to ``params``."""
        backbone = getattr(module, "backbone", None)
        if not isinstance(backbone, nn.Module):
            raise ValueError(
                f"{type(self).__name__}: the model needs a 'backbone' submodule to assign layer ids"
            )
        backbone_name = type(backbone).__name__
        num_layers = self.paramwise_cfg["num_layers"] + 2
        decay_rate = self.paramwise_cfg["decay_rate"]
        groups: dict[str, dict[str, Any]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            if param.ndim == 1 or name.endswith(".bias") or name in ("pos_embed", "cls_token"):
                group_kind, weight_decay = "no_decay", 0.0
            else:
                group_kind, weight_decay = "decay", self.base_wd
            layer_id = self._layer_id(name, backbone_name, num_layers)
            group_name = f"layer_{layer_id}_{group_kind}"
            if group_name not in groups:
                scale = decay_rate ** (num_layers - layer_id - 1)
                groups[group_name] = {
                    "weight_decay": weight_decay,
                    "params": [],
                    "param_names": [],
                    "lr_scale": scale,
                    "group_name": group_name,
                    "lr": scale * self.base_lr,
                }
            groups[group_name]["params"].append(param)
            groups[group_name]["param_names"].append(name)
        if get_rank() == 0:
            shown = {
                key: {k: v for k, v in group.items() if k != "params"}
                for key, group in groups.items()
            }
            logger.info("Param groups = %s", json.dumps(shown, indent=2))
        params.extend(groups.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register()
class LayerDecayOptimizerConstructor(LearningRateDecayOptimizerConstructor):
    """BEiT's layer-wise lr decay: :class:`LearningRateDecayOptimizerConstructor` with
    ``decay_type="layer_wise_vit"`` and ``paramwise_cfg["layer_decay_rate"]`` as the
    decay rate. Deprecated in favour of :class:`LearningRateDecayOptimizerConstructor`."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict) -> None:
        warnings.warn(
            "LayerDecayOptimizerConstructor is deprecated: use "
            "LearningRateDecayOptimizerConstructor with decay_type='layer_wise_vit' "
            "and decay_rate instead of layer_decay_rate.",
            DeprecationWarning,
            stacklevel=2,
        )
        if not isinstance(paramwise_cfg, dict) or "layer_decay_rate" not in paramwise_cfg:
            raise ValueError(
                "paramwise_cfg: LayerDecayOptimizerConstructor needs 'layer_decay_rate'"
            )
        paramwise_cfg = dict(paramwise_cfg)
        paramwise_cfg["decay_type"] = "layer_wise_vit"
        paramwise_cfg["decay_rate"] = paramwise_cfg.pop("layer_decay_rate")
        super().__init__(optim_wrapper_cfg, paramwise_cfg)


def build_optim_wrapper(model: nn.Module, cfg: dict | OptimWrapper) -> OptimWrapper:
    """Build an optimizer wrapper for ``model`` from ``cfg``.

    ``cfg`` is an :class:`OptimWrapper` (returned as is) or a dict with the optimizer
    wrapper config plus optional ``constructor`` (a name in
    :data:`OPTIM_WRAPPER_CONSTRUCTORS` or a class; default
    :class:`DefaultOptimWrapperConstructor`) and ``paramwise_cfg``.
    """
    if isinstance(cfg, OptimWrapper):
        return cfg
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg: expected an OptimWrapper or a dict, got {type(cfg).__name__}")
    cfg = dict(cfg)
    constructor_type = cfg.pop("constructor", "DefaultOptimWrapperConstructor")
    paramwise_cfg = cfg.pop("paramwise_cfg", None)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=constructor_type, optim_wrapper_cfg=cfg, paramwise_cfg=paramwise_cfg)
    )
    return constructor(model)
