"""A small IoU tracker with per-track label evidence and DeepStream-style re-classification:
an object is classified again only when its box has grown by ``grow`` (default 20 %) since its
last classification or ``every`` processed frames have passed, so cost follows objects, not frames x objects.

Ages count *processed* frames (calls to `IoUTracker.update`), not source frames: with ``--stride 6``
a track that counted source frames died between two processed frames (643 tracks instead of 233
on the pedestrian clip)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

EPS = 1e-6  # floor of a probability before its log: one confident miss must not veto a long track


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of [N, 4] and [M, 4] boxes given as x, y, w, h."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.maximum(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0)
    ih = np.maximum(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


@dataclass
class Track:
    id: int
    box: np.ndarray                      # x, y, w, h
    last_seen: int                       # processed-frame step
    classified_area: float = 0.0         # box area at the last classification (0: never)
    classified_frame: int = -1           # processed-frame step of the last classification
    log_evidence: np.ndarray | None = None  # sum over classified crops of weight * log p
    weight: float = 0.0                  # sum of the weights
    hits: int = 0                        # processed frames the track was seen on
    origin: np.ndarray | None = None     # box centre where the track was first seen
    travel: float = 0.0                  # farthest its centre got from there, in box sides (sqrt(w * h))
    probs: np.ndarray | None = None      # the class probabilities its evidence gives (set by `IoUTracker.observe`)
    velocity: np.ndarray | None = None   # centre px per processed frame (kept only when gating by distance)
    category: np.ndarray | None = None   # sum of a detector's category scores over its boxes (None: no detector)
    category_hits: int = 0               # boxes summed there


@dataclass
class TrackerConfig:
    iou: float = 0.3          # minimum IoU to continue a track
    max_age: int = 5          # processed frames a track survives unseen
    grow: float = 0.2         # re-classify when the box area grew by this fraction
    every: int = 30           # ... or after this many processed frames
    min_hits: int = 3         # a track seen on fewer processed frames is tentative (not reported as an object)
    min_travel: float = 0.1   # ... and so is one whose centre never got this many box sides from where it was
                              # first seen: on a fixed camera, motion that never travels is flicker (leaves, light
                              # on a verge), not an object; 0: off
    gate: float = 0.0         # boxes no track took by IoU join the nearest free track within this many box sides of
                              # where its velocity puts it (similar size): at 3 fps a car moves past its own length
                              # between frames, and IoU alone starts a new track each frame; 0: off

    by_category: bool = False  # a box continues only a track of its own detector category (two detectors
                               # joined: one's car box must not carry on another's person track)
    method: str = "iou"       # iou (this module's) | bytetrack (Roboflow's trackers package: `ByteTracker`)
    static_categories: tuple[int, ...] = ()  # detector categories that need no travel (a parked car is an object)

    def confirmed(self, track: "Track") -> bool:
        """Whether ``track`` is reported as an object (else tentative): seen on ``min_hits`` processed
        frames and travelled ``min_travel`` box sides (unless its detector category may stand still)."""
        static = track.category is not None and int(np.argmax(track.category)) in self.static_categories
        return track.hits >= self.min_hits and (static or track.travel >= self.min_travel)


class IoUTracker:
    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self._next = 1
        self.step = -1  # processed frames so far - 1

    def update(self, boxes: np.ndarray, scores: np.ndarray | None = None,
               categories: np.ndarray | None = None) -> list[tuple[Track, bool]]:
        """Assign ``boxes`` ([N, 4] x, y, w, h) of the next processed frame to tracks; returns, per box
        in order, its track and whether it needs classifying on this frame. ``scores``: the boxes'
        detection confidences, for trackers that use them; ``categories``: their detector categories
        (used with ``by_category``)."""
        self.step += 1
        step = self.step
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        assigned = self._associate(boxes, scores, step, categories)
        out = []
        for i, box in enumerate(boxes):
            track = assigned.get(i)
            if track is None:
                track = Track(self._next, box, step)
                self.tracks[track.id] = track
                self._next += 1
            elif self.config.gate > 0:
                moved = (box[:2] + box[2:] / 2 - track.box[:2] - track.box[2:] / 2) / max(1, step - track.last_seen)
                track.velocity = moved if track.velocity is None else 0.5 * (track.velocity + moved)
            track.box, track.last_seen, track.hits = box, step, track.hits + 1
            centre = box[:2] + box[2:] / 2
            if track.origin is None:
                track.origin = centre
            side = max(np.sqrt(box[2] * box[3]), 1.0)
            track.travel = max(track.travel, float(np.hypot(*(centre - track.origin)) / side))
            area = box[2] * box[3]
            due = bool(track.classified_frame < 0 or area > track.classified_area * (1 + self.config.grow)
                       or step - track.classified_frame >= self.config.every)
            if due:
                track.classified_area, track.classified_frame = area, step
            out.append((track, due))
        return out

    def _associate(self, boxes: np.ndarray, scores, step: int, categories=None) -> dict[int, Track]:
        """Box row -> the live track it continues (greedy by IoU, then by distance within the gate)."""
        live = [t for t in self.tracks.values() if step - t.last_seen - 1 <= self.config.max_age]
        self.tracks = {t.id: t for t in live}
        predicted = np.array([self._predict(t, step) for t in live]).reshape(-1, 4)
        allowed = self._same_category(categories, live, len(boxes))
        assigned = _greedy(iou_matrix(boxes, predicted) * allowed, self.config.iou, {})
        if self.config.gate > 0:
            assigned = _greedy(_closeness(boxes, predicted, self.config.gate) * allowed, 0.0, assigned)
        return {i: live[j] for i, j in assigned.items()}

    def _same_category(self, categories, live: list[Track], n: int) -> np.ndarray | float:
        """1 where box i may continue track j: always, unless ``by_category`` and both have a category
        that differs."""
        if not self.config.by_category or categories is None:
            return 1.0
        tracks = np.array([-1 if t.category is None else int(np.argmax(t.category)) for t in live]).reshape(1, -1)
        boxes = np.asarray(categories).reshape(-1, 1)
        return ((boxes == tracks) | (tracks < 0)).astype(np.float64).reshape(n, len(live))

    @staticmethod
    def _predict(track: Track, step: int) -> np.ndarray:
        """Where the track's box should be at ``step``: moved by its velocity, when it has one."""
        if track.velocity is None:
            return track.box
        return np.concatenate([track.box[:2] + track.velocity * (step - track.last_seen), track.box[2:]])

    @staticmethod
    def observe_category(track: Track, scores: np.ndarray) -> None:
        """Add one box's detector category scores to the track's."""
        scores = np.asarray(scores, np.float64)
        track.category = scores.copy() if track.category is None else track.category + scores
        track.category_hits += 1

    @staticmethod
    def observe(track: Track, probs: np.ndarray, weight: float = 1.0) -> np.ndarray:
        """Add one classified crop's probabilities to the track's evidence (``weight``: the crop's
        size, so a 40 px view of an object counts more than a 10 px one); returns the track's probabilities."""
        log_p = weight * np.log(np.maximum(np.asarray(probs, np.float64), EPS))
        track.log_evidence = log_p if track.log_evidence is None else track.log_evidence + log_p
        track.weight += weight
        # the normalised geometric mean of its crops' probabilities, weighted by crop size
        # (softmax of the weighted mean log-probability); kept, as frames between classifications read it
        z = track.log_evidence / track.weight
        e = np.exp(z - z.max())
        track.probs = e / e.sum()
        return track.probs


