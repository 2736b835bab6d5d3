"""Regions from the project's low-res detector (training/detector.py: a small CenterNet over frame +
motion channel at half resolution), run with onnxruntime: whole people and vehicles where motion blobs
give fragments, pairs and flicker, and objects that stand still (a parked car) as well.

Called like every region provider, ``(frame, index) -> [N, 4]`` x, y, w, h boxes; it also leaves each
box's category scores in ``last_categories`` for the pipeline, which names a box within its category."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..errors import BundleError, InputError
from .motion_input import MotionInput

META_KEY = "lowres_sdk.detector"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "detector" / "detector.onnx"
# the classifier labels each detector category may be named with
CATEGORY_LABELS = {"person": ("person",), "vehicle": ("car", "truck", "bus", "motorcycle")}


def _session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors for a bad file
        raise BundleError(f"{path} is not a loadable ONNX model: {str(e).strip().splitlines()[0][:200]}") from None


def read_meta(path: str | Path, session=None) -> dict:
    """The metadata a detector ONNX carries (categories, stride, what it trained on)."""
    session = session or _session(Path(path))
    meta = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if meta is None:
        raise BundleError(f"{path} is not a lowres_sdk detector (no {META_KEY} metadata)")
    return json.loads(meta)


COARSE_MIN_HEIGHT = 24  # detector-input px: a box this tall at a coarse level is beyond the finer level's view
PART_OF = 0.7  # a box this much inside a larger one of its category is a part of it (a head, a leg)

# tracker settings its boxes need: a distance gate (on 3 fps cameras a car moves past its own length between
# frames), and travel for people only (a parked car is an object; a person-like post or sign that never moves
# is not: the vehicle category, index 1 of the detector's, may stand still). One sighting reports a vehicle
# (a person still needs a second to have travelled): on the fold detectors' training sequences, 3 fps highway
# cameras where a car is in view for a few frames, min_hits 2 lost each car's first frame (F1 of the named
# vehicles at threshold 0.4: 92.9 / 97.8 / 59.1 / 96.2 / 85.9 with 1 against 91.0 / 91.1 / 57.4 / 88.6 / 81.6)
TRACKER_DEFAULTS = {"min_hits": 1, "min_travel": 0.1, "gate": 2.0, "static_categories": (1,)}
STATIC_CATEGORIES = ("vehicle",)
DEFAULT_THRESHOLD = 0.3  # peak heat, for a model whose metadata chose none


def _thresholds(threshold: float | dict[str, float], categories: tuple[str, ...]) -> np.ndarray:
    """One threshold per category from one number or a {category: threshold} mapping naming each."""
    if isinstance(threshold, dict):
        missing = set(categories) - set(threshold)
        if missing:
            raise InputError(f"threshold names no value for {', '.join(sorted(missing))}")
        threshold = [threshold[c] for c in categories]
    out = np.broadcast_to(np.asarray(threshold, np.float32), (len(categories),)).copy()
    if not ((out > 0) & (out < 1)).all():
        raise InputError(f"threshold must be in (0, 1), got {threshold}")
    return out


class DetectorRegions:
    """People and vehicles found by the detector at ``threshold`` (peak heat; one number, or one per
    category name; default: the thresholds the model's metadata carries, else 0.3), kept after
    class-agnostic NMS at ``nms_iou``; ``downscale`` is the factor the frame is shrunk by first
    (the detector was trained at 2), and ``levels`` the pyramid levels it runs on (each halves the
    last: people up close on a low camera are 2-4x the size of those it trained on)."""

    def __init__(self, model: str | Path | None = None, threshold: float | dict[str, float] | None = None,
                 nms_iou: float = 0.5, downscale: int = 2, levels: int = 2, min_size: int = 8, threads: int = 1):
        path = Path(model) if model is not None else DEFAULT_MODEL
        if not path.is_file():
            raise InputError(f"detector model not found: {path}")
        self.session = _session(path, threads)
        meta = read_meta(path, self.session)
        self.categories, self.stride = tuple(meta["categories"]), int(meta["stride"])
        self.by_category = _thresholds(meta.get("thresholds", DEFAULT_THRESHOLD) if threshold is None else threshold,
                                       self.categories)
        self.threshold = float(self.by_category.min())  # peaks and NMS; each category's own is applied after
        self.nms_iou, self.min_size, self.levels = nms_iou, min_size, levels
        self.input = MotionInput(downscale)
        static = tuple(i for i, c in enumerate(self.categories) if c in STATIC_CATEGORIES)
        self.tracker_defaults = {**TRACKER_DEFAULTS, "static_categories": static,
                                 **{k: v for k, v in meta.get("tracker", {}).items() if k in TRACKER_DEFAULTS}}
        self.last_categories = np.zeros((0, len(self.categories)), np.float32)

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        return self.select(*self.candidates(frame))

    def candidates(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every peak of every level at ``threshold``: boxes (x, y, w, h, frame px) and category scores."""
        x = self.input(frame)
        found = []
        for level in range(self.levels):  # each level halves the input: large objects seen at a trained scale
            if level:
                x = cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_AREA)
            boxes, scores = self._detect(x)
            if level:  # a coarser level keeps only what the finer one sees too large to hold whole (SNIP)
                large = boxes[:, 3] >= COARSE_MIN_HEIGHT
                boxes, scores = boxes[large], scores[large]
            found.append((boxes * self.input.downscale * 2 ** level, scores))
        boxes, scores = np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found])
        keep = (boxes[:, 2] >= self.min_size) | (boxes[:, 3] >= self.min_size)
        return boxes[keep], scores[keep]

    def select(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The candidates kept: at their category's threshold, after NMS, less the parts of larger boxes."""
        keep = (scores >= self.by_category[None]).any(1) if len(boxes) else np.zeros(0, bool)
        boxes, scores = boxes[keep], scores[keep]
        order = cv2.dnn.NMSBoxes(boxes.tolist(), scores.max(1).tolist(), self.threshold, self.nms_iou) \
            if len(boxes) else []
        order = _drop_parts(boxes, scores, np.asarray(order, dtype=np.int64).reshape(-1))
        self.last_categories = scores[order]
        return np.round(boxes[order]).astype(np.int64).reshape(-1, 4)

    def _detect(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = x.shape[:2]
        ph, pw = -h % self.stride, -w % self.stride  # the trunk's strides need a multiple of them
        x = np.pad(x, ((0, ph), (0, pw), (0, 0))) if ph or pw else x
        heat, wh, off = self.session.run(None, {"input": x.transpose(2, 0, 1)[None].astype(np.float32)})
        return self._decode(heat[0], wh[0], off[0])

    def _decode(self, heat: np.ndarray, wh: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Peaks of the heat maps (3x3 local maxima over all categories, >= threshold) -> boxes in
        detector-input px and each box's heat per category."""
        top = heat.max(0)
        peaks = (top >= self.threshold) & (top >= cv2.dilate(top, np.ones((3, 3), np.uint8)))
        i, j = np.nonzero(peaks)
        cx, cy = (j + off[0, i, j]) * self.stride, (i + off[1, i, j]) * self.stride
        bw, bh = np.exp(np.clip(wh[0, i, j], -2, 8)), np.exp(np.clip(wh[1, i, j], -2, 8))
        boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1).astype(np.float64).reshape(-1, 4)
        return boxes, heat[:, i, j].T.astype(np.float32).reshape(-1, len(self.categories))


def _drop_parts(boxes: np.ndarray, scores: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``order`` less the boxes lying ``PART_OF`` inside a larger kept box of the same category: a whole
    person found at a coarse level and its head and legs found at a fine one are one person."""
    if len(order) < 2:
        return order
    b, category = boxes[order], scores[order].argmax(1)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.maximum(0, np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]))
    ih = np.maximum(0, np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]))
    area = b[:, 2] * b[:, 3]
    inside = (iw * ih / np.maximum(area[:, None], 1e-9) >= PART_OF) & (area[None] > 2 * area[:, None])
    inside &= category[:, None] == category[None]
    return order[~inside.any(1)]
