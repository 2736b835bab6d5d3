"""Two region stages as one: each contributes the categories it is trusted with, and boxes of one
category that two stages both found are kept once (NMS). The product's street default joins the
COCO detector's people and vehicles with the project's own detector's vehicles (cars seen from a
mast high above, which COCO never showed it)."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError


class CombinedRegions:
    """``stages``: (provider, categories it contributes) pairs; every provider has the same ``categories``."""

    def __init__(self, stages: list[tuple[object, tuple[str, ...]]], nms_iou: float = 0.5):
        self.categories = tuple(stages[0][0].categories)
        if any(tuple(p.categories) != self.categories for p, _ in stages):
            raise InputError(f"region stages to combine must share their categories, got "
                             f"{[tuple(p.categories) for p, _ in stages]}")
        self.stages = [(p, [self.categories.index(c) for c in cats]) for p, cats in stages]
        self.nms_iou = nms_iou
        defaults = [getattr(p, "tracker_defaults", {}) for p, _ in stages]
        self.tracker_defaults = defaults[0]
        self.last_categories = np.zeros((0, len(self.categories)), np.float32)

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        boxes, scores = [], []
        for provider, wanted in self.stages:
            b = np.asarray(provider(frame, index), np.float64).reshape(-1, 4)
            s = np.asarray(provider.last_categories, np.float32).reshape(-1, len(self.categories))
            mine = np.isin(s.argmax(1), wanted) if len(s) else np.zeros(0, bool)
            boxes.append(b[mine])
            scores.append(s[mine])
        boxes, scores = np.concatenate(boxes), np.concatenate(scores)
        order = np.asarray(cv2.dnn.NMSBoxesBatched(boxes.tolist(), scores.max(1).tolist(), scores.argmax(1).tolist(),
                                                   0.0, self.nms_iou) if len(boxes) else [],
                           dtype=np.int64).reshape(-1)
        self.last_categories = scores[order]
        return boxes[order].astype(np.int64).reshape(-1, 4)


def street_regions(detector=None, coco=None, min_size: int = 8) -> CombinedRegions:
    """The street default: COCO's people and vehicles (YOLOX-Nano), and the own detector's vehicles
    (``detector``: its ONNX, default the shipped one), so cars seen from high above are found too."""
    from .coco import CocoRegions
    from .detector import DetectorRegions

    return CombinedRegions([(CocoRegions(coco, min_size=min_size), ("person", "vehicle")),
                            (DetectorRegions(detector, min_size=min_size), ("vehicle",))])
