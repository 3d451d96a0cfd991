"""Instance masks: :class:`BitMasks`, :class:`PolygonMasks`, :class:`ROIMasks`, and rasterisation.

Polygons follow the COCO convention: a polygon is a flat sequence
``[x0, y0, x1, y1, ...]`` in absolute pixel coordinates, where pixel (i, j)
covers the square [j, j + 1) x [i, i + 1). Rasterisation is written here (no
pycocotools): a pixel belongs to a polygon when its center (j + 0.5, i + 0.5)
is inside it by the even-odd rule, and the mask of an instance is the union of
its polygons' masks, as pycocotools' ``frPyObjects`` + ``merge`` used by detectron2.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import vt_ops
from vt_structures._utils import check_index, check_tensor, index_list
from vt_structures.boxes import Boxes

__all__ = [
    "BitMasks",
    "PolygonMasks",
    "ROIMasks",
    "polygon_area",
    "polygons_to_bitmask",
    "rasterize_polygons_within_box",
    "paste_masks_in_image",
]

_Polygon = np.ndarray | torch.Tensor | Sequence[float]


def polygon_area(x: np.ndarray, y: np.ndarray) -> float:
    """Area of a simple polygon with vertices ``(x[i], y[i])`` (shoelace formula)."""
    return 0.5 * float(np.abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _fill_polygon(out: np.ndarray, xy: np.ndarray) -> None:
    """OR into ``out`` (bool H x W) the pixels whose centers lie inside polygon ``xy`` (K x 2)."""
    height, width = out.shape
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    r0 = max(0, int(np.floor(y0.min())))
    r1 = min(height, int(np.ceil(y0.max())) + 1)
    c0 = max(0, int(np.floor(x0.min())))
    c1 = min(width, int(np.ceil(x0.max())) + 1)
    if r0 >= r1 or c0 >= c1:
        return
    yc = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    # An edge crosses the row's center line when exactly one end is below it (half-open),
    # so a vertex on the line is counted once and horizontal edges never.
    crosses = (y0 <= yc) != (y1 <= yc)
    rows, edges = np.nonzero(crosses)
    if rows.size == 0:
        return
    e0x, e0y, e1x, e1y = x0[edges], y0[edges], x1[edges], y1[edges]
    xs = e0x + (yc[rows, 0] - e0y) * (e1x - e0x) / (e1y - e0y)
    # Pixel j's center is right of the crossing when j + 0.5 > xs.
    first = np.clip(np.floor(xs - 0.5).astype(np.int64) + 1 - c0, 0, c1 - c0)
    cols = c1 - c0 + 1
    toggles = np.bincount(rows * cols + first, minlength=(r1 - r0) * cols).reshape(r1 - r0, cols)
    inside = (np.cumsum(toggles, axis=1)[:, :-1] & 1).astype(bool)
    out[r0:r1, c0:c1] |= inside


def _as_polygon_array(polygon: _Polygon, name: str) -> np.ndarray:
    """A float64 flat array of 2K coordinates (K >= 3), validated."""
    if isinstance(polygon, torch.Tensor):
        polygon = polygon.detach().cpu().numpy()
    arr = np.asarray(polygon, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or len(arr) % 2 != 0 or len(arr) < 6:
        raise ValueError(
            f"{name}: a polygon needs an even number >= 6 of coordinates [x0, y0, x1, y1, ...], "
            f"got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: polygon coordinates must be finite")
    return arr


def polygons_to_bitmask(polygons: Sequence[_Polygon], height: int, width: int) -> np.ndarray:
    """Rasterise the polygons of one instance.

    Args:
        polygons: polygons of one instance, each ``[x0, y0, x1, y1, ...]``.
        height: mask height.
        width: mask width.

    Returns:
        ndarray[height, width] (bool): the union of the polygons' interiors
        (pixel centers inside, even-odd rule).
    """
    if height < 0 or width < 0:
        raise ValueError(f"height and width must be >= 0, got ({height}, {width})")
    mask = np.zeros((int(height), int(width)), dtype=bool)
    for i, p in enumerate(polygons):
        _fill_polygon(mask, _as_polygon_array(p, f"polygons[{i}]").reshape(-1, 2))
    return mask


def rasterize_polygons_within_box(
    polygons: Sequence[np.ndarray], box: np.ndarray, mask_size: int
) -> torch.Tensor:
    """Rasterise the polygons of one instance inside ``box``, resized to a square mask.

    Equivalent to rasterising at full resolution, cropping ``box`` and resizing
    to ``mask_size`` x ``mask_size``, but without the full-resolution mask.

    Args:
        polygons: polygons of one instance, each ``[x0, y0, x1, y1, ...]``.
        box (ndarray[4]): the crop (x0, y0, x1, y1).
        mask_size: side of the output mask.

    Returns:
        Tensor[mask_size, mask_size] (bool).
    """
    box = np.asarray(box, dtype=np.float64)
    w, h = box[2] - box[0], box[3] - box[1]
    ratio_w = mask_size / max(w, 0.1)
    ratio_h = mask_size / max(h, 0.1)
    scaled = []
    for i, p in enumerate(polygons):
        xy = _as_polygon_array(p, f"polygons[{i}]").reshape(-1, 2) - box[:2]
        scaled.append((xy * (ratio_w, ratio_h)).reshape(-1))
    return torch.from_numpy(polygons_to_bitmask(scaled, mask_size, mask_size))


def _sample_masks(
    masks: torch.Tensor, boxes: torch.Tensor, y0: int, y1: int, x0: int, x1: int
) -> torch.Tensor:
    """Bilinearly sample ``masks`` (N x M x M) at the pixel centres of image rows y0:y1, cols x0:x1.

    Pixel ``(y, x)`` has its centre at ``(y + 0.5, x + 0.5)``; each mask covers its box
    exactly (``grid_sample``, ``align_corners=False``) and is 0 outside. Returns
    N x (y1 - y0) x (x1 - x0) soft values.
    """
    bx0, by0, bx1, by1 = torch.split(boxes, 1, dim=1)  # each N x 1
    n = masks.shape[0]
    img_y = torch.arange(y0, y1, device=masks.device, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0, x1, device=masks.device, dtype=torch.float32) + 0.5
    img_y = (img_y - by0) / (by1 - by0) * 2 - 1  # (N, h)
    img_x = (img_x - bx0) / (bx1 - bx0) * 2 - 1  # (N, w)
    gx = img_x[:, None, :].expand(n, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(n, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)
    if not masks.dtype.is_floating_point:
        masks = masks.float()
    return F.grid_sample(masks[:, None], grid.to(masks.dtype), align_corners=False)[:, 0]


def _box_regions(boxes: torch.Tensor, img_h: int, img_w: int) -> list[list[int]]:
    """Integer (x0, y0, x1, y1) image region of each box, one pixel wider on each side.

    Bilinear sampling gives 0 outside it; boxes outside the image get an empty region.
    """
    lo = (boxes[:, :2].floor() - 1).clamp(min=0)
    hi = torch.minimum(boxes[:, 2:].ceil() + 1, boxes.new_tensor([img_w, img_h])).clamp(min=0)
    return torch.cat([torch.minimum(lo, hi), hi], 1).to(torch.int64).tolist()


def _binarize(soft: torch.Tensor, threshold: float) -> torch.Tensor:
    return soft >= threshold if threshold >= 0 else (soft * 255).to(torch.uint8)


_GPU_MEM_LIMIT = 1024**3  # bytes of float masks pasted at once on GPU


def paste_masks_in_image(
    masks: torch.Tensor,
    boxes: Boxes | torch.Tensor,
    image_shape: tuple[int, int],
    threshold: float = 0.5,
) -> torch.Tensor:
    """Paste fixed-resolution masks (e.g. 28 x 28) into an image, as detectron2.

    Each mask is resized bilinearly to its box (``grid_sample``, half-pixel
    centers) and thresholded.

    Args:
        masks (Tensor[N, M, M]): mask probabilities in [0, 1].
        boxes (Boxes or Tensor[N, 4]): where to paste each mask (x0, y0, x1, y1).
        image_shape: (height, width) of the image.
        threshold: masks are binarised with ``>= threshold``; a negative
            threshold returns uint8 soft masks scaled to [0, 255].

    Returns:
        Tensor[N, height, width]: bool masks (uint8 when ``threshold < 0``).
    """
    masks = check_tensor(masks, "masks", (None, None, None))
    if masks.shape[-1] != masks.shape[-2]:
        raise ValueError(f"masks: only square masks are supported, got {tuple(masks.shape)}")
    boxes_t = boxes.tensor if isinstance(boxes, Boxes) else check_tensor(boxes, "boxes", (None, 4))
    n = len(masks)
    if len(boxes_t) != n:
        raise ValueError(f"boxes: expected {n} boxes (one per mask), got {len(boxes_t)}")
    img_h, img_w = (int(s) for s in image_shape)
    out_dtype = torch.bool if threshold >= 0 else torch.uint8
    if n == 0:
        return masks.new_empty((0, img_h, img_w), dtype=out_dtype)
    device = boxes_t.device
    boxes_t = boxes_t.to(torch.float32)
    masks = masks.to(device)
    img_masks = torch.zeros(n, img_h, img_w, device=device, dtype=out_dtype)
    if device.type == "cpu" and not torch.compiler.is_compiling():
        # one mask at a time, over its own box only; plain slices, one host sync in all
        # (under torch.compile, the whole-image path below: no data-dependent slices)
        for i, (x0, y0, x1, y1) in enumerate(_box_regions(boxes_t, img_h, img_w)):
            if x1 > x0 and y1 > y0:
                soft = _sample_masks(masks[i : i + 1], boxes_t[i : i + 1], y0, y1, x0, x1)
                img_masks[i, y0:y1, x0:x1] = _binarize(soft[0], threshold)
        return img_masks
    # GPU (and compiled): whole-image chunks whose float masks stay under _GPU_MEM_LIMIT
    num_chunks = min(n, -(-n * img_h * img_w * 4 // _GPU_MEM_LIMIT))
    for inds in torch.chunk(torch.arange(n, device=device), num_chunks):
        img_masks[inds] = _binarize(
            _sample_masks(masks[inds], boxes_t[inds], 0, img_h, 0, img_w), threshold
        )
    return img_masks


def _roi_align_masks(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    mask_size: int,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """roi_align(aligned=True, adaptive sampling) of mask ``index[i]`` (default i) inside
    box i: N x M x M float32.

    ``masks`` (K x H x W) may be bool; ``boxes`` is float32 on the masks' device.
    """
    if index is None:
        index = torch.arange(len(boxes), device=boxes.device)
    rois = torch.cat([index.to(boxes.dtype)[:, None], boxes], dim=1)
    out = vt_ops.roi_align(
        masks[:, None].to(torch.float32),
        rois,
        (mask_size, mask_size),
        spatial_scale=1.0,
        sampling_ratio=0,
        aligned=True,
    )
    return out[:, 0]


class BitMasks:
    """Per-instance bitmasks of one image, stored as Tensor[N, H, W] (bool).

    Attributes:
        tensor (Tensor[N, H, W]): the masks.
        image_size (tuple[int, int]): (H, W).
    """

    def __init__(self, tensor: torch.Tensor | np.ndarray) -> None:
        """
        Args:
            tensor (Tensor[N, H, W]): masks; any dtype, converted to bool.
        """
        if isinstance(tensor, np.ndarray):
            tensor = torch.from_numpy(tensor)
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor: expected a tensor or array, got {type(tensor).__name__}")
        tensor = tensor.to(torch.bool)
        if tensor.dim() != 3:
            raise ValueError(f"tensor: expected shape (N, H, W), got {tuple(tensor.shape)}")
        self.image_size = tuple(tensor.shape[1:])
        # Selection by an index tensor is deferred: ``_source[_index]`` is gathered on the
        # first use of ``tensor``, and crop_and_resize reads ``_source`` directly (R-CNN
        # training selects the ground-truth mask of every sampled region, mostly the
        # same few masks).
        self._source: torch.Tensor | None = None
        self._index: torch.Tensor | None = None
        self.tensor = tensor

    @property
    def tensor(self) -> torch.Tensor:
        if self._tensor is None:
            self._tensor = self._source[self._index]
            self._source = self._index = None
        return self._tensor

    @tensor.setter
    def tensor(self, value: torch.Tensor) -> None:
        self._tensor = value
        self._source = self._index = None

    @classmethod
    def _gathered(cls, source: torch.Tensor, index: torch.Tensor) -> BitMasks:
        masks = cls.__new__(cls)
        masks.image_size = tuple(source.shape[1:])
        masks._tensor, masks._source, masks._index = None, source, index
        return masks

    def to(self, *args: Any, **kwargs: Any) -> BitMasks:
        return BitMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return (self._tensor if self._tensor is not None else self._source).device

    def __getitem__(self, item: Any) -> BitMasks:
        """Masks selected by an int (a BitMasks of one mask), slice, bool mask or index tensor."""
        check_index(item, len(self), "BitMasks")
        if isinstance(item, int):
            return BitMasks(self.tensor[item].unsqueeze(0))
        if isinstance(item, torch.Tensor) and item.dim() == 1:
            if self._tensor is None:
                return BitMasks._gathered(self._source, self._index[item])
            # torch's indexing checks and normalises the positions (bool, negative).
            positions = torch.arange(len(self), device=self._tensor.device)[item]
            return BitMasks._gathered(self._tensor, positions)
        m = self.tensor[item]
        if m.dim() != 3:
            raise ValueError(
                f"Indexing on BitMasks with {item} returns a tensor with shape {m.shape}!"
            )
        return BitMasks(m)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.tensor

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self)})"

    def __len__(self) -> int:
        return len(self._index) if self._tensor is None else self._tensor.shape[0]

    def nonempty(self) -> torch.Tensor:
        """Tensor[N] (bool): masks with at least one pixel set."""
        return self.tensor.flatten(1).any(dim=1)

    def area(self) -> torch.Tensor:
        """Tensor[N] (int64): number of pixels of every mask."""
        return self.tensor.flatten(1).sum(dim=1)

    @staticmethod
    def from_polygon_masks(
        polygon_masks: PolygonMasks | list[list[np.ndarray]], height: int, width: int
    ) -> BitMasks:
        """Rasterise polygon masks into an image of ``height`` x ``width``."""
        if isinstance(polygon_masks, PolygonMasks):
            polygon_masks = polygon_masks.polygons
        masks = [polygons_to_bitmask(p, height, width) for p in polygon_masks]
        if masks:
            return BitMasks(torch.stack([torch.from_numpy(x) for x in masks]))
        return BitMasks(torch.empty(0, height, width, dtype=torch.bool))

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """Crop mask i to ``boxes[i]`` and resize it to ``mask_size`` x ``mask_size``.

        The crop is roi_align (aligned=True, adaptive sampling) of the mask as
        float, thresholded at 0.5: the Mask R-CNN training targets.

        Args:
            boxes (Tensor[N, 4]): one box (x0, y0, x1, y1) per mask.
            mask_size: side of the output masks.

        Returns:
            Tensor[N, mask_size, mask_size] (bool).
        """
        boxes = check_tensor(boxes, "boxes", (None, 4))
        if len(boxes) != len(self):
            raise ValueError(f"boxes: expected {len(self)} boxes (one per mask), got {len(boxes)}")
        if mask_size <= 0:
            raise ValueError(f"mask_size: expected > 0, got {mask_size}")
        if len(boxes) == 0:
            return torch.zeros(0, mask_size, mask_size, dtype=torch.bool, device=self.device)
        boxes = boxes.to(device=self.device, dtype=torch.float32)
        if self._tensor is None:
            return _roi_align_masks(self._source, boxes, mask_size, self._index) >= 0.5
        return _roi_align_masks(self._tensor, boxes, mask_size) >= 0.5

    def get_bounding_boxes(self) -> Boxes:
        """Boxes around every mask: (x_min, y_min, x_max + 1, y_max + 1); zeros when empty."""
        n = len(self)
        if n == 0:
            return Boxes(torch.zeros(0, 4, device=self.device))
        x_any = self.tensor.any(dim=1)  # (N, W)
        y_any = self.tensor.any(dim=2)  # (N, H)
        w, h = x_any.shape[1], y_any.shape[1]
        x0 = x_any.to(torch.uint8).argmax(dim=1)
        x1 = w - x_any.flip(1).to(torch.uint8).argmax(dim=1)
        y0 = y_any.to(torch.uint8).argmax(dim=1)
        y1 = h - y_any.flip(1).to(torch.uint8).argmax(dim=1)
        boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)
        return Boxes(boxes * self.nonempty()[:, None])

    @staticmethod
    def cat(bitmasks_list: Sequence[BitMasks]) -> BitMasks:
        """Concatenate BitMasks of the same image size."""
        if not isinstance(bitmasks_list, (list, tuple)) or len(bitmasks_list) == 0:
            raise ValueError("bitmasks_list: expected a non-empty list of BitMasks")
        for m in bitmasks_list:
            if not isinstance(m, BitMasks):
                raise TypeError(
                    f"bitmasks_list: every element must be BitMasks, got {type(m).__name__}"
                )
            if m.image_size != bitmasks_list[0].image_size:
                raise ValueError(
                    f"bitmasks_list: image sizes differ, {m.image_size} and "
                    f"{bitmasks_list[0].image_size}"
                )
        return BitMasks(torch.cat([m.tensor for m in bitmasks_list], dim=0))


class PolygonMasks:
    """Per-instance polygon masks of one image.

    Attributes:
        polygons (list[list[ndarray]]): for each instance, its polygons, each a
            float64 array ``[x0, y0, x1, y1, ...]`` of at least 3 points.
    """

    def __init__(self, polygons: list[list[_Polygon]]) -> None:
        """
        Args:
            polygons: one list of polygons per instance; a polygon is a list,
                array or tensor of 2K coordinates (K >= 3).
        """
        if not isinstance(polygons, list):
            raise ValueError(
                "polygons: expected a list of lists of polygons per instance, "
                f"got {type(polygons).__name__}"
            )
        processed = []
        for i, per_instance in enumerate(polygons):
            if not isinstance(per_instance, (list, tuple)):
                raise ValueError(
                    f"polygons[{i}]: expected a list of polygons, got {type(per_instance).__name__}"
                )
            processed.append(
                [_as_polygon_array(p, f"polygons[{i}][{j}]") for j, p in enumerate(per_instance)]
            )
        self.polygons: list[list[np.ndarray]] = processed

    def to(self, *args: Any, **kwargs: Any) -> PolygonMasks:
        """Polygons live on the CPU as numpy arrays: returns self."""
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_bounding_boxes(self) -> Boxes:
        """Boxes (x_min, y_min, x_max, y_max) around every instance's polygons; zeros when empty."""
        boxes = torch.zeros(len(self.polygons), 4, dtype=torch.float32)
        for idx, per_instance in enumerate(self.polygons):
            if per_instance:
                coords = np.concatenate(per_instance).reshape(-1, 2)
                boxes[idx, :2] = torch.from_numpy(coords.min(axis=0))
                boxes[idx, 2:] = torch.from_numpy(coords.max(axis=0))
        return Boxes(boxes)

    def nonempty(self) -> torch.Tensor:
        """Tensor[N] (bool): instances with at least one polygon."""
        return torch.tensor([len(p) > 0 for p in self.polygons], dtype=torch.bool)

    def __getitem__(self, item: Any) -> PolygonMasks:
        """Instances selected by an int, slice, list, bool mask or index tensor."""
        check_index(item, len(self), "PolygonMasks")
        return PolygonMasks(index_list(self.polygons, item))

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        """Yield each instance's list of polygons."""
        return iter(self.polygons)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.polygons)})"

    def __len__(self) -> int:
        return len(self.polygons)

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """Rasterise instance i inside ``boxes[i]`` at ``mask_size`` x ``mask_size``.

        Args:
            boxes (Tensor[N, 4]): one box (x0, y0, x1, y1) per instance.
            mask_size: side of the output masks.

        Returns:
            Tensor[N, mask_size, mask_size] (bool), on ``boxes``' device.
        """
        boxes = check_tensor(boxes, "boxes", (None, 4))
        if len(boxes) != len(self):
            raise ValueError(
                f"boxes: expected {len(self)} boxes (one per instance), got {len(boxes)}"
            )
        if mask_size <= 0:
            raise ValueError(f"mask_size: expected > 0, got {mask_size}")
        device = boxes.device
        boxes_np = boxes.detach().to("cpu", torch.float64).numpy()
        results = [
            rasterize_polygons_within_box(p, b, mask_size) for p, b in zip(self.polygons, boxes_np)
        ]
        if not results:
            return torch.empty(0, mask_size, mask_size, dtype=torch.bool, device=device)
        return torch.stack(results, dim=0).to(device=device)

    def area(self) -> torch.Tensor:
        """Tensor[N]: the sum of the polygon areas of every instance (overlaps count twice)."""
        area = [
            sum(polygon_area(p[0::2], p[1::2]) for p in per_instance)
            for per_instance in self.polygons
        ]
        return torch.tensor(area, dtype=torch.float64)

    @staticmethod
    def cat(polymasks_list: Sequence[PolygonMasks]) -> PolygonMasks:
        """Concatenate PolygonMasks."""
        if not isinstance(polymasks_list, (list, tuple)) or len(polymasks_list) == 0:
            raise ValueError("polymasks_list: expected a non-empty list of PolygonMasks")
        for m in polymasks_list:
            if not isinstance(m, PolygonMasks):
                raise TypeError(
                    f"polymasks_list: every element must be PolygonMasks, got {type(m).__name__}"
                )
        return PolygonMasks(list(itertools.chain.from_iterable(m.polygons for m in polymasks_list)))


