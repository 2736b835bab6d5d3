"""Many streams in one process (``process_many``): each stream read, motion-gated and tracked in a
thread of its own, the crops of all of them classified together by one shared classifier through a
micro-batcher, so a crop from any stream rides in the same model call."""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError, SourceError
from ..serve.batcher import MicroBatcher
from .outputs import AnnotatedVideo, _write_json
from .pipeline import IGNORED_LABELS, FrameResult, run
from .regions import parse_crops
from .sources import StreamSpec, specs_from
from .tracking import TrackerConfig, tracker_for


@dataclass(frozen=True)
class ManyOptions:
    """What every stream of a many-stream run shares (a stream's own options are in its `StreamSpec`)."""

    batch_size: int = 64           # crops per model call, across streams
    max_wait_ms: float = 5.0       # a crop waits at most this long for others to join its batch
    deadline: float = 30.0         # seconds a stream waits for its crops' answer before it fails
    timeout: float = 10.0          # seconds to open or read a live stream before it counts as lost
    reconnects: int = 5            # attempts in a row to reopen a lost live stream (backoff 0.5 s, doubling)
    max_lag: float = 1.0           # a realtime file further behind than this (s) drops frames
    tracker: TrackerConfig | None = None  # None: each stream's region stage's settings, with tracker_overrides
    tracker_overrides: dict = field(default_factory=dict)  # e.g. {"min_hits": 2}, over each stage's own settings
    track: bool = True
    ignore_labels: tuple = IGNORED_LABELS
    write_video: bool = False
    video_scale: float = 1.0
    crops: Callable[[StreamSpec], Callable] | None = None  # spec -> its crops provider; None: its ``crops`` spec

    def __post_init__(self):
        if (self.batch_size < 1 or self.max_wait_ms < 0 or self.reconnects < 0 or self.deadline <= 0
                or self.timeout <= 0 or self.max_lag <= 0):
            raise InputError("need batch_size >= 1, max_wait_ms >= 0, reconnects >= 0 and positive deadline, timeout, "
                             f"max_lag; got {self}")


@dataclass
class Probs:
    """What the pipeline reads of a classifier's answer."""

    probs: np.ndarray


class SharedClassifier:
    """``classifier`` for many threads at once: each call's crops join one micro-batch with the other
    threads' (``max_batch`` crops, ``max_wait_ms``), and the call returns its own rows."""

    def __init__(self, classifier, *, max_batch: int = 64, max_wait_ms: float = 5.0, deadline: float = 30.0):
        self.labels = classifier.labels
        self.thresholds = getattr(classifier, "thresholds", None)
        self.unknown_below = getattr(classifier, "unknown_below", None)
        self.deadline, self.batches, self.crops = deadline, 0, 0
        # max_queue: each stream's thread waits for its answer, so at most one request a stream waits
        self._batcher = MicroBatcher(lambda crops: np.asarray(classifier(crops).probs), lambda p, a, b: p[a:b],
                                     max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=4096, on_batch=self._count)
        self._batcher.start()

    def _count(self, n: int) -> None:
        self.batches += 1
        self.crops += n

    def __call__(self, crops) -> Probs:
        try:
            return Probs(self._batcher.submit_future(list(crops)).result(self.deadline))
        except concurrent.futures.TimeoutError:
            raise SourceError(f"the shared classifier did not answer within {self.deadline} s") from None

    def close(self) -> None:
        self._batcher.close()


class _Stop(Exception):
    """Raised through the reader by a `RateGate` whose stream is to stop (Ctrl-C, its ``seconds``)."""


