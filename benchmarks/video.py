"""Video pipeline speed, stage profile, memory and label purity, in one run per clip.

Per clip: decode only, decode + motion crops, and the full pipeline (`process`: motion + classify +
track + JSONL) without / with the annotated video, threaded and sequential; ratios are taken within
this run (the machine is shared). The stage profile (busy ms per frame) comes from the sequential
run, where stages do not overlap. RSS is sampled over a long run (the pedestrian clip 10x). Label
purity = share of reported tracks whose majority label is the clip's class (person / a vehicle), over
the whole clip and over the tracks first seen in the half the default model did not train on.
Writes benchmarks/results/video.json and the video block in docs/benchmarks.md.

    python benchmarks/video.py [--bundle BUNDLE]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2

from clip_purity import CLIP_CLASSES as CLIPS
from clip_purity import clip_purity, purity
from docs_table import write_block
from lowres_sdk import Classifier
from lowres_sdk.video.regions import MotionCrops
from lowres_sdk.video import frames, process

HERE = Path(__file__).resolve().parent
VIDEO = HERE.parent.parent / "shared" / "data" / "video"
RESULTS = HERE / "results" / "video.json"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20


def bench_clip(path: Path, clf, wanted: set[str], repeat: int) -> dict:
    cap = cv2.VideoCapture(str(path))
    n, source_fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    summaries, decode_seconds = {}, {}

    def decode():  # the reference: the faster of FFmpeg's own thread count and one thread
        for threads in (None, 1):
            t = time.perf_counter()
            for _ in frames(path, decode_threads=threads):
                pass
            decode_seconds[threads] = min(decode_seconds.get(threads, 1e9), time.perf_counter() - t)

    def motion():
        m = MotionCrops()
        for f in frames(path, decode_threads=1):
            m(f.image, f.index)

    def full(name, **kw):
        def go():
            with tempfile.TemporaryDirectory() as tmp:
                summaries[name] = process(path, clf, tmp, MotionCrops(), progress=False, **kw)
        return go

    stages = [("decode", decode), ("decode+motion", motion),
              ("full, JSONL, no video", full("novideo", write_video=False)),
              ("full, JSONL + video", full("video")),
              ("full, JSONL + video at 0.5 scale", full("video_half", video_scale=0.5)),
              ("sequential, no video", full("seq_novideo", write_video=False, threads=False)),
              ("sequential, JSONL + video", full("seq_video", threads=False))]
    best: dict[str, float] = {}
    for _ in range(repeat):  # rounds interleave the stages, so load from other jobs spreads over all of them
        for name, fn in stages:
            t = time.perf_counter()
            fn()
            best[name] = max(best.get(name, 0.0), n / (time.perf_counter() - t))
    best["decode"] = n / min(decode_seconds.values())
    rows = [{"stage": name, "fps": round(fps, 1), "realtime_factor": round(fps / source_fps, 2),
             "vs_decode": round(fps / best["decode"], 3)} for name, fps in best.items()]
    for r in rows:
        print(path.name, json.dumps(r), flush=True)
    s = summaries["seq_video"]
    return {"video": path.name, "frames": n, "source_fps": source_fps, "rows": rows,
            "profile_ms_per_frame": s["busy_ms_per_frame"],
            "threaded_profile_ms_per_frame": summaries["video"]["busy_ms_per_frame"],
            "tracking": {"crops_seen": s["crops_seen"], "classified": s["crops_classified"], "saved": s["classifications_saved"]},
            "tracks": s["tracks"], "tracks_not_reported": s["tracks_not_reported"], **purity(s["track_labels"], wanted),
            "held_out": clip_purity(path, clf, wanted)["held_out"]}


def long_run_rss(path: Path, clf, times: int) -> dict:
    """RSS sampled every 200 frames while the pipeline (with video) runs over ``path`` repeated ``times``x."""
    with tempfile.TemporaryDirectory() as tmp:
        long = Path(tmp) / "long.mkv"
        cap = cv2.VideoCapture(str(path))
        fps, size = cap.get(cv2.CAP_PROP_FPS), (int(cap.get(3)), int(cap.get(4)))
        cap.release()
        writer = cv2.VideoWriter(str(long), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        for _ in range(times):  # streamed, so the RSS samples start from the pipeline's own footprint
            for f in frames(path):
                writer.write(f.image)
        writer.release()
        samples = []
        process(long, clf, Path(tmp) / "out", MotionCrops(), progress=False,
                callback=lambda r: samples.append(round(rss_mb(), 1)) if r.index % 200 == 0 else None)
    return {"frames": len(samples) * 200, "rss_mb_samples": samples,
            "rss_mb_first_quarter_max": max(samples[: len(samples) // 4]), "rss_mb_last_quarter_max": max(samples[-len(samples) // 4:])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=None, help="bundle (default: the shipped default model)")
    p.add_argument("--repeat", type=int, default=3, help="best of N interleaved rounds per stage")
    p.add_argument("--long", type=int, default=10, help="repeats of the pedestrian clip for the RSS run")
    args = p.parse_args()
    cv2.setNumThreads(1)  # as `lowres video`
    # as `lowres video`: one onnxruntime thread beside the pipeline's, the INT8 model when the bundle ships one
    clf = Classifier(args.bundle, threads=1, precision="auto")
    out = {"bundle": str(clf.bundle.path), "precision": clf.precision, "unknown_below": getattr(clf, "unknown_below", None), "clips": []}
    for name, wanted in CLIPS.items():
        out["clips"].append(bench_clip(VIDEO / name, clf, wanted, args.repeat))
    out["memory"] = long_run_rss(VIDEO / "pedestrians-480x360.avi", clf, args.long)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    lines = [f"Bundle `{out['bundle']}` ({clf.precision}, as `lowres video`), best of {args.repeat} interleaved rounds per stage, all rows of a clip in one run.", ""]
    for c in out["clips"]:
        lines += [f"**{c['video']}** ({c['frames']} frames at {c['source_fps']:g} fps)", "",
                  "| stage | frames/s | × real time | × decode-only fps |", "|---|---|---|---|"]
        lines += [f"| {r['stage']} | {r['fps']:,.0f} | {r['realtime_factor']:.2f} | {r['vs_decode']:.2f} |" for r in c["rows"]]
        prof = c["profile_ms_per_frame"]
        lines += ["", "Stage profile (sequential run, busy ms per frame): " +
                  ", ".join(f"{k} {v:.2f}" for k, v in prof.items()) + ".",
                  f"Tracking classified {c['tracking']['classified']:,} of {c['tracking']['crops_seen']:,} crops "
                  f"({100 * c['tracking']['saved']:.0f} % saved). Reported tracks: {c['tracks']} "
                  f"(not reported: {c['tracks_not_reported']}); label purity {c['label_purity']}, "
                  f"unknown {c['unknown_share']}; labels {c['labels']}. Tracks first seen from frame "
                  f"{c['held_out']['from_frame']} on (the part of the clip the default model did not train on): "
                  f"{c['held_out']['tracks']}, label purity {c['held_out']['label_purity']}, unknown "
                  f"{c['held_out']['unknown_share']}; labels {c['held_out']['labels']}.", ""]
    m = out["memory"]
    lines += [f"RSS over {m['frames']:,} frames (pedestrian clip {args.long}x, with video): max {m['rss_mb_first_quarter_max']} MB "
              f"in the first quarter, {m['rss_mb_last_quarter_max']} MB in the last."]
    write_block("video", lines)


if __name__ == "__main__":
    main()
