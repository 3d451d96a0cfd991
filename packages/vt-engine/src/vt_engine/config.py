"""Python config files: a ``.py`` file whose top-level variables (calling the real
constructors, so an editor can follow them) describe a run."""

from __future__ import annotations

import ast
import os
import runpy
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vt_modeling import check_keys

__all__ = ["Config"]


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class Config(dict):
    """A dict of a config file's public top-level variables, with attribute access.

    Modules, functions and classes defined or imported by the file, and names starting
    with ``_``, are not part of the config.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no {name!r}; keys: {sorted(self)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    @classmethod
    def fromfile(cls, path: str | os.PathLike) -> Config:
        """Execute the Python file ``path`` and collect its variables."""
        path = Path(path)
        if path.suffix != ".py":
            raise ValueError(f"path: expected a .py config file, got {path}")
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        namespace = runpy.run_path(str(path), run_name="__vt_config__")
        cfg = cls(
            {
                k: v
                for k, v in namespace.items()
                if not k.startswith("_")
                and not isinstance(v, (types.ModuleType, types.FunctionType, type))
            }
        )
        return cfg

    def merge_from_dotlist(self, options: Iterable[str] | Mapping[str, Any]) -> Config:
        """Apply overrides ``"a.b.c=value"`` (the value parsed as a Python literal, else
        kept as a string) or a mapping ``{"a.b.c": value}``. Keys walk through dicts
        and lists (integer keys); the last key may be new. Objects built by the file
        cannot be changed this way: make the value a plain literal in the config."""
        if isinstance(options, Mapping):
            items = list(options.items())
        else:
            items = []
            for option in options:
                if "=" not in option:
                    raise ValueError(f"cfg option {option!r}: expected key=value")
                key, value = option.split("=", 1)
                items.append((key.strip(), _parse_value(value.strip())))
        for key, value in items:
            parts = key.split(".")
            target: Any = self
            for depth, part in enumerate(parts[:-1]):
                target = self._child(target, part, ".".join(parts[: depth + 1]))
            last = parts[-1]
            if isinstance(target, list):
                target[int(last)] = value
            elif isinstance(target, dict):
                target[last] = value
            else:
                raise ValueError(
                    f"cfg option {key!r}: {'.'.join(parts[:-1])} is a {type(target).__name__} object, "
                    "not a dict; only dict and list entries can be overridden"
                )
        return self

    @staticmethod
    def _child(target: Any, part: str, path: str) -> Any:
        if isinstance(target, dict):
            check_keys([part], target, f"cfg option {path!r}")
            return target[part]
        if isinstance(target, list):
            return target[int(part)]
        raise ValueError(
            f"cfg option: {path!r} is inside a {type(target).__name__} object; only dict and list entries can be overridden"
        )
