"""Video-frame inference: frames in, per-frame results out.

``run(source, classifier, crops=...)`` yields a `FrameResult` per processed frame: crops of several
frames classified in one batch, IoU tracks whose label comes from their accumulated evidence.
Decode, motion + tracking and classification run in overlapping threads with bounded queues;
``threads=False`` gives the same results sequentially. `process` writes all outputs.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..errors import InputError, SourceError
from ..results import UNKNOWN, record
from ..progress import Progress
from .frames import Frame, frames
from .outputs import VIDEO_NAME, AnnotatedVideo, JsonlSink, _write_json, annotate
from .prefetch import Prefetch
from .regions import MotionCrops, clip_keep
from .tracking import IoUTracker, TrackerConfig, make_tracker, tracker_for

IGNORED_LABELS = ("other", "background")  # a background class: crops with no object of interest
CLASSIFIER_FLOOR = 0.05  # added to the classifier's category probability before it weighs a detector's category
DECODE_CHUNK = 4  # decoded frames handed to the motion thread at once (fewer queue hand-overs)


@dataclass
class Detection:
    box: tuple[int, int, int, int]  # x, y, w, h
    track: int
    label: str                      # the track's label from its evidence so far ('unknown' below the threshold)
    score: float                    # its probability
    classified: bool                # classified on this frame (False: label carried by the track)
    status: str = "object"          # object | tentative (track seen on < min_hits frames or not travelled
                                    # min_travel box sides) | background (ignored label)
    best: str = ""                  # the evidence's best class (``label`` unless that is 'unknown')
    index: int = -1                 # its column in the classifier's labels

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        x, y, w, h = self.box
        return x, y, x + w, y + h

    def to_json(self) -> dict:
        """The box (xywh as ``box``, corners as ``xyxy``), the track and the schema's record (sdk/results.py)."""
        return {"box": list(self.box), "xyxy": list(self.xyxy), "track": self.track,
                **record(self.label, self.label != UNKNOWN, self.best or self.label, self.index, self.score)}


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
                   for key, status in (("objects", "object"), ("tentative", "tentative"),
                                       ("background", "background"))}}


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
        config = tracker or tracker_for(self.crops)  # None: the region stage's own settings
        if not track:  # every box classified on every frame, its label its own
            config = TrackerConfig(iou=config.iou, max_age=config.max_age, grow=0.0, every=1, min_hits=1,
                                   min_travel=0.0)
        self.config, self.track = config, track
        self.tracker = make_tracker(config)
        self.max_frames, self.batch_size = max_frames, batch_size
        self.batch_frames, self.threads = batch_frames, threads
        self.ignore_labels = frozenset(ignore_labels)
        self.unknown_below = getattr(classifier, "unknown_below", None)  # a calibrated bundle's, if it has one
        self.thresholds = _thresholds(classifier)
        self.category_labels = _category_labels(classifier.labels, getattr(self.crops, "categories", None))
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
            boxes, hints = self._regions(frame)
            t1 = time.perf_counter()
            tracks = self.tracker.update(boxes, *((None, None) if hints is None else (hints.max(1), hints.argmax(1))))
            if hints is not None:
                for (tr, _), hint in zip(tracks, hints):
                    IoUTracker.observe_category(tr, hint)
            # confirmed is read here, not when the result is built: this thread may be frames ahead by then
            items = [(tuple(int(v) for v in box), tr, due, self.config.confirmed(tr))
                     for box, (tr, due) in zip(boxes, tracks)]
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

    def _regions(self, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        """The provider's boxes clipped to the frame, and their category scores where it gives them
        (a detector's ``last_categories``)."""
        h, w = frame.image.shape[:2]
        raw = self.crops(frame.image, frame.index)
        boxes, keep = clip_keep(raw, w, h)
        hints = getattr(self.crops, "last_categories", None)
        return boxes, (hints[keep] if hints is not None and len(hints) == len(keep) else None)

    def _name(self, p: np.ndarray, track) -> tuple[str, float, int]:
        """A track's label, score and label column: the classifier's best label; for a track whose
        boxes came with detector categories, its best label within the category that detector and
        classifier agree on most (the product of the detector's mean score and the classifier's
        probability of the category's labels, the latter floored: a classifier that never saw cars
        from above must not veto them)."""
        labels = self.classifier.labels
        if track.category is not None and self.category_labels is not None:
            mean = track.category / max(1, track.category_hits)
            agree = mean * (np.array([p[allowed].sum() for allowed in self.category_labels]) + CLASSIFIER_FLOOR)
            c = int(np.argmax(agree))
            allowed = self.category_labels[c]
            score = float(mean[c])
            if not allowed:
                return self.crops.categories[c], score, -1
            j = allowed[int(np.argmax(p[allowed]))]
            return labels[j], score, j
        j = int(np.argmax(p))
        label, score = labels[j], float(p[j])
        # an ignored (background) best label stays itself however unsure: no object is the best guess
        if self.thresholds is not None and score < self.thresholds[j] and label not in self.ignore_labels:
            label = UNKNOWN
        return label, score, j

    def _results(self) -> Iterator[FrameResult]:
        source = self._frames()
        if self.threads:  # frames cross the thread in chunks: one queue hand-over (and GIL wake-up) per chunk
            depth = max(1, 2 * self.batch_frames // DECODE_CHUNK)
            chunks = Prefetch(_chunks(source, DECODE_CHUNK), depth, "lowres-decode")
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
                label, score, j = self._name(p, tr)
                status = ("tentative" if not confirmed
                          else "background" if label in self.ignore_labels else "object")
                detections.append(Detection(box, tr.id, label, score, due, status, labels[j] if j >= 0 else label, j))
            out.append(FrameResult(frame.index, frame.t, frame.image, detections))
        self.seconds["evidence"] += time.perf_counter() - t1
        yield from out


def _category_labels(labels, categories) -> list[list[int]] | None:
    """Per detector category, the classifier's label columns it may be named with (None: no categories)."""
    from .detector import CATEGORY_LABELS

    if categories is None:
        return None
    return [[j for j, label in enumerate(labels) if label in CATEGORY_LABELS.get(c, (c,))] for c in categories]


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
    once), keeping what was written (``interrupted: true``). Outputs of an earlier run in ``out_dir``
    are replaced, and its annotated.mkv removed when this run writes none, so the folder never mixes
    two runs (the CLI refuses such a folder without --overwrite: `stale_outputs`).
    ``progress``: a bar on a terminal, a line every 10 s in a log (sdk/progress.py).
    ``decode_threads``: FFmpeg decoder threads for a file (None: FFmpeg's default); see `run`."""
    if not 0 < video_scale <= 1:
        raise InputError(f"video_scale must be in (0, 1], got {video_scale}")
    results = run(source, classifier, crops, stride=stride, max_frames=max_frames, batch_size=batch_size,
                  tracker=tracker, track=track, ignore_labels=ignore_labels, threads=threads, log=log,
                  decode_threads=decode_threads)
    stats, tally = results.stats, _Tally()
    out_dir = Path(out_dir) if out_dir is not None else None
    write_video = write_video and out_dir is not None
    video = None

    def summary(finished: bool) -> dict:
        return _summary(source, classifier, results, tally, video, finished, stride=stride, track=track,
                        threads=threads)

    try:
        iterator = iter(results)
        first = next(iterator, None)  # opens the source: a SourceError leaves no output files behind
        total = stats.frame_count and -(-stats.frame_count // stride)
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            if not (write_video and first is not None):
                (out_dir / VIDEO_NAME).unlink(missing_ok=True)
        with contextlib.ExitStack() as sinks:
            jsonl = sinks.enter_context(JsonlSink(out_dir / "detections.jsonl")) if out_dir is not None else None
            bar = sinks.enter_context(Progress(total, "video", "frames", quiet=not progress))
            if write_video and first is not None:
                h, w = first.image.shape[:2]
                video = sinks.enter_context(AnnotatedVideo(out_dir / VIDEO_NAME, stats.fps or 10.0, (w, h),
                                                           video_scale))
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
                        tally.sink_seconds["jsonl"] += t1 - t0
                        tally.sink_seconds["callback"] += time.perf_counter() - t1
                        if video is not None:
                            video.write(result)
                        tally.add(result)
                        bar.update(1)
                    if show:
                        _show(result)
                    result = next(iterator, None)
            except KeyboardInterrupt:
                tally.interrupted = True
    finally:
        results.close()
    out = summary(finished=not tally.interrupted)
    if out_dir is not None:
        _write_json(out_dir / "summary.json", out)
    return out


@dataclass
class _Tally:
    """What `process` counts as frames reach its outputs."""
    start: float = field(default_factory=time.perf_counter)
    processed: int = 0
    objects: int = 0
    interrupted: bool = False
    track_labels: dict = field(default_factory=lambda: defaultdict(Counter))  # reported boxes' labels per track
    track_status: dict = field(default_factory=dict)
    sink_seconds: dict = field(default_factory=lambda: {"jsonl": 0.0, "callback": 0.0})

    def add(self, result: FrameResult) -> None:
        for d in result.detections:
            if d.status == "object":
                self.track_labels[d.track][d.label] += 1
            self.track_status[d.track] = d.status
        self.processed += 1
        self.objects += len(result.objects)


def _summary(source, classifier, results: VideoRun, tally: _Tally, video, finished: bool, *, stride: int,
             track: bool, threads: bool) -> dict:
    """summary.json's content so far."""
    stats, processed, wall = results.stats, tally.processed, time.perf_counter() - tally.start
    majority = Counter(c.most_common(1)[0][0] for c in tally.track_labels.values())
    held = Counter(s for tid, s in tally.track_status.items() if tid not in tally.track_labels)
    seconds = {"decode": stats.decode_seconds, **results.seconds, **tally.sink_seconds,
               **(video.seconds if video else {})}
    return {"source": str(source), "source_kind": stats.kind, "source_fps": stats.fps,
            "width": stats.width, "height": stats.height, "frame_count": stats.frame_count,
            "frames_read": stats.frames_read, "frames_skipped": stats.frames_skipped,
            "frames_failed": stats.frames_failed, "reconnects": stats.reconnects,
            "truncated": stats.truncated, "frames_unread": stats.frames_unread,
            "frames_processed": processed, "stride": stride, "objects": tally.objects,
            "tracks": len(tally.track_labels), "tracks_not_reported": dict(held),
            "track_labels": dict(majority.most_common()),
            "crops_classified": results.crops_classified, "crops_seen": results.crops_seen,
            "classifications_saved": round(1 - results.crops_classified / results.crops_seen, 4)
            if results.crops_seen else None,
            "fps": round(processed / wall, 2) if wall > 0 else None, "wall_seconds": round(wall, 3),
            "realtime_factor": round(processed * stride / wall / stats.fps, 2) if stats.fps and wall > 0 else None,
            "busy_ms_per_frame": {k: round(1000 * v / max(1, processed), 3) for k, v in seconds.items()},
            "bundle": str(classifier.bundle.path) if hasattr(classifier, "bundle") else None,
            "tracking": track, "min_hits": results.config.min_hits,
            "min_travel": results.config.min_travel, "ignore_labels": sorted(results.ignore_labels),
            "unknown_below": results.unknown_below, "threads": threads,
            "finished": finished, "interrupted": tally.interrupted,
            "outputs": {"detections": "detections.jsonl",
                        **({"video": "annotated.mkv", "video_frames": video.frames_written} if video else {})}}


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
        raise SourceError("--show needs an OpenCV build with GUI support "
                          "(opencv-python, not opencv-python-headless)") from None
