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
    from lowres_sdk.regions import MotionCrops
    from lowres_sdk.tracking import IoUTracker
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
    out = [c[i] for c in kept for i in np.unique(np.linspace(0, len(c) - 1, min(per_track, len(c))).round().astype(int))]
    return out, {"frames": [first, last], "tracks": len(kept), "crops": len(out)}
