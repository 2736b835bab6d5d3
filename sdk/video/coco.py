"""Regions from a COCO-trained detector: YOLOX-Nano (Megvii, Apache-2.0; sdk/models/coco/README.md),
run with onnxruntime on the frame letterboxed to its 416 px input. People seen from the street, from a
low or an elevated camera, as whole boxes: it learned them from COCO's 250,000 people, which a model
trained on a few fixed cameras cannot match. It knows cars from the side, not from a mast high above:
there the project's own detector (`DetectorRegions`) is the one to use.

Called like every region provider, ``(frame, index) -> [N, 4]`` x, y, w, h boxes; ``last_categories``
holds each box's score per category (person, vehicle) for the pipeline, which names a box within it."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import BundleError, InputError
from .detector import _session

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "coco" / "yolox_nano.onnx"
CATEGORIES = ("person", "vehicle")
# COCO class index -> category (bicycle and motorcycle carry a rider: the person box is the one counted)
COCO_CATEGORY = {0: 0, 2: 1, 5: 1, 7: 1}  # person; car, bus, truck
# As the own detector's (detector.TRACKER_DEFAULTS, chosen on its folds' training sequences): a vehicle
# counts from its first sighting (at 3 fps a car is in view for a few frames) and may stand still; a person
# must travel, so needs a second; tracks join by distance too (a car at 3 fps moves past its own length).
TRACKER_DEFAULTS = {"min_hits": 1, "min_travel": 0.1, "gate": 2.0, "static_categories": (1,)}
STRIDES = (8, 16, 32)
PAD = 114  # YOLOX's letterbox grey


class CocoRegions:
    """People and vehicles from YOLOX at ``threshold`` (objectness x class score, YOLOX's demo default),
    kept after per-category NMS at ``nms_iou``; boxes under ``min_size`` px on both sides are dropped."""

    categories = CATEGORIES

    def __init__(self, model: str | Path | None = None, threshold: float = 0.3, nms_iou: float = 0.45,
                 min_size: int = 8, threads: int = 1):
        path = Path(model) if model is not None else DEFAULT_MODEL
        if not path.is_file():
            raise InputError(f"COCO detector model not found: {path}")
        if not 0 < threshold < 1:
            raise InputError(f"threshold must be in (0, 1), got {threshold}")
        self.session = _session(path, threads)
        self.input_name, self.size = _contract(self.session, path)
        self.threshold, self.nms_iou, self.min_size = threshold, nms_iou, min_size
        self.grid, self.stride = _grid(*self.size)
        self.tracker_defaults = dict(TRACKER_DEFAULTS)
        self.last_categories = np.zeros((0, len(CATEGORIES)), np.float32)

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        h, w = frame.shape[:2]
        r = min(self.size[0] / h, self.size[1] / w)
        image = np.full((*self.size, 3), PAD, np.uint8)
        image[:round(h * r), :round(w * r)] = cv2.resize(frame, (round(w * r), round(h * r)),
                                                          interpolation=cv2.INTER_LINEAR)
        raw = self.session.run(None, {self.input_name: image.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
        boxes, scores = self._decode(raw, r)
        keep = (boxes[:, 2] >= self.min_size) | (boxes[:, 3] >= self.min_size)
        boxes, scores = boxes[keep], scores[keep]
        order = np.asarray(cv2.dnn.NMSBoxesBatched(boxes.tolist(), scores.max(1).tolist(), scores.argmax(1).tolist(),
                                                   self.threshold, self.nms_iou) if len(boxes) else [],
                           dtype=np.int64).reshape(-1)
        self.last_categories = scores[order]
        boxes = np.round(boxes[order])
        x1, y1 = np.clip(boxes[:, 0], 0, w - 1), np.clip(boxes[:, 1], 0, h - 1)
        x2, y2 = np.clip(boxes[:, 0] + boxes[:, 2], x1 + 1, w), np.clip(boxes[:, 1] + boxes[:, 3], y1 + 1, h)
        return np.stack([x1, y1, x2 - x1, y2 - y1], 1).astype(np.int64).reshape(-1, 4)

    def _decode(self, raw: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
        """YOLOX's head (per anchor point: centre and log size in strides, objectness, 80 class scores)
        -> boxes in frame px and each box's score per category (its best COCO class of the category)."""
        classes = raw[:, 5:] * raw[:, 4:5]
        scores = np.zeros((len(raw), len(CATEGORIES)), np.float32)
        for coco, category in COCO_CATEGORY.items():
            scores[:, category] = np.maximum(scores[:, category], classes[:, coco])
        keep = scores.max(1) >= self.threshold
        raw, scores, grid, stride = raw[keep], scores[keep], self.grid[keep], self.stride[keep]
        centre, size = (raw[:, :2] + grid) * stride, np.exp(np.clip(raw[:, 2:4], -8, 8)) * stride
        return np.concatenate([centre - size / 2, size], 1).astype(np.float64) / r, scores


def _contract(session, path: Path) -> tuple[str, tuple[int, int]]:
    """The input's name and size of a YOLOX export (1x3xHxW in, 1xNx85 out, N its anchor points), else a
    typed error: another ONNX model (the project's own detector, a classifier) is refused here."""
    (inp,), outs = session.get_inputs(), session.get_outputs()
    shape, out = inp.shape, outs[0].shape if len(outs) == 1 else None
    if not (len(shape) == 4 and shape[1] == 3 and all(isinstance(d, int) for d in shape[2:])
            and out is not None and len(out) == 3 and out[2] == 85):
        raise BundleError(f"{path} is not a YOLOX COCO detector (input 1x3xHxW, output 1xNx85); "
                          f"its input is {shape} and its outputs {[o.shape for o in outs]}")
    return inp.name, (shape[2], shape[3])


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each anchor point's (column, row) in its level's grid, and its stride, in the head's order."""
    grids, strides = [], []
    for s in STRIDES:
        rows, cols = np.meshgrid(np.arange(height // s), np.arange(width // s), indexing="ij")
        grids.append(np.stack([cols, rows], 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)
