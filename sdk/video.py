"""Video-frame inference: frames in, per-frame results out.

``frames(source)`` yields decoded frames (files, camera indices, rtsp/http streams, with decode
failures counted and stream reconnects); ``run(source, classifier, crops=...)`` yields a
`FrameResult` per processed frame, classifying the crops of several frames in one batch and
smoothing labels over IoU tracks. Sinks (`AnnotatedVideo`, `JsonlSink`) are context managers.
Memory stays flat: at most ``batch_frames`` frames are held at once.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .errors import SourceError
from .regions import MotionCrops, clip_boxes
from .tracking import IoUTracker, TrackerConfig

STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


@dataclass
class Frame:
    index: int          # position in the source (0-based, counting failed frames)
    t: float            # seconds from the start (source fps if known, else wall clock)
    image: np.ndarray   # uint8 BGR


@dataclass
class Detection:
    box: tuple[int, int, int, int]  # x, y, w, h
    track: int
    label: str
    score: float
    classified: bool                # classified on this frame (False: label carried by the track)


@dataclass
class FrameResult:
    index: int
    t: float
    image: np.ndarray
    objects: list[Detection]

    def to_json(self) -> dict:
        return {"frame": self.index, "t": round(self.t, 4),
                "objects": [{"box": list(d.box), "track": d.track, "label": d.label, "score": round(d.score, 4)}
                            for d in self.objects]}


@dataclass
class SourceStats:
    """Filled in while ``frames`` runs."""

    frames_read: int = 0
    frames_failed: int = 0
    reconnects: int = 0
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    kind: str = "file"


def _open(source, timeout: float = 10.0) -> tuple[cv2.VideoCapture, str]:
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        cap, kind = cv2.VideoCapture(int(source)), "camera"
    elif isinstance(source, str) and source.lower().startswith(STREAM_PREFIXES):
        ms = int(timeout * 1000)  # an unreachable stream fails after this, instead of FFmpeg's 30 s
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        kind = "stream"
    else:
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"video not found: {source}")
        cap, kind = cv2.VideoCapture(str(path)), "file"
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {kind} {source} (unsupported format, unreachable, or no such device)")
    return cap, kind


def frames(source, stats: SourceStats | None = None, max_failures: int = 25, reconnect_attempts: int = 5,
           backoff: float = 0.5, timeout: float = 10.0, log: Callable[[str], None] | None = None) -> Iterator[Frame]:
    """Decoded frames of ``source`` (a file path, a camera index, or an rtsp/http URL).

    A frame that fails to decode is counted in ``stats.frames_failed`` and skipped (a file gives up
    after ``max_failures`` failures in a row before its known end). A stream that drops is reopened
    with exponential backoff, up to ``reconnect_attempts`` times in a row, each attempt reported to
    ``log``; then the generator ends. ``timeout`` bounds opening and reading a stream (seconds).
    """
    stats = stats if stats is not None else SourceStats()
    log = log or (lambda msg: warnings.warn(msg, RuntimeWarning, stacklevel=2))
    cap, kind = _open(source, timeout)
    stats.kind = kind
    fps = cap.get(cv2.CAP_PROP_FPS)
    stats.fps = fps if fps and 0 < fps < 1000 else None
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    stats.frame_count = count if kind == "file" and count > 0 else None
    stats.width, stats.height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    start, index, failures_in_row = time.monotonic(), 0, 0
    try:
        while True:
            ok, image = cap.read()
            if ok and image is not None:
                failures_in_row = 0
                t = index / stats.fps if stats.fps and kind == "file" else time.monotonic() - start
                stats.frames_read += 1
                yield Frame(index, t, image)
                index += 1
                continue
            if kind == "file":
                if stats.frame_count is None or index >= stats.frame_count:
                    return  # end of file
                stats.frames_failed += 1
                failures_in_row += 1
                index += 1
                if failures_in_row >= max_failures:
                    log(f"{source}: {failures_in_row} frames in a row failed to decode at frame {index}; stopping "
                        f"({stats.frame_count - index} frames left unread; the file is probably truncated)")
                    return
                continue
            # camera or stream: the connection dropped or the stream ended
            cap.release()
            for attempt in range(1, reconnect_attempts + 1):
                delay = backoff * 2 ** (attempt - 1)
                log(f"{source}: stream lost; reconnecting in {delay:.1f}s (attempt {attempt}/{reconnect_attempts})")
                time.sleep(delay)
                try:
                    cap, _ = _open(source, timeout)
                except SourceError:
                    continue
                stats.reconnects += 1
                break
            else:
                log(f"{source}: gave up after {reconnect_attempts} reconnect attempts")
                cap = None
                return
    finally:
        if cap is not None:
            cap.release()


def run(source, classifier, crops=None, *, stride: int = 1, max_frames: int | None = None,
        batch_size: int = 64, batch_frames: int = 8, tracker: TrackerConfig | None = None, track: bool = True,
        stats: SourceStats | None = None, counters: dict | None = None, **frame_options) -> Iterator[FrameResult]:
    """Classify the crops of every ``stride``-th frame of ``source``; yields a `FrameResult` per processed frame.

    Crops from up to ``batch_frames`` frames (and at most ``batch_size`` crops) go to the
    classifier in one call. With ``track`` (default), an IoU tracker gives each box a track id,
    smooths its label over the track and re-classifies it only when it grew or aged (see
    `TrackerConfig`); ``counters`` (if given) receives the crops seen and classified.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    crops = crops if crops is not None else MotionCrops()
    config = tracker or TrackerConfig()
    if not track:
        config = TrackerConfig(iou=config.iou, max_age=config.max_age, grow=0.0, every=1, smoothing=0.0)
    trk = IoUTracker(config)
    counters = counters if counters is not None else {}
    counters.setdefault("crops", 0)
    counters.setdefault("classified", 0)
    labels = classifier.labels
    pending: list[tuple[Frame, list]] = []
    n_pending_crops = 0

    def flush():
        nonlocal n_pending_crops
        due_crops = [f.image[y:y + h, x:x + w] for f, items in pending for (x, y, w, h), _, due in items if due]
        it = iter(classifier(due_crops).probs if due_crops else ())
        for f, items in pending:
            objects = []
            for box, tr, due in items:
                p = trk.observe(tr, next(it)) if due else tr.probs
                j = int(p.argmax())
                objects.append(Detection(tuple(int(v) for v in box), tr.id, labels[j], float(p[j]), due))
            yield FrameResult(f.index, f.t, f.image, objects)
        pending.clear()
        n_pending_crops = 0

    processed = 0
    for frame in frames(source, stats, **frame_options):
        if frame.index % stride:
            continue
        if max_frames is not None and processed >= max_frames:
            break
        processed += 1
        h, w = frame.image.shape[:2]
        boxes = clip_boxes(crops(frame.image, frame.index), w, h)
        items = [(box, tr, due) for box, (tr, due) in zip(boxes, trk.update(boxes, frame.index))]
        counters["crops"] += len(items)
        counters["classified"] += sum(due for _, _, due in items)
        pending.append((frame, items))
        n_pending_crops += sum(due for _, _, due in items)
        if len(pending) >= batch_frames or n_pending_crops >= batch_size:
            yield from flush()
    yield from flush()


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


