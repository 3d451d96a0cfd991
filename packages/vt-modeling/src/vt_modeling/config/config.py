"""CfgNode (YAML configs with ``_BASE_`` inheritance) and ``configurable``.

CfgNode extends yacs' CfgNode, the library detectron2's own CfgNode is built
on, so YAML semantics, type checks on merge and the "Non-existent config key"
errors are the ones detectron2 users know.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
from collections.abc import Callable, Iterable
from typing import Any

import yaml
from yacs.config import CfgNode as _YacsCfgNode

__all__ = ["CfgNode", "UnknownKeyError", "check_keys", "check_kwargs", "configurable"]

BASE_KEY = "_BASE_"


class UnknownKeyError(KeyError, TypeError):
    """A config key or keyword argument that does not exist. Its message names the key
    and the closest valid one; it is both a KeyError (unknown config key) and a TypeError
    (unexpected keyword argument), so callers may catch either."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _suggestion(key: str, valid: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.6)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""


def check_keys(keys: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raise :class:`UnknownKeyError` for the first of ``keys`` not in ``valid``.

    Args:
        keys (Iterable[str]): the keys given (e.g. of a config dict).
        valid (Iterable[str]): the keys accepted.
        where (str): what the keys belong to, for the message (e.g. ``"train_cfg"``).

    Raises:
        UnknownKeyError: ``"train_cfg: unknown key 'max_epoch'; did you mean
            'max_epochs'? (valid keys: ...)"``.
    """
    valid = list(valid)
    for key in keys:
        if key not in valid:
            raise UnknownKeyError(
                f"{where}: unknown key {key!r}{_suggestion(key, valid)} "
                f"(valid keys: {', '.join(sorted(map(str, valid)))})"
            )


def check_kwargs(func: Callable[..., Any], kwargs: Iterable[str], where: str) -> None:
    """Check that ``func`` accepts the keyword arguments ``kwargs``, with
    :func:`check_keys`. A class whose ``__init__`` takes ``**kwargs`` is assumed to pass
    them to its base class, whose ``__init__`` is then checked too; a function taking
    ``**kwargs``, or without an inspectable signature, accepts anything.

    Args:
        func (Callable): a function or class.
        kwargs (Iterable[str]): the keyword argument names to pass.
        where (str): what the arguments belong to, for the message.
    """
    if isinstance(func, type):
        inits = [vars(c)["__init__"] for c in func.__mro__ if "__init__" in vars(c)]
    else:
        inits = [func]
    accepted: list[str] = []
    for init in inits:
        if init is object.__init__:
            return
        if getattr(init, "_configurable", False):
            # a @configurable __init__ also takes cfg= and the arguments of from_config
            found = _keyword_params(getattr(func, "from_config", None))
            if found is None or found[1]:
                return
            accepted += ["cfg", *found[0]]
        found = _keyword_params(init)
        if found is None:
            return
        accepted += found[0]
        if not found[1]:
            check_keys(kwargs, accepted, where)
            return


def _keyword_params(func: Any) -> tuple[list[str], bool] | None:
    """(the parameters a call can pass by keyword, whether it takes ``**kwargs``), or
    None when ``func`` has no inspectable signature."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


class CfgNode(_YacsCfgNode):
    """A config tree with attribute access, YAML load/dump and ``_BASE_`` inheritance.

    ``merge_from_file``, ``merge_from_list`` and ``merge_from_other_cfg`` only
    accept keys that already exist: an unknown key raises :class:`UnknownKeyError` (a
    KeyError) naming it, the file it came from and the closest existing key;
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
        other = type(self)(loaded)
        self._check_known_keys(other, [], f"{cfg_filename}: ")
        self.merge_from_other_cfg(other)

    def merge_from_other_cfg(self, cfg_other: _YacsCfgNode) -> None:
        if BASE_KEY in cfg_other:
            raise KeyError(f"The reserved key '{BASE_KEY}' can only be used in files")
        self._check_known_keys(cfg_other, [], "")
        super().merge_from_other_cfg(cfg_other)

    def _check_known_keys(self, other: Any, key_list: list[str], source: str) -> None:
        """Raise UnknownKeyError for a key of ``other`` missing from this tree (yacs'
        own check, with the closest existing key); deprecated and renamed keys are left
        to yacs."""
        node: Any = self
        for part in key_list:
            node = node[part]
        for key, value in other.items():
            full_key = ".".join([*key_list, key])
            if key in node:
                if isinstance(value, dict) and isinstance(node[key], _YacsCfgNode):
                    self._check_known_keys(value, [*key_list, key], source)
                continue
            if node.is_new_allowed() or self.key_is_deprecated(full_key):
                continue
            if self.key_is_renamed(full_key):
                continue
            self._raise_unknown(full_key, node, key_list, key, source)

    @staticmethod
    def _raise_unknown(
        full_key: str, node: Any, key_list: list[str], key: str, source: str
    ) -> None:
        prefix = "".join(f"{k}." for k in key_list)
        hint = _suggestion(key, node, prefix)
        raise UnknownKeyError(f"{source}Non-existent config key: {full_key}{hint}")

    def merge_from_list(self, cfg_list: list[Any]) -> None:
        """Merge ``["MODEL.WEIGHTS", "x.pth", "SOLVER.BASE_LR", 0.01, ...]``."""
        if len(cfg_list) % 2:
            raise ValueError(f"cfg_list: expected key/value pairs, got {len(cfg_list)} items")
        for full_key in cfg_list[0::2]:
            if full_key == BASE_KEY:
                raise KeyError(f"The reserved key '{BASE_KEY}' can only be used in files")
            full_key = str(full_key)
            if self.key_is_deprecated(full_key) or self.key_is_renamed(full_key):
                continue  # yacs warns or names the new key
            node: Any = self
            parts = full_key.split(".")
            for depth, part in enumerate(parts):
                if not isinstance(node, _YacsCfgNode):
                    raise UnknownKeyError(f"Non-existent config key: {full_key}")
                if part not in node:
                    self._raise_unknown(full_key, node, parts[:depth], part, "")
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

        wrapped._configurable = True  # type: ignore[attr-defined]
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
