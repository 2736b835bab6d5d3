"""Training crops mined from a fixed-camera clip: the moving objects the video pipeline itself finds
(`MotionCrops` + `IoUTracker`), cut from the *first part* of the clip only, so that the rest of it
stays held out for measuring the video labels.

Every object that moves in a clip of one kind (people on a walkway, cars on a highway) is taken to
be of that kind: a weak label by clip. Only tracks seen on ``min_hits`` frames or more are used (a
flicker of the background model is not an object), and at most ``per_track`` crops of each track,
spread over its life, so that one slow walker does not fill the class.
"""
from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from lowres_sdk.errors import DataError


def mine(path: str | os.PathLike, first: int, last: int, *, min_hits: int = 5, per_track: int = 12,
         min_side: int = 8) -> tuple[list[np.ndarray], dict]:
    """RGB crops of the tracked moving objects in frames [first, last) of the clip at ``path``,
    with an info dict (frames read, tracks kept, crops). Boxes are the detector's own (loose)
    boxes; crops with a side under ``min_side`` px are dropped."""
    from lowres_sdk.video.regions import MotionCrops
    from lowres_sdk.video.tracking import IoUTracker
    from lowres_sdk.video import frames

    if not 0 <= first < last:
        raise DataError(f"need 0 <= first < last frame, got {first}, {last}")
    detector, tracker = MotionCrops(), IoUTracker()
    crops: dict[int, list[np.ndarray]] = defaultdict(list)
    read = 0
    for frame in frames(path):
        if frame.index >= last:
            break
        read += 1
        boxes = detector(frame.image, frame.index)  # the background model needs the frames before `first` too
        if frame.index < first:
            tracker.update(np.zeros((0, 4)))
            continue
        for (x, y, w, h), (track, _) in zip(boxes, tracker.update(boxes)):
            if min(w, h) >= min_side:
                crops[track.id].append(np.ascontiguousarray(frame.image[y:y + h, x:x + w, ::-1]))
    if read == 0:
        raise DataError(f"no frames read from {path}")
    kept = [c for c in crops.values() if len(c) >= min_hits]
    out = [c[i] for c in kept
           for i in np.unique(np.linspace(0, len(c) - 1, min(per_track, len(c))).round().astype(int))]
    return out, {"frames": [first, last], "tracks": len(kept), "crops": len(out)}


def background(path: str | os.PathLike, first: int, last: int, *, count: int = 300, every: int = 4,
               min_side: int = 12, max_side: int = 64, margin: float = 0.25,
               seed: int = 0) -> tuple[list[np.ndarray], dict]:
    """About ``count`` RGB crops of the clip's scene where nothing moves, from every ``every``-th frame
    of [first, last): boxes of random size (long side log-uniform in ``min_side``..``max_side`` px) and
    aspect (1:2.5 to 2.5:1), kept only when clear of every motion box of that frame grown by ``margin``
    of its size. What a fixed camera shows when no object is there (road, floor, signs, grass, parts
    of parked cars): the background class of *this* camera, where motion detection also finds fragments.
    The info's ``boxes`` say where each crop was cut: (frame, x, y, w, h)."""
    from lowres_sdk.video.regions import MotionCrops
    from lowres_sdk.video import frames

    if not 0 <= first < last:
        raise DataError(f"need 0 <= first < last frame, got {first}, {last}")
    detector, rng = MotionCrops(), np.random.default_rng(seed)
    sampled = range(max(first, detector.warmup + 1), last, every)  # the background model needs its warm-up frames
    per_frame = -(-count // max(1, len(sampled)))
    out: list[np.ndarray] = []
    where: list[tuple[int, int, int, int, int]] = []  # (frame, x, y, w, h) of each crop
    for frame in frames(path):
        if frame.index >= last:
            break
        boxes = detector(frame.image, frame.index)  # every frame feeds the background model
        if frame.index not in sampled:
            continue
        H, W = frame.image.shape[:2]
        grown = np.array([[x - margin * w, y - margin * h, x + (1 + margin) * w, y + (1 + margin) * h]
                          for x, y, w, h in boxes]).reshape(-1, 4)
        kept = 0
        for _ in range(10 * per_frame):  # draws that hit a moving object are dropped
            if kept == per_frame:
                break
            long_side = float(np.exp(rng.uniform(np.log(min_side), np.log(max_side))))
            aspect = float(np.exp(rng.uniform(-np.log(2.5), np.log(2.5))))  # width / height
            w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
            w, h = max(2, round(w)), max(2, round(h))
            if w >= W or h >= H:
                continue
            x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
            if ((grown[:, 0] < x + w) & (x < grown[:, 2]) & (grown[:, 1] < y + h) & (y < grown[:, 3])).any():
                continue
            out.append(np.ascontiguousarray(frame.image[y:y + h, x:x + w, ::-1]))
            where.append((frame.index, x, y, w, h))
            kept += 1
    if not out:
        raise DataError(f"no motion-free background crops in frames [{first}, {last}) of {path}")
    return out, {"frames": [first, last], "crops": len(out), "boxes": where}
