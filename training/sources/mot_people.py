"""People cut at the ground-truth boxes of public MOT sequences (MOT15 ADL-Rundle-6 and the MOT17 minis
that a tracking repository ships), plus hard negatives from the same frames: person-free windows and parts
of people (head and shoulders, legs) labelled `background`. Training data only; a group is one sequence's
people (``SEQ``), its person-free windows (``SEQ-bg``) or its parts of people (``SEQ-part``)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from .base import Crop, Source

PEOPLE_PER_TRACK = 48   # evenly spaced boxes of one track: more would be near-copies
MIN_HEIGHT = 24         # px in the source frame; smaller people hold little to learn from
MIN_VISIBLE = 0.4       # MOT17's visibility ratio; MOT15 gives none (-1: kept)
WINDOWS_PER_FRAME = 12  # person-free windows drawn per used frame
BG_FRAMES = 24          # frames of a sequence used for windows and parts, evenly spaced
PARTS_PER_FRAME = 4     # parts of people per used frame
MOT17_PEDESTRIAN = 1    # class 1; every other class (static people, cars, occluders ..) is only avoided


def read_gt(text: str) -> list[tuple]:
    """(frame, id, x, y, w, h, is_person, visibility) of every box: MOT15 rows (class -1) are pedestrians;
    MOT17 rows count as people when class 1 with conf 1. Every box, person or not, is avoided by windows."""
    rows = []
    for line in text.splitlines():
        f = line.strip().split(",")
        if len(f) < 7:
            continue
        cls = int(float(f[7])) if len(f) > 7 else -1
        vis = float(f[8]) if len(f) > 8 else -1.0
        person = cls in (-1, MOT17_PEDESTRIAN) and float(f[6]) != 0
        rows.append((int(f[0]), int(f[1]), *(float(v) for v in f[2:6]), person, vis))
    return rows


def _box(frame: np.ndarray, x: float, y: float, w: float, h: float) -> np.ndarray | None:
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(frame.shape[1], int(np.ceil(x + w))), min(frame.shape[0], int(np.ceil(y + h)))
    if x1 - x0 < 4 or y1 - y0 < 4 or (x1 - x0) * (y1 - y0) < 0.7 * w * h:
        return None
    return frame[y0:y1, x0:x1].copy()


def pick_people(rows: list[tuple]) -> dict[int, list[tuple]]:
    """frame -> person boxes: up to PEOPLE_PER_TRACK evenly spaced per track, tall and visible enough."""
    tracks = defaultdict(list)
    for r in rows:
        if r[6] and r[5] >= MIN_HEIGHT and (r[7] < 0 or r[7] >= MIN_VISIBLE):
            tracks[r[1]].append(r)
    chosen = defaultdict(list)
    for track in tracks.values():
        track.sort()
        for i in np.unique(np.linspace(0, len(track) - 1, min(PEOPLE_PER_TRACK, len(track))).round().astype(int)):
            chosen[track[i][0]].append(track[i])
    return chosen


def free_windows(frame: np.ndarray, boxes: list[tuple], rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Up to ``n`` random windows (person-like to wide aspects) that touch no box of the frame (boxes grown
    by 15 %)."""
    H, W = frame.shape[:2]
    grown = [(x - 0.15 * w, y - 0.15 * h, x + 1.15 * w, y + 1.15 * h) for x, y, w, h in boxes]
    out = []
    for _ in range(n * 20):
        if len(out) == n:
            break
        h = int(np.exp(rng.uniform(np.log(24), np.log(max(25, H * 0.6)))))
        w = int(np.clip(h * np.exp(rng.uniform(np.log(0.3), np.log(1.5))), 8, W - 1))
        if h >= H:
            continue
        x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        if all(x + w <= a or x >= c or y + h <= b or y >= d for a, b, c, d in grown):
            out.append(frame[y:y + h, x:x + w].copy())
    return out


