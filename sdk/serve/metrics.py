"""The server's Prometheus metrics, rendered as the text exposition format by hand (four series do
not justify a dependency): requests by path and status, latency and batch-size histograms, queue depth."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Callable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total, self.n = 0.0, 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1
        self.total += v
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        suffix = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{suffix} {self.total:.6f}", f"{name}_count{suffix} {self.n}"]


class Metrics:
    def __init__(self, max_batch: int, queue_depth: Callable[[], int]):
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, Histogram] = {}
        sizes = sorted({1, *(2 ** i for i in range(max_batch.bit_length() + 1) if 2 ** i <= max_batch), max_batch})
        self.batches = Histogram(sizes)
        self.queue_depth = queue_depth

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(path, status)] += 1
            self.latency.setdefault(path, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_batch(self, crops: int) -> None:
        with self._lock:
            self.batches.observe(crops)

    def render(self) -> str:
        with self._lock:
            out = ["# HELP lowres_requests_total HTTP requests answered, by path and status.",
                   "# TYPE lowres_requests_total counter"]
            out += [f'lowres_requests_total{{path="{p}",status="{s}"}} {n}'
                    for (p, s), n in sorted(self.requests.items())]
            out += ["# HELP lowres_request_duration_seconds Time from request to response.",
                    "# TYPE lowres_request_duration_seconds histogram"]
            for p, h in sorted(self.latency.items()):
                out += h.lines("lowres_request_duration_seconds", f'path="{p}"')
            out += ["# HELP lowres_batch_size Crops per model call.", "# TYPE lowres_batch_size histogram"]
            out += self.batches.lines("lowres_batch_size")
            out += ["# HELP lowres_queue_depth Requests waiting for the model.", "# TYPE lowres_queue_depth gauge",
                    f"lowres_queue_depth {self.queue_depth()}"]
        return "\n".join(out) + "\n"
