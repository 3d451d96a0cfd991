"""mmengine-style data elements: :class:`BaseDataElement`, :class:`PixelData`, :class:`SegDataSample`.

A data element has two kinds of fields: *metainfo* (image shape, file name,
...: set with :meth:`BaseDataElement.set_metainfo` or the ``metainfo``
argument) and *data* (tensors and other elements: set as attributes). A name
is either one or the other. ``to``/``cpu``/``cuda``/``numpy``/``detach``
apply to data fields only.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["BaseDataElement", "PixelData", "SegDataSample"]

_PRIVATE = ("_metainfo_fields", "_data_fields")


class BaseDataElement:
    """A container of metainfo and data fields, as mmengine's ``BaseDataElement``.

    Args:
        metainfo: metainfo fields (deep-copied).
        **kwargs: data fields.
    """

    def __init__(self, *, metainfo: dict | None = None, **kwargs: Any) -> None:
        self._metainfo_fields: set[str] = set()
        self._data_fields: set[str] = set()
        if metainfo is not None:
            self.set_metainfo(metainfo=metainfo)
        if kwargs:
            self.set_data(kwargs)

    def set_metainfo(self, metainfo: dict) -> None:
        """Add or update metainfo fields (values are deep-copied)."""
        if not isinstance(metainfo, dict):
            raise TypeError(f"metainfo: expected a dict, got {type(metainfo).__name__}")
        for k, v in copy.deepcopy(metainfo).items():
            self.set_field(name=k, value=v, field_type="metainfo", dtype=None)

    def set_data(self, data: dict) -> None:
        """Add or update data fields."""
        if not isinstance(data, dict):
            raise TypeError(f"data: expected a dict, got {type(data).__name__}")
        for k, v in data.items():
            setattr(self, k, v)

    def update(self, instance: BaseDataElement) -> None:
        """Copy the metainfo and data fields of ``instance`` into this element."""
        if not isinstance(instance, BaseDataElement):
            raise TypeError(f"instance: expected a data element, got {type(instance).__name__}")
        self.set_metainfo(dict(instance.metainfo_items()))
        self.set_data(dict(instance.items()))

    def new(self, *, metainfo: dict | None = None, **kwargs: Any) -> BaseDataElement:
        """A new element of the same type, with this one's fields unless given."""
        new_data = self.__class__()
        new_data.set_metainfo(dict(self.metainfo_items()) if metainfo is None else metainfo)
        new_data.set_data(kwargs if kwargs else dict(self.items()))
        return new_data

    def clone(self) -> BaseDataElement:
        """A shallow copy (data values are shared, metainfo deep-copied)."""
        clone_data = self.__class__()
        clone_data.set_metainfo(dict(self.metainfo_items()))
        clone_data.set_data(dict(self.items()))
        return clone_data

    def keys(self) -> list[str]:
        """Names of the data fields."""
        # A property `x` stores its value in the private field `_x`: list `x` only.
        private = {
            "_" + k for k in self._data_fields if isinstance(getattr(type(self), k, None), property)
        }
        return list(self._data_fields - private)

    def metainfo_keys(self) -> list[str]:
        return list(self._metainfo_fields)

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def metainfo_values(self) -> list[Any]:
        return [getattr(self, k) for k in self.metainfo_keys()]

    def all_keys(self) -> list[str]:
        return self.metainfo_keys() + self.keys()

    def all_values(self) -> list[Any]:
        return self.metainfo_values() + self.values()

    def all_items(self) -> Iterator[tuple[str, Any]]:
        for k in self.all_keys():
            yield (k, getattr(self, k))

    def items(self) -> Iterator[tuple[str, Any]]:
        for k in self.keys():
            yield (k, getattr(self, k))

    def metainfo_items(self) -> Iterator[tuple[str, Any]]:
        for k in self.metainfo_keys():
            yield (k, getattr(self, k))

    @property
    def metainfo(self) -> dict:
        """A dict of the metainfo fields."""
        return dict(self.metainfo_items())

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PRIVATE:
            if name in self.__dict__:
                raise AttributeError(f"{name} is a private attribute and cannot be changed")
            object.__setattr__(self, name, value)
        else:
            self.set_field(name=name, value=value, field_type="data", dtype=None)

    def __delattr__(self, item: str) -> None:
        if item in _PRIVATE:
            raise AttributeError(f"{item} is a private attribute and cannot be deleted")
        object.__delattr__(self, item)
        self._metainfo_fields.discard(item)
        self._data_fields.discard(item)

    __delitem__ = __delattr__

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key``, or ``default`` when absent."""
        return getattr(self, key, default)

    def pop(self, *args: Any) -> Any:
        """Remove field ``args[0]`` and return it (or ``args[1]`` when absent and given)."""
        if not 1 <= len(args) <= 2:
            raise TypeError("pop expects a name and an optional default")
        name = args[0]
        if name in self._metainfo_fields or name in self._data_fields:
            value = getattr(self, name)
            delattr(self, name)
            return value
        if len(args) == 2:
            return args[1]
        raise KeyError(f"{name} is not contained in metainfo or data")

    def __contains__(self, item: str) -> bool:
        return item in self._data_fields or item in self._metainfo_fields

    def set_field(
        self,
        value: Any,
        name: str,
        dtype: type | tuple[type, ...] | None = None,
        field_type: str = "data",
    ) -> None:
        """Set ``name`` as a ``field_type`` ("data" or "metainfo") field, checking ``dtype``."""
        if field_type not in ("metainfo", "data"):
            raise ValueError(f"field_type: expected 'metainfo' or 'data', got {field_type!r}")
        if dtype is not None and not isinstance(value, dtype):
            raise TypeError(f"{name}: expected a {dtype}, got {type(value).__name__}")
        if field_type == "metainfo" and name in self._data_fields:
            raise AttributeError(
                f"Cannot set {name} to be a field of metainfo because {name} is already a data field"
            )
        if field_type == "data" and name in self._metainfo_fields:
            raise AttributeError(
                f"Cannot set {name} to be a field of data because {name} is already a metainfo field"
            )
        # Set first: a property setter may refuse the value, and then no field is recorded.
        object.__setattr__(self, name, value)
        (self._metainfo_fields if field_type == "metainfo" else self._data_fields).add(name)

    def _map_data(self, fn_name: str, *args: Any, **kwargs: Any) -> BaseDataElement:
        new_data = self.new()
        for k, v in self.items():
            if hasattr(v, fn_name):
                v = getattr(v, fn_name)(*args, **kwargs)
            new_data.set_data({k: v})
        return new_data

    def to(self, *args: Any, **kwargs: Any) -> BaseDataElement:
        """A copy with ``to(*args, **kwargs)`` applied to every data field that has it."""
        return self._map_data("to", *args, **kwargs)

    def cpu(self) -> BaseDataElement:
        return self._map_data("cpu")

    def cuda(self) -> BaseDataElement:
        return self._map_data("cuda")

    def detach(self) -> BaseDataElement:
        return self._map_data("detach")

    def numpy(self) -> BaseDataElement:
        """A copy with every tensor data field converted to a numpy array."""
        new_data = self.new()
        for k, v in self.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().cpu().numpy()
            elif isinstance(v, BaseDataElement):
                v = v.numpy()
            new_data.set_data({k: v})
        return new_data

    def to_tensor(self) -> BaseDataElement:
        """A copy with every numpy data field converted to a tensor."""
        new_data = self.new()
        for k, v in self.items():
            if isinstance(v, np.ndarray):
                v = torch.from_numpy(v)
            elif isinstance(v, BaseDataElement):
                v = v.to_tensor()
            new_data.set_data({k: v})
        return new_data

    def to_dict(self) -> dict:
        """All fields as a dict (nested elements converted too)."""
        return {
            k: v.to_dict() if isinstance(v, BaseDataElement) else v for k, v in self.all_items()
        }

    def __repr__(self) -> str:
        def indent(s: str, num_spaces: int) -> str:
            lines = s.split("\n")
            if len(lines) == 1:
                return s
            first = lines.pop(0)
            return first + "\n" + "\n".join(num_spaces * " " + line for line in lines)

        def dump(obj: Any) -> str:
            out = ""
            if isinstance(obj, dict):
                for k, v in obj.items():
                    out += f"\n{k}: {indent(dump(v), 4)}"
            elif isinstance(obj, BaseDataElement):
                out += "\n\n    META INFORMATION"
                out += indent(dump(dict(obj.metainfo_items())), 4)
                out += "\n\n    DATA FIELDS"
                out += indent(dump(dict(obj.items())), 4)
                out = f"<{obj.__class__.__name__}({out}\n) at {hex(id(obj))}>"
            else:
                out += repr(obj)
            return out

        return dump(self)


class PixelData(BaseDataElement):
    """Pixel-level data of one image: every data field is C x H x W with the same H, W.

    A field of shape H x W is stored as 1 x H x W (with a warning), as mmengine.
    Indexing with a pair of ints or slices crops every field::

        pixel_data = PixelData(metainfo=dict(img_shape=(4, 4)), data=torch.rand(1, 4, 4))
        pixel_data.shape          # (4, 4)
        pixel_data[1:3, 0:2].shape  # (2, 2)
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PRIVATE:
            super().__setattr__(name, value)
            return
        if not isinstance(value, (torch.Tensor, np.ndarray)):
            raise TypeError(
                f"{name}: PixelData fields must be torch.Tensor or np.ndarray, got {type(value).__name__}"
            )
        if value.ndim not in (2, 3):
            raise ValueError(
                f"{name}: expected shape (H, W) or (C, H, W), got {tuple(value.shape)}"
            )
        shape = self.shape
        if shape is not None and tuple(value.shape[-2:]) != shape:
            raise ValueError(
                f"{name}: height and width {tuple(value.shape[-2:])} differ from the "
                f"PixelData's {shape}"
            )
        if value.ndim == 2:
            value = value[None]
            warnings.warn(
                f"{name}: the shape of value will convert from (H, W) to (1, H, W)", stacklevel=2
            )
        super().__setattr__(name, value)

    @property
    def shape(self) -> tuple[int, int] | None:
        """(H, W) of the data fields, None when there is none."""
        for k in self.keys():
            return tuple(getattr(self, k).shape[-2:])
        return None

    def __getitem__(self, item: tuple[int | slice, int | slice]) -> PixelData:
        """Crop every data field; an int keeps a size-1 dimension."""
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(
                f"item: PixelData supports indexing by (h, w) ints or slices, got {item!r}"
            )
        index: list[slice] = [slice(None)]
        for single in item:
            if isinstance(single, int) and not isinstance(single, bool):
                index.append(slice(single, single + 1 if single != -1 else None))
            elif isinstance(single, slice):
                index.append(single)
            else:
                raise TypeError(f"item: expected ints or slices, got {type(single).__name__}")
        new_data = self.__class__(metainfo=self.metainfo)
        for k, v in self.items():
            setattr(new_data, k, v[tuple(index)])
        return new_data


