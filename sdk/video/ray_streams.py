"""Many streams on a Ray cluster (``process_many_ray``): one reader actor per stream runs the same
`StreamRunner` as one process does, and a pool of classifier actors micro-batches the crops of every
stream that calls it. Ray restarts a dead actor; a restarted reader replays its stream and writes only
the frames its JSONL lacks, and a crop whose classifier died is sent again to another one."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Callable

from ..errors import SourceError
from .many import ManyOptions, Probs, SharedClassifier, StreamRunner, combined_summary
from .sources import specs_from

RETRIES = 50          # tries of a crop batch over the pool before its stream fails
RETRY_PAUSE = 0.2     # seconds between them: a restarting actor takes a moment


def _ray():
    import ray  # the `ray` extra; ModuleNotFoundError names it for the CLI's hint

    return ray


class BundleClassifier:
    """A picklable recipe for the classifier each classifier actor loads (actors build their own)."""

    def __init__(self, bundle=None, precision: str = "auto", batch_size: int = 64):
        self.bundle, self.precision, self.batch_size = bundle, precision, batch_size

    def __call__(self):
        from ..runtime import Classifier

        return Classifier(self.bundle, batch_size=self.batch_size, threads=1, precision=self.precision)


class ClassifierWorker:
    """A classifier actor: concurrent ``classify`` calls (one thread each) join one micro-batch."""

    def __init__(self, make_classifier: Callable, options: ManyOptions):
        import cv2

        cv2.setNumThreads(1)
        clf = make_classifier()
        self.shared = SharedClassifier(clf, max_batch=options.batch_size, max_wait_ms=options.max_wait_ms,
                                       deadline=options.deadline)

    def describe(self) -> tuple:
        return self.shared.labels, self.shared.thresholds, self.shared.unknown_below

    def classify(self, crops):
        return self.shared(crops).probs

    def counts(self) -> tuple[int, int]:
        return self.shared.batches, self.shared.crops

    def pid(self) -> int:
        return os.getpid()


class PoolClassifier:
    """What a reader actor calls as its classifier: the pool's actors in turn; a call whose actor died
    goes to the next one (the answer of a dead actor never arrived, so no crop counts twice)."""

    def __init__(self, actors: list, description: tuple, deadline: float):
        self.actors, self.deadline, self._next, self.retries = actors, deadline, 0, 0
        self.labels, self.thresholds, self.unknown_below = description

    def __call__(self, crops) -> Probs:
        ray = _ray()
        for _ in range(RETRIES):
            actor = self.actors[self._next % len(self.actors)]
            self._next += 1
            try:
                return Probs(ray.get(actor.classify.remote(list(crops)), timeout=self.deadline))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                self.retries += 1
                time.sleep(RETRY_PAUSE)
        raise SourceError(f"no classifier actor answered in {RETRIES} tries")


class StreamWorker:
    """A reader actor: one stream, start to end; after a restart it resumes from its JSONL."""

    def __init__(self, spec, out: str | None, options: ManyOptions, classifiers: list, description: tuple):
        import cv2

        cv2.setNumThreads(1)
        self.spec, self.out, self.options = spec, out, options
        self.classifier = PoolClassifier(classifiers, description, options.deadline)

    def run(self) -> dict:
        ray = _ray()
        with warnings.catch_warnings():  # Ray's own property reads a deprecated one of its own
            warnings.simplefilter("ignore", DeprecationWarning)
            resume = ray.get_runtime_context().was_current_actor_reconstructed
        runner = StreamRunner(self.spec, self.classifier, Path(self.out) if self.out else None, self.options,
                              resume=resume, log=lambda msg: print(msg, flush=True))
        return {**runner.run(), "restarted": resume, "classifier_retries": self.classifier.retries}

    def pid(self) -> int:
        return os.getpid()


class RayStreams:
    """The actors of a Ray run: `start()` places them, `pids()` finds their processes, `wait()` returns
    the run's summary (as `process_many`'s, each stream's with ``restarted``)."""

    def __init__(self, sources, make_classifier: Callable, out_dir=None, *, classifiers: int = 2,
                 options: ManyOptions | None = None, max_restarts: int = 3):
        self.specs = specs_from(sources)
        self.make_classifier, self.n_classifiers, self.max_restarts = make_classifier, classifiers, max_restarts
        self.options = options or ManyOptions()
        self.out_dir = Path(out_dir).resolve() if out_dir is not None else None
        self.classifiers, self.streams, self._refs, self._start = [], [], [], None

    def start(self) -> "RayStreams":
        ray = _ray()
        # Actors claim no CPU: a reader is mostly waiting on its camera, and SPREAD places them over the nodes.
        pool = ray.remote(ClassifierWorker).options(num_cpus=0, max_restarts=-1, max_concurrency=len(self.specs) + 2)
        self.classifiers = [pool.remote(self.make_classifier, self.options) for _ in range(self.n_classifiers)]
        description = ray.get(self.classifiers[0].describe.remote())
        reader = ray.remote(StreamWorker).options(num_cpus=0, max_restarts=self.max_restarts,
                                                  max_task_retries=self.max_restarts, max_concurrency=2,
                                                  scheduling_strategy="SPREAD")
        self._start = time.monotonic()
        for spec in self.specs:
            out = str(self.out_dir / spec.name) if self.out_dir is not None else None
            actor = reader.remote(spec, out, self.options, self.classifiers, description)
            self.streams.append(actor)
            self._refs.append(actor.run.remote())
        return self

    def pids(self) -> dict[str, int]:
        """The process id of each reader (by stream name) and classifier actor (``classifier<k>``)."""
        ray = _ray()
        names = [s.name for s in self.specs] + [f"classifier{k}" for k in range(len(self.classifiers))]
        return dict(zip(names, ray.get([a.pid.remote() for a in self.streams + self.classifiers])))

    def wait(self) -> dict:
        ray = _ray()
        streams = []
        for spec, ref in zip(self.specs, self._refs):
            try:
                streams.append(ray.get(ref))
            except ray.exceptions.RayError as e:  # out of restarts: that stream failed, the others stand
                streams.append({**StreamRunner(spec, None, None, self.options).summary(),
                                "error": f"{type(e).__name__}: {str(e).splitlines()[0]}", "finished": False})
        counts = ray.get([c.counts.remote() for c in self.classifiers])
        summary = combined_summary(streams, time.monotonic() - self._start, sum(b for b, _ in counts),
                                   sum(n for _, n in counts))
        summary["ray"] = {"classifiers": len(self.classifiers),
                          "restarts": sum(s.get("restarted", False) for s in streams),
                          "classifier_retries": sum(s.get("classifier_retries", 0) for s in streams)}
        if self.out_dir is not None:
            from .outputs import _write_json

            _write_json(self.out_dir / "summary.json", summary)
        return summary


def process_many_ray(sources, bundle=None, out_dir=None, *, address: str | None = None, classifiers: int = 2,
                     options: ManyOptions | None = None, precision: str = "auto",
                     log: Callable[[str], None] | None = None) -> dict:
    """`process_many` on Ray: on the cluster at ``address`` (None: a local one started here and
    stopped after), ``classifiers`` actors loading ``bundle``; returns the run's summary."""
    ray = _ray()
    options = options or ManyOptions()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    try:
        run = RayStreams(sources, BundleClassifier(bundle, precision, options.batch_size), out_dir,
                         classifiers=classifiers, options=options).start()
        if log:
            log(f"ray: {len(run.streams)} reader actors, {classifiers} classifier actors on "
                f"{len(ray.nodes())} node(s)")
        return run.wait()
    finally:
        if started:
            ray.shutdown()
