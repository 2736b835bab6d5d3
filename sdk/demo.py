"""`lowres demo`'s input and figures: street-camera crops and a fixed-camera clip with annotated boxes, from
MEVA footage no model here trained on (CC BY 4.0; demo_assets/README.md), shipped in the package."""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .video.detector import CATEGORY_LABELS
from .video.tracking import iou_matrix

ASSETS = Path(__file__).resolve().parent / "demo_assets"
BACKGROUND_LABELS = ("other", "background")  # a model's "nothing of interest" labels (the video CLI ignores them)
SIZES = (None, 16)  # the crops as stored (at most 48 px on the longer side), and shrunk to 16 px
CLIP_IOU = 0.3      # a track follows an annotated object on a frame where their boxes overlap this much
MOT_CATEGORY = {1: "person", 3: "vehicle"}


@dataclass(frozen=True)
class DemoCrop:
    name: str           # e.g. person-c4f6-p-004-f032 (category, clip, track, frame)
    category: str       # person | vehicle | background (what the annotation says it is)
    group: str          # the track (or the clip's background windows) it belongs to, e.g. c4f6/p-004
    image: np.ndarray   # uint8 BGR


@lru_cache(maxsize=1)
def assets() -> dict:
    """demo.json: every shipped file, its origin and its sha256."""
    try:
        return json.loads((ASSETS / "demo.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"the demo's assets are missing or damaged ({ASSETS}: {e}); reinstall lowres_sdk") from None


def asset_path(name: str) -> Path:
    """A shipped asset, checked against its sha256 in demo.json."""
    meta = assets()
    sha = {**{c["file"]: c["sha256"] for c in meta["crops"]}, meta["clip"]["file"]: meta["clip"]["sha256"],
           meta["clip"]["gt"]: meta["clip"]["gt_sha256"]}[name]
    path = ASSETS / name
    try:
        ok = hashlib.sha256(path.read_bytes()).hexdigest() == sha
    except OSError:
        ok = False
    if not ok:
        raise InputError(f"the demo asset {path} is missing or not the shipped file; reinstall lowres_sdk")
    return path


def demo_crops() -> list[DemoCrop]:
    """The still crops, in demo.json's order."""
    out = []
    for c in assets()["crops"]:
        image = cv2.imread(str(asset_path(c["file"])), cv2.IMREAD_COLOR)
        group = f"{c['sequence'][-4:]}/{c['track'] or 'windows'}"
        out.append(DemoCrop(Path(c["file"]).stem, c["category"], group, image))
    return out


def at_size(image: np.ndarray, size: int | None) -> np.ndarray:
    """``image`` shrunk (INTER_AREA) to ``size`` px on its longer side; None, or a smaller image: as it is."""
    h, w = image.shape[:2]
    if size is None or max(h, w) <= size:
        return image
    scale = size / max(h, w)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def right_labels(category: str) -> frozenset[str]:
    """The labels that name an annotated ``category`` right (a vehicle: any vehicle label of the detector's)."""
    if category == "background":
        return frozenset(BACKGROUND_LABELS)
    return frozenset((*CATEGORY_LABELS[category], category))


def verdict(category: str, label: str) -> str:
    """right | unknown | wrong."""
    if label in right_labels(category):
        return "right"
    return "unknown" if label == "unknown" else "wrong"


def classify_crops(classifier, crops: list[DemoCrop], sizes=SIZES) -> dict:
    """size -> the classifier's labels of ``crops`` at that size (``at_size``)."""
    return {size: list(classifier([at_size(c.image, size) for c in crops]).labels) for size in sizes}


def tally(crops: list[DemoCrop], labels: list[str]) -> Counter:
    """right / unknown / wrong counts, overall and per category (keys like ("person", "right"))."""
    out = Counter()
    for crop, label in zip(crops, labels):
        v = verdict(crop.category, label)
        out[v] += 1
        out[crop.category, v] += 1
    return out


def clip_truth() -> dict[int, list[tuple[int, str, tuple]]]:
    """The clip's annotated boxes: frame (from 0) -> [(id, category, (x, y, w, h))]."""
    out = defaultdict(list)
    for line in asset_path(assets()["clip"]["gt"]).read_text().splitlines():
        f, oid, x, y, w, h, _, cls = line.split(",")[:8]
        out[int(f) - 1].append((int(oid), MOT_CATEGORY[int(cls)], (float(x), float(y), float(w), float(h))))
    return out


@dataclass
class Followed:
    """An annotated object of the clip and the reported track that followed it on most frames."""
    id: int
    category: str
    frames: int          # frames it is annotated on
    track: int | None    # None: no reported track overlapped it
    overlap: int         # frames that track's box overlapped it (IoU >= CLIP_IOU)
    label: str | None    # the track's label (its reported boxes' majority, as summary.json counts)


def follow(jsonl_path: str | Path, truth=None) -> list[Followed]:
    """Each annotated object of the clip with the reported track of ``jsonl_path`` that followed it."""
    truth = clip_truth() if truth is None else truth
    overlap, labels = defaultdict(Counter), defaultdict(Counter)
    for line in Path(jsonl_path).read_text().splitlines():
        record = json.loads(line)
        objects = record.get("objects", [])
        for o in objects:
            labels[o["track"]][o["label"]] += 1
        gt = truth.get(record["frame"], [])
        if not gt or not objects:
            continue
        iou = iou_matrix(np.array([b for *_, b in gt], float), np.array([o["box"] for o in objects], float))
        for i, (oid, *_rest) in enumerate(gt):
            j = int(iou[i].argmax())
            if iou[i, j] >= CLIP_IOU:
                overlap[oid][objects[j]["track"]] += 1
    out, seen = [], Counter(oid for boxes in truth.values() for oid, *_ in boxes)
    categories = {oid: c for boxes in truth.values() for oid, c, _ in boxes}
    for oid in sorted(seen):
        track, n = overlap[oid].most_common(1)[0] if overlap[oid] else (None, 0)
        label = labels[track].most_common(1)[0][0] if track is not None else None
        out.append(Followed(oid, categories[oid], seen[oid], track, n, label))
    return out


def _mark(category: str, label: str) -> str:
    v = verdict(category, label)
    return "ok" if v == "right" else "??" if v == "unknown" else label


def _size_name(size: int | None) -> str:
    return "as stored (<= 48 px)" if size is None else f"shrunk to {size} px"


def still_lines(crops: list[DemoCrop], labels: dict) -> list[str]:
    """What `lowres demo` prints about the still crops: a line per track (or clip's background windows)
    with each view's mark at each size, then the tallies per size."""
    groups = defaultdict(list)
    for i, c in enumerate(crops):
        groups[c.category, c.group].append(i)
    lines = []
    for (category, group), idx in groups.items():
        h, w = crops[idx[0]].image.shape[:2]
        marks = "   ".join(f"{'stored' if s is None else f'{s} px'}: " + " ".join(_mark(category, labels[s][i])
                                                                              for i in idx) for s in labels)
        lines.append(f"   {category:<10} {group:<13} {len(idx)} x ~{w}x{h} px   {marks}")
    for size, said in labels.items():
        t = tally(crops, said)
        per = ", ".join(f"{c} {t[c, 'right']}/{sum(t[c, v] for v in ('right', 'unknown', 'wrong'))}"
                        for c in ("person", "vehicle", "background"))
        share = 100 * t["right"] / len(crops)
        lines.append(f"   {_size_name(size)}: {t['right']} of {len(crops)} right ({share:.0f} %), "
                     f"{t['unknown']} unknown, {t['wrong']} wrong   (right: {per})")
    return lines


def clip_lines(followed: list[Followed]) -> list[str]:
    """What `lowres demo` prints about the clip's annotated people and vehicles: how many a reported track
    followed, and how many that track named right (each with the frames it overlapped the object on)."""
    lines = []
    for category, plural, named in (("person", "people", "person"), ("vehicle", "vehicles", "car or truck")):
        objs = [f for f in followed if f.category == category]
        found = [f for f in objs if f.track is not None]
        right = [f for f in found if f.label in right_labels(category)]
        each = ", ".join(f"#{f.id} {f.label} on {f.overlap}/{f.frames} frames" if f.track is not None
                         else f"#{f.id} not followed" for f in objs)
        lines.append(f"   {plural} in the clip (annotated): {len(objs)}; followed by a track: {len(found)}; "
                     f"named {named}: {len(right)}   ({each})")
    return lines
