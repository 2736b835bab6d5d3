"""Two region stages as one: each contributes the categories it is trusted with, in order of trust,
and a later stage's box that overlaps one an earlier stage gave is dropped (one object, one box). The
product's street default joins the COCO detector's people and vehicles with the project's own
detector's vehicles (cars seen from a mast high above, which COCO never showed it)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import InputError


class CombinedRegions:
    """``stages``: (provider, {category: the tallest box it contributes of it, as a fraction of the
    frame's longer side; None: any}) pairs; every provider has the same ``categories``."""

    def __init__(self, stages: list[tuple[object, dict[str, float | None]]], overlap: float = 0.5):
        self.categories = tuple(stages[0][0].categories)
        if any(tuple(p.categories) != self.categories for p, _ in stages):
            raise InputError(f"region stages to combine must share their categories, got "
                             f"{[tuple(p.categories) for p, _ in stages]}")
        # per stage: the tallest box contributed per category (inf: any; 0: none), as a frame fraction
        self.stages = [(p, np.array([np.inf if cats.get(c, 0) is None else cats.get(c, 0) for c in self.categories]))
                       for p, cats in stages]
        self.overlap = overlap
        self.tracker_defaults = {**getattr(stages[0][0], "tracker_defaults", {}), "by_category": True}
        self.last_categories = np.zeros((0, len(self.categories)), np.float32)
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self._pool is None:  # the stages run side by side: onnxruntime and OpenCV release the GIL
            self._pool = ThreadPoolExecutor(len(self.stages), thread_name_prefix="regions")
        found = [self._pool.submit(_found, provider, frame, index, len(self.categories)) for provider, _ in self.stages]
        boxes = np.zeros((0, 4))
        scores = np.zeros((0, len(self.categories)), np.float32)
        for future, (_, tallest) in zip(found, self.stages):
            b, s = future.result()
            category = s.argmax(1)
            new = (b[:, 3] < tallest[category] * max(frame.shape[:2])) & (_covered(b, boxes) < self.overlap)
            only = np.zeros_like(s)  # its own category alone: the naming cannot turn a car box into a person
            only[np.arange(len(s)), category] = s[np.arange(len(s)), category]
            boxes, scores = np.concatenate([boxes, b[new]]), np.concatenate([scores, only[new]])
        self.last_categories = scores
        return boxes.astype(np.int64).reshape(-1, 4)


def _found(provider, frame: np.ndarray, index: int, categories: int) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(provider(frame, index), np.float64).reshape(-1, 4)
    return boxes, np.asarray(provider.last_categories, np.float32).reshape(-1, categories)


def _covered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How much of each box of ``a`` the boxes of ``b`` cover (their intersections' sum over its area, at
    most 1), or of the largest ``b`` box it contains: a car box around two people walking side by side,
    or over one person's legs, is mostly people."""
    if not len(a) or not len(b):
        return np.zeros(len(a))
    a1, a2 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b1, b2 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    iw, ih = np.moveaxis(np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None), 2, 0)
    inter = iw * ih
    of_a = inter.sum(1) / np.maximum(a[:, 2] * a[:, 3], 1e-9)
    of_b = (inter / np.maximum(b[None, :, 2] * b[None, :, 3], 1e-9)).max(1)
    return np.minimum(np.maximum(of_a, of_b), 1.0)


# The smallest person YOLOX-Nano finds well is about 32 px tall at its 416 px input (4 cells of its finest
# stride): below that, on the frame's scale, the project's low-res detector contributes the people.
SMALL_PERSON = 32 / 416


def street_regions(detector=None, coco=None, min_size: int = 8) -> CombinedRegions:
    """The street default: COCO's people and vehicles (YOLOX-Nano), and from the own detector
    (``detector``: its ONNX, default the shipped one) the vehicles COCO never saw (cars from high above)
    and the people too small for COCO's input."""
    from .coco import CocoRegions
    from .detector import DetectorRegions

    return CombinedRegions([(CocoRegions(coco, min_size=min_size), {"person": None, "vehicle": None}),
                            (DetectorRegions(detector, min_size=min_size), {"vehicle": None, "person": SMALL_PERSON})])