def _pixel_data_property(name: str, doc: str) -> property:
    private = "_" + name

    def getter(self: SegDataSample) -> PixelData:
        return getattr(self, private)

    def setter(self: SegDataSample, value: PixelData) -> None:
        self.set_field(value, private, dtype=PixelData)

    def deleter(self: SegDataSample) -> None:
        delattr(self, private)

    return property(getter, setter, deleter, doc)


class SegDataSample(BaseDataElement):
    """The data interface of semantic segmentation, as mmseg's ``SegDataSample``.

    Data fields (each a :class:`PixelData`):

    - ``gt_sem_seg``: the ground-truth segmentation.
    - ``pred_sem_seg``: the predicted segmentation.
    - ``seg_logits``: the predicted logits.

    Metainfo (e.g. ``img_shape``, ``ori_shape``, ``img_path``) is set with
    ``metainfo=`` or :meth:`set_metainfo`. ``"gt_sem_seg" in sample`` tells
    whether a field is present.
    """

    gt_sem_seg = _pixel_data_property("gt_sem_seg", "The ground-truth segmentation (PixelData).")
    pred_sem_seg = _pixel_data_property("pred_sem_seg", "The predicted segmentation (PixelData).")
    seg_logits = _pixel_data_property("seg_logits", "The segmentation logits (PixelData).")
