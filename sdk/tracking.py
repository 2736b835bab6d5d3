"""A small IoU tracker with per-track label smoothing and DeepStream-style re-classification:
an object is classified again only when its box has grown by ``grow`` (default 20 %) since its
last classification or ``every`` frames have passed, so cost follows objects, not frames x objects."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of [N, 4] and [M, 4] boxes given as x, y, w, h."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


@dataclass
class Track:
    id: int
    box: np.ndarray                  # x, y, w, h
    last_seen: int
    classified_area: float = 0.0     # box area at the last classification (0: never)
    classified_frame: int = -1
    probs: np.ndarray | None = None  # smoothed class probabilities
    hits: int = 0


@dataclass
class TrackerConfig:
    iou: float = 0.3          # minimum IoU to continue a track
    max_age: int = 5          # frames a track survives unseen
    grow: float = 0.2         # re-classify when the box area grew by this fraction
    every: int = 30           # ... or after this many frames
    smoothing: float = 0.6    # weight of the past in the smoothed probabilities (0: no smoothing)


class IoUTracker:
    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self._next = 1

    def update(self, boxes: np.ndarray, frame: int) -> list[tuple[Track, bool]]:
        """Assign ``boxes`` ([N, 4] x, y, w, h) to tracks (greedy by IoU); returns, per box in order,
        its track and whether it needs classifying on this frame."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        live = [t for t in self.tracks.values() if frame - t.last_seen <= self.config.max_age]
        self.tracks = {t.id: t for t in live}
        ious = iou_matrix(boxes, np.array([t.box for t in live]).reshape(-1, 4))
        assigned: dict[int, Track] = {}
        used = set()
        for flat in np.argsort(-ious, axis=None):
            i, j = np.unravel_index(flat, ious.shape)
            if ious[i, j] < self.config.iou:
                break
            if i in assigned or j in used:
                continue
            assigned[i] = live[j]
            used.add(j)
        out = []
        for i, box in enumerate(boxes):
            track = assigned.get(i)
            if track is None:
                track = Track(self._next, box, frame)
                self.tracks[track.id] = track
                self._next += 1
            track.box, track.last_seen, track.hits = box, frame, track.hits + 1
            area = box[2] * box[3]
            due = bool(track.classified_frame < 0 or area > track.classified_area * (1 + self.config.grow)
                       or frame - track.classified_frame >= self.config.every)
            if due:
                track.classified_area, track.classified_frame = area, frame
            out.append((track, due))
        return out

    def observe(self, track: Track, probs: np.ndarray) -> np.ndarray:
        """Fold a new classification into the track's smoothed probabilities and return them."""
        a = self.config.smoothing
        track.probs = probs.copy() if track.probs is None or a == 0 else a * track.probs + (1 - a) * probs
        return track.probs
