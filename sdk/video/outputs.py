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

import cv2
import numpy as np

from ..errors import InputError, SourceError


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


def annotate(image: np.ndarray, objects: list[Detection], scale: float = 1.0) -> np.ndarray:
    """``image`` (shrunk by ``scale``) with each object's box, label, score and track id drawn on it."""
    if scale != 1.0:
        out = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    else:
        out = image.copy()
    for d in objects:
        x, y, w, h = (round(v * scale) for v in d.box)
        color = _color(d.track)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, 1)
        text = f"{d.label} {d.score:.2f} #{d.track}"
        cv2.putText(out, text, (x, max(8, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.33, color, 1, cv2.LINE_AA)
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
