"""Does the INT8 model pay on this machine? A short speed measurement at export time and the gate
`lowres export --int8` applies with it (like the accuracy gate: refused below the bar unless --force).

FP32 and INT8 run interleaved in rounds and each keeps its median round, so drift of a shared
machine (another job, turbo, thermal) hits both alike; the ratio is what is reported.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from lowres_sdk.errors import ExportError

class Int8Refused(ExportError):
    """An INT8 gate (accuracy or speed) refused the model; ``reason`` says why, in one clause."""

    def __init__(self, reason: str):
        super().__init__(f"{reason}; not exported. Use --force to keep it anyway, or export without --int8")
        self.reason = reason


MIN_INT8_SPEEDUP = 1.1  # at batch 64; below it INT8 costs accuracy for nothing
GATE_BATCH = 64


def interleaved_ratio(slow: Callable[[], object], fast: Callable[[], object], *, rounds: int = 7,
                      seconds: float = 2.0, clock: Callable[[], float] = time.perf_counter) -> float:
    """median round time of ``slow`` / that of ``fast`` (> 1: ``fast`` is faster).

    Each round times both back to back, alternating which goes first; a round repeats a call
    enough times to fill ``seconds / (2 * rounds)``, calibrated on a warm-up call."""
    slow(), fast()  # warm-up: first runs allocate
    t = clock()
    slow()
    one = max(clock() - t, 1e-6)
    repeat = max(1, int(seconds / (2 * rounds) / one))
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for which in order:
            fn = (slow, fast)[which]
            t = clock()
            for _ in range(repeat):
                fn()
            times[which].append((clock() - t) / repeat)
    return float(np.median(times[0]) / np.median(times[1]))


def measure_speedup(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, crops: np.ndarray,
                    seconds: float = 3.0) -> dict[str, float]:
    """INT8 / FP32 throughput ratio on ``crops`` (uint8 NHWC BGR) at batch 1 and 64, onnxruntime
    CPU with the runtime's default session options (what `Classifier` gets)."""
    import onnxruntime as ort

    if len(crops) < GATE_BATCH:
        crops = np.concatenate([crops] * (GATE_BATCH // len(crops) + 1))
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32_path, int8_path)]
    out = {}
    for batch, share in ((1, 0.25), (GATE_BATCH, 0.75)):
        feed = {"images": np.ascontiguousarray(crops[:batch])}
        fp32, int8 = (lambda s=s: s.run(None, feed) for s in sessions)
        out[f"batch{batch}"] = round(interleaved_ratio(fp32, int8, seconds=seconds * share), 2)
    return out


def gate_int8_speed(fp32_path, int8_path, crops: np.ndarray, *, force: bool = False, log=print) -> dict[str, float]:
    """Measure, log and return ``{"int8_speedup_batch1", "int8_speedup_batch64"}`` for the bundle's
    metrics; Int8Refused below MIN_INT8_SPEEDUP at batch 64 unless ``force``."""
    ratio = measure_speedup(fp32_path, int8_path, crops)
    metrics = {f"int8_speedup_{k}": v for k, v in ratio.items()}
    log(f"INT8 speed on this machine: {ratio['batch1']:.2f}x FP32 at batch 1, {ratio[f'batch{GATE_BATCH}']:.2f}x at "
        f"batch {GATE_BATCH} (onnxruntime CPU, {os.cpu_count()} cores)")
    if ratio[f"batch{GATE_BATCH}"] < MIN_INT8_SPEEDUP and not force:
        raise Int8Refused(f"INT8 runs at only {ratio[f'batch{GATE_BATCH}']:.2f}x FP32 at batch {GATE_BATCH} here "
                          f"(< {MIN_INT8_SPEEDUP}x)")
    return metrics