def parts(frame: np.ndarray, people: list[tuple], rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Head and shoulders (top 22-32 %) or legs (bottom 35-45 %) of up to ``n`` fully visible people."""
    whole = [p for p in people if p[7] < 0 or p[7] >= 0.9]
    out = []
    for i in rng.permutation(len(whole))[:n]:
        _, _, x, y, w, h, _, _ = whole[i]
        if rng.random() < 0.5:
            crop = _box(frame, x, y, w, h * rng.uniform(0.22, 0.32))
        else:
            f = rng.uniform(0.35, 0.45)
            crop = _box(frame, x, y + h * (1 - f), w, h * f)
        if crop is not None:
            out.append(crop)
    return out


def sequence_crops(folder: Path, name: str, seed: int = 0) -> Iterator[Crop]:
    """Every crop of one MOT sequence folder (img1/, gt/gt.txt)."""
    import cv2

    rows = read_gt((folder / "gt" / "gt.txt").read_text())
    frames = sorted((folder / "img1").glob("*.jpg"))
    chosen = pick_people(rows)
    by_frame = defaultdict(list)
    for r in rows:
        by_frame[r[0]].append(r)
    bg = set(np.linspace(1, len(frames), min(BG_FRAMES, len(frames))).round().astype(int).tolist())
    rng = np.random.default_rng(seed)
    for index, path in enumerate(frames, 1):
        if index not in chosen and index not in bg:
            continue
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        for r in chosen.get(index, ()):
            crop = _box(frame, *r[2:6])
            if crop is not None:
                yield "person", name, crop
        if index in bg:
            for crop in free_windows(frame, [r[2:6] for r in by_frame[index]], rng, WINDOWS_PER_FRAME):
                yield "background", f"{name}-bg", crop
            people = [r for r in by_frame[index] if r[6] and r[5] >= 2 * MIN_HEIGHT]
            for crop in parts(frame, people, rng, PARTS_PER_FRAME):
                yield "background", f"{name}-part", crop


MOT17_MINI = "assets/MOT17-mini/train"
# MOT17-09 is ADL-Rundle-6's video: left out here, the whole sequence is its own source.
MOT17_SEQUENCES = ("MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-05-FRCNN", "MOT17-10-FRCNN", "MOT17-11-FRCNN",
                   "MOT17-13-FRCNN")
_LICENCE = ("CC BY-NC-SA 3.0 (MOTChallenge frames and ground truth; cite Leal-Taixe et al. 2015 / Milan et al. "
            "2016); the carrying repository's code licence does not cover them")
_PINS = json.loads((Path(__file__).parent / "pins" / "mot-people.json").read_text())


def mot17_crops(snapshot: Path) -> Iterator[Crop]:
    for seq in MOT17_SEQUENCES:
        yield from sequence_crops(snapshot / MOT17_MINI / seq, seq.rsplit("-", 1)[0].lower())


def adl_crops(snapshot: Path) -> Iterator[Crop]:
    yield from sequence_crops(snapshot / "ADL-Rundle-6", "adl-rundle-6")


MOT17_MINI_PEOPLE = Source(
    "mot17-mini-people", "github:mikel-brostrom/yolo_tracking", "6e8a541aa403eaec3ac2fe456b1a64d359d741d7",
    _LICENCE, ("person", "background"),
    "people at the ground-truth boxes of six MOT17 minis (4-8 frames each; 02/04 static, 05/10/11/13 moving "
    "cameras), person-free windows and parts of people as background; group = sequence",
    _PINS["mot17-mini-people"], mot17_crops)

ADL_RUNDLE_6_PEOPLE = Source(
    "adl-rundle-6-people", "github:raphrb2/VisualObjectTracking", "fe769c87cd48ef402ba90d895223246fc91879e5",
    _LICENCE, ("person", "background"),
    "people at the ground-truth boxes of MOT15 ADL-Rundle-6 (525 frames, static camera at a shopping street), "
    f"<= {PEOPLE_PER_TRACK} per track; person-free windows and parts of people as background; group = sequence",
    _PINS["adl-rundle-6-people"], adl_crops)