class ROIMasks:
    """Per-instance masks predicted inside boxes, stored as Tensor[N, M, M].

    Typically the mask head's output; :meth:`to_bitmasks` pastes them into the image.
    """

    def __init__(self, tensor: torch.Tensor) -> None:
        """
        Args:
            tensor (Tensor[N, M, M]): mask probabilities (or logits) per box.
        """
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor: expected a tensor, got {type(tensor).__name__}")
        if tensor.dim() != 3:
            raise ValueError(f"tensor: expected shape (N, M, M), got {tuple(tensor.shape)}")
        self.tensor = tensor

    def to(self, *args: Any, **kwargs: Any) -> ROIMasks:
        return ROIMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item: Any) -> ROIMasks:
        """Masks selected by a slice, bool mask or index tensor (an int is refused, as detectron2)."""
        check_index(item, len(self), "ROIMasks")
        t = self.tensor[item]
        if t.dim() != 3:
            raise ValueError(
                f"Indexing on ROIMasks with {item} returns a tensor with shape {tuple(t.shape)}!"
            )
        return ROIMasks(t)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    @staticmethod
    def cat(roimasks_list: Sequence[ROIMasks]) -> ROIMasks:
        """Concatenate ROIMasks of the same mask size."""
        if not isinstance(roimasks_list, (list, tuple)) or len(roimasks_list) == 0:
            raise ValueError("roimasks_list: expected a non-empty list of ROIMasks")
        return ROIMasks(torch.cat([m.tensor for m in roimasks_list], dim=0))

    def to_bitmasks(
        self, boxes: Boxes | torch.Tensor, height: int, width: int, threshold: float = 0.5
    ) -> BitMasks:
        """Paste every mask into its box of a ``height`` x ``width`` image.

        Args:
            boxes (Boxes or Tensor[N, 4]): one box per mask.
            height: image height.
            width: image width.
            threshold: binarisation threshold (see :func:`paste_masks_in_image`).
        """
        return BitMasks(paste_masks_in_image(self.tensor, boxes, (height, width), threshold))