class RateGate:
    """Which frames a stream decodes (a `frames` ``keep``): at most ``spec.fps`` a second of the
    source's time, the rest grabbed; a realtime file paced to the wall clock; a live stream's frames
    it could not keep up with dropped and counted (a file's never). Remembers when each kept frame was
    read (a realtime file's: when it was due, so its latency includes any lag); stops the reader once
    ``stop`` is set or ``ends_at`` (monotonic seconds) has passed, even while every frame is dropped."""

    def __init__(self, spec: StreamSpec, max_lag: float, stop: threading.Event):
        self.fps, self.live, self.max_lag, self.stop = spec.fps, spec.live, max_lag, stop
        self.pace = spec.realtime and spec.is_file  # a camera paces itself
        self.last_slot, self.dropped, self.start, self.ends_at = -1, 0, None, None
        self.index0, self.t0 = 0, 0.0   # where the current pass of a looping file starts
        self.source_fps: float | None = None
        self.read_at: dict[int, float] = {}

    def __call__(self, index: int, t: float) -> bool:
        now = time.monotonic()
        if self.stop.is_set() or (self.ends_at is not None and now >= self.ends_at):
            raise _Stop
        index, t = index + self.index0, t + self.t0
        missed = 0
        if self.fps:
            slot = math.floor(t * self.fps + 1e-6)
            if slot <= self.last_slot:
                return False
            missed = slot - self.last_slot - 1 if self.last_slot >= 0 else 0
            self.last_slot = slot
        if self.pace:
            if self.start is None:
                self.start = now - t
            due = self.start + t
            if due > now:
                time.sleep(due - now)
            elif now - due > self.max_lag:
                self.dropped += 1
                return False
            now = due
        elif self.live and missed and (self.source_fps is None or self.source_fps > self.fps):
            self.dropped += missed  # time slots that passed while this stream was busy
        self.read_at[index] = now
        return True


class Latency:
    """Read-to-output latency of a stream's frames in 1 ms bins up to 60 s: fixed memory however long it runs."""

    def __init__(self):
        self.bins = np.zeros(60_001, np.int64)

    def add(self, seconds: float) -> None:
        self.bins[min(len(self.bins) - 1, max(0, round(seconds * 1000)))] += 1

    def percentile(self, q: float) -> float | None:
        n = int(self.bins.sum())
        if n == 0:
            return None
        return float(np.searchsorted(np.cumsum(self.bins), math.ceil(q / 100 * n)))


class AppendJsonl:
    """``detections.jsonl`` opened to append: with ``resume``, a torn last line is cut and `last` is
    the last frame written, so a restarted stream writes each frame exactly once."""

    def __init__(self, path: Path, resume: bool):
        self.path, self.last = path, -1
        if resume and path.is_file():
            data = path.read_bytes()
            keep = data[:data.rfind(b"\n") + 1]
            if len(keep) != len(data):
                path.write_bytes(keep)
            lines = keep.splitlines()
            self.last = json.loads(lines[-1])["frame"] if lines else -1
        elif path.exists():
            path.unlink()
        self._f = open(path, "a", buffering=1)

    def write(self, result: FrameResult) -> None:
        self._f.write(json.dumps(result.to_json()) + "\n")

    def close(self) -> None:
        self._f.close()


