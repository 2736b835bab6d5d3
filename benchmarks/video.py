"""Video pipeline speed on the pedestrian clip, in one run: decode only, decode + motion crops,
and the full pipeline (motion + classify + track + annotate + write video and JSONL), with and
without tracking. Writes benchmarks/results/video.json and the video table in docs/benchmarks.md.

    python benchmarks/video.py --bundle sdk/models/default
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2

from docs_table import write_block
from lowres_sdk import Classifier
from lowres_sdk.regions import MotionCrops
from lowres_sdk.video import frames, process

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "video.json"


def timed_fps(fn, n_frames: int) -> float:
    t = time.perf_counter()
    fn()
    return n_frames / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=HERE.parent.parent / "shared" / "data" / "video" / "pedestrians-480x360.avi")
    p.add_argument("--bundle", default=None, help="bundle (default: the shipped default model)")
    p.add_argument("--repeat", type=int, default=3, help="best of N runs per stage")
    args = p.parse_args()
    cv2.setNumThreads(2)
    cap = cv2.VideoCapture(str(args.video))
    n, source_fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    clf = Classifier(args.bundle)

    def decode():
        for _ in frames(args.video):
            pass

    def motion(downscale):
        def go():
            m = MotionCrops(downscale=downscale)
            for f in frames(args.video):
                m(f.image, f.index)
        return go

    summaries = {}

    def full(track, write_video=True):
        def go():
            with tempfile.TemporaryDirectory() as tmp:
                summaries[track] = process(args.video, clf, tmp, MotionCrops(), track=track, write_video=write_video,
                                           progress=False)
        return go

    stages = [("decode", decode), ("decode+motion (full-res MOG2)", motion(1)), ("decode+motion", motion(2)),
              ("full pipeline", full(True)), ("full pipeline, no tracking", full(False)),
              ("full pipeline, no video file", full(True, write_video=False))]
    rows = []
    for name, fn in stages:
        fps = max(timed_fps(fn, n) for _ in range(args.repeat))
        rows.append({"stage": name, "fps": round(fps, 1), "realtime_factor": round(fps / source_fps, 1)})
        print(json.dumps(rows[-1]), flush=True)
    decode_fps = rows[0]["fps"]
    out = {"video": args.video.name, "frames": n, "source_fps": source_fps, "bundle": str(clf.bundle.path),
           "rows": rows, "full_vs_decode": round(rows[3]["fps"] / decode_fps, 3),
           "tracking": {"crops_seen": summaries[True]["crops_seen"], "classified_with_tracking": summaries[True]["crops_classified"],
                        "classified_without": summaries[False]["crops_classified"],
                        "saved": summaries[True]["classifications_saved"]}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    lines = [f"{out['video']} ({n} frames at {source_fps:g} fps), bundle `{out['bundle']}`, best of {args.repeat}.", "",
             "| stage | frames/s | × real time |", "|---|---|---|"]
    lines += [f"| {r['stage']} | {r['fps']:,.0f} | {r['realtime_factor']:,.0f} |" for r in rows]
    t = out["tracking"]
    lines += ["", f"Full pipeline = {100 * out['full_vs_decode']:.0f} % of decode-only fps. Tracking classified "
                  f"{t['classified_with_tracking']:,} of {t['crops_seen']:,} crops ({100 * t['saved']:.0f} % saved) "
                  f"vs {t['classified_without']:,} without."]
    write_block("video", lines)


if __name__ == "__main__":
    main()
