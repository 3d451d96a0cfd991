"""Deterministic, invertible geometric transforms for images and their annotations.

A transform knows how to map every kind of data of one image consistently:
images (HWC numpy arrays, uint8 or float, and tensors whose last two dimensions
are H, W), segmentation maps and bitmasks (nearest neighbour), coordinates,
boxes, rotated boxes, polygons and keypoints. ``inverse()`` returns the
transform that maps coordinates back. Test-time augmentation and data
augmentation share these classes::

    t = TransformList([ResizeTransform(480, 640, 240, 320), HFlipTransform(320)])
    image2, boxes2 = t.apply_image(image), t.apply_box(boxes)
    boxes_back = t.inverse().apply_box(boxes2)   # == boxes (within float error)

Coordinates are continuous: pixel (i, j) covers [j, j + 1) x [i, i + 1), so a
horizontal flip of an image of width W maps x to W - x.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from vt_structures.boxes import Boxes
from vt_structures.keypoints import Keypoints
from vt_structures.masks import BitMasks, PolygonMasks
from vt_structures.rotated_boxes import RotatedBoxes, scale_rotated_boxes

__all__ = [
    "Transform",
    "NoOpTransform",
    "ResizeTransform",
    "HFlipTransform",
    "VFlipTransform",
    "CropTransform",
    "PadTransform",
    "TransformList",
    "clip_polygon",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
_BOX_CORNERS = [0, 1, 2, 1, 0, 3, 2, 3]


def _check_image(img: Any, name: str = "img") -> None:
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"{name}: a numpy image must be HW or HWC, got shape {img.shape}")
    elif isinstance(img, torch.Tensor):
        if img.dim() < 2:
            raise ValueError(f"{name}: a tensor image must be (..., H, W), got {tuple(img.shape)}")
    else:
        raise TypeError(f"{name}: expected a numpy array or tensor, got {type(img).__name__}")


def _image_hw(img: np.ndarray | torch.Tensor) -> tuple[int, int]:
    if isinstance(img, np.ndarray):
        return int(img.shape[0]), int(img.shape[1])
    return int(img.shape[-2]), int(img.shape[-1])


def _crop(img: Array, x0: int, y0: int, w: int, h: int) -> Array:
    if isinstance(img, np.ndarray):
        return img[y0 : y0 + h, x0 : x0 + w]
    return img[..., y0 : y0 + h, x0 : x0 + w]


def _pad(img: Array, x0: int, y0: int, x1: int, y1: int, value: float) -> Array:
    if isinstance(img, np.ndarray):
        widths = [(y0, y1), (x0, x1)] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, widths, mode="constant", constant_values=value)
    return F.pad(img, (x0, x1, y0, y1), value=value)


def _resize(img: Array, new_h: int, new_w: int, interp: str) -> Array:
    """Resize the HW axes; integer images are resized in float and rounded back."""
    is_numpy = isinstance(img, np.ndarray)
    # copy(): contiguous with non-negative strides, which torch requires.
    t = torch.from_numpy(img.copy()) if is_numpy else img
    if is_numpy and t.dim() == 3:
        t = t.permute(2, 0, 1)  # HWC -> CHW
    lead = t.shape[:-2]
    x = t.reshape(1, -1, *t.shape[-2:])
    dtype = x.dtype
    x = x.to(torch.float32) if not x.is_floating_point() else x
    if interp == "nearest":
        # Pixel-center sampling (as PIL), consistent with the coordinate mapping.
        y = F.interpolate(x, size=(new_h, new_w), mode="nearest-exact")
    else:
        y = F.interpolate(x, size=(new_h, new_w), mode=interp, align_corners=False, antialias=True)
    if not dtype.is_floating_point:
        if dtype == torch.bool:
            y = y >= 0.5
        else:
            info = torch.iinfo(dtype)
            y = y.round().clamp(info.min, info.max)
    y = y.to(dtype).reshape(*lead, new_h, new_w)
    if is_numpy:
        if y.dim() == 3:
            y = y.permute(1, 2, 0)
        return y.contiguous().numpy()
    return y


def _as_float_coords(coords: Array, name: str) -> Array:
    if isinstance(coords, np.ndarray):
        arr = coords.astype(np.float64) if coords.dtype.kind != "f" else coords
    elif isinstance(coords, torch.Tensor):
        arr = coords if coords.is_floating_point() else coords.to(torch.float32)
    else:
        raise TypeError(f"{name}: expected a numpy array or tensor, got {type(coords).__name__}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (N, 2), got {tuple(arr.shape)}")
    return arr


def _stack_last(parts: Sequence[Array]) -> Array:
    if isinstance(parts[0], np.ndarray):
        return np.stack(parts, axis=-1)
    return torch.stack(list(parts), dim=-1)


def clip_polygon(polygon: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Clip a polygon to the rectangle [x0, x1] x [y0, y1] (Sutherland-Hodgman).

    The clip window is convex, so every piece of a concave polygon that
    remains is kept; where the polygon leaves and re-enters the window the
    pieces are joined by zero-width edges along the window's border, which
    neither add area nor pixels.

    Args:
        polygon (ndarray[K, 2]): vertices (x, y).
        x0: left of the rectangle.
        y0: top of the rectangle.
        x1: right of the rectangle.
        y1: bottom of the rectangle.

    Returns:
        ndarray[L, 2]: the clipped polygon (L may be 0).
    """
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    # (axis, bound, keep where coordinate >= bound (sign 1) or <= bound (sign -1))
    for axis, bound, sign in ((0, x0, 1.0), (0, x1, -1.0), (1, y0, 1.0), (1, y1, -1.0)):
        if len(pts) == 0:
            break
        prev = np.roll(pts, 1, axis=0)
        d_cur = sign * (pts[:, axis] - bound)
        d_prev = sign * (prev[:, axis] - bound)
        inside_cur, inside_prev = d_cur >= 0, d_prev >= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            # t is only used where the edge crosses the bound (d_prev != d_cur).
            t = d_prev / (d_prev - d_cur)
            crossing = prev + t[:, None] * (pts - prev)
        crossing[:, axis] = bound
        out = []
        for i in range(len(pts)):
            if inside_cur[i]:
                if not inside_prev[i]:
                    out.append(crossing[i])
                out.append(pts[i])
            elif inside_prev[i]:
                out.append(crossing[i])
        pts = np.asarray(out, dtype=np.float64).reshape(-1, 2)
    return pts


