"""Crop providers: where in a frame the objects to classify are. Each is a small class called
with (frame, frame_index) returning boxes as an int [N, 4] array of x, y, w, h."""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

EMPTY = np.zeros((0, 4), dtype=np.int64)


def merge_boxes(boxes: np.ndarray, gap: int = 0) -> np.ndarray:
    """Union boxes that overlap (or lie within ``gap`` px of each other) until none do."""
    boxes = [list(map(int, b)) for b in boxes]
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out = []
        while boxes:
            x, y, w, h = boxes.pop()
            i = 0
            while i < len(boxes):
                bx, by, bw, bh = boxes[i]
                if bx <= x + w + gap and x <= bx + bw + gap and by <= y + h + gap and y <= by + bh + gap:
                    nx, ny = min(x, bx), min(y, by)
                    w, h = max(x + w, bx + bw) - nx, max(y + h, by + bh) - ny
                    x, y = nx, ny
                    boxes.pop(i)
                    merged = True
                else:
                    i += 1
            out.append([x, y, w, h])
        boxes = out
    return np.array(boxes, dtype=np.int64).reshape(-1, 4)


MASK_PX = 4  # mask pixels across the smallest object: a 3x3 opening keeps it, one noise pixel goes


def split_by_columns(mask: np.ndarray, box, min_width: int = 2) -> list[list[int]]:
    """Split a box of ``mask`` (x, y, w, h in mask pixels) at columns with no foreground: two people
    walking side by side whose blobs were merged stay two boxes unless their blobs touch."""
    x, y, w, h = box
    region = mask[y:y + h, x:x + w] > 0
    cols = region.any(0)
    if cols.all():
        return [list(box)]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], cols.astype(np.int8), [0]])))
    out = []
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a < min_width:
            continue
        rows = np.flatnonzero(region[:, a:b].any(1))
        out.append([x + int(a), y + int(rows[0]), int(b - a), int(rows[-1] - rows[0] + 1)])
    return out or [list(box)]


class MotionCrops:
    """Moving objects by OpenCV MOG2 background subtraction + morphology + area limits + merging.

    The subtraction runs on a grayscale frame shrunk so that ``min_size`` (the smallest side, in
    full-frame px, of an object worth classifying) spans about ``MASK_PX`` mask pixels (an integer
    factor: ``min_size // MASK_PX``), and the boxes are
    mapped back to full resolution: MOG2 dominates the pipeline's cost, and on the pedestrian clip
    grayscale at 1/3 scale ran at 2,388 frames/s vs 346 for full-resolution BGR. Areas are in
    full-frame pixels. ``downscale`` (an integer factor) overrides the scale ``min_size`` gives.
    """

    def __init__(self, min_size: int = 12, min_area: int = 120, max_area_fraction: float = 0.25, history: int = 300,
                 var_threshold: float = 25.0, merge_gap: int = 2, warmup: int = 5, downscale: int | None = None,
                 split: bool = True, gray: bool = True):
        if min_size < 1:
            raise InputError(f"min_size must be >= 1 px, got {min_size}")
        if downscale is not None and downscale < 1:
            raise InputError(f"downscale must be an integer >= 1, got {downscale}")
        # In grayscale MOG2's shadow test (darker, same chromaticity) calls dark clothes shadows: on the
        # pedestrian clip it split people into 375 tracks instead of 235, so gray runs without it.
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold,
                                                             detectShadows=not gray)
        self.min_area, self.max_area_fraction = min_area, max_area_fraction
        self.merge_gap, self.warmup = merge_gap, warmup
        # An integer factor, on a frame cropped to a multiple of it: OpenCV's INTER_AREA takes its fast
        # path only for integer ratios (1280x720 -> 427x240 cost 13.5 ms a frame on the highway clip).
        self.downscale = int(downscale) if downscale else max(1, min_size // MASK_PX)
        self.scale = 1.0 / self.downscale
        self.min_size, self.split, self.gray = min_size, split, gray
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._seen = 0

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        H, W = frame.shape[:2]
        d = self.downscale
        w, h = max(1, W // d), max(1, H // d)
        if d > 1 and W >= d and H >= d:
            frame = frame[:h * d, :w * d]
        else:
            w, h = W, H
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 and self.gray else frame
        small = gray if (w, h) == (W, H) else cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
        mask = self.subtractor.apply(small)
        self._seen += 1
        if self._seen <= self.warmup:  # the model of the background is not formed yet
            return EMPTY
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)  # drop shadows (127)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.kernel)
        sx = d if (w, h) != (W, H) else 1
        mask = cv2.dilate(mask, self.kernel, iterations=max(1, round(2 / sx)))  # ~2 px at full scale
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64).reshape(-1, 4)
        boxes = merge_boxes(rects, max(1, round(self.merge_gap / sx)))
        if self.split and len(boxes):
            boxes = self._split(mask, boxes, rects)
        boxes = boxes * sx  # mask pixel -> the full-frame pixels it covers (an integer factor)
        area = boxes[:, 2] * boxes[:, 3]
        max_area = self.max_area_fraction * H * W
        return boxes[(area >= self.min_area) & (area <= max_area)]

    @staticmethod
    def _split(mask: np.ndarray, boxes: np.ndarray, rects: np.ndarray) -> np.ndarray:
        """`split_by_columns` on the merged boxes that can split. A box spanned from edge to edge by
        one of its contours' rects (a connected blob has foreground in every column it spans) has no
        empty column: on the pedestrian clip that is most boxes, and the check is one array op."""
        inside = ((rects[None, :, 1] >= boxes[:, None, 1]) & (rects[None, :, 1] < boxes[:, None, 1] + boxes[:, None, 3])
                  & (rects[None, :, 0] == boxes[:, None, 0]) & (rects[None, :, 2] == boxes[:, None, 2]))
        whole = inside.any(1)
        if whole.all():
            return boxes
        parts = [[b] if w else split_by_columns(mask, b) for b, w in zip(boxes.tolist(), whole.tolist())]
        return np.array([b for p in parts for b in p], dtype=np.int64).reshape(-1, 4)


