"""Drawing predictions and ground truth on images (numpy + Pillow) and sending images
and scalars to storage backends: PNG/JSON-lines files and TensorBoard."""

from __future__ import annotations

import colorsys
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Visualizer", "LocalVisBackend", "TensorboardVisBackend", "get_palette", "read_image"]

ColorLike = str | tuple[int, int, int]


def get_palette(num_classes: int, seed: int = 42) -> list[tuple[int, int, int]]:
    """``num_classes`` distinct, reproducible RGB colours (golden-ratio hues)."""
    rng = np.random.default_rng(seed)
    offset = rng.random()
    colors = []
    for i in range(num_classes):
        h = (offset + i * 0.618033988749895) % 1.0
        s = 0.55 + 0.45 * ((i * 7) % 5) / 4
        r, g, b = colorsys.hsv_to_rgb(h, s, 0.95)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors


def read_image(
    path: str | os.PathLike, backend_args: Mapping[str, Any] | None = None
) -> np.ndarray:
    """The image file at ``path`` as uint8[H, W, 3] RGB. ``backend_args`` selects the file
    backend; only the local one (``None`` or ``dict(backend="local")``) exists. A missing
    file raises FileNotFoundError, one that cannot be decoded a ValueError naming it."""
    backend = (backend_args or {}).get("backend", "local")
    if backend not in ("local", "disk"):
        raise ValueError(f"backend_args: only the local file backend is supported, got {backend!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except PermissionError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # PIL raises UnidentifiedImageError (an OSError) for unknown formats, OSError for
        # truncated data and SyntaxError for some corrupt headers
        raise ValueError(f"{path}: cannot decode the image: {e}") from e


def image_from_tensor(image: Any) -> np.ndarray:
    """An image tensor (Tensor[3, H, W], float in [0, 1] or uint8) as uint8[H, W, 3]."""
    arr = _to_numpy(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    return _as_image(arr)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_image(image: Any, name: str = "image") -> np.ndarray:
    img = _to_numpy(image)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name}: expected an (H, W, 3) RGB array, got shape {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    img = img[..., :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.max(initial=0) <= 1.0:
            img = img * 255
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def _field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]`` (None when absent); ``.data`` of pixel containers."""
    if obj is None:
        return None
    value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    return value


def _pixel(obj: Any) -> np.ndarray | None:
    if obj is None:
        return None
    data = _field(obj, "data") if not isinstance(obj, (torch.Tensor, np.ndarray)) else obj
    arr = _to_numpy(data if data is not None else obj)
    return arr[0] if arr.ndim == 3 else arr


class LocalVisBackend:
    """Writes scalars as JSON lines (``scalars.json``) and images as PNG files
    (``vis_image/<name>_<step>.png``) under ``save_dir``."""

    def __init__(
        self,
        save_dir: str | os.PathLike,
        img_save_dir: str = "vis_image",
        scalar_save_file: str = "scalars.json",
    ) -> None:
        self.save_dir = Path(save_dir)
        self.img_dir = self.save_dir / img_save_dir
        self.scalar_file = self.save_dir / scalar_save_file

    def add_scalars(self, scalars: Mapping[str, Any], step: int = 0) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        record = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in scalars.items()}
        record["step"] = step
        with open(self.scalar_file, "a") as f:
            f.write(json.dumps(record) + "\n")

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        self.img_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_as_image(image)).save(self.img_dir / f"{name}_{step}.png")

    def close(self) -> None:
        pass


class TensorboardVisBackend:
    """Writes scalars and images to TensorBoard event files in ``save_dir`` through
    ``torch.utils.tensorboard.SummaryWriter`` (created on first use)."""

    def __init__(self, save_dir: str | os.PathLike) -> None:
        self.save_dir = Path(save_dir)
        self._writer = None

    @property
    def writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.save_dir))
        return self._writer

    def add_scalars(self, scalars: Mapping[str, Any], step: int = 0) -> None:
        for key, value in scalars.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        self.writer.add_image(name, _as_image(image), step, dataformats="HWC")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Visualizer:
    """Draws on an RGB image and forwards images and scalars to its backends.

    Usage: ``set_image(img)``, then ``draw_*`` calls, then ``get_image()``; or
    :meth:`add_datasample` to draw ground truth next to predictions of one sample.

    Args:
        vis_backends: backends (:class:`LocalVisBackend`, :class:`TensorboardVisBackend`)
            that receive :meth:`add_image` and :meth:`add_scalars`.
        alpha: default opacity of filled masks and maps.
        dataset_meta: ``classes`` (names) and ``palette`` (RGB per class) used to colour
            and name labels; a palette is generated when absent.
    """

    def __init__(
        self,
        vis_backends: Sequence[Any] = (),
        alpha: float = 0.5,
        dataset_meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.vis_backends = list(vis_backends)
        self.alpha = alpha
        self.dataset_meta: dict[str, Any] = dict(dataset_meta or {})
        self._image: np.ndarray | None = None

    # -- image state ------------------------------------------------------------------
    def set_image(self, image: Any) -> None:
        """Start drawing on a copy of ``image`` (Tensor or array[H, W, 3], RGB)."""
        self._image = _as_image(image).copy()

    def get_image(self) -> np.ndarray:
        """The drawn image (uint8[H, W, 3], RGB)."""
        if self._image is None:
            raise RuntimeError("no image: call set_image first")
        return self._image

    def _blend(self, overlay: Image.Image) -> None:
        base = Image.fromarray(self.get_image()).convert("RGBA")
        self._image = np.asarray(Image.alpha_composite(base, overlay).convert("RGB")).copy()

    def _overlay(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        h, w = self.get_image().shape[:2]
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        return layer, ImageDraw.Draw(layer)

    @staticmethod
    def _rgba(color: ColorLike, alpha: float) -> tuple[int, int, int, int]:
        from PIL import ImageColor

        rgb = ImageColor.getrgb(color) if isinstance(color, str) else tuple(int(c) for c in color)
        return (*rgb[:3], round(alpha * 255))

    @staticmethod
    def _per_item(value: Any, n: int, name: str) -> list[Any]:
        if isinstance(value, (str, int, float)) or (
            isinstance(value, tuple)
            and len(value) == 3
            and all(isinstance(c, (int, np.integer)) for c in value)
        ):
            return [value] * n
        items = list(value)
        if len(items) != n:
            raise ValueError(f"{name}: expected one value or {n} values, got {len(items)}")
        return items

    # -- primitives -------------------------------------------------------------------
    def draw_bboxes(
        self,
        bboxes: Any,
        edge_colors: ColorLike | Sequence[ColorLike] = "green",
        line_widths: int | Sequence[int] = 2,
        face_colors: ColorLike | Sequence[ColorLike] | None = None,
        alpha: float = 0.8,
    ) -> Visualizer:
        """Draw ``bboxes (Tensor[N, 4])`` as (x1, y1, x2, y2) rectangles."""
        boxes = _to_numpy(bboxes).reshape(-1, 4) if np.size(_to_numpy(bboxes)) else np.zeros((0, 4))
        if np.any(boxes[:, 2:] < boxes[:, :2]):
            raise ValueError("bboxes: expected x1 <= x2 and y1 <= y2")
        n = len(boxes)
        edges = self._per_item(edge_colors, n, "edge_colors")
        widths = self._per_item(line_widths, n, "line_widths")
        faces = (
            self._per_item(face_colors, n, "face_colors") if face_colors is not None else [None] * n
        )
        layer, draw = self._overlay()
        for box, edge, width, face in zip(boxes, edges, widths, faces):
            fill = self._rgba(face, alpha * 0.4) if face is not None else None
            draw.rectangle(
                [float(v) for v in box],
                outline=self._rgba(edge, alpha),
                width=int(width),
                fill=fill,
            )
        self._blend(layer)
        return self

    def draw_texts(
        self,
        texts: str | Sequence[str],
        positions: Any,
        colors: ColorLike | Sequence[ColorLike] = "white",
        background: ColorLike | None = (0, 0, 0),
    ) -> Visualizer:
        """Draw ``texts`` with their top-left corners at ``positions (Tensor[N, 2])``."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        pos = _to_numpy(positions).reshape(-1, 2)
        if len(pos) != len(texts):
            raise ValueError(f"positions: expected {len(texts)} positions, got {len(pos)}")
        cols = self._per_item(colors, len(texts), "colors")
        layer, draw = self._overlay()
        font = ImageFont.load_default()
        for text, (x, y), color in zip(texts, pos, cols):
            if background is not None:
                draw.rectangle(
                    draw.textbbox((float(x), float(y)), text, font=font),
                    fill=self._rgba(background, 0.6),
                )
            draw.text((float(x), float(y)), text, fill=self._rgba(color, 1.0), font=font)
        self._blend(layer)
        return self

    def draw_binary_masks(
        self,
        binary_masks: Any,
        colors: ColorLike | Sequence[ColorLike] = "green",
        alphas: float | None = None,
    ) -> Visualizer:
        """Fill ``binary_masks (Tensor[N, H, W] or [H, W])`` with ``colors``."""
        masks = _to_numpy(binary_masks).astype(bool)
        if masks.ndim == 2:
            masks = masks[None]
        h, w = self.get_image().shape[:2]
        if masks.ndim != 3 or masks.shape[1:] != (h, w):
            raise ValueError(f"binary_masks: expected shape (N, {h}, {w}), got {masks.shape}")
        cols = self._per_item(colors, len(masks), "colors")
        alpha = self.alpha if alphas is None else alphas
        out = self.get_image().astype(np.float32)
        for mask, color in zip(masks, cols):
            rgb = np.array(self._rgba(color, 1.0)[:3], dtype=np.float32)
            out[mask] = out[mask] * (1 - alpha) + rgb * alpha
        self._image = out.round().astype(np.uint8)
        return self

    def draw_points(
        self, positions: Any, colors: ColorLike | Sequence[ColorLike] = "red", sizes: int = 3
    ) -> Visualizer:
        """Draw dots of radius ``sizes`` at ``positions (Tensor[N, 2])``."""
        pts = _to_numpy(positions).reshape(-1, 2)
        cols = self._per_item(colors, len(pts), "colors")
        layer, draw = self._overlay()
        for (x, y), color in zip(pts, cols):
            draw.ellipse([x - sizes, y - sizes, x + sizes, y + sizes], fill=self._rgba(color, 1.0))
        self._blend(layer)
        return self

    def draw_lines(
        self,
        starts: Any,
        ends: Any,
        colors: ColorLike | Sequence[ColorLike] = "yellow",
        line_widths: int = 2,
    ) -> Visualizer:
        """Draw segments from ``starts (Tensor[N, 2])`` to ``ends (Tensor[N, 2])``."""
        a, b = _to_numpy(starts).reshape(-1, 2), _to_numpy(ends).reshape(-1, 2)
        if a.shape != b.shape:
            raise ValueError(f"starts, ends: expected the same shape, got {a.shape} and {b.shape}")
        cols = self._per_item(colors, len(a), "colors")
        layer, draw = self._overlay()
        for p, q, color in zip(a, b, cols):
            draw.line(
                [tuple(map(float, p)), tuple(map(float, q))],
                fill=self._rgba(color, 1.0),
                width=line_widths,
            )
        self._blend(layer)
        return self

    def draw_keypoints(
        self,
        keypoints: Any,
        skeleton: Sequence[tuple[int, int]] | None = None,
        colors: ColorLike = "red",
        radius: int = 3,
        kpt_thr: float = 0.05,
    ) -> Visualizer:
        """Draw ``keypoints (Tensor[N, K, 3])`` (x, y, score or visibility; or [N, K, 2])
        and the ``skeleton`` edges between keypoints above ``kpt_thr``."""
        kpts = _to_numpy(keypoints).astype(np.float64)
        if kpts.ndim == 2:
            kpts = kpts[None]
        if kpts.ndim != 3 or kpts.shape[2] not in (2, 3):
            raise ValueError(f"keypoints: expected shape (N, K, 2 or 3), got {kpts.shape}")
        for inst in kpts:
            visible = inst[:, 2] > kpt_thr if inst.shape[1] == 3 else np.ones(len(inst), dtype=bool)
            if skeleton:
                edges = [(i, j) for i, j in skeleton if visible[i] and visible[j]]
                if edges:
                    self.draw_lines(
                        inst[[i for i, _ in edges], :2],
                        inst[[j for _, j in edges], :2],
                        colors="yellow",
                    )
            if visible.any():
                self.draw_points(inst[visible, :2], colors=colors, sizes=radius)
        return self

    def _palette(self, n: int) -> list[tuple[int, int, int]]:
        palette = list(self.dataset_meta.get("palette") or [])
        if len(palette) < n:
            palette += get_palette(n)[len(palette) :]
        return [tuple(int(c) for c in p) for p in palette]  # type: ignore[misc]

    def _class_name(self, label: int) -> str:
        classes = self.dataset_meta.get("classes")
        return (
            str(classes[label]) if classes is not None and 0 <= label < len(classes) else str(label)
        )

    def draw_sem_seg(
        self,
        sem_seg: Any,
        alpha: float | None = None,
        ignore_index: int = 255,
        with_labels: bool = True,
    ) -> Visualizer:
        """Colour ``sem_seg (Tensor[H, W] or [1, H, W])`` class ids with the palette
        (``ignore_index`` left undrawn) and name each class at its largest region."""
        seg = _pixel(sem_seg).astype(np.int64)
        h, w = self.get_image().shape[:2]
        if seg.shape != (h, w):
            raise ValueError(f"sem_seg: expected shape ({h}, {w}), got {seg.shape}")
        labels = [int(c) for c in np.unique(seg) if c != ignore_index and c >= 0]
        palette = self._palette(max(labels, default=-1) + 1)
        self.draw_binary_masks(
            np.stack([seg == c for c in labels]) if labels else np.zeros((0, h, w), bool),
            [palette[c] for c in labels],
            alpha,
        )
        if with_labels and labels:
            self._label_regions([seg == c for c in labels], [self._class_name(c) for c in labels])
        return self

    def _label_regions(self, masks: Sequence[np.ndarray], names: Sequence[str]) -> None:
        positions = []
        for mask in masks:
            ys, xs = np.nonzero(mask)
            positions.append((float(np.median(xs)), float(np.median(ys))))
        self.draw_texts(list(names), np.array(positions).reshape(-1, 2))

    def draw_panoptic(
        self,
        panoptic_seg: Any,
        segments_info: Sequence[Mapping[str, Any]] | None = None,
        alpha: float | None = None,
        label_divisor: int = 1000,
    ) -> Visualizer:
        """Colour a panoptic map ``panoptic_seg (Tensor[H, W])``: either segment ids with
        ``segments_info`` (detectron2: dicts with ``id``, ``category_id``, ``isthing``)
        or, without it, ``category + instance * label_divisor`` ids (mmdet; a category
        of ``len(classes)`` or more is void and left undrawn). Stuff segments take their
        class colour, things a shade of it per instance; segments are outlined."""
        pan = _pixel(panoptic_seg).astype(np.int64)
        if segments_info is None:
            num_classes = len(self.dataset_meta.get("classes") or ()) or None
            segments = [
                {"id": i, "category_id": i % label_divisor, "isthing": i >= label_divisor}
                for i in (int(v) for v in np.unique(pan))
                if i >= 0 and (num_classes is None or i % label_divisor < num_classes)
            ]
        else:
            segments = [dict(s) for s in segments_info]
        if not segments:
            return self
        palette = self._palette(max(int(s["category_id"]) for s in segments) + 1)
        rng = np.random.default_rng(0)
        masks, colors, names = [], [], []
        for seg in segments:
            mask = pan == int(seg["id"])
            if not mask.any():
                continue
            base = np.array(palette[int(seg["category_id"])], dtype=np.float64)
            if seg.get("isthing", False):
                base = np.clip(base + rng.integers(-40, 41, size=3), 0, 255)
            masks.append(mask)
            colors.append(tuple(int(c) for c in base))
            names.append(self._class_name(int(seg["category_id"])))
        if masks:
            self.draw_binary_masks(np.stack(masks), colors, alpha)
            self._draw_contours(masks)
            self._label_regions(masks, names)
        return self

    def _draw_contours(
        self, masks: Sequence[np.ndarray], color: tuple[int, int, int] = (255, 255, 255)
    ) -> None:
        img = self.get_image()
        for mask in masks:
            edge = mask & ~(
                np.pad(mask, 1)[2:, 1:-1]
                & np.pad(mask, 1)[:-2, 1:-1]
                & np.pad(mask, 1)[1:-1, 2:]
                & np.pad(mask, 1)[1:-1, :-2]
            )
            img[edge] = color

    def draw_instances(self, instances: Any, score_thr: float = 0.3) -> Visualizer:
        """Draw an instances object (attributes or keys ``bboxes``/``pred_boxes``,
        ``labels``/``pred_classes``, ``scores``, ``masks``/``pred_masks``,
        ``keypoints``/``pred_keypoints``): masks, boxes, keypoints and class labels."""

        def get(*names: str) -> Any:
            for name in names:
                value = _field(instances, name)
                if value is not None:
                    return _to_numpy(getattr(value, "tensor", value))
            return None

        boxes = get("bboxes", "pred_boxes", "gt_boxes")
        labels = get("labels", "pred_classes", "gt_classes")
        scores = get("scores")
        masks = get("masks", "pred_masks", "gt_masks")
        kpts = get("keypoints", "pred_keypoints", "gt_keypoints")
        n = next((len(x) for x in (boxes, labels, masks, kpts) if x is not None), 0)
        keep = np.ones(n, dtype=bool) if scores is None else _to_numpy(scores) >= score_thr
        labels_k = (
            labels[keep].astype(int) if labels is not None else np.zeros(int(keep.sum()), int)
        )
        palette = self._palette(int(labels_k.max(initial=-1)) + 1)
        colors = [palette[c] for c in labels_k]
        if masks is not None and keep.any():
            self.draw_binary_masks(masks[keep], colors)
        if boxes is not None and keep.any():
            self.draw_bboxes(boxes[keep], edge_colors=colors)
            texts = [
                self._class_name(c) + (f" {s:.2f}" if scores is not None else "")
                for c, s in zip(labels_k, (scores[keep] if scores is not None else labels_k))
            ]
            self.draw_texts(texts, boxes[keep][:, :2])
        if kpts is not None and keep.any():
            self.draw_keypoints(kpts[keep], skeleton=self.dataset_meta.get("skeleton"))
        return self

    # -- data samples -----------------------------------------------------------------
    def _draw_sample_fields(self, image: np.ndarray, sample: Any, prefix: str) -> np.ndarray | None:
        self.set_image(image)
        drew = False
        sem = _field(sample, f"{prefix}_sem_seg")
        if sem is not None:
            self.draw_sem_seg(sem, ignore_index=int(self.dataset_meta.get("ignore_index", 255)))
            drew = True
        pan = _field(sample, f"{prefix}_panoptic_seg")
        if pan is not None:
            info = _field(pan, "segments_info")
            self.draw_panoptic(
                _pixel(_field(pan, "sem_seg") if _field(pan, "sem_seg") is not None else pan), info
            )
            drew = True
        inst = _field(sample, f"{prefix}_instances")
        if inst is not None:
            self.draw_instances(inst, score_thr=0.0 if prefix == "gt" else 0.3)
            drew = True
        return self.get_image() if drew else None

    def add_datasample(
        self,
        name: str,
        image: Any,
        data_sample: Any = None,
        draw_gt: bool = True,
        draw_pred: bool = True,
        show: bool = False,
        wait_time: float = 0.0,
        out_file: str | os.PathLike | None = None,
        step: int = 0,
    ) -> np.ndarray:
        """Draw the ground truth (``gt_sem_seg``, ``gt_panoptic_seg``, ``gt_instances``)
        and the predictions (``pred_*``) of ``data_sample`` on ``image`` side by side
        (ground truth left), then show it, write it to ``out_file``, or send it to the
        backends as ``name`` at ``step``.

        Returns:
            The drawn image (uint8[H, W', 3]).
        """
        img = _as_image(image)
        panels = []
        if data_sample is not None:
            if draw_gt:
                panels.append(self._draw_sample_fields(img, data_sample, "gt"))
            if draw_pred:
                panels.append(self._draw_sample_fields(img, data_sample, "pred"))
        panels = [p for p in panels if p is not None]
        drawn = np.concatenate(panels, axis=1) if panels else img
        self.set_image(drawn)
        if show:
            self.show(drawn, wait_time=wait_time, win_name=name)
        if out_file is not None:
            Path(out_file).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(drawn).save(out_file)
        elif not show:
            self.add_image(name, drawn, step)
        return drawn

    def show(self, image: Any = None, wait_time: float = 0.0, win_name: str = "image") -> None:
        """Open the image in the system viewer (Pillow), then wait ``wait_time`` seconds."""
        Image.fromarray(_as_image(self.get_image() if image is None else image)).show(
            title=win_name
        )
        if wait_time > 0:
            time.sleep(wait_time)

    # -- backends ---------------------------------------------------------------------
    def add_image(self, name: str, image: Any, step: int = 0) -> None:
        img = _as_image(image)
        for backend in self.vis_backends:
            backend.add_image(name, img, step)

    def add_scalars(self, scalars: Mapping[str, Any], step: int = 0) -> None:
        for backend in self.vis_backends:
            backend.add_scalars(scalars, step)

    def close(self) -> None:
        for backend in self.vis_backends:
            backend.close()