class Transform:
    """Base class of deterministic geometric transforms.

    Subclasses implement :meth:`apply_image`, :meth:`apply_coords`,
    :meth:`apply_rotated_box` and :meth:`inverse`; boxes, polygons, keypoints,
    bitmasks and segmentation maps are derived from those.
    """

    #: 1 when the transform mirrors the image (swaps left and right keypoints).
    reflections: int = 0

    def apply_image(self, img: Array) -> Array:
        """Transform an image: ndarray HW or HWC (uint8 or float), or Tensor[..., H, W]."""
        raise NotImplementedError(f"{type(self).__name__} does not implement apply_image")

    def apply_coords(self, coords: Array) -> Array:
        """Transform points: ndarray or Tensor[N, 2] of (x, y); returns a new array."""
        raise NotImplementedError(f"{type(self).__name__} does not implement apply_coords")

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        """Transform rotated boxes: ndarray or Tensor[N, 5], or :class:`RotatedBoxes`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement apply_rotated_box")

    def inverse(self) -> Transform:
        """The transform that undoes this one on coordinates."""
        raise NotImplementedError(f"{type(self).__name__} does not implement inverse")

    def apply_segmentation(self, segmentation: Array) -> Array:
        """Transform a segmentation map (labels), with nearest-neighbour sampling."""
        return self.apply_image(segmentation)

    def apply_box(self, box: Any) -> Any:
        """Transform axis-aligned boxes: ndarray or Tensor[N, 4] (XYXY_ABS), or :class:`Boxes`.

        The result is the box enclosing the four transformed corners.
        """
        if isinstance(box, RotatedBoxes):
            raise TypeError("box: got RotatedBoxes, use apply_rotated_box")
        if isinstance(box, Boxes):
            return Boxes(self.apply_box(box.tensor))
        if not isinstance(box, (np.ndarray, torch.Tensor)):
            raise TypeError(f"box: expected an array, tensor or Boxes, got {type(box).__name__}")
        if box.ndim != 2 or box.shape[1] != 4:
            raise ValueError(f"box: expected shape (N, 4), got {tuple(box.shape)}")
        corners = self.apply_coords(box[:, _BOX_CORNERS].reshape(-1, 2)).reshape(-1, 4, 2)
        if isinstance(corners, np.ndarray):
            return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        return torch.cat([corners.min(dim=1).values, corners.max(dim=1).values], dim=1)

    def apply_polygons(self, polygons: Any) -> Any:
        """Transform polygons: a list of ndarray[K, 2], or :class:`PolygonMasks`."""
        if isinstance(polygons, PolygonMasks):
            return PolygonMasks(
                [
                    [p.reshape(-1) for p in self.apply_polygons([q.reshape(-1, 2) for q in inst])]
                    for inst in polygons.polygons
                ]
            )
        if not isinstance(polygons, (list, tuple)):
            raise TypeError(
                f"polygons: expected a list of (K, 2) arrays or PolygonMasks, got {type(polygons).__name__}"
            )
        return [self.apply_coords(np.asarray(p, dtype=np.float64).reshape(-1, 2)) for p in polygons]

    def apply_bitmasks(self, masks: Any) -> Any:
        """Transform instance masks: :class:`BitMasks`, Tensor[N, H, W] or ndarray[N, H, W]."""
        if isinstance(masks, BitMasks):
            return BitMasks(self.apply_segmentation(masks.tensor))
        if isinstance(masks, np.ndarray):
            return self.apply_segmentation(masks.transpose(1, 2, 0)).transpose(2, 0, 1)
        if isinstance(masks, torch.Tensor):
            return self.apply_segmentation(masks)
        raise TypeError(f"masks: expected BitMasks, a tensor or array, got {type(masks).__name__}")

    def apply_keypoints(self, keypoints: Any, flip_indices: Sequence[int] | None = None) -> Any:
        """Transform keypoints: ndarray or Tensor[N, K, 3] of (x, y, visibility), or :class:`Keypoints`.

        Unlabeled keypoints (visibility 0) stay at (0, 0, 0), as COCO. When the
        transform mirrors the image an odd number of times, left and right
        swap: the new keypoint i is the transformed keypoint ``flip_indices[i]``
        (e.g. left eye <-> right eye).

        Raises:
            ValueError: when the transform mirrors and ``flip_indices`` is
                missing or of the wrong length.
        """
        if isinstance(keypoints, Keypoints):
            return Keypoints(self.apply_keypoints(keypoints.tensor, flip_indices))
        if not isinstance(keypoints, (np.ndarray, torch.Tensor)):
            raise TypeError(
                f"keypoints: expected an array, tensor or Keypoints, got {type(keypoints).__name__}"
            )
        if keypoints.ndim != 3 or keypoints.shape[2] != 3:
            raise ValueError(f"keypoints: expected shape (N, K, 3), got {tuple(keypoints.shape)}")
        n, k = keypoints.shape[:2]
        xy = self.apply_coords(keypoints[..., :2].reshape(-1, 2)).reshape(n, k, 2)
        vis = keypoints[..., 2:]
        if isinstance(xy, np.ndarray):
            out = np.concatenate([xy, vis.astype(xy.dtype)], axis=2)
        else:
            out = torch.cat([xy, vis.to(xy.dtype)], dim=2)
        out[keypoints[..., 2] == 0] = 0
        if self.reflections % 2 == 1:
            if flip_indices is None or len(flip_indices) != k:
                raise ValueError(
                    f"flip_indices: the transform mirrors the image, so {k} flip indices are "
                    f"needed to swap left and right keypoints, got {flip_indices!r}"
                )
            index = list(flip_indices)
            out = out[:, index] if isinstance(out, np.ndarray) else out[:, torch.as_tensor(index)]
        return out

    def __add__(self, other: Transform) -> TransformList:
        return TransformList([self, other])


@dataclass(frozen=True)
class NoOpTransform(Transform):
    """The identity."""

    def apply_image(self, img: Array) -> Array:
        _check_image(img)
        return img

    def apply_coords(self, coords: Array) -> Array:
        return _as_float_coords(coords, "coords")

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        return rotated_boxes

    def inverse(self) -> Transform:
        return self


def _check_ints(minimum: int, **values: Any) -> None:
    for name, v in values.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
        if v < minimum:
            raise ValueError(f"{name}: expected an int >= {minimum}, got {v!r}")


def _check_positive_ints(**values: Any) -> None:
    _check_ints(1, **values)


def _check_nonnegative_ints(**values: Any) -> None:
    _check_ints(0, **values)


def _rotated_tensor(rotated_boxes: Any) -> tuple[torch.Tensor, Any]:
    """(Tensor[N, 5], a function turning a result tensor back into the input's kind)."""
    if isinstance(rotated_boxes, RotatedBoxes):
        return rotated_boxes.tensor, RotatedBoxes
    if isinstance(rotated_boxes, np.ndarray):
        t = torch.from_numpy(np.array(rotated_boxes, dtype=np.float64))  # a copy
        restore = lambda x: x.numpy().astype(rotated_boxes.dtype, copy=False)  # noqa: E731
    elif isinstance(rotated_boxes, torch.Tensor):
        t, restore = rotated_boxes, (lambda x: x)
    else:
        raise TypeError(
            "rotated_boxes: expected an array, tensor or RotatedBoxes, "
            f"got {type(rotated_boxes).__name__}"
        )
    if t.dim() != 2 or t.shape[1] != 5:
        raise ValueError(f"rotated_boxes: expected shape (N, 5), got {tuple(t.shape)}")
    return t, restore


def _shift_rotated(rotated_boxes: Any, dx: float, dy: float) -> Any:
    t, restore = _rotated_tensor(rotated_boxes)
    t = t.clone()
    t[:, 0] += dx
    t[:, 1] += dy
    return restore(t)


@dataclass(frozen=True)
class ResizeTransform(Transform):
    """Resize an image of (h, w) to (new_h, new_w); coordinates scale by new_w / w and new_h / h.

    Args:
        h: input height.
        w: input width.
        new_h: output height.
        new_w: output width.
        interp: image interpolation, "bilinear" (default, antialiased when
            shrinking, as PIL), "bicubic" or "nearest". Segmentation maps and
            bitmasks always use nearest (pixel centers).
    """

    h: int
    w: int
    new_h: int
    new_w: int
    interp: str = "bilinear"

    def __post_init__(self) -> None:
        _check_positive_ints(h=self.h, w=self.w, new_h=self.new_h, new_w=self.new_w)
        if self.interp not in _INTERPOLATIONS:
            raise ValueError(f"interp: expected one of {_INTERPOLATIONS}, got {self.interp!r}")

    def _check_size(self, img: Any, name: str) -> None:
        _check_image(img, name)
        if _image_hw(img) != (self.h, self.w):
            raise ValueError(
                f"{name}: expected an image of size ({self.h}, {self.w}), got {_image_hw(img)}"
            )

    def apply_image(self, img: Array, interp: str | None = None) -> Array:
        self._check_size(img, "img")
        return _resize(img, self.new_h, self.new_w, interp or self.interp)

    def apply_segmentation(self, segmentation: Array) -> Array:
        self._check_size(segmentation, "segmentation")
        return _resize(segmentation, self.new_h, self.new_w, "nearest")

    def apply_coords(self, coords: Array) -> Array:
        coords = _as_float_coords(coords, "coords")
        scale = (self.new_w / self.w, self.new_h / self.h)
        if isinstance(coords, torch.Tensor):
            return coords * torch.tensor(scale, dtype=coords.dtype, device=coords.device)
        return coords * np.asarray(scale, dtype=coords.dtype)

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        """Scale rotated boxes (exact for uniform scaling or angles multiple of 90 degrees)."""
        t, restore = _rotated_tensor(rotated_boxes)
        return restore(scale_rotated_boxes(t, self.new_w / self.w, self.new_h / self.h))

    def inverse(self) -> ResizeTransform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


@dataclass(frozen=True)
class HFlipTransform(Transform):
    """Mirror an image of the given width horizontally: x -> width - x."""

    width: int
    reflections = 1

    def __post_init__(self) -> None:
        _check_positive_ints(width=self.width)

    def apply_image(self, img: Array) -> Array:
        _check_image(img)
        if isinstance(img, np.ndarray):
            return img[:, ::-1].copy()
        return img.flip(-1)

    def apply_coords(self, coords: Array) -> Array:
        coords = _as_float_coords(coords, "coords")
        return _stack_last([self.width - coords[:, 0], coords[:, 1]])

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        """Mirror centers; a mirrored angle is the negated angle."""
        t, restore = _rotated_tensor(rotated_boxes)
        t = t.clone()
        t[:, 0] = self.width - t[:, 0]
        t[:, 4] = -t[:, 4]
        return restore(t)

    def inverse(self) -> HFlipTransform:
        return self


@dataclass(frozen=True)
class VFlipTransform(Transform):
    """Mirror an image of the given height vertically: y -> height - y."""

    height: int
    reflections = 1

    def __post_init__(self) -> None:
        _check_positive_ints(height=self.height)

    def apply_image(self, img: Array) -> Array:
        _check_image(img)
        if isinstance(img, np.ndarray):
            return img[::-1].copy()
        return img.flip(-2)

    def apply_coords(self, coords: Array) -> Array:
        coords = _as_float_coords(coords, "coords")
        return _stack_last([coords[:, 0], self.height - coords[:, 1]])

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        t, restore = _rotated_tensor(rotated_boxes)
        t = t.clone()
        t[:, 1] = self.height - t[:, 1]
        t[:, 4] = -t[:, 4]
        return restore(t)

    def inverse(self) -> VFlipTransform:
        return self


@dataclass(frozen=True)
class CropTransform(Transform):
    """Crop the region [x0, x0 + w) x [y0, y0 + h); coordinates shift by (-x0, -y0).

    Polygons are clipped to the crop (pieces outside are removed). Boxes are
    only shifted, as detectron2: clip them with :meth:`Boxes.clip` if needed.

    Args:
        x0: left of the crop.
        y0: top of the crop.
        w: width of the crop.
        h: height of the crop.
        orig_w: width of the input image; needed by :meth:`inverse`.
        orig_h: height of the input image; needed by :meth:`inverse`.
    """

    x0: int
    y0: int
    w: int
    h: int
    orig_w: int | None = None
    orig_h: int | None = None

    def __post_init__(self) -> None:
        _check_nonnegative_ints(x0=self.x0, y0=self.y0)
        _check_positive_ints(w=self.w, h=self.h)
        if self.orig_w is not None and self.x0 + self.w > self.orig_w:
            raise ValueError(
                f"orig_w: the crop ends at x={self.x0 + self.w} > orig_w={self.orig_w}"
            )
        if self.orig_h is not None and self.y0 + self.h > self.orig_h:
            raise ValueError(
                f"orig_h: the crop ends at y={self.y0 + self.h} > orig_h={self.orig_h}"
            )

    def apply_image(self, img: Array) -> Array:
        _check_image(img)
        return _crop(img, self.x0, self.y0, self.w, self.h)

    def apply_coords(self, coords: Array) -> Array:
        coords = _as_float_coords(coords, "coords")
        return _stack_last([coords[:, 0] - self.x0, coords[:, 1] - self.y0])

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        return _shift_rotated(rotated_boxes, -self.x0, -self.y0)

    def apply_polygons(self, polygons: Any) -> Any:
        if isinstance(polygons, PolygonMasks) or not isinstance(polygons, (list, tuple)):
            return super().apply_polygons(polygons)
        x1, y1 = self.x0 + self.w, self.y0 + self.h
        kept = []
        for p in polygons:
            clipped = clip_polygon(np.asarray(p, dtype=np.float64), self.x0, self.y0, x1, y1)
            if len(clipped) >= 3 and _polygon_area_xy(clipped) > 0:
                kept.append(clipped)
        return super().apply_polygons(kept)

    def inverse(self) -> PadTransform:
        if self.orig_w is None or self.orig_h is None:
            raise ValueError("CropTransform.inverse needs orig_w and orig_h")
        return PadTransform(
            self.x0,
            self.y0,
            self.orig_w - self.x0 - self.w,
            self.orig_h - self.y0 - self.h,
            orig_w=self.w,
            orig_h=self.h,
        )


def _polygon_area_xy(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@dataclass(frozen=True)
class PadTransform(Transform):
    """Pad x0 columns on the left, x1 on the right, y0 rows on top and y1 at the bottom.

    Args:
        x0: columns added on the left.
        y0: rows added on top.
        x1: columns added on the right.
        y1: rows added at the bottom.
        orig_w: width of the input image; needed by :meth:`inverse`.
        orig_h: height of the input image; needed by :meth:`inverse`.
        pad_value: image padding value.
        seg_pad_value: segmentation-map padding value (e.g. an ignore label).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    orig_w: int | None = None
    orig_h: int | None = None
    pad_value: float = 0
    seg_pad_value: int = 0

    def __post_init__(self) -> None:
        _check_nonnegative_ints(x0=self.x0, y0=self.y0, x1=self.x1, y1=self.y1)

    def apply_image(self, img: Array) -> Array:
        _check_image(img)
        return _pad(img, self.x0, self.y0, self.x1, self.y1, self.pad_value)

    def apply_segmentation(self, segmentation: Array) -> Array:
        _check_image(segmentation, "segmentation")
        return _pad(segmentation, self.x0, self.y0, self.x1, self.y1, self.seg_pad_value)

    def apply_coords(self, coords: Array) -> Array:
        coords = _as_float_coords(coords, "coords")
        return _stack_last([coords[:, 0] + self.x0, coords[:, 1] + self.y0])

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        return _shift_rotated(rotated_boxes, self.x0, self.y0)

    def inverse(self) -> CropTransform:
        if self.orig_w is None or self.orig_h is None:
            raise ValueError("PadTransform.inverse needs orig_w and orig_h")
        return CropTransform(
            self.x0,
            self.y0,
            self.orig_w,
            self.orig_h,
            orig_w=self.orig_w + self.x0 + self.x1,
            orig_h=self.orig_h + self.y0 + self.y1,
        )


class TransformList(Transform):
    """Transforms applied in order; nested lists are flattened.

    Args:
        transforms: the transforms, first applied first.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        flat: list[Transform] = []
        for i, t in enumerate(transforms):
            if isinstance(t, TransformList):
                flat.extend(t.transforms)
            elif isinstance(t, Transform):
                flat.append(t)
            else:
                raise TypeError(f"transforms[{i}]: expected a Transform, got {type(t).__name__}")
        self.transforms = flat

    @property
    def reflections(self) -> int:  # type: ignore[override]
        return sum(t.reflections for t in self.transforms)

    def _chain(self, method: str, x: Any) -> Any:
        for t in self.transforms:
            x = getattr(t, method)(x)
        return x

    def apply_image(self, img: Array) -> Array:
        return self._chain("apply_image", img)

    def apply_segmentation(self, segmentation: Array) -> Array:
        return self._chain("apply_segmentation", segmentation)

    def apply_coords(self, coords: Array) -> Array:
        if not self.transforms:
            return _as_float_coords(coords, "coords")
        return self._chain("apply_coords", coords)

    def apply_box(self, box: Any) -> Any:
        return self._chain("apply_box", box) if self.transforms else super().apply_box(box)

    def apply_rotated_box(self, rotated_boxes: Any) -> Any:
        return self._chain("apply_rotated_box", rotated_boxes)

    def apply_polygons(self, polygons: Any) -> Any:
        return self._chain("apply_polygons", polygons)

    def apply_bitmasks(self, masks: Any) -> Any:
        return self._chain("apply_bitmasks", masks)

    def inverse(self) -> TransformList:
        return TransformList([t.inverse() for t in reversed(self.transforms)])

    def __add__(self, other: Transform) -> TransformList:
        return TransformList([*self.transforms, other])

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)

    def __getitem__(self, idx: int) -> Transform:
        return self.transforms[idx]

    def __repr__(self) -> str:
        return f"TransformList[{', '.join(repr(t) for t in self.transforms)}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransformList) and self.transforms == other.transforms

    __hash__ = None  # type: ignore[assignment]
