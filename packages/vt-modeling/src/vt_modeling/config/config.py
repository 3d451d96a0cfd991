"""CfgNode (YAML configs with ``_BASE_`` inheritance) and ``configurable``.

CfgNode extends yacs' CfgNode, the library detectron2's own CfgNode is built
on, so YAML semantics, type checks on merge and the "Non-existent config key"
errors are the ones detectron2 users know.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

import yaml
from yacs.config import CfgNode as _YacsCfgNode

__all__ = ["CfgNode", "configurable"]

BASE_KEY = "_BASE_"


class CfgNode(_YacsCfgNode):
    """A config tree with attribute access, YAML load/dump and ``_BASE_`` inheritance.

    ``merge_from_file``, ``merge_from_list`` and ``merge_from_other_cfg`` only
    accept keys that already exist (a clear KeyError names an unknown key);
    ``freeze()`` makes the tree immutable.
    """

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> dict[str, Any]:
        """Load a YAML file; keys of the files named by ``_BASE_`` (paths relative to
        ``filename``, or a list of them) are merged first, then overridden."""
        with open(filename) as f:
            try:
                cfg = yaml.safe_load(f)
            except yaml.constructor.ConstructorError:
                if not allow_unsafe:
                    raise
                f.seek(0)
                cfg = yaml.unsafe_load(f)
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise ValueError(f"{filename}: expected a YAML mapping at the top level")
        if BASE_KEY not in cfg:
            return cfg
        bases = cfg.pop(BASE_KEY)
        merged: dict[str, Any] = {}
        for base in bases if isinstance(bases, (list, tuple)) else [bases]:
            base = os.path.expanduser(base)
            if not os.path.isabs(base):
                base = os.path.join(os.path.dirname(filename), base)
            _merge_dict(merged, cls.load_yaml_with_base(base, allow_unsafe=allow_unsafe))
        _merge_dict(merged, cfg)
        return merged

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML file (with ``_BASE_`` support) into this config."""
        loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        self.merge_from_other_cfg(type(self)(loaded))

    def merge_from_other_cfg(self, cfg_other: _YacsCfgNode) -> None:
        if BASE_KEY in cfg_other:
            raise KeyError(f"The reserved key '{BASE_KEY}' can only be used in files")
        super().merge_from_other_cfg(cfg_other)

    def merge_from_list(self, cfg_list: list[Any]) -> None:
        """Merge ``["MODEL.WEIGHTS", "x.pth", "SOLVER.BASE_LR", 0.01, ...]``."""
        if len(cfg_list) % 2:
            raise ValueError(f"cfg_list: expected key/value pairs, got {len(cfg_list)} items")
        for full_key in cfg_list[0::2]:
            if full_key == BASE_KEY:
                raise KeyError(f"The reserved key '{BASE_KEY}' can only be used in files")
            node: Any = self
            for part in str(full_key).split("."):
                if not isinstance(node, _YacsCfgNode) or part not in node:
                    raise KeyError(f"Non-existent config key: {full_key}")
                node = node[part]
        super().merge_from_list(cfg_list)

    def dump(self, **kwargs: Any) -> str:
        """The config as a YAML string (``load_cfg(cfg.dump())`` round-trips)."""
        return super().dump(**kwargs)


def _merge_dict(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_dict(into[key], value)
        else:
            into[key] = value


def _called_with_cfg(*args: Any, **kwargs: Any) -> bool:
    """Whether the call passes a config as the first argument or as ``cfg=``."""
    if args and isinstance(args[0], _YacsCfgNode):
        return True
    return isinstance(kwargs.get("cfg"), _YacsCfgNode)


def _args_from_config(from_config: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call ``from_config`` with the arguments it accepts; the rest pass through."""
    signature = inspect.signature(from_config)
    if next(iter(signature.parameters), None) != "cfg":
        name = getattr(from_config, "__qualname__", repr(from_config))
        raise TypeError(f"{name} must take 'cfg' as its first argument")
    takes_var_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if takes_var_kwargs:
        return from_config(*args, **kwargs)
    accepted = {k: kwargs.pop(k) for k in list(kwargs) if k in signature.parameters}
    explicit = from_config(*args, **accepted)
    explicit.update(kwargs)  # arguments from_config does not know go to __init__
    return explicit


def configurable(
    init_func: Callable[..., Any] | None = None, *, from_config: Callable[..., Any] | None = None
) -> Any:
    """Let a class ``__init__`` or a function be called with explicit arguments or a config.

    On ``__init__``, the class must define ``@classmethod from_config(cls, cfg, ...)``
    returning a dict of ``__init__`` keyword arguments::

        class A:
            @configurable
            def __init__(self, a, b=2): ...

            @classmethod
            def from_config(cls, cfg):
                return {"a": cfg.A, "b": cfg.B}

        A(a=1, b=2)      # explicit
        A(cfg)           # from a config
        A(cfg, b=3)      # from a config, with an override

    On a function, pass ``from_config=``: ``@configurable(from_config=lambda cfg: {...})``.
    """
    if init_func is not None:
        if not (inspect.isfunction(init_func) and init_func.__name__ == "__init__"):
            raise TypeError(
                "@configurable without arguments decorates __init__; use from_config= on functions"
            )

        @functools.wraps(init_func)
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
            if not _called_with_cfg(*args, **kwargs):
                init_func(self, *args, **kwargs)
                return
            from_config_func = getattr(type(self), "from_config", None)
            if from_config_func is None:
                raise AttributeError(
                    f"{type(self).__name__} uses @configurable but has no 'from_config' classmethod"
                )
            if not inspect.ismethod(from_config_func):
                raise TypeError(f"{type(self).__name__}.from_config must be a classmethod")
            init_func(self, **_args_from_config(from_config_func, *args, **kwargs))

        return wrapped

    if from_config is None:
        return configurable  # @configurable() on __init__
    if not inspect.isfunction(from_config):
        raise TypeError("from_config: expected a function")

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if _called_with_cfg(*args, **kwargs):
                return func(**_args_from_config(from_config, *args, **kwargs))
            return func(*args, **kwargs)

        wrapped.from_config = from_config  # type: ignore[attr-defined]
        return wrapped

    return decorator
