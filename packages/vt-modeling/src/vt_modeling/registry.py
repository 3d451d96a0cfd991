"""A name -> object registry serving both detectron2's ``get(name)`` and
mmseg-style construction from ``dict(type=..., **kwargs)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from difflib import get_close_matches
from typing import Any, TypeVar

from vt_modeling.config.config import check_kwargs

__all__ = ["Registry"]

T = TypeVar("T")


class Registry:
    """Maps names to objects (classes or functions) that implement one extension point.

    Register with a decorator::

        BACKBONE_REGISTRY = Registry("BACKBONE")

        @BACKBONE_REGISTRY.register()
        class MyBackbone: ...

    or a call: ``BACKBONE_REGISTRY.register(MyBackbone)``. Look up with
    ``BACKBONE_REGISTRY.get("MyBackbone")`` or build from a config dict with
    ``BACKBONE_REGISTRY.build(dict(type="MyBackbone", depth=50))``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map:
            raise KeyError(
                f"An object named '{name}' was already registered in '{self._name}' registry!"
            )
        self._obj_map[name] = obj

    def register(self, obj: T | None = None, *, name: str | None = None) -> Any:
        """Register ``obj`` under ``name`` (default ``obj.__name__``).

        Without ``obj``, returns a decorator. Registering a taken name raises KeyError.
        """
        if obj is None:

            def deco(func_or_class: T) -> T:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(name or obj.__name__, obj)  # type: ignore[attr-defined]
        return obj

    def get(self, name: str) -> Any:
        """The object registered as ``name``; KeyError listing close matches otherwise."""
        try:
            return self._obj_map[name]
        except KeyError:
            close = get_close_matches(name, self._obj_map, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(
                f"No object named '{name}' found in '{self._name}' registry!{hint} "
                f"Registered: {sorted(self._obj_map)}"
            ) from None

    def build(self, cfg: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Build ``cfg["type"]`` (a registered name or a callable) with the other keys
        of ``cfg`` plus ``kwargs`` as keyword arguments. A key of ``cfg`` the object does
        not take raises :class:`~vt_modeling.config.UnknownKeyError` naming the closest
        valid one."""
        if not isinstance(cfg, Mapping):
            raise TypeError(f"cfg: expected a dict with a 'type' key, got {type(cfg).__name__}")
        if "type" not in cfg:
            raise KeyError(
                f"cfg: missing the 'type' key to build from the '{self._name}' registry: {dict(cfg)}"
            )
        params = dict(cfg)
        obj_type = params.pop("type")
        builder: Callable[..., Any] = self.get(obj_type) if isinstance(obj_type, str) else obj_type
        if not callable(builder):
            raise TypeError(
                f"cfg['type']: expected a registered name or a callable, got {obj_type!r}"
            )
        name = obj_type if isinstance(obj_type, str) else getattr(builder, "__name__", builder)
        check_kwargs(builder, params, f"{self._name} cfg of type {name!r}")
        params.update(kwargs)
        return builder(*args, **params)

    def __contains__(self, name: object) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self._obj_map.items())

    def __len__(self) -> int:
        return len(self._obj_map)

    def __repr__(self) -> str:
        rows = [
            (name, f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}")
            for name, obj in self
        ]
        width = max([len("Names"), *(len(r[0]) for r in rows)])
        lines = [f"Registry of {self._name}:", f"  {'Names'.ljust(width)}  Objects"]
        lines += [f"  {n.ljust(width)}  {o}" for n, o in rows]
        return "\n".join(lines)

    __str__ = __repr__