def _greedy(score: np.ndarray, floor: float, assigned: dict[int, int]) -> dict[int, int]:
    """Pairs (row -> column) taken greedily by ``score`` (at least ``floor``, above 0), after those in ``assigned``."""
    used = set(assigned.values())
    out = dict(assigned)
    for flat in np.argsort(-score, axis=None, kind="stable").tolist():
        i, j = divmod(flat, score.shape[1])
        if score[i, j] < floor or score[i, j] <= 0:
            break
        if i in out or j in used:
            continue
        out[i] = j
        used.add(j)
    return out


def _closeness(boxes: np.ndarray, tracks: np.ndarray, gate: float) -> np.ndarray:
    """1 - distance / gate between box and track centres, in box sides (sqrt of the track's area);
    0 beyond the gate or where the areas differ more than 2x."""
    if len(boxes) == 0 or len(tracks) == 0:
        return np.zeros((len(boxes), len(tracks)))
    cb, ct = boxes[:, :2] + boxes[:, 2:] / 2, tracks[:, :2] + tracks[:, 2:] / 2
    side = np.sqrt(np.maximum(tracks[:, 2] * tracks[:, 3], 1.0))
    dist = np.hypot(*(cb[:, None] - ct[None]).transpose(2, 0, 1)) / side[None]
    ratio = (boxes[:, 2] * boxes[:, 3])[:, None] / np.maximum(tracks[:, 2] * tracks[:, 3], 1.0)[None]
    return np.where((dist < gate) & (ratio < 2) & (ratio > 0.5), 1 - dist / gate, 0.0)


def tracker_for(crops, **overrides) -> TrackerConfig:
    """The tracker settings ``crops`` (a region provider) asks for (``tracker_defaults``: the detector's
    distance gate and parked vehicles), with ``overrides`` on top; a provider without any gets the defaults."""
    return TrackerConfig(**{**getattr(crops, "tracker_defaults", {}), **overrides})


def make_tracker(config: TrackerConfig) -> IoUTracker:
    """The tracker ``config.method`` names."""
    if config.method == "iou":
        return IoUTracker(config)
    if config.method == "bytetrack":
        from .bytetrack import ByteTracker

        return ByteTracker(config)
    raise InputError(f"tracker method must be iou or bytetrack, got {config.method!r}")