class FaceCrops:
    """Frontal faces by the Haar cascade that ships with opencv-python."""

    def __init__(self, min_size: int = 12, scale_factor: float = 1.1, min_neighbors: int = 4):
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise InputError(f"cannot load OpenCV's face cascade from {path}")
        self.min_size, self.scale_factor, self.min_neighbors = min_size, scale_factor, min_neighbors

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        faces = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=(self.min_size,) * 2)
        return np.asarray(faces, dtype=np.int64).reshape(-1, 4)


class FullFrame:
    """The whole frame as one crop."""

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        return np.array([[0, 0, frame.shape[1], frame.shape[0]]], dtype=np.int64)


class BoxesFile:
    """Boxes from an external detector, MOT-challenge style: ``frame,id,x,y,w,h,...`` per line,
    frames numbered from 1 (MOT convention) unless ``first_frame`` says otherwise."""

    def __init__(self, path: str | os.PathLike, first_frame: int = 1):
        path = Path(path)
        if not path.is_file():
            raise InputError(f"boxes file not found: {path}")
        self.boxes: dict[int, list] = defaultdict(list)
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise InputError(f"{path} is not a text file of boxes "
                             "(expected MOT lines 'frame,id,x,y,w,h,...')") from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.replace(" ", "").split(",")
            try:
                values = [float(v) for v in (parts[0], *parts[2:6])]
                if len(values) < 5 or not all(abs(v) < 1e7 for v in values):  # inf, nan, 1e30: not a box
                    raise ValueError
                frame, x, y, w, h = int(values[0]), *values[1:]
            except (ValueError, IndexError, OverflowError):
                raise InputError(f"{path}:{n}: expected 'frame,id,x,y,w,h,...' with finite numbers, "
                                 f"got {line[:60]!r}") from None
            if w > 0 and h > 0:
                self.boxes[frame - first_frame].append([round(x), round(y), round(w), round(h)])

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        return np.asarray(self.boxes.get(index, []), dtype=np.int64).reshape(-1, 4)


def clip_boxes(boxes: np.ndarray, width: int, height: int, min_side: int = 2) -> np.ndarray:
    """Clip boxes to the frame and drop those that end up thinner than ``min_side`` px."""
    return clip_keep(boxes, width, height, min_side)[0]


def clip_keep(boxes: np.ndarray, width: int, height: int, min_side: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """`clip_boxes`, and which of the input boxes it kept (a bool mask)."""
    if len(boxes) == 0:
        return EMPTY, np.zeros(0, bool)
    # np.minimum/maximum: np.clip on integer arrays costs ~8 us a call in numpy 2 (a quarter of this function)
    x1 = np.minimum(np.maximum(boxes[:, 0], 0), width)
    y1 = np.minimum(np.maximum(boxes[:, 1], 0), height)
    x2 = np.minimum(np.maximum(boxes[:, 0] + boxes[:, 2], 0), width)
    y2 = np.minimum(np.maximum(boxes[:, 1] + boxes[:, 3], 0), height)
    out = np.stack([x1, y1, x2 - x1, y2 - y1], 1)
    keep = (out[:, 2] >= min_side) & (out[:, 3] >= min_side)
    return out[keep].astype(np.int64), keep


CROPS_KINDS = ("street", "detector", "coco", "motion", "face", "full")  # and boxes:FILE
CROPS_HELP = "street[:DETECTOR.onnx], detector[:MODEL.onnx], coco[:MODEL.onnx], motion, face, full or boxes:FILE"


def check_crops(spec: str) -> str:
    """``spec`` if it names a region stage (`parse_crops` builds it), else a typed error naming the choices."""
    kind, _, arg = spec.partition(":")
    if kind in CROPS_KINDS and not (arg and kind in ("motion", "face", "full")) or (kind == "boxes" and arg):
        return spec
    raise InputError(f"--crops must be {CROPS_HELP}, got {spec!r}")


def parse_crops(spec: str, min_size: int = 12):
    """The CLI's ``--crops`` value -> a provider: street[:DETECTOR.onnx] | detector[:MODEL.onnx] | coco[:MODEL.onnx]
    | motion | face | full | boxes:FILE.
    ``min_size``: the smallest object side (px) worth classifying, which sets the motion mask's scale."""
    if spec == "motion":
        return MotionCrops(min_size=min_size)
    if spec == "detector" or spec.startswith("detector:"):
        from .detector import DetectorRegions

        return DetectorRegions(spec[len("detector:"):] or None, min_size=min_size)
    if spec == "street" or spec.startswith("street:"):  # COCO's people and vehicles, the own detector's vehicles
        from .combined import street_regions

        return street_regions(spec[len("street:"):] or None, min_size=min_size)
    if spec == "coco" or spec.startswith("coco:"):
        from .coco import CocoRegions

        return CocoRegions(spec[len("coco:"):] or None, min_size=min_size)
    if spec == "face":
        return FaceCrops()
    if spec == "full":
        return FullFrame()
    if spec.startswith("boxes:"):
        return BoxesFile(spec[len("boxes:"):])
    raise InputError(f"--crops must be {CROPS_HELP}, got {spec!r}")
