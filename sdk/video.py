"""Video-frame inference: frames in, per-frame results out.

``frames(source)`` reads a file, a camera index or an rtsp/http stream (decode failures counted,
stream reconnects, skipped frames only grabbed); ``run(source, classifier, crops=...)`` yields a
`FrameResult` per processed frame: crops of several frames classified in one batch, IoU tracks
whose label comes from their accumulated evidence. Decode, motion + tracking and classification run
in overlapping threads with bounded queues; ``threads=False`` gives the same results sequentially.
Sinks (`AnnotatedVideo`, `JsonlSink`) are context managers; `process` writes all outputs.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import queue
import signal
import threading
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .errors import InputError, SourceError
from .prefetch import Prefetch
from .regions import MotionCrops, clip_boxes
from .tracking import IoUTracker, TrackerConfig

STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
IGNORED_LABELS = ("other", "background")  # a background class: crops with no object of interest
UNKNOWN = "unknown"
DECODE_CHUNK = 4  # decoded frames handed to the motion thread at once (fewer queue hand-overs)


@dataclass
class Frame:
    index: int          # position in the source (0-based, counting failed and skipped frames)
    t: float            # seconds from the start (source fps if known, else wall clock)
    image: np.ndarray   # uint8 BGR


@dataclass
class Detection:
    box: tuple[int, int, int, int]  # x, y, w, h
    track: int
    label: str                      # the track's label from its evidence so far ('unknown' below the bundle's threshold)
    score: float                    # its probability
    classified: bool                # classified on this frame (False: label carried by the track)
    status: str = "object"          # object | tentative (track seen on < min_hits frames or not travelled
                                    # min_travel box sides) | background (ignored label)

    def to_json(self) -> dict:
        return {"box": list(self.box), "track": self.track, "label": self.label, "score": round(self.score, 4)}


@dataclass
class FrameResult:
    index: int
    t: float
    image: np.ndarray
    detections: list[Detection]     # every box, reported or not

    @property
    def objects(self) -> list[Detection]:
        """The reported objects: confirmed tracks whose label is not an ignored (background) one."""
        return [d for d in self.detections if d.status == "object"]

    def to_json(self) -> dict:
        return {"frame": self.index, "t": round(self.t, 4),
                **{key: [d.to_json() for d in self.detections if d.status == status]
                   for key, status in (("objects", "object"), ("tentative", "tentative"), ("background", "background"))}}


@dataclass
class SourceStats:
    """Filled in while ``frames`` runs."""

    frames_read: int = 0        # decoded and handed out
    frames_skipped: int = 0     # grabbed without decoding into an image (stride)
    frames_failed: int = 0
    frames_unread: int = 0      # a file's frames after the point where it stopped decoding
    truncated: bool = False     # a file ended before its announced frame count
    reconnects: int = 0
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    kind: str = "file"
    decode_seconds: float = 0.0  # time spent in grab/read


def _open(source, timeout: float = 10.0, decode_threads: int | None = None) -> tuple[cv2.VideoCapture, str]:
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
        cap, kind = None, "file"
        if decode_threads:  # FFmpeg's decoder threads; a file FFmpeg cannot open goes to the other backends
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, int(decode_threads)])
            if not cap.isOpened():
                cap.release()
                cap = None
        if cap is None:
            cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {kind} {source} (unsupported format, unreachable, or no such device)")
    return cap, kind


class FrameReader:
    """Frames of ``source`` (a file path, a camera index, or an rtsp/http URL), iterated once; its
    `stats` (a `SourceStats`) fill in as it goes. Use `frames()` to make one.

    Only every ``stride``-th frame is decoded into an image: the others are ``grab()``bed (the codec
    still decodes them, as later frames depend on them, but nothing is converted or copied; 1.6x
    faster on the pedestrian clip). A frame that fails to decode is counted in ``frames_failed`` and
    skipped; a file gives up after ``max_failures`` failures in a row before its announced end and
    is marked ``truncated`` with its ``frames_unread``. A stream that drops is reopened with
    exponential backoff, up to ``reconnect_attempts`` times in a row, each attempt reported to
    ``log``; then the iteration ends. ``timeout`` bounds opening and reading a stream (seconds).
    ``decode_threads`` caps FFmpeg's decoder threads for files (None: FFmpeg's own choice, one per
    core): the pipeline decodes in one thread, as its other stages need the other cores.
    """

    def __init__(self, source, *, stride: int = 1, max_failures: int = 25, reconnect_attempts: int = 5,
                 backoff: float = 0.5, timeout: float = 10.0, log: Callable[[str], None] | None = None,
                 decode_threads: int | None = None):
        if not isinstance(stride, int) or stride < 1:
            raise InputError(f"stride must be an integer >= 1, got {stride!r}")
        if decode_threads is not None and (not isinstance(decode_threads, int) or decode_threads < 1):
            raise InputError(f"decode_threads must be an integer >= 1 or None, got {decode_threads!r}")
        self.decode_threads = decode_threads
        self.source, self.stride, self.max_failures = source, stride, max_failures
        self.reconnect_attempts, self.backoff, self.timeout = reconnect_attempts, backoff, timeout
        self.log = log or (lambda msg: warnings.warn(msg, RuntimeWarning, stacklevel=2))
        self.stats = SourceStats()

    def __iter__(self) -> Iterator[Frame]:
        stats, source, stride = self.stats, self.source, self.stride
        cap, kind = _open(source, self.timeout, self.decode_threads)
        stats.kind = kind
        fps = cap.get(cv2.CAP_PROP_FPS)
        stats.fps = fps if fps and 0 < fps < 1000 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        stats.frame_count = count if kind == "file" and count > 0 else None
        stats.width, stats.height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        start, index, failures_in_row = time.monotonic(), 0, 0
        try:
            while True:
                wanted = index % stride == 0
                t0 = time.perf_counter()
                if wanted:
                    ok, image = cap.read()
                    ok = ok and image is not None
                else:
                    ok, image = cap.grab(), None
                stats.decode_seconds += time.perf_counter() - t0
                if ok:
                    failures_in_row = 0
                    if wanted:
                        t = index / stats.fps if stats.fps and kind == "file" else time.monotonic() - start
                        stats.frames_read += 1
                        yield Frame(index, t, image)
                    else:
                        stats.frames_skipped += 1
                    index += 1
                    continue
                if kind == "file":
                    if stats.frame_count is None or index >= stats.frame_count:
                        if failures_in_row:  # the last frames would not decode: the file ends early
                            stats.frames_failed -= failures_in_row
                            stats.truncated, stats.frames_unread = True, failures_in_row
                            self.log(f"{source}: the last {failures_in_row} of its {stats.frame_count} frames could "
                                     "not be read (the file is probably truncated)")
                        return  # end of file
                    stats.frames_failed += 1
                    failures_in_row += 1
                    index += 1
                    if failures_in_row >= self.max_failures:
                        stats.truncated, stats.frames_unread = True, stats.frame_count - index
                        self.log(f"{source}: {failures_in_row} frames in a row failed to decode at frame {index}; stopping "
                                 f"({stats.frames_unread} frames left unread; the file is probably truncated)")
                        return
                    continue
                # camera or stream: the connection dropped or the stream ended
                cap.release()
                for attempt in range(1, self.reconnect_attempts + 1):
                    delay = self.backoff * 2 ** (attempt - 1)
                    self.log(f"{source}: stream lost; reconnecting in {delay:.1f}s (attempt {attempt}/{self.reconnect_attempts})")
                    time.sleep(delay)
                    try:
                        cap, _ = _open(source, self.timeout)
                    except SourceError:
                        continue
                    stats.reconnects += 1
                    break
                else:
                    self.log(f"{source}: gave up after {self.reconnect_attempts} reconnect attempts")
                    cap = None
                    return
        finally:
            if cap is not None:
                cap.release()


def frames(source, *, stride: int = 1, max_failures: int = 25, reconnect_attempts: int = 5, backoff: float = 0.5,
           timeout: float = 10.0, log: Callable[[str], None] | None = None, decode_threads: int | None = None) -> FrameReader:
    """Every ``stride``-th decoded frame of ``source``; ``.stats`` on the returned reader (see `FrameReader`)."""
    return FrameReader(source, stride=stride, max_failures=max_failures, reconnect_attempts=reconnect_attempts,
                       backoff=backoff, timeout=timeout, log=log, decode_threads=decode_threads)


class VideoRun:
    """The results of `run`: iterate it for one `FrameResult` per processed frame; ``stats`` (the
    source's `SourceStats`), ``crops_seen``, ``crops_classified`` and ``seconds`` (busy time per
    stage) fill in as it goes. Iterated once; ``close()`` (or leaving a ``with`` block) stops its threads."""

    def __init__(self, source, classifier, crops, *, stride: int, max_frames: int | None, batch_size: int,
                 batch_frames: int, tracker: TrackerConfig | None, track: bool, ignore_labels, threads: bool,
                 frame_options: dict):
        if max_frames is not None and max_frames < 1:
            raise InputError(f"max_frames must be >= 1, got {max_frames}")
        if batch_size < 1 or batch_frames < 1:
            raise InputError(f"batch_size and batch_frames must be >= 1, got {batch_size}, {batch_frames}")
        self.reader = frames(source, stride=stride, **frame_options)
        self.stats = self.reader.stats
        self.classifier, self.crops = classifier, crops if crops is not None else MotionCrops()
        config = tracker or TrackerConfig()
        if not track:  # every box classified on every frame, its label its own
            config = TrackerConfig(iou=config.iou, max_age=config.max_age, grow=0.0, every=1, min_hits=1, min_travel=0.0)
        self.config, self.track = config, track
        self.tracker = IoUTracker(config)
        self.max_frames, self.batch_size, self.batch_frames, self.threads = max_frames, batch_size, batch_frames, threads
        self.ignore_labels = frozenset(ignore_labels)
        self.unknown_below = getattr(classifier, "unknown_below", None)  # a calibrated bundle's, if it has one
        self.thresholds = _thresholds(classifier)
        self.crops_seen = self.crops_classified = 0
        self.seconds: dict[str, float] = defaultdict(float)
        self._prefetchers: list[Prefetch] = []
        self._gen = None

    def __iter__(self) -> Iterator[FrameResult]:
        if self._gen is None:
            self._gen = self._results()
        return self._gen

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
        for p in reversed(self._prefetchers):
            p.close()
        self._prefetchers.clear()

    def _frames(self) -> Iterator[Frame]:
        for n, frame in enumerate(self.reader):
            if self.max_frames is not None and n >= self.max_frames:
                break
            yield frame

    def _batches(self, frames) -> Iterator[list]:
        """Motion crops and tracking, in frame order; groups frames whose due crops go to the classifier together."""
        pending, n_due = [], 0
        for frame in frames:
            h, w = frame.image.shape[:2]
            t0 = time.perf_counter()
            boxes = clip_boxes(self.crops(frame.image, frame.index), w, h)
            t1 = time.perf_counter()
            # confirmed is read here, not when the result is built: this thread may be frames ahead by then
            items = [(tuple(int(v) for v in box), tr, due, self.config.confirmed(tr))
                     for box, (tr, due) in zip(boxes, self.tracker.update(boxes))]
            t2 = time.perf_counter()
            due_crops = [frame.image[y:y + bh, x:x + bw] for (x, y, bw, bh), _, due, _ in items if due]
            self.seconds["motion"] += t1 - t0
            self.seconds["track"] += t2 - t1
            self.seconds["crops"] += time.perf_counter() - t2
            self.crops_seen += len(items)
            self.crops_classified += len(due_crops)
            pending.append((frame, items, due_crops))
            n_due += len(due_crops)
            if len(pending) >= self.batch_frames or n_due >= self.batch_size:
                yield pending
                pending, n_due = [], 0
        if pending:
            yield pending

    def _results(self) -> Iterator[FrameResult]:
        source = self._frames()
        if self.threads:  # frames cross the thread in chunks: one queue hand-over (and GIL wake-up) per chunk
            chunks = Prefetch(_chunks(source, DECODE_CHUNK), max(1, 2 * self.batch_frames // DECODE_CHUNK), "lowres-decode")
            self._prefetchers.append(chunks)
            source = (frame for chunk in chunks for frame in chunk)
        batches = self._batches(source)
        if self.threads:
            batches = Prefetch(batches, 2, "lowres-motion")
            self._prefetchers.append(batches)
        try:
            for batch in batches:
                yield from self._classify(batch)
        finally:
            for p in reversed(self._prefetchers):
                p.close()
            self._prefetchers.clear()

    def _classify(self, batch) -> Iterator[FrameResult]:
        due_crops = [c for _, _, crops in batch for c in crops]
        t0 = time.perf_counter()
        probs = self.classifier(due_crops).probs if due_crops else None
        t1 = time.perf_counter()
        self.seconds["classify"] += t1 - t0
        labels, k, out = self.classifier.labels, 0, []
        for frame, items, _ in batch:
            detections = []
            for box, tr, due, confirmed in items:
                if due:
                    p = probs[k]
                    k += 1
                    if self.track:
                        p = IoUTracker.observe(tr, p, weight=math.sqrt(box[2] * box[3]))
                else:
                    p = tr.probs
                j = int(np.argmax(p))
                label, score = labels[j], float(p[j])
                # an ignored (background) best label stays itself however unsure: no object is the best guess
                if self.thresholds is not None and score < self.thresholds[j] and label not in self.ignore_labels:
                    label = UNKNOWN
                status = ("tentative" if not confirmed
                          else "background" if label in self.ignore_labels else "object")
                detections.append(Detection(box, tr.id, label, score, due, status))
            out.append(FrameResult(frame.index, frame.t, frame.image, detections))
        self.seconds["evidence"] += time.perf_counter() - t1
        yield from out


def _thresholds(classifier) -> np.ndarray | None:
    """The "unknown" threshold of each of ``classifier``'s labels: a `Classifier`'s ``thresholds``, else
    its ``unknown_below`` (a number, or label -> number); None when it has none."""
    t = getattr(classifier, "thresholds", None)
    if t is not None:
        return np.asarray(t, dtype=np.float64)
    u = getattr(classifier, "unknown_below", None)
    if u is None:
        return None
    if isinstance(u, dict):
        return np.array([float(u.get(label, 0.0)) for label in classifier.labels])
    return np.full(len(classifier.labels), float(u))


def _chunks(items, n: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(source, classifier, crops=None, *, stride: int = 1, max_frames: int | None = None,
        batch_size: int = 64, batch_frames: int = 8, tracker: TrackerConfig | None = None, track: bool = True,
        ignore_labels=IGNORED_LABELS, threads: bool = True, **frame_options) -> VideoRun:
    """Classify the crops of every ``stride``-th frame of ``source``; iterate the returned `VideoRun`
    for a `FrameResult` per processed frame.

    Crops from up to ``batch_frames`` frames (and at most ``batch_size`` crops) go to the classifier
    in one call. With ``track`` (default), an IoU tracker gives each box a track id and re-classifies
    it only when it grew or aged (see `TrackerConfig`); a track's label comes from the evidence of all
    its classified crops (size-weighted mean log-probability), is ``unknown`` when its probability is
    below its label's threshold (the classifier's ``unknown_below``, if it has one) -- except an
    ``ignore_labels`` label: when "no object of interest" is the best guess, the track is background
    however unsure -- and a track is reported as an object only once seen on ``min_hits`` processed
    frames, once its centre has travelled ``min_travel`` box sides (`TrackerConfig`) and when its
    label is not in ``ignore_labels``.
    With ``threads`` (default) decoding, motion + tracking and classification overlap; results are
    identical to ``threads=False``. ``frame_options`` go to `frames`; the decoder gets one FFmpeg
    thread unless they say otherwise (``decode_threads``): the pipeline's other stages need the
    other cores (pedestrian clip: 0.40 ms CPU a frame vs 0.54 with FFmpeg's default).
    """
    frame_options.setdefault("decode_threads", 1)
    return VideoRun(source, classifier, crops, stride=stride, max_frames=max_frames, batch_size=batch_size,
                    batch_frames=batch_frames, tracker=tracker, track=track, ignore_labels=ignore_labels,
                    threads=threads, frame_options=frame_options)


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


def process(source, classifier, out_dir: str | os.PathLike | None = None, crops=None, *,
            callback: Callable[[FrameResult], None] | None = None, stride: int = 1, max_frames: int | None = None,
            batch_size: int = 64, track: bool = True, tracker: TrackerConfig | None = None,
            ignore_labels=IGNORED_LABELS, write_video: bool = True, video_scale: float = 1.0, threads: bool = True,
            show: bool = False, progress: bool = True, log: Callable[[str], None] | None = None,
            decode_threads: int | None = 1) -> dict:
    """Run the pipeline on ``source``, call ``callback`` (if given) with each `FrameResult`, and write
    ``out_dir``/{annotated.mkv, detections.jsonl, summary.json} (nothing when ``out_dir`` is None);
    returns the summary. summary.json is written first with ``finished: false``, so a run that is
    killed says so. Ctrl-C stops cleanly once the frame under way is in every output (a second one at
    once), keeping what was written (``interrupted: true``).
    ``decode_threads``: FFmpeg decoder threads for a file (None: FFmpeg's default); see `run`."""
    from tqdm import tqdm

    if not 0 < video_scale <= 1:
        raise InputError(f"video_scale must be in (0, 1], got {video_scale}")
    results = run(source, classifier, crops, stride=stride, max_frames=max_frames, batch_size=batch_size,
                  tracker=tracker, track=track, ignore_labels=ignore_labels, threads=threads, log=log,
                  decode_threads=decode_threads)
    stats = results.stats
    start, processed, objects, interrupted = time.perf_counter(), 0, 0, False
    out_dir = Path(out_dir) if out_dir is not None else None
    write_video = write_video and out_dir is not None
    track_labels: dict[int, Counter] = defaultdict(Counter)  # reported boxes' labels per track
    track_status: dict[int, str] = {}
    video, sink_seconds = None, {"jsonl": 0.0, "callback": 0.0}

    def summary(finished: bool) -> dict:
        wall = time.perf_counter() - start
        majority = Counter(c.most_common(1)[0][0] for c in track_labels.values())
        held = Counter(s for tid, s in track_status.items() if tid not in track_labels)
        seconds = {"decode": stats.decode_seconds, **results.seconds, **sink_seconds, **(video.seconds if video else {})}
        return {"source": str(source), "source_kind": stats.kind, "source_fps": stats.fps,
                "width": stats.width, "height": stats.height, "frame_count": stats.frame_count,
                "frames_read": stats.frames_read, "frames_skipped": stats.frames_skipped,
                "frames_failed": stats.frames_failed, "reconnects": stats.reconnects,
                "truncated": stats.truncated, "frames_unread": stats.frames_unread,
                "frames_processed": processed, "stride": stride, "objects": objects,
                "tracks": len(track_labels), "tracks_not_reported": dict(held), "track_labels": dict(majority.most_common()),
                "crops_classified": results.crops_classified, "crops_seen": results.crops_seen,
                "classifications_saved": round(1 - results.crops_classified / max(1, results.crops_seen), 4),
                "fps": round(processed / wall, 2) if wall > 0 else None, "wall_seconds": round(wall, 3),
                "realtime_factor": round(processed * stride / wall / stats.fps, 2) if stats.fps and wall > 0 else None,
                "busy_ms_per_frame": {k: round(1000 * v / max(1, processed), 3) for k, v in seconds.items()},
                "bundle": str(classifier.bundle.path) if hasattr(classifier, "bundle") else None,
                "tracking": track, "min_hits": results.config.min_hits,
                "min_travel": results.config.min_travel, "ignore_labels": sorted(results.ignore_labels),
                "unknown_below": results.unknown_below, "threads": threads,
                "finished": finished, "interrupted": interrupted,
                "outputs": {"detections": "detections.jsonl",
                            **({"video": "annotated.mkv", "video_frames": video.frames_written} if video else {})}}

    try:
        iterator = iter(results)
        first = next(iterator, None)  # opens the source: a SourceError leaves no output files behind
        total = stats.frame_count and -(-stats.frame_count // stride)
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as sinks:
            jsonl = sinks.enter_context(JsonlSink(out_dir / "detections.jsonl")) if out_dir is not None else None
            bar = sinks.enter_context(tqdm(total=total or None, unit="frame", disable=not progress, dynamic_ncols=True))
            if write_video and first is not None:
                h, w = first.image.shape[:2]
                video = sinks.enter_context(AnnotatedVideo(out_dir / "annotated.mkv", stats.fps or 10.0, (w, h), video_scale))
            if out_dir is not None:
                _write_json(out_dir / "summary.json", summary(finished=False))
            result, held = first, _HeldSigint()
            sinks.enter_context(held.installed())
            try:
                while result is not None:
                    with held:  # every output and count gets this frame, or none does
                        t0 = time.perf_counter()
                        if jsonl is not None:
                            jsonl.write(result)
                        t1 = time.perf_counter()
                        if callback is not None:
                            callback(result)
                        sink_seconds["jsonl"] += t1 - t0
                        sink_seconds["callback"] += time.perf_counter() - t1
                        if video is not None:
                            video.write(result)
                        for d in result.detections:
                            if d.status == "object":
                                track_labels[d.track][d.label] += 1
                            track_status[d.track] = d.status
                        processed += 1
                        objects += len(result.objects)
                        bar.update(1)
                    if show:
                        _show(result)
                    result = next(iterator, None)
            except KeyboardInterrupt:
                interrupted = True
    finally:
        results.close()
    out = summary(finished=not interrupted)
    if out_dir is not None:
        _write_json(out_dir / "summary.json", out)
    return out


class _HeldSigint:
    """A run's Ctrl-C, held while a frame goes to the outputs (``with held:``) until the frame is
    written and counted, then raised: detections.jsonl, the video and summary.json then agree on the
    frames processed. Outside a frame, and a second time within one (a callback that hangs), it
    raises at once. ``installed()`` puts the handler in place for the run, only where Python's own
    SIGINT handler is (the main thread, no handler of the caller's); elsewhere ``with held:`` holds
    nothing."""

    def __init__(self):
        self.writing = self.pending = False

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _on_sigint(self, *_):
        if not self.writing or self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def __enter__(self):
        self.writing = True

    def __exit__(self, kind, *_):
        self.writing = False
        if self.pending and kind is None:
            raise KeyboardInterrupt


def _show(result: FrameResult) -> None:
    try:
        cv2.imshow("lowres video", annotate(result.image, result.objects))
        if cv2.waitKey(1) & 0xFF == ord("q"):
            raise KeyboardInterrupt
    except cv2.error:
        raise SourceError("--show needs an OpenCV build with GUI support (opencv-python, not opencv-python-headless)") from None
