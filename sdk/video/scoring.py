"""Scoring `lowres video` output against MOT-format ground truth.

Detection figures come from a per-frame optimal assignment (IoU >= ``iou``); identity figures (IDF1,
MOTA) from py-motmetrics. Ground truth flagged ``conf == 0`` (an ignore region) or narrower than
``min_width`` is "don't care": it is neither a hit nor a miss, and an output box on it is not a false
positive. Needs the ``eval`` extra (scipy, motmetrics), imported on first use.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .detector import CATEGORY_LABELS as DETECTOR_LABELS
from .tracking import iou_matrix

WIDTH_BINS = ((0, 16), (16, 32), (32, 64), (64, None))  # ground-truth width, px
MOT_CLASSES = {1: "person", 3: "vehicle"}  # MOT class id -> the category it is scored as
# the labels that name each category right: the detector's, and the category's own name (the pipeline's
# label for a detected object whose category the classifier has no label for)
CATEGORY_LABELS = {c: frozenset((*labels, c)) for c, labels in DETECTOR_LABELS.items()}


@dataclass(frozen=True)
class GtBox:
    id: int
    box: tuple[float, float, float, float]  # x, y, w, h
    ignore: bool


def read_mot(path: str | Path) -> tuple[dict[int, list[GtBox]], str]:
    """Ground truth by 0-based frame, and the category it annotates (MOT lines
    ``frame,id,x,y,w,h,conf,class,visibility``, frames from 1)."""
    frames: dict[int, list[GtBox]] = defaultdict(list)
    classes = set()
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            f, tid, x, y, w, h, conf, cls = (float(v) for v in line.split(",")[:8])
        except ValueError:
            raise InputError(f"{path}:{n}: expected a MOT line 'frame,id,x,y,w,h,conf,class,...'") from None
        frames[int(f) - 1].append(GtBox(int(tid), (x, y, w, h), conf == 0))
        classes.add(int(cls))
    if len(classes) != 1 or next(iter(classes)) not in MOT_CLASSES:
        raise InputError(f"{path}: expected one annotated class of {sorted(MOT_CLASSES)}, got {sorted(classes)}")
    return frames, MOT_CLASSES[classes.pop()]


def read_jsonl(path: str | Path) -> dict[int, list[dict]]:
    """The reported objects of a ``detections.jsonl`` by frame (each: box, track, label)."""
    out: dict[int, list[dict]] = {}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            out[record["frame"]] = record.get("objects", [])
    return out


def _match(gt: np.ndarray, pred: np.ndarray, iou: float) -> list[tuple[int, int]]:
    """Pairs (gt row, pred row) of the assignment that maximises total IoU, each pair >= ``iou``."""
    from scipy.optimize import linear_sum_assignment

    if len(gt) == 0 or len(pred) == 0:
        return []
    m = iou_matrix(gt, pred)
    rows, cols = linear_sum_assignment(-m)
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if m[r, c] >= iou]


def _bin(width: float) -> str:
    for lo, hi in WIDTH_BINS:
        if width >= lo and (hi is None or width < hi):
            return f"{lo}-{hi}" if hi else f">={lo}"
    raise AssertionError(width)


class _Tally:
    """Counts of one scoring pass, and the py-motmetrics accumulator of its identities."""

    def __init__(self):
        import motmetrics as mm

        self.tp = self.fp = self.fn = self.right = 0
        self.by_width: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # bin -> [hits, ground truth]
        self.labels: dict[str, int] = defaultdict(int)  # label of each output box that matched
        self.acc = mm.MOTAccumulator(auto_id=True)

    def frame(self, gt: list[GtBox], pred: list[dict], category: str, min_width: float, iou: float) -> None:
        care = [g for g in gt if not g.ignore and g.box[2] >= min_width]
        dont = [g for g in gt if g.ignore or g.box[2] < min_width]
        care_xywh = np.array([g.box for g in care], dtype=np.float64).reshape(-1, 4)
        pred_xywh = np.array([p["box"] for p in pred], dtype=np.float64).reshape(-1, 4)
        pairs = _match(care_xywh, pred_xywh, iou)
        matched_pred = {c for _, c in pairs}
        loose = [c for c in range(len(pred)) if c not in matched_pred]
        dont_xywh = np.array([g.box for g in dont], dtype=np.float64).reshape(-1, 4)
        # an output box on don't-care ground truth is dropped, not counted as a false positive
        on_dont = {loose[c] for _, c in _match(dont_xywh, pred_xywh[loose], iou)} if loose else set()
        kept = [c for c in range(len(pred)) if c not in on_dont]
        self.tp += len(pairs)
        self.fn += len(care) - len(pairs)
        self.fp += len(kept) - len(pairs)
        hit = {r for r, _ in pairs}
        for r, g in enumerate(care):
            cell = self.by_width[_bin(g.box[2])]
            cell[0] += r in hit
            cell[1] += 1
        for _, c in pairs:
            label = pred[c].get("label", "")
            self.labels[label] += 1
            self.right += label in CATEGORY_LABELS[category]
        self._identities(care, care_xywh, [pred[c] for c in kept], pred_xywh[kept], iou)

    def _identities(self, care, care_xywh, pred, pred_xywh, iou) -> None:
        import motmetrics as mm

        if care and all(g.id < 0 for g in care):  # no identities (vehicle sequences: id -1): py-motmetrics
            return                                # fails on a repeated id, and IDF1 is not computed for them
        dist = mm.distances.iou_matrix(care_xywh, pred_xywh, max_iou=1 - iou)
        self.acc.update([g.id for g in care], [p.get("track", -1) for p in pred], dist)


def score(gt_path: str | Path, jsonl_path: str | Path, *, min_width: float = 16, iou: float = 0.5,
          named_only: bool = True) -> dict:
    """Recall, precision, the share named right, by ground-truth width, and IDF1 / MOTA where the
    ground truth has ids. With ``named_only`` the output boxes are those labelled with the sequence's
    category (person; any vehicle label for cars): what a user counting people or vehicles gets.
    Without it, every reported object counts (``named_right`` then says how many were named right)."""
    _shim_numpy()
    import motmetrics as mm

    gt, category = read_mot(gt_path)
    pred = read_jsonl(jsonl_path)
    tally = _Tally()
    for f in sorted(set(gt) | set(pred)):
        boxes = pred.get(f, [])
        if named_only:
            boxes = [p for p in boxes if p.get("label") in CATEGORY_LABELS[category]]
        tally.frame(gt.get(f, []), boxes, category, min_width, iou)
    has_ids = any(g.id >= 0 for frame in gt.values() for g in frame)
    ids = mm.metrics.create().compute(tally.acc, metrics=["idf1", "mota"], name="seq") if has_ids else None
    ratio = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    return {"category": category, "min_width": min_width, "iou": iou, "named_only": named_only,
            "ground_truth": tally.tp + tally.fn, "output": tally.tp + tally.fp, "hits": tally.tp,
            "recall": ratio(tally.tp, tally.tp + tally.fn), "precision": ratio(tally.tp, tally.tp + tally.fp),
            "named_right": ratio(tally.right, tally.tp),
            "recall_by_width": {k: ratio(h, n) for k, (h, n) in sorted(tally.by_width.items())},
            "ground_truth_by_width": {k: n for k, (_, n) in sorted(tally.by_width.items())},
            "matched_labels": dict(sorted(tally.labels.items(), key=lambda kv: -kv[1])),
            "idf1": round(float(ids["idf1"].iloc[0]), 4) if ids is not None else None,
            "mota": round(float(ids["mota"].iloc[0]), 4) if ids is not None else None}


def _shim_numpy() -> None:
    """py-motmetrics 1.4 calls ``np.asfarray``, which numpy 2 removed."""
    if not hasattr(np, "asfarray"):
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)
