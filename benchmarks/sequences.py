"""`lowres video` scored on the annotated fixed-camera sequences of ../shared/data/sequences, every
figure on a camera its region stage did not see.

The motion stage trains on nothing; the street stage's COCO detector trained on none of these. The
detector (alone, or the street stage's vehicle part) is scored on each sequence with a fold model that
did not train on it: its ONNX metadata (``trained_on``) says what it saw, the row records it, and
tests/test_sequences.py fails if a row's model trained on the sequence it scores.

    python -m benchmarks.sequences [--regions motion,detector,street] [--data ../shared/data/sequences]

writes benchmarks/results/sequences.json, one PNG per sequence and region stage (ground truth green,
output red, on the middle frame) under benchmarks/results/sequences/, and the table in docs/video.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2

from lowres_sdk import Classifier
from lowres_sdk.video import process
from lowres_sdk.video.combined import street_regions
from lowres_sdk.video.detector import DetectorRegions, read_meta
from lowres_sdk.video.regions import MotionCrops
from lowres_sdk.video.scoring import read_jsonl, read_mot, score
from lowres_sdk.video.tracking import TrackerConfig

ROOT = Path(__file__).resolve().parent.parent
FOLDS = ROOT / "benchmarks" / "checkpoints" / "detector"  # fold_*.onnx: detectors that each left sequences out
RESULTS = ROOT / "benchmarks" / "results" / "sequences.json"
SEQUENCES = ("pets09-s2l1-768x576", "tud-campus-640x480", "ngsim-us101-cam1-640x480", "ngsim-us101-cam2-640x480",
             "ngsim-us101-cam3-640x480", "ngsim-us101-cam4-640x480", "gram-m30-hd-1200x720")


def fold_model(sequence: str) -> tuple[Path, dict]:
    """Of the fold detectors whose training did not include ``sequence``, the one that trained on the most
    sequences (the first by name among equals)."""
    folds = [(path, read_meta(path)) for path in sorted(FOLDS.glob("fold_*.onnx"))]
    left_out = [(path, meta) for path, meta in folds if sequence not in meta["trained_on"]]
    if left_out:
        return max(left_out, key=lambda fold: len(fold[1]["trained_on"]))
    raise SystemExit(f"no fold detector under {FOLDS} left {sequence} out: train one "
                     f"(lowres train-detector SEQUENCES --exclude {sequence} --out {FOLDS}/fold_NAME.onnx)")


def regions(kind: str, model: Path | None) -> tuple[object, TrackerConfig]:
    """Region stage ``kind``'s provider (the detector ``model`` for ``detector`` and ``street``, whose COCO
    part trained on none of the sequences) and its tracker settings."""
    if kind == "motion":
        return MotionCrops(), TrackerConfig()
    detector = street_regions(model) if kind == "street" else DetectorRegions(model)
    return detector, TrackerConfig(**detector.tracker_defaults)


def run_one(sequence: str, kind: str, data: Path, work: Path, clf) -> dict:
    path, meta = fold_model(sequence) if kind in ("detector", "street") else (None, {"trained_on": []})
    provenance = {"model": path.name, "trained_on": meta["trained_on"]} if path else {"trained_on": []}
    crops, tracker = regions(kind, path)
    out = work / kind / sequence
    summary = process(data / f"{sequence}.mp4", clf, out, crops, tracker=tracker, write_video=False, progress=False)
    gt, jsonl = data / f"{sequence}.gt.txt", out / "detections.jsonl"
    return {"sequence": sequence, "regions": kind, **provenance, "seen": sequence in provenance["trained_on"],
            "classifier_saw": CLASSIFIER_SAW.get(sequence),
            "named_16": score(gt, jsonl), "named_all": score(gt, jsonl, min_width=0),
            "any_label_all": score(gt, jsonl, min_width=0, named_only=False),
            **wrong_category(summary["track_labels"]), "fps": summary["fps"],
            "realtime_factor": summary["realtime_factor"], "busy_ms_per_frame": summary["busy_ms_per_frame"],
            "jsonl": str(jsonl)}


# sequences whose camera the shipped classifier trained on: the given pedestrian clip is OpenCV's vtest.avi,
# PETS09-S2L1's view 1, and its first half (frames these 300 lie in) trained the default
CLASSIFIER_SAW = {"pets09-s2l1-768x576": "pedestrians-480x360.avi"}
ANIMALS = frozenset({"bird", "cat", "dog", "horse"})
CLIPS = {"pedestrians-480x360.avi": "person", "highway-cars-1280x720.mp4": "vehicle"}  # ../shared/data/video


def wrong_category(track_labels: dict[str, int]) -> dict:
    """Animal-labelled tracks among the reported ones (``track_labels``: summary.json's tracks per majority label)."""
    tracks = sum(track_labels.values())
    animals = sum(n for label, n in track_labels.items() if label in ANIMALS)
    return {"tracks": tracks, "animal_tracks": animals, "animal_share": round(animals / tracks, 4) if tracks else None}


def decode_fps(path: Path) -> float:
    """Frames per second of decoding alone, as the pipeline decodes (one FFmpeg thread)."""
    from lowres_sdk.video import frames

    start, n = time.perf_counter(), 0
    for _ in frames(path, decode_threads=1):
        n += 1
    return round(n / (time.perf_counter() - start), 1)


def run_clip(clip: str, kind: str, video_dir: Path, work: Path, clf) -> dict:
    """A given clip (not annotated): track purity, animal tracks and speed against decoding alone."""
    from lowres_sdk.video.detector import DEFAULT_MODEL
    from lowres_sdk.video.scoring import CATEGORY_LABELS

    model = None
    if kind in ("detector", "street"):
        model = DEFAULT_MODEL if DEFAULT_MODEL.is_file() else sorted(FOLDS.glob("fold_*.onnx"))[0]
    crops, tracker = regions(kind, model)
    out = work / kind / Path(clip).stem
    summary = process(video_dir / clip, clf, out, crops, tracker=tracker, write_video=False, progress=False)
    labels = summary["track_labels"]
    right, tracks = sum(n for label, n in labels.items() if label in CATEGORY_LABELS[CLIPS[clip]]), sum(labels.values())
    decode = decode_fps(video_dir / clip)
    return {"clip": clip, "regions": kind, "model": model.name if model else None,
            "trained_on": read_meta(model)["trained_on"] if model else [],
            "track_purity": round(right / tracks, 4) if tracks else None,
            **wrong_category(labels), "fps": summary["fps"],
            "realtime_factor": summary["realtime_factor"], "decode_fps": decode,
            "share_of_decode": round(summary["fps"] / decode, 3), "busy_ms_per_frame": summary["busy_ms_per_frame"]}


def picture(row: dict, data: Path, png: Path) -> None:
    """The middle annotated frame with ground truth (green, grey where ignored) and output boxes (red)."""
    gt, _ = read_mot(data / f"{row['sequence']}.gt.txt")
    pred = read_jsonl(row["jsonl"])
    frame = sorted(gt)[len(gt) // 2]
    cap = cv2.VideoCapture(str(data / f"{row['sequence']}.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, image = cap.read()
    cap.release()
    if not ok:
        return
    for g in gt[frame]:
        x, y, w, h = map(round, g.box)
        cv2.rectangle(image, (x, y), (x + w, y + h), (160, 160, 160) if g.ignore else (0, 200, 0), 1)
    for p in pred.get(frame, []):
        x, y, w, h = p["box"]
        cv2.rectangle(image, (x, y), (x + w, y + h), (0, 0, 255), 1)
        cv2.putText(image, p["label"], (x, max(8, y - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 255), 1, cv2.LINE_AA)
    scale = min(1.0, 480 / image.shape[1])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) & 0xF0  # 16 levels: a small PNG
    png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(png), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def table(rows: list[dict]) -> list[str]:
    """The docs table: recall / precision of boxes named with the sequence's category, ground truth
    >= 16 px wide, IoU >= 0.5; the share of matched boxes named right counts every reported box."""
    lines = ["| sequence | regions | recall | precision | named right | recall, all widths | IDF1 | animal tracks % "
             "| fps | detector |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, idf1 = r["named_16"], r["named_16"]["idf1"]
        name = r["sequence"] + (" (classifier: seen)" if r.get("classifier_saw") else "")
        lines.append(f"| {name} | {r['regions']} | {_pct(s['recall'])} | {_pct(s['precision'])} | "
                     f"{_pct(r['any_label_all']['named_right'])} | {_pct(r['named_all']['recall'])} | "
                     f"{'—' if idf1 is None else f'{idf1:.2f}'} | {_pct(r['animal_share'])} | {r['fps']} | "
                     f"{r.get('model', '—')} |")
    return lines


def clip_table(rows: list[dict]) -> list[str]:
    lines = ["| given clip | regions | track purity | animal tracks | fps | x real time | share of decode-only fps |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['regions']} | {_pct(r['track_purity'])} | {r['animal_tracks']} of "
                     f"{r['tracks']} | {r['fps']} | {r['realtime_factor']} | {_pct(r['share_of_decode'])} |")
    return lines


KINDS = ("motion", "detector", "street")


def kept_rows(rows: list[dict], clips: list[dict], kinds: list[str]) -> tuple[list[dict], list[dict]]:
    """This run's rows, and the earlier results' rows of the region stages it did not run (a rerun of one
    stage keeps the others' figures), in the order of KINDS."""
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": [], "clips": []}
    order = lambda r: KINDS.index(r["regions"]) if r["regions"] in KINDS else len(KINDS)  # noqa: E731
    def keep(old_rows, new):
        return sorted([r for r in old_rows if r["regions"] not in kinds] + new, key=order)
    return keep(old["rows"], rows), keep(old["clips"], clips)


def main() -> None:
    from benchmarks.docs_table import write_block
    from lowres_sdk._io import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sequences")
    p.add_argument("--regions", default="motion,detector", help="comma-separated region stages: motion, detector, street")
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "lowres_sdk" / "sequences",
                   help="where each run's detections.jsonl goes")
    args = p.parse_args()
    clf, rows, start = Classifier(), [], time.perf_counter()
    for kind in args.regions.split(","):
        for sequence in SEQUENCES:
            row = run_one(sequence, kind, args.data, args.work, clf)
            picture(row, args.data, RESULTS.parent / "sequences" / f"{sequence}-{kind}.png")
            row["jsonl"] = f"{kind}/{sequence}/detections.jsonl"  # relative to --work: no machine path in results
            rows.append(row)
            print(table([row])[-1], flush=True)
    clips = []
    for kind in args.regions.split(","):
        for clip in CLIPS:
            clips.append(run_clip(clip, kind, args.data.parent / "video", args.work, clf))
            print(clip_table(clips[-1:])[-1], flush=True)
    rows, clips = kept_rows(rows, clips, args.regions.split(","))
    report = {"about": "lowres video on annotated fixed-camera sequences, every row scored on a sequence its "
                       "region stage did not train on (seen: false); IoU >= 0.5, ignore regions honoured",
              "classifier": "shipped default", "seconds": round(time.perf_counter() - start, 1), "rows": rows,
              "clips": clips}
    atomic_write_text(RESULTS, json.dumps(report, indent=2))
    write_block("sequences", table(rows) + [""] + clip_table(clips), ROOT / "docs" / "video.md")


if __name__ == "__main__":
    main()
