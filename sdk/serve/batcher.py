"""Micro-batching: crops of concurrent requests run together through one model, on one thread.

Requests wait in a bounded queue; the worker takes the oldest and keeps adding waiting requests
until ``max_batch`` crops or until the oldest has waited ``max_wait_ms``, then makes one model
call (onnxruntime releases the GIL, so the event loop keeps serving meanwhile). A request larger
than ``max_batch`` runs alone. ``max_batch=1`` switches batching off: one crop per model call.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import LowresError


class QueueFull(LowresError):
    """The batcher's queue holds ``max_queue`` requests already (HTTP 503 + Retry-After)."""


@dataclass
class _Job:
    crops: list
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop  # or a _CallerThread
    enqueued: float = field(default_factory=time.perf_counter)


class _CallerThread:
    """Stands in for an event loop for `MicroBatcher.submit_future`: a thread-safe future is settled at once."""

    @staticmethod
    def call_soon_threadsafe(callback, *args) -> None:
        callback(*args)


class MicroBatcher:
    """``await batcher.submit(crops)`` -> ``split(run(all_crops), start, stop)`` for this request's crops;
    ``batcher.submit_future(crops).result()`` the same from a thread."""

    def __init__(self, run: Callable[[list], Any], split: Callable[[Any, int, int], Any], *, max_batch: int = 32,
                 max_wait_ms: float = 0.0, max_queue: int = 256, on_batch: Callable[[int], None] | None = None):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1, max_wait_ms >= 0; "
                             f"got {max_batch}, {max_queue}, {max_wait_ms}")
        self.run, self.split = run, split
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1e3, max_queue
        self.on_batch = on_batch or (lambda n: None)
        self._queue: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="lowres-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing

    @property
    def depth(self) -> int:
        """Requests waiting for the model (not counting the batch running now)."""
        return len(self._queue)

    async def submit(self, crops: list):
        loop = asyncio.get_running_loop()
        return await self._enqueue(_Job(crops, loop.create_future(), loop))

    def submit_future(self, crops: list) -> concurrent.futures.Future:
        """``crops`` queued from any thread; the returned future holds their share of the batch's output."""
        return self._enqueue(_Job(crops, concurrent.futures.Future(), _CallerThread()))

    def _enqueue(self, job: _Job):
        with self._cv:
            if self._closing:
                raise QueueFull("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are already waiting (max_queue {self.max_queue})")
            self._queue.append(job)
            self._cv.notify()
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests, finish the queued ones, then stop the thread."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _take(self) -> list[_Job] | None:
        with self._cv:
            while not self._queue:
                if self._closing:
                    return None
                self._cv.wait()
            deadline = self._queue[0].enqueued + self.max_wait
            while not self._closing and sum(len(j.crops) for j in self._queue) < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cv.wait(left)
            jobs, n = [], 0
            while self._queue and (not jobs or n + len(self._queue[0].crops) <= self.max_batch):
                job = self._queue.popleft()
                if not job.future.cancelled():  # its client timed out or went away while it waited
                    jobs.append(job)
                    n += len(job.crops)
            return jobs

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            if not jobs:
                continue
            crops = [c for j in jobs for c in j.crops]
            self.on_batch(len(crops))
            try:
                out = self.run(crops)
            except Exception as e:  # noqa: BLE001 -- handed to every waiting request, never kills the thread
                for j in jobs:
                    j.loop.call_soon_threadsafe(_settle, j.future, None, e)
                continue
            start = 0
            for j in jobs:
                stop = start + len(j.crops)
                try:
                    result, error = self.split(out, start, stop), None
                except Exception as e:  # noqa: BLE001
                    result, error = None, e
                try:
                    j.loop.call_soon_threadsafe(_settle, j.future, result, error)
                except RuntimeError:  # that request's event loop is closed: nobody waits for it
                    pass
                start = stop


def _settle(future: asyncio.Future, result, error) -> None:
    if future.done():  # cancelled by a timeout meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
