"""Crops cut from the annotated fixed-camera sequences of ``../shared/data/sequences`` (MOT-format ground
truth): real surveillance views of people and cars, at the sizes and angles a street camera sees them."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from .base import Crop, Source

MOT_CLASSES = {1: "person", 3: "car"}
PER_TRACK = 16         # crops kept from one tracked object, evenly spaced: more would be near-copies
EVERY_NTH_FRAME = 10   # sequences without track ids: every 10th frame's boxes (~3 s apart at 3 fps)
MIN_SIDE = 4           # px; smaller boxes hold no object to classify
MIN_INSIDE = 0.7       # a box cut by the frame edge keeps >= 70 % of its area, or it is skipped


def read_boxes(gt: Path) -> list[tuple[int, int, float, float, float, float, str]]:
    """(frame, id, x, y, w, h, label) of every counted box; ignore regions (conf 0) left out."""
    boxes = []
    for line in gt.read_text().splitlines():
        f = line.split(",")
        if len(f) < 8 or float(f[6]) == 0 or int(float(f[7])) not in MOT_CLASSES:
            continue
        boxes.append((int(f[0]), int(f[1]), float(f[2]), float(f[3]), float(f[4]), float(f[5]),
                      MOT_CLASSES[int(float(f[7]))]))
    return boxes


def pick(boxes: list, clip: str) -> dict[int, list[tuple[str, tuple, str]]]:
    """frame -> [(group, box, label)]: up to PER_TRACK evenly spaced boxes per track id, or every
    EVERY_NTH_FRAME-th frame's boxes when the sequence has no ids. A group is one track, or the clip."""
    by_track, chosen = defaultdict(list), defaultdict(list)
    for b in boxes:
        if b[1] >= 0:
            by_track[b[1]].append(b)
        elif (b[0] - 1) % EVERY_NTH_FRAME == 0:
            chosen[b[0]].append((clip, b[2:6], b[6]))
    for tid, track in by_track.items():
        track.sort()
        for i in np.unique(np.linspace(0, len(track) - 1, min(PER_TRACK, len(track))).round().astype(int)):
            b = track[i]
            chosen[b[0]].append((f"{clip}-id{tid}", b[2:6], b[6]))
    return chosen


def cut(frame: np.ndarray, box: tuple) -> np.ndarray | None:
    x, y, w, h = box
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(frame.shape[1], int(np.ceil(x + w))), min(frame.shape[0], int(np.ceil(y + h)))
    if min(x1 - x0, y1 - y0) < MIN_SIDE or (x1 - x0) * (y1 - y0) < MIN_INSIDE * w * h:
        return None
    return frame[y0:y1, x0:x1].copy()


def clip_crops(video: Path, gt: Path, clip: str) -> Iterator[Crop]:
    import cv2

    from lowres_sdk.errors import DataError

    chosen = pick(read_boxes(gt), clip)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DataError(f"cannot open video {video}")
    try:
        for index in range(1, max(chosen, default=0) + 1):
            if index not in chosen:
                if not cap.grab():
                    break
                continue
            ok, frame = cap.read()
            if not ok:
                raise DataError(f"{video} ends before frame {index}, which its ground truth annotates")
            for group, box, label in chosen[index]:
                crop = cut(frame, box)
                if crop is not None:
                    yield label, group, crop
    finally:
        cap.release()


def _source(name: str, clips: dict[str, tuple[str, str]], label: str, licence: str, what: str) -> Source:
    """A source of one or more clips: clip name -> (sha256 of its .mp4, sha256 of its .gt.txt)."""
    pins = {}
    for clip, (video_sha, gt_sha) in clips.items():
        pins[f"sequences/{clip}.mp4"], pins[f"sequences/{clip}.gt.txt"] = video_sha, gt_sha

    def crops(snapshot: Path) -> Iterator[Crop]:
        for clip in clips:
            yield from clip_crops(snapshot / "sequences" / f"{clip}.mp4", snapshot / "sequences" / f"{clip}.gt.txt",
                                  clip)

    origin = "shared:sequences/" + ",".join(clips)
    return Source(name, origin, None, licence, (label,), what, pins, crops)


PETS09 = _source(
    "pets09-s2l1", {"pets09-s2l1-768x576": (
        "2b25645c06dfdd125ddf2e5886b96fdf33c695c529dfe29428ad1ad3f08905de",
        "49ad5f91554ce13a6c17f0621e26593b4d07708274aa877b5945163e1672c3a1")},
    "person", "research use; credit PETS 2009 (University of Reading)",
    "PETS 2009 S2L1, elevated campus camera; <= 16 boxes per ground-truth track; group = track")

TUD_CAMPUS = _source(
    "tud-campus", {"tud-campus-640x480": (
        "32ae8133fa502779bdb0548f5b7a192bdc728ade77c29e629f8cf027e792f579",
        "56e0e4ffce0d59ee2874f98c534b291ff3b7c6ee39b9bb351ba6ee68ab880ca8")},
    "person", "research use; credit TU Darmstadt",
    "TUD-Campus (MOT15), low camera, occlusions; <= 16 boxes per ground-truth track; group = track")

NGSIM = _source(
    "ngsim-us101", {
        "ngsim-us101-cam1-640x480": ("edd062d05297903a0224c9c64ea0c2cf4a3718bd887963f771229bf3d08d33a6",
                                     "df1b8bbd6c0c17ee9223340b863490aedb30b488bd0e31073929da7b5c06a54b"),
        "ngsim-us101-cam2-640x480": ("4341ecd9e444b3007f3b8575294c366cd0581e02677b21e1036d34303a3c4cec",
                                     "3782fbc20ff2911ad5689f5d05b232119b0b720a3be1586d6ef7af060fe2a5b8"),
        "ngsim-us101-cam3-640x480": ("d649bdd08f083cae5b97f6cc008e2ffa5dd42ed7a875017bfa5ab179b7007296",
                                     "b2a359f74581623b1ed35c7ea9379b21d153a9a177bed20b02c708150e8cfa8d"),
        "ngsim-us101-cam4-640x480": ("ae2bba68c56814a97e59f2149038f3d483adc92d5dc2667ac680e34084153a7c",
                                     "78018ad5aa8c3f6355a553392e345a243e4709520e2f5fd4aeb430527841fa07")},
    "car", "public (US DOT NGSIM program)",
    "NGSIM US-101, four very high cameras looking down; every 10th annotated frame; group = camera")

GRAM = _source(
    "gram-m30-hd", {"gram-m30-hd-1200x720": (
        "25179df0a87670582504482297939e5c66b14845abeaaa49ddf20422a723a0c1",
        "5f4bc25c6ca5810e0924f2105b7c621479b40112d1016868a634b1936a0eba01")},
    "car", "research use; credit GRAM-RTM (University of Alcala)",
    "GRAM M-30-HD, overpass camera, many vehicles under 16 px; every 10th annotated frame; group = clip")
