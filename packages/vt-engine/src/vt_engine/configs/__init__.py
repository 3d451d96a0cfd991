"""Default Python configs shipped with vt-engine (``vt-train`` takes their paths;
:func:`config_path` finds them by name)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["config_path"]


def config_path(name: str) -> Path:
    """The path of the shipped config ``name`` (e.g. "mask_rcnn_shapes")."""
    path = Path(__file__).with_name(f"{name}.py")
    if name.startswith("_") or not path.is_file():
        available = sorted(
            p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_")
        )
        raise FileNotFoundError(f"no shipped config named {name!r}; available: {available}")
    return path
