"""Progress for long steps: a tqdm bar on a terminal, plain periodic lines in a log file, nothing when quiet.

A ``\\r`` bar written to a file or a pipe grows one endless line (a live stream never ends), so when
stderr is not a terminal `progress` prints one ``desc: n/total unit (p %), rate/s`` line every
``every`` seconds and a last one when the step ends.
"""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
LOG_EVERY_S = 10.0  # a log line every 10 s: a day-long stream writes ~8,600 lines


class Progress:
    """``update(n)`` counts; a context manager that prints its last line on exit."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False,
                 every: float = LOG_EVERY_S, stream=None):
        self.total, self.desc, self.unit, self.every = total or None, desc, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.n, self._start = 0, time.monotonic()
        self._last = self._start
        self._bar = None
        self.mode = "quiet" if quiet else "bar" if _isatty(self.stream) else "lines"
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc or None, unit=unit, dynamic_ncols=True, file=self.stream)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "lines" and time.monotonic() - self._last >= self.every:
            self._line()

    def _line(self) -> None:
        self._last = now = time.monotonic()
        rate = self.n / max(now - self._start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        print(f"{self.desc + ': ' if self.desc else ''}{self.n}{of} {self.unit}{share}, {rate:.1f} {self.unit}/s, "
              f"{now - self._start:.0f} s", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.n:
            self._line()
        self.mode = "quiet"  # closed: a second close prints nothing

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False,
             every: float = LOG_EVERY_S) -> Iterator[T]:
    """``items``, counted by a `Progress` as they are consumed."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Progress(total, desc, unit, quiet, every) as bar:
        for item in items:
            yield item
            bar.update(1)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
