"""Per-image instance annotations or predictions, as detectron2's ``Instances``."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vt_structures._utils import check_index, index_list

__all__ = ["Instances"]


class Instances:
    """A set of per-instance fields of one image, all of the same length N.

    Fields are tensors, lists, or objects with ``__len__`` and ``__getitem__``
    (:class:`Boxes`, :class:`BitMasks`, ...) and are read and written as
    attributes::

        instances = Instances((480, 640), scores=torch.rand(3))
        instances.pred_boxes = Boxes(torch.rand(3, 4))
        instances[instances.scores > 0.5]  # a new Instances with every field indexed
        Instances.cat([a, b])

    Args:
        image_size: (height, width) of the image.
        **kwargs: fields to add.
    """

    def __init__(self, image_size: tuple[int, int], **kwargs: Any) -> None:
        if not isinstance(image_size, (tuple, list, torch.Size)) or len(image_size) != 2:
            raise ValueError(f"image_size: expected (height, width), got {image_size!r}")
        self._image_size = tuple(image_size)
        self._fields: dict[str, Any] = {}
        for k, v in kwargs.items():
            self.set(k, v)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self._image_size

    def __setattr__(self, name: str, val: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, val)
        else:
            self.set(name, val)

    def __getattr__(self, name: str) -> Any:
        if name == "_fields" or name not in self._fields:
            raise AttributeError(f"Cannot find field '{name}' in the given Instances!")
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        """Set the field ``name`` to ``value``.

        Raises:
            ValueError: when the length of ``value`` differs from that of the
                fields already present.
            TypeError: when ``value`` has no length.
        """
        try:
            data_len = len(value)
        except TypeError:
            raise TypeError(
                f"field '{name}': expected a value with a length (tensor, list, Boxes, ...), "
                f"got {type(value).__name__}"
            ) from None
        if self._fields:
            n = len(self)
            if n != data_len:
                raise ValueError(
                    f"field '{name}': adding a field of length {data_len} to an Instances "
                    f"of length {n}"
                )
        self._fields[name] = value

    def has(self, name: str) -> bool:
        """Whether the field ``name`` exists."""
        return name in self._fields

    def remove(self, name: str) -> None:
        """Remove the field ``name``.

        Raises:
            KeyError: when there is no such field.
        """
        if name not in self._fields:
            raise KeyError(f"Cannot remove field '{name}': not in the given Instances")
        del self._fields[name]

    def get(self, name: str) -> Any:
        """The field ``name`` (raises AttributeError when absent)."""
        return self.__getattr__(name)

    def get_fields(self) -> dict[str, Any]:
        """The dict of field name to value (modifying it modifies the Instances)."""
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> Instances:
        """A new Instances with ``to(*args, **kwargs)`` applied to every field that has ``to``."""
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            if hasattr(v, "to"):
                v = v.to(*args, **kwargs)
            ret.set(k, v)
        return ret

    def __getitem__(self, item: Any) -> Instances:
        """Index every field by an int (keeps a length-1 Instances), slice, bool mask or index.

        Raises:
            IndexError: for an int out of range or a bool mask of the wrong length.
        """
        n = len(self)
        if isinstance(item, np.integer):
            item = int(item)
        check_index(item, n, "Instances")
        if isinstance(item, int):
            item = slice(item % n, item % n + 1)
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            ret.set(k, index_list(v, item) if isinstance(v, list) else v[item])
        return ret

    def __len__(self) -> int:
        for v in self._fields.values():
            return len(v)
        raise NotImplementedError("Empty Instances does not support __len__!")

    def __iter__(self):
        raise NotImplementedError("`Instances` object is not iterable!")

    @staticmethod
    def cat(instance_lists: Sequence[Instances]) -> Instances:
        """Concatenate Instances of the same image size with the same fields.

        Tensors are concatenated with ``torch.cat``, lists chained, and other
        fields concatenated with their type's ``cat``.

        Raises:
            ValueError: for an empty list, different image sizes or different fields.
        """
        if not isinstance(instance_lists, (list, tuple)) or len(instance_lists) == 0:
            raise ValueError("instance_lists: expected a non-empty list of Instances")
        for i in instance_lists:
            if not isinstance(i, Instances):
                raise TypeError(
                    f"instance_lists: every element must be Instances, got {type(i).__name__}"
                )
        if len(instance_lists) == 1:
            return instance_lists[0]
        image_size = instance_lists[0].image_size
        keys = set(instance_lists[0]._fields)
        for i in instance_lists[1:]:
            if i.image_size != image_size:
                raise ValueError(
                    f"instance_lists: image sizes differ, {i.image_size} and {image_size}"
                )
            if set(i._fields) != keys:
                raise ValueError(
                    f"instance_lists: fields differ, {sorted(i._fields)} and {sorted(keys)}"
                )
        ret = Instances(image_size)
        for k in instance_lists[0]._fields:
            values = [i.get(k) for i in instance_lists]
            v0 = values[0]
            if isinstance(v0, torch.Tensor):
                values = torch.cat(values, dim=0)
            elif isinstance(v0, list):
                values = list(itertools.chain(*values))
            elif hasattr(type(v0), "cat"):
                values = type(v0).cat(values)
            else:
                raise ValueError(f"Unsupported type {type(v0)} for concatenation of field '{k}'")
            ret.set(k, values)
        return ret

    def __str__(self) -> str:
        s = self.__class__.__name__ + "("
        if self._fields:
            s += f"num_instances={len(self)}, "
        s += f"image_height={self._image_size[0]}, "
        s += f"image_width={self._image_size[1]}, "
        s += "fields=[{}])".format(", ".join(f"{k}: {v}" for k, v in self._fields.items()))
        return s

    __repr__ = __str__
