"""Runtime speed, in ONE run with the same weights and the same raw crops: torch eager with the
OpenCV/numpy pre-processing a user would write vs the bundle on onnxruntime CPU (FP32, INT8), at
batch 1, 8, 64; plus achieved GFLOP/s against this machine's peak (a large float32 numpy matmul).

Writes benchmarks/results/runtime.json (+ .png) and the runtime table in docs/benchmarks.md.

    python benchmarks/runtime.py --run benchmarks/runs/cifar10_dfd/dfd16native --bundle bundles/dfd16native
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from docs_table import write_block
from lowres_sdk import Classifier
from lowres_sdk.training.checkpoint import load_model
from lowres_sdk.training.data import letterbox, load_splits

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "runtime.json"


def peak_gflops(threads: int, n: int = 2048, repeat: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def torch_eager(model, spec):
    """What a user writes without the bundle: OpenCV resize, BGR->RGB, normalise in numpy, torch."""
    mean, std = np.array(spec.mean, np.float32), np.array(spec.std, np.float32)

    def predict(crops):
        x = []
        for c in crops:
            small = cv2.resize(c, (spec.resolution, spec.resolution), interpolation=cv2.INTER_AREA)
            if spec.size != spec.resolution:
                small = cv2.resize(small, (spec.size, spec.size), interpolation=cv2.INTER_CUBIC)
            x.append((small[:, :, ::-1].astype(np.float32) / 255.0 - mean) / std)
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2)), 1).numpy()
    return predict


def measure(fn, crops, batch: int, seconds: float) -> dict:
    batches = [crops[i:i + batch] for i in range(0, len(crops) - batch + 1, batch)]
    fn(batches[0])
    times, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds or len(times) < 10:
        b = batches[i % len(batches)]
        times.append(_timed(lambda: fn(b)))
        i += 1
    ms = np.array(times) * 1e3
    return {"crops_per_s": round(batch * len(times) / sum(times), 1), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def mixed_sizes(bundle, crops, threads: int, seconds: float) -> dict:
    """64 crops of 64 different sizes (as video crops are): the runtime groups equal sizes, so each
    runs alone through the graph's own resize (exact); the alternative resizes all to the model's
    resolution with OpenCV first and runs one batch (faster, but not the pixels the graph computes)."""
    rng = np.random.default_rng(0)
    sizes = [(int(h), int(w)) for h, w in zip(rng.integers(24, 96, 64), rng.integers(12, 48, 64))]
    varied = [cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c, (h, w) in zip(crops, sizes)]
    clf = Classifier(bundle, threads=threads)
    spec = clf.bundle.spec

    def opencv_resized(batch):  # the same fit (letterbox/stretch) as the graph, done by OpenCV
        fit = letterbox if spec.fit == "letterbox" else (lambda c: c)
        return clf([cv2.resize(fit(c), (spec.resolution,) * 2, interpolation=cv2.INTER_AREA) for c in batch]).probs

    grouped = measure(lambda b: clf(b).probs, varied, 64, seconds)
    resized = measure(opencv_resized, varied, 64, seconds)
    a, b = clf(varied).probs, opencv_resized(varied)
    return {"grouped_crops_per_s": grouped["crops_per_s"], "opencv_resized_crops_per_s": resized["crops_per_s"],
            "max_prob_diff": round(float(np.abs(a - b).max()), 4), "argmax_agreement": round(float((a.argmax(1) == b.argmax(1)).mean()), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="training run (torch weights)")
    p.add_argument("--bundle", type=Path, required=True, help="bundle exported from that run, with model.int8.onnx")
    p.add_argument("--data", default="../shared/data/cifar10-jpg.tar.gz")
    p.add_argument("--seconds", type=float, default=6.0, help="per backend and batch size, split over the rounds")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, spec, meta = load_model(args.run)
    _, test = load_splits(args.data, 32, limit_per_class=64)
    crops = list(np.ascontiguousarray(test.images[..., ::-1]))  # the same raw uint8 BGR crops for everyone
    peak = peak_gflops(args.threads)
    mflops = meta["mflops"]
    backends = {("torch-eager", "fp32"): torch_eager(model, spec)}
    for precision in ("fp32", "int8"):
        clf = Classifier(args.bundle, precision=precision, threads=args.threads)
        clf.batch_size = 1024
        backends[("onnxruntime-cpu", precision)] = clf
    rows = []
    for batch in (1, 8, 64):
        # Rounds interleave the backends and each keeps its best round: this VM's speed drifts by
        # tens of % over minutes, and interleaving keeps that drift out of the ratios.
        best = {}
        for _ in range(args.rounds):
            for key, fn in backends.items():
                r = measure(fn, crops, batch, args.seconds / args.rounds)
                if key not in best or r["crops_per_s"] > best[key]["crops_per_s"]:
                    best[key] = r
        base = best[("torch-eager", "fp32")]["crops_per_s"]
        for (backend, precision), r in best.items():
            rows.append({"backend": backend, "precision": precision, "batch": batch, **r,
                         "gflops": round(r["crops_per_s"] * mflops / 1e3, 2),
                         "speedup_vs_torch": round(r["crops_per_s"] / base, 2), "peak_gflops": round(peak, 1)})
            print(json.dumps(rows[-1]), flush=True)
    mixed = mixed_sizes(args.bundle, crops, args.threads, args.seconds)
    print(json.dumps(mixed), flush=True)
    out = {"mixed_sizes": mixed, "machine": {"cpu_count": os.cpu_count(), "threads": args.threads, "processor": platform.processor()},
           "model": {"run": str(args.run), "arch": meta["recipe"]["arch"], "input": f"{spec.resolution}->{spec.size} px",
                     "mflops": mflops}, "rows": rows}
    RESULTS.write_text(json.dumps(out, indent=2))
    write_table(out)


def write_table(out: dict) -> None:
    m = out["model"]
    lines = [f"Model: {m['arch']} ({m['input']}, {m['mflops']} MFLOPs/crop), {out['machine']['threads']} threads; "
             f"peak {out['rows'][0]['peak_gflops']} GFLOP/s (float32 numpy matmul, same run). Crops: 32x32 CIFAR-10 test "
             "images as uint8 BGR; torch eager = OpenCV resize + numpy normalise + torch in Python. INT8 GFLOP/s count "
             "the same FLOPs, so its '% of peak' is against the FP32 peak.", "",
             "| backend | precision | batch | crops/s | p50 ms | p99 ms | GFLOP/s | % of peak | speed-up vs torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        lines.append(f"| {r['backend']} | {r['precision']} | {r['batch']} | {r['crops_per_s']:,.0f} | {r['p50_ms']} | "
                     f"{r['p99_ms']} | {r['gflops']} | {100 * r['gflops'] / r['peak_gflops']:.1f} | {r['speedup_vs_torch']} |")
    mx = out["mixed_sizes"]
    lines += ["", f"Mixed-size crops (64 real crops resized to 64 different sizes, batch 64): grouped by size as the runtime does "
                  f"(exact) {mx['grouped_crops_per_s']:,.0f} crops/s; resized to the model's resolution with OpenCV first "
                  f"{mx['opencv_resized_crops_per_s']:,.0f} crops/s, but its probabilities differ by up to {mx['max_prob_diff']} "
                  f"and its top-1 agrees on {100 * mx['argmax_agreement']:.0f} % of crops. The runtime keeps grouping."]
    write_block("runtime", lines)


if __name__ == "__main__":
    main()