def annotate(image: np.ndarray, objects: list[Detection]) -> np.ndarray:
    out = image.copy()
    for d in objects:
        x, y, w, h = d.box
        color = _color(d.track)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, 1)
        text = f"{d.label} {d.score:.2f} #{d.track}"
        cv2.putText(out, text, (x, max(8, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.33, color, 1, cv2.LINE_AA)
    return out


class AnnotatedVideo:
    """An MP4 (MPEG-4 Part 2, plays in common players) with boxes, labels, scores and track ids."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path, self.fps, self.size = Path(path), fps, size
        self._writer = None

    def __enter__(self):
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
        if not self._writer.isOpened():
            raise SourceError(f"cannot write video {self.path} (no mp4v encoder in this OpenCV build?)")
        return self

    def write(self, result: FrameResult) -> None:
        self._writer.write(annotate(result.image, result.objects))

    def __exit__(self, *exc):
        self._writer.release()


def process(source, classifier, out_dir: str | os.PathLike, crops=None, *, stride: int = 1,
            max_frames: int | None = None, batch_size: int = 64, track: bool = True, write_video: bool = True,
            show: bool = False, progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Run the pipeline on ``source`` and write ``out_dir``/{annotated.mp4, detections.jsonl,
    summary.json}; returns the summary. Stops cleanly on Ctrl-C, keeping what was written."""
    from tqdm import tqdm

    stats, counters = SourceStats(), {}
    results = run(source, classifier, crops, stride=stride, max_frames=max_frames, batch_size=batch_size,
                  track=track, stats=stats, counters=counters, log=log)
    start, processed, objects, interrupted = time.perf_counter(), 0, 0, False
    first = next(results, None)  # opens the source: a SourceError leaves no output files behind
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = stats.frame_count and -(-stats.frame_count // stride)
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    try:
        with contextlib.ExitStack() as sinks:
            jsonl = sinks.enter_context(JsonlSink(out_dir / "detections.jsonl"))
            bar = sinks.enter_context(tqdm(total=total or None, unit="frame", disable=not progress, dynamic_ncols=True))
            video = None
            if write_video and first is not None:
                h, w = first.image.shape[:2]
                video = sinks.enter_context(AnnotatedVideo(out_dir / "annotated.mp4", stats.fps or 10.0, (w, h)))
            for result in itertools.chain([first] if first is not None else [], results):
                jsonl.write(result)
                if video is not None:
                    video.write(result)
                if show:
                    _show(result)
                processed += 1
                objects += len(result.objects)
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    wall = time.perf_counter() - start
    summary = {"source": str(source), "source_kind": stats.kind, "source_fps": stats.fps,
               "width": stats.width, "height": stats.height, "frame_count": stats.frame_count,
               "frames_read": stats.frames_read, "frames_failed": stats.frames_failed, "reconnects": stats.reconnects,
               "frames_processed": processed, "stride": stride, "objects": objects,
               "crops_classified": counters.get("classified", 0), "crops_seen": counters.get("crops", 0),
               "classifications_saved": round(1 - counters.get("classified", 0) / max(1, counters.get("crops", 0)), 4),
               "fps": round(processed / wall, 2) if wall > 0 else None, "wall_seconds": round(wall, 3),
               "realtime_factor": round(processed * stride / wall / stats.fps, 2) if stats.fps and wall > 0 else None,
               "bundle": str(classifier.bundle.path), "tracking": track, "interrupted": interrupted,
               "outputs": {"detections": "detections.jsonl", **({"video": "annotated.mp4"} if write_video and processed else {})}}
    tmp = out_dir / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, out_dir / "summary.json")
    return summary


def _show(result: FrameResult) -> None:
    try:
        cv2.imshow("lowres video", annotate(result.image, result.objects))
        if cv2.waitKey(1) & 0xFF == ord("q"):
            raise KeyboardInterrupt
    except cv2.error:
        raise SourceError("--show needs an OpenCV build with GUI support (opencv-python, not opencv-python-headless)") from None
