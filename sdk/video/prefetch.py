"""Run an iterator in a background thread, handing its items over through a bounded queue, so the
stages of the video pipeline (decode, motion, classify, encode) overlap; OpenCV and onnxruntime
release the GIL while they work. The bound keeps memory flat; an error in the thread is re-raised
in the consumer; closing stops the thread."""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

_END = object()
_POLL = 0.05  # seconds between checks of the stop flag while blocked on a full / empty queue


class _Error:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetch:
    """``for item in Prefetch(it, maxsize)`` yields what ``it`` yields, produced ahead in a daemon thread."""

    def __init__(self, iterable: Iterable, maxsize: int, name: str = "prefetch"):
        self._it = iter(iterable)
        self._q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._it:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Error(e))
        finally:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator:
        while True:
            try:
                item = self._q.get(timeout=_POLL)
            except queue.Empty:
                if self._stop.is_set() or not self._thread.is_alive() and self._q.empty():
                    return
                continue
            if item is _END:
                return
            if isinstance(item, _Error):
                raise item.exc
            yield item

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
