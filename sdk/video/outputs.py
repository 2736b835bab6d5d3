"""The pipeline's sinks: ``detections.jsonl`` and the annotated video (context managers), and the
atomic JSON writer of ``summary.json``."""
from __future__ import annotations

import functools
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import InputError, SourceError

if TYPE_CHECKING:  # the pipeline's result types, for annotations only (the pipeline imports this module)
    from .pipeline import Detection, FrameResult

VIDEO_NAME = "annotated.mkv"
OUTPUT_NAMES = (VIDEO_NAME, "detections.jsonl", "summary.json")  # what `process` writes into its folder


def stale_outputs(out_dir: str | os.PathLike) -> list[str]:
    """The outputs of an earlier run in ``out_dir`` (empty when it is new or holds none)."""
    out_dir = Path(out_dir)
    return [name for name in OUTPUT_NAMES if (out_dir / name).exists()]


def summary_line(summary: dict) -> str:
    """One line a person reads: frames, objects by label, speed, and what tracking saved."""
    frames = summary["frames_processed"]
    failed = f" ({summary['frames_failed']} failed to decode)" if summary["frames_failed"] else ""
    if not frames:
        return f"no frames processed{failed}"
    labels = summary["track_labels"]
    found = (f"{summary['tracks']} objects: " + ", ".join(f"{n} {label}" for label, n in labels.items())
             if summary["tracks"] else "no objects")
    speed = f"{summary['fps']} frames/s" + (f" ({summary['realtime_factor']}x real time)"
                                             if summary["realtime_factor"] else "")
    saved = summary["classifications_saved"]
    crops = (f"; {summary['crops_classified']} of {summary['crops_seen']} crops classified"
             + (f", {100 * saved:.0f} % saved by tracking" if saved and summary["tracking"] else "")
             if summary["crops_seen"] else "")
    return f"{frames} frames{failed}, {found}; {speed}{crops}"


class JsonlSink:
    """``detections.jsonl``: one line per processed frame, flushed as written, so an interrupted run
    leaves valid JSONL up to its last frame."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = None

    def __enter__(self):
        self._f = open(self.path, "w", buffering=1)
        return self

    def write(self, result: FrameResult) -> None:
        self._f.write(json.dumps(result.to_json()) + "\n")

    def __exit__(self, *exc):
        self._f.close()


@functools.lru_cache(maxsize=1024)
def _color(track: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(track)
    return tuple(int(v) for v in rng.integers(64, 256, 3))


def label_style(height: int) -> tuple[float, int]:
    """(font scale, line thickness) for a frame ``height`` px tall: text ~2.2 % of the height, at least
    legible at 240p (Hershey simplex at scale 0.4 is ~9 px tall)."""
    scale = max(0.4, height / 1100)
    return scale, max(1, round(scale * 1.6))


def draw_label(image: np.ndarray, text: str, box: tuple[int, int, int, int], color: tuple[int, int, int],
               placed: list | None = None) -> None:
    """``text`` on a filled ``color`` tag at ``box``'s (x, y, w, h) top edge, kept inside ``image``;
    tried above the box, then below it, then inside its top, the first spot missing the tags in
    ``placed`` (appended to), so neighbours' labels do not cover each other."""
    H, W = image.shape[:2]
    scale, thick = label_style(H)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(1, thick)
    lw, lh = min(W, tw + 2 * pad), min(H, th + base + 2 * pad)
    x, y, w, h = box
    lx = int(min(max(0, x), W - lw))
    spots = [y - lh, y + h, y]
    placed = [] if placed is None else placed
    rects = [(lx, int(min(max(0, top), H - lh)), lw, lh) for top in spots]
    rect = next((r for r in rects if not any(_overlap(r, p) for p in placed)), rects[0])
    placed.append(rect)
    rx, ry = rect[:2]
    cv2.rectangle(image, (rx, ry), (rx + lw - 1, ry + lh - 1), color, cv2.FILLED)
    ink = (0, 0, 0) if sum(color) > 3 * 140 else (255, 255, 255)  # dark text on light tags, light on dark
    cv2.putText(image, text, (rx + pad, ry + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thick, cv2.LINE_AA)


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def annotate(image: np.ndarray, objects: list[Detection], scale: float = 1.0) -> np.ndarray:
    """``image`` (shrunk by ``scale``) with each object's box and a filled tag: label, score, track id."""
    if scale != 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    else:
        out = image.copy()
    thick = label_style(out.shape[0])[1]
    placed: list = []
    for d in objects:
        x, y, w, h = (round(v * scale) for v in d.box)
        color = _color(d.track)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        draw_label(out, f"{d.label} {d.score:.2f} #{d.track}", (x, y, w, h), color, placed)
    return out


class AnnotatedVideo:
    """The video with boxes, labels, scores and track ids, drawn and encoded in a thread of its own.

    MPEG-4 Part 2 in Matroska (``.mkv``) by default: a run that is killed leaves a file that still
    plays up to its last written cluster (a killed ``.mp4`` has no index and cannot be opened at all).
    ``scale`` < 1 writes a smaller video (cheaper to encode; boxes are drawn at that scale).
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], scale: float = 1.0,
                 queue_size: int = 16):
        if not 0 < scale <= 1:
            raise InputError(f"video scale must be in (0, 1], got {scale}")
        self.path, self.fps, self.scale = Path(path), fps, scale
        self.size = (max(2, round(size[0] * scale)), max(2, round(size[1] * scale)))
        self.frames_written, self.seconds = 0, {"annotate": 0.0, "encode": 0.0}
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._writer = self._thread = self._error = None

    def __enter__(self):
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
        if not self._writer.isOpened():
            raise SourceError(f"cannot write video {self.path} (no mp4v encoder in this OpenCV build?)")
        self._thread = threading.Thread(target=self._encode, name="lowres-encode", daemon=True)
        self._thread.start()
        return self

    def _encode(self) -> None:
        while (item := self._q.get()) is not None:
            if self._error is not None:
                continue  # drain, so the producer never blocks
            try:
                t0 = time.perf_counter()
                image = annotate(*item, scale=self.scale)
                t1 = time.perf_counter()
                if image.shape[1::-1] != self.size:
                    image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
                self._writer.write(image)
                self.seconds["annotate"] += t1 - t0
                self.seconds["encode"] += time.perf_counter() - t1
                self.frames_written += 1
            except Exception as e:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = e

    def write(self, result: FrameResult) -> None:
        """Queue ``result`` for drawing and encoding (blocks while ``queue_size`` frames wait)."""
        if self._error is not None:
            raise SourceError(f"writing {self.path} failed: {self._error}")
        self._q.put((result.image, result.objects))

    def __exit__(self, *exc):
        self._q.put(None)
        self._thread.join()
        self._writer.release()
        if self._error is not None and exc[0] is None:
            raise SourceError(f"writing {self.path} failed: {self._error}")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
