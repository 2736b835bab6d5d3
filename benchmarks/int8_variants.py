"""Why INT8 does not pay on the shipped 16-px model: quantization variants x graph-optimisation
levels, speed measured interleaved against FP32 in ONE process (ratios of medians), top-1 on
CIFAR-10 test crops degraded to the model's resolution, and onnxruntime's per-op profile.

Writes benchmarks/results/int8_variants.json.

    python benchmarks/int8_variants.py --bundle sdk/models/default
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from lowres_sdk.bundle import load_bundle
from lowres_sdk.export.exporter import camera_crops
from lowres_sdk.training.data import load_splits

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "int8_variants.json"


class _Reader:
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        b = next(self._it, None)
        return None if b is None else {"images": b}


def quantize(fp32: Path, out: Path, calib, *, fmt: str, per_channel: bool, exclude_ends: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepped = out.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    nodes = onnx.load(str(prepped)).graph.node
    convs = [n.name for n in nodes if n.op_type in ("Conv", "Gemm")]
    quantize_static(str(prepped), str(out), _Reader(calib),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv", "Gemm", "MatMul"],
                    nodes_to_exclude=[convs[0], convs[-1]] if exclude_ends else [])


def session(path: Path, threads: int, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, profile: str | None = None):
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.graph_optimization_level = threads, level
    if profile:
        o.enable_profiling, o.profile_file_prefix = True, profile
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def top1(sess, crops, labels) -> float:
    pred = np.concatenate([sess.run(None, {"images": crops[i:i + 256]})[0].argmax(1) for i in range(0, len(crops), 256)])
    return float(100 * (pred == labels).mean())


def interleaved(sessions: dict, batch: np.ndarray, rounds: int, per_round: int) -> dict:
    """Median time per name, rounds interleaving every session so drift hits all alike."""
    times = collections.defaultdict(list)
    for s in sessions.values():
        s.run(None, {"images": batch})
    for _ in range(rounds):
        for name, s in sessions.items():
            t = time.perf_counter()
            for _ in range(per_round):
                s.run(None, {"images": batch})
            times[name].append((time.perf_counter() - t) / per_round)
    return {k: float(np.median(v)) for k, v in times.items()}


def op_profile(path: Path, batch: np.ndarray, threads: int, runs: int = 30) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        s = session(path, threads, profile=os.path.join(tmp, "p"))
        for _ in range(runs):
            s.run(None, {"images": batch})
        s.end_profiling()
        events = json.load(open(glob.glob(os.path.join(tmp, "p*.json"))[0]))
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values())
    return {op: round(100 * d / total, 1) for op, d in per_op.most_common(8)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="sdk/models/default")
    p.add_argument("--data", default="../shared/data/cifar10-jpg.tar.gz")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    bundle = load_bundle(args.bundle)
    spec, labels = bundle.spec, bundle.labels
    train, test = load_splits(args.data, 32, limit_per_class=args.per_class, fit=spec.fit)
    keep = np.array([train.classes[int(y)] in labels for y in test.labels])
    test_crops = camera_crops(test.images[keep], spec.resolution)
    test_labels = np.array([labels.index(test.classes[int(y)]) for y in test.labels[keep]])
    calib = [camera_crops(train.images[i:i + 32], spec.resolution) for i in range(0, min(len(train), 320), 32)]
    fp32 = bundle.file("model.onnx")
    variants = {"qdq_per_channel (shipped recipe)": dict(fmt="qdq", per_channel=True, exclude_ends=False),
                "qdq_per_tensor": dict(fmt="qdq", per_channel=False, exclude_ends=False),
                "qoperator_per_channel": dict(fmt="qop", per_channel=True, exclude_ends=False),
                "qdq_per_channel_fp32_ends": dict(fmt="qdq", per_channel=True, exclude_ends=True)}
    out = {"bundle": str(args.bundle), "threads": args.threads, "load_avg_at_start": os.getloadavg()[0], "variants": {}}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fp32": fp32}
        for name, kw in variants.items():
            paths[name] = Path(tmp) / f"{name.split()[0]}.onnx"
            quantize(fp32, paths[name], calib, **kw)
        acc = {name: top1(session(path, args.threads), test_crops, test_labels) for name, path in paths.items()}
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}
        for side in (spec.resolution, 32):
            for batch in (1, 64):
                x = rng.integers(0, 256, (batch, side, side, 3), dtype=np.uint8)
                sessions = {f"{n}@{lv}": session(pth, args.threads, lev) for n, pth in paths.items() for lv, lev in levels.items()}
                t = interleaved(sessions, x, args.rounds, max(1, 200 // batch))
                base = t["fp32@all"]
                for key, sec in t.items():
                    name, level = key.split("@")
                    row = out["variants"].setdefault(name, {"top1": round(acc[name], 2), "speedup_vs_fp32": {}})
                    row["speedup_vs_fp32"][f"input{side}_batch{batch}_{level}"] = round(base / sec, 2)
                    print(name, level, side, batch, round(base / sec, 2), flush=True)
        x = rng.integers(0, 256, (64, spec.resolution, spec.resolution, 3), dtype=np.uint8)
        out["op_profile_pct_batch64"] = {n: op_profile(paths[n], x, args.threads)
                                         for n in ("fp32", "qdq_per_channel (shipped recipe)", "qoperator_per_channel")}
    out["top1_note"] = f"CIFAR-10 test, {int(keep.sum())} crops of the bundle's classes, degraded to {spec.resolution} px"
    out["load_avg_at_end"] = os.getloadavg()[0]
    RESULTS.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
