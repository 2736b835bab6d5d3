"""The region detector's cost per frame, two models side by side on the same frames of the given clips
(alternating calls in one process, one onnxruntime and OpenCV thread), so a change of model or of
post-processing is timed against its baseline in one run.

    python -m benchmarks.sequences_cost NEW.onnx BASELINE.onnx [--frames 150]

prints ms per frame (median and mean) and boxes per frame of each, per clip, as JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from lowres_sdk.video import frames
from lowres_sdk.video.detector import DetectorRegions

from .sequences import CLIPS, ROOT


def cost(clip: Path, models: list[Path], n: int) -> dict:
    cv2.setNumThreads(1)
    detectors = [DetectorRegions(m) for m in models]
    times, boxes = [[] for _ in models], [[] for _ in models]
    for k, f in enumerate(frames(clip, decode_threads=1)):
        if k >= n:
            break
        for i in (range(len(models)) if k % 2 else reversed(range(len(models)))):  # neither always goes first
            start = time.perf_counter()
            found = detectors[i](f.image, f.index)
            times[i].append(time.perf_counter() - start)
            boxes[i].append(len(found))
    return {name: {"ms_median": round(1000 * float(np.median(t)), 2), "ms_mean": round(1000 * float(np.mean(t)), 2),
             "boxes_per_frame": round(float(np.mean(b)), 2)} for name, t, b in zip(("new", "baseline"), times, boxes)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs=2, type=Path)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "data" / "video")
    args = p.parse_args()
    print(json.dumps({clip: cost(args.video / clip, args.models, args.frames) for clip in CLIPS}, indent=1))


if __name__ == "__main__":
    main()
