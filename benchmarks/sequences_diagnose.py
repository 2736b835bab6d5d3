"""Where the fold detectors' false positives and misses on the annotated sequences come from.

For each sequence and its fold model (the one `benchmarks.sequences` scores it with), the pipeline's
output boxes named with the sequence's category that match no ground truth (IoU >= 0.5, ground truth
>= 16 px wide, ignore regions honoured) are sorted by kind: a duplicate of a matched object, a loose box
(IoU 0.3-0.5), a part of an object, a group of objects, a box on small or ignored ground truth, or a box
on nothing annotated (static: the raw detector fires there on most frames). Misses are split by what the
raw detector (no tracker, every peak >= 0.1) had there, against the category's threshold. Widths are of
the output box; track lengths count the track's reported boxes.

    python -m benchmarks.sequences_diagnose [--data ../shared/data/sequences] [--work DIR]

prints the tally and writes benchmarks/results/sequences_diagnose.json.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from lowres_sdk import Classifier
from lowres_sdk.video.detector import DetectorRegions
from lowres_sdk.video.scoring import CATEGORY_LABELS, read_jsonl, read_mot
from lowres_sdk.video.tracking import iou_matrix

from .sequences import ROOT, SEQUENCES, fold_model, run_one

OUT = ROOT / "benchmarks" / "results" / "sequences_diagnose.json"
RAW_THRESHOLD = 0.1


def raw_boxes(video: Path, model: Path, threshold: float = RAW_THRESHOLD) -> list[tuple[np.ndarray, np.ndarray]]:
    """The detector alone on every frame: boxes and category scores above ``threshold``."""
    detector, cap, out = DetectorRegions(model, threshold=threshold), cv2.VideoCapture(str(video)), []
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        boxes = detector(frame, index)
        out.append((boxes.astype(np.float64), detector.last_categories.copy()))
        index += 1
    cap.release()
    return out


def _inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of each box of ``a`` lying inside each box of ``b``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    iw = np.maximum(0, np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
                    - np.maximum(a[:, None, 0], b[None, :, 0]))
    ih = np.maximum(0, np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
                    - np.maximum(a[:, None, 1], b[None, :, 1]))
    return iw * ih / np.maximum(a[:, 2] * a[:, 3], 1e-9)[:, None]


def fp_kind(box: np.ndarray, care: np.ndarray, matched: set[int], dont: np.ndarray, static: bool) -> str:
    """What an unmatched output box lies on."""
    b = box[None]
    iou = iou_matrix(b, care)[0]
    if len(care) and iou.max() >= 0.5:
        return "duplicate" if int(iou.argmax()) in matched else "loose"  # matched: taken by a better box
    if len(care) and iou.max() >= 0.3:
        return "loose"
    if len(dont) and iou_matrix(b, dont)[0].max() >= 0.3:
        return "small or ignored gt"
    covers = _inside(care, b)[:, 0] if len(care) else np.zeros(0)
    if (covers >= 0.5).sum() >= 2:
        return "group"
    if len(care) and (_inside(b, care)[0] >= 0.7).any():
        return "part"
    if len(care) and iou.max() >= 0.1:
        return "overlap 0.1-0.3"
    return "nothing annotated, static" if static else "nothing annotated, moving"


def _bin(w: float) -> str:
    return "<16" if w < 16 else "16-32" if w < 32 else "32-64" if w < 64 else ">=64"


def _track_bin(n: int) -> str:
    return "2-4" if n < 5 else "5-14" if n < 15 else ">=15"


def diagnose(sequence: str, data: Path, jsonl: Path, model: Path) -> dict:
    gt, category = read_mot(data / f"{sequence}.gt.txt")
    pred = read_jsonl(jsonl)
    raw = raw_boxes(data / f"{sequence}.mp4", model)
    cat_index = 0 if category == "person" else 1
    threshold = float(DetectorRegions(model).by_category[cat_index])  # the category's own, from the model
    track_len = Counter(p["track"] for objs in pred.values() for p in objs)
    fps, misses = defaultdict(Counter), Counter()
    for f in range(len(raw)):
        care = np.array([g.box for g in gt.get(f, []) if not g.ignore and g.box[2] >= 16]).reshape(-1, 4)
        dont = np.array([g.box for g in gt.get(f, []) if g.ignore or g.box[2] < 16]).reshape(-1, 4)
        objs = [p for p in pred.get(f, []) if p["label"] in CATEGORY_LABELS[category]]
        out = np.array([p["box"] for p in objs], np.float64).reshape(-1, 4)
        pairs = _assign(care, out)
        matched = {r for r, _ in pairs}
        for c, p in enumerate(objs):
            if c in {c for _, c in pairs}:
                continue
            static = _static(out[c], raw)
            kind = fp_kind(out[c], care, matched, dont, static)
            if kind == "small or ignored gt" and iou_matrix(out[c][None], dont)[0].max() >= 0.5:
                continue  # the scorer drops these too
            fps["kind"][kind] += 1
            fps["width"][_bin(out[c][2])] += 1
            fps["track boxes"][_track_bin(track_len[p["track"]])] += 1
        rb, rs = raw[f]
        for r in range(len(care)):
            if r in matched:
                continue
            iou = iou_matrix(care[r][None], rb)[0] if len(rb) else np.zeros(1)
            ok = iou >= 0.5
            if not ok.any():
                misses["raw: no box (IoU < 0.3)" if iou.max() < 0.3 else "raw: loose box (IoU 0.3-0.5)"] += 1
            elif ((rs[ok, cat_index] >= threshold) & (rs[ok].argmax(1) == cat_index)).any():
                misses["raw: box at the threshold, lost by tracker or naming"] += 1
            else:
                misses["raw: box only under the threshold or other category"] += 1
    return {"sequence": sequence, "model": model.name, "false_positives": {k: dict(v) for k, v in fps.items()},
            "misses": dict(misses)}


def _assign(care: np.ndarray, out: np.ndarray) -> list[tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment

    if len(care) == 0 or len(out) == 0:
        return []
    m = iou_matrix(care, out)
    rows, cols = linear_sum_assignment(-m)
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if m[r, c] >= 0.5]


def _static(box: np.ndarray, raw: list) -> bool:
    """Whether the raw detector has a box at IoU >= 0.7 here on at least half the frames."""
    hits = sum(1 for b, _ in raw if len(b) and iou_matrix(box[None], b)[0].max() >= 0.7)
    return hits >= len(raw) / 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sequences")
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "lowres_sdk" / "sequences_diagnose")
    p.add_argument("--sequences", default=",".join(SEQUENCES))
    args = p.parse_args()
    clf, rows = Classifier(), []
    for sequence in args.sequences.split(","):
        row = run_one(sequence, "detector", args.data, args.work, clf)
        d = diagnose(sequence, args.data, Path(row["jsonl"]), fold_model(sequence)[0])
        d["recall"], d["precision"] = row["named_16"]["recall"], row["named_16"]["precision"]
        print(json.dumps(d), flush=True)
        rows.append(d)
    OUT.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