class StreamRunner:
    """One stream of a many-stream run, start to end, in the calling thread; `summary()` says how it went.

    ``resume``: frames already in ``out``/detections.jsonl are replayed (motion, tracks and their
    evidence rebuilt exactly) but not written again -- how a restarted Ray actor carries on."""

    def __init__(self, spec: StreamSpec, classifier, out: Path | None, options: ManyOptions, *,
                 stop: threading.Event | None = None, callback: Callable[[str, FrameResult], None] | None = None,
                 log: Callable[[str], None] | None = None, resume: bool = False):
        self.spec, self.classifier, self.out, self.options = spec, classifier, out, options
        self.stop, self.callback, self.log, self.resume = stop or threading.Event(), callback, log, resume
        self.provider = options.crops(spec) if options.crops else parse_crops(spec.crops, min_size=spec.min_size)
        self.tracker = options.tracker or tracker_for(self.provider, **options.tracker_overrides)
        self.gate = RateGate(spec, options.max_lag, self.stop)
        self.latency = Latency()
        self.counts: Counter = Counter()
        self.source: dict = {}
        self.track_labels: dict[int, Counter] = defaultdict(Counter)
        self.error: str | None = None
        self.wall = 0.0
        self._ended = False

    def run(self) -> dict:
        start = time.monotonic()
        if self.spec.seconds is not None:
            self.gate.ends_at = start + self.spec.seconds
        sinks = contextlib.ExitStack()
        try:
            with sinks:
                jsonl = None
                if self.out is not None:
                    self.out.mkdir(parents=True, exist_ok=True)
                    jsonl = AppendJsonl(self.out / "detections.jsonl", self.resume)
                    sinks.callback(jsonl.close)
                while not self._ended:
                    self._one_pass(jsonl, sinks)
        except Exception as e:  # noqa: BLE001 - one stream's failure is its own: the others carry on
            self.error = f"{type(e).__name__}: {e}"
            if self.log:
                self.log(f"{self.spec.name}: {self.error}")
        self.wall = time.monotonic() - start
        if self.out is not None:
            _write_json(self.out / "summary.json", self.summary())
        return self.summary()

    def _one_pass(self, jsonl: AppendJsonl | None, sinks: contextlib.ExitStack) -> None:
        """The source once through (a looping realtime file: once more each call)."""
        spec, gate = self.spec, self.gate
        left = None if spec.max_frames is None else spec.max_frames - self.counts["frames_processed"]
        results = run(spec.source, self.classifier, self.provider, max_frames=left, batch_size=self.options.batch_size,
                      batch_frames=1, tracker=self.tracker, track=self.options.track,
                      ignore_labels=self.options.ignore_labels, threads=False, log=self.log,
                      timeout=self.options.timeout, reconnect_attempts=self.options.reconnects, keep=gate)
        last = 0
        with results:
            try:
                for result in results:
                    if gate.source_fps is None:
                        gate.source_fps = results.stats.fps
                    if gate.index0:
                        result = replace(result, index=result.index + gate.index0, t=result.t + gate.t0)
                    self._emit(result, jsonl, sinks, results.stats.fps)
                    last = result.index - gate.index0
                    if self._should_stop():
                        break
            except _Stop:
                self._ended = True
        stats = results.stats
        for key in ("frames_read", "frames_skipped", "frames_failed", "reconnects"):
            self.counts[key] += getattr(stats, key)
        self.counts["crops_seen"] += results.crops_seen
        self.counts["crops_classified"] += results.crops_classified
        self.source = {"kind": stats.kind, "fps": stats.fps, "width": stats.width, "height": stats.height}
        if stats.kind != "file" and not self._ended and not self.stop.is_set():
            raise SourceError(f"{spec.source}: the stream was lost ({stats.reconnects} reconnects, then "
                              f"{self.options.reconnects} failed attempts)")
        loops = spec.loop and stats.kind == "file" and stats.frames_read + stats.frames_skipped > 0 and not self._ended
        if loops:  # the next pass goes on in the source's time and frame numbers, tracked afresh
            frames = stats.frame_count or last + 1
            gate.index0 += frames
            gate.t0 += frames / stats.fps if stats.fps else 0.0
        self._ended = self._ended or not loops

    def _should_stop(self) -> bool:
        spec, ends_at = self.spec, self.gate.ends_at
        self._ended = (self.stop.is_set() or (ends_at is not None and time.monotonic() >= ends_at)
                       or (spec.max_frames is not None and self.counts["frames_processed"] >= spec.max_frames))
        return self._ended

    def _emit(self, result: FrameResult, jsonl: AppendJsonl | None, sinks: contextlib.ExitStack, fps) -> None:
        """``result`` to the outputs (unless an earlier run of this stream wrote it) and the counts."""
        if jsonl is None or result.index > jsonl.last:
            if jsonl is not None:
                jsonl.write(result)
            if self.options.write_video and self.out is not None:
                self._video(result, sinks, fps).write(result)
            if self.callback is not None:
                self.callback(self.spec.name, result)
        read_at = self.gate.read_at.pop(result.index, None)
        if read_at is not None:
            self.latency.add(time.monotonic() - read_at)
        for stale in [i for i in self.gate.read_at if i < result.index]:  # kept, then failed to decode
            del self.gate.read_at[stale]
        for d in result.objects:
            self.track_labels[d.track][d.label] += 1
        self.counts["frames_processed"] += 1
        self.counts["objects"] += len(result.objects)

    def _video(self, result: FrameResult, sinks: contextlib.ExitStack, fps) -> AnnotatedVideo:
        if not hasattr(self, "_writer"):
            h, w = result.image.shape[:2]
            size = (w, h)
            self._writer = sinks.enter_context(AnnotatedVideo(self.out / "annotated.mkv", self.spec.fps or fps or 10.0,
                                                              size, self.options.video_scale))
        return self._writer

    def summary(self) -> dict:
        c, wall = self.counts, self.wall
        majority = Counter(t.most_common(1)[0][0] for t in self.track_labels.values())
        p50, p95 = self.latency.percentile(50), self.latency.percentile(95)
        return {"name": self.spec.name, "source": self.spec.source, "source_kind": self.source.get("kind"),
                "source_fps": self.source.get("fps"), "width": self.source.get("width"),
                "height": self.source.get("height"), "fps_wanted": self.spec.fps, "live": self.spec.live,
                "frames_processed": c["frames_processed"], "frames_read": c["frames_read"],
                "frames_skipped": c["frames_skipped"], "frames_dropped": self.gate.dropped,
                "frames_failed": c["frames_failed"], "reconnects": c["reconnects"],
                "objects": c["objects"], "tracks": len(self.track_labels), "track_labels": dict(majority.most_common()),
                "crops_seen": c["crops_seen"], "crops_classified": c["crops_classified"],
                "fps": round(c["frames_processed"] / wall, 2) if wall > 0 else None,
                "latency_ms": {"p50": p50, "p95": p95}, "wall_seconds": round(wall, 3),
                "error": self.error, "finished": self.error is None and not self.stop.is_set(),
                "outputs": {"detections": "detections.jsonl",
                            **({"video": "annotated.mkv"} if hasattr(self, "_writer") else {})}}


def process_many(sources, classifier, out_dir=None, *, options: ManyOptions | None = None,
                 callback: Callable[[str, FrameResult], None] | None = None, log: Callable[[str], None] | None = None,
                 fps: float | None = None, max_frames: int | None = None) -> dict:
    """Run every stream of ``sources`` (paths, URLs, camera indices or `StreamSpec` s) at once, each in a
    thread of its own, their crops classified together by ``classifier``; write ``out_dir``/NAME/
    {detections.jsonl, summary.json[, annotated.mkv]} per stream and ``out_dir``/summary.json over them
    all (nothing when ``out_dir`` is None); returns that summary, each stream's under ``streams``.

    ``fps`` and ``max_frames`` apply to the sources given as paths or URLs (a `StreamSpec`, as
    `read_sources` makes, carries its own). ``callback(name, FrameResult)`` is called from the
    stream's thread. A stream that fails is reported in its summary (``error``); the others carry on.
    Ctrl-C stops every stream after its current frame (``interrupted: true``)."""
    specs = specs_from(sources, fps=fps, max_frames=max_frames)
    options = options or ManyOptions()
    out_dir = Path(out_dir) if out_dir is not None else None
    shared = SharedClassifier(classifier, max_batch=options.batch_size, max_wait_ms=options.max_wait_ms,
                              deadline=options.deadline)
    stop = threading.Event()
    runners = [StreamRunner(spec, shared, out_dir / spec.name if out_dir is not None else None, options,
                            stop=stop, callback=callback, log=log) for spec in specs]
    threads = [threading.Thread(target=r.run, name=f"lowres-stream-{r.spec.name}", daemon=True) for r in runners]
    start, interrupted = time.monotonic(), False
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        for t in threads:
            t.join()
    finally:
        shared.close()
    summary = combined_summary([r.summary() for r in runners], time.monotonic() - start, shared.batches, shared.crops)
    summary["interrupted"] = interrupted
    if out_dir is not None:
        _write_json(out_dir / "summary.json", summary)
    return summary


def combined_summary(streams: list[dict], wall: float, batches: int, crops: int) -> dict:
    """The run's summary over its streams' summaries."""
    totals = {key: sum(s[key] for s in streams) for key in
              ("frames_processed", "frames_dropped", "frames_failed", "objects", "tracks", "crops_classified")}
    return {"streams": {s["name"]: s for s in streams}, "n_streams": len(streams), **totals,
            "model_calls": batches, "mean_batch": round(crops / batches, 2) if batches else None,
            "wall_seconds": round(wall, 3), "errors": {s["name"]: s["error"] for s in streams if s["error"]},
            "finished": all(s["finished"] for s in streams)}
