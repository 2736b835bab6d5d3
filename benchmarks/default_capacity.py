"""How big a default model the fixed-camera issue's limits allow: for candidate nets at the shipped
default's input (native 16 px, letterbox, 12 fine classes), the exported FP32 graph's crops/s at batch 64
(2 onnxruntime threads, 64 crops of 32x16 px per call, as default_model.py measures the bundle) and its
size: FP32, with the weights stored as FP16 (`lowres export --fp16-weights`; its speed too) and the
INT8 weights' bytes. Untrained weights: speed and size do not depend on them. One run, so the ratios
hold even where the absolute figures drift; run it on an otherwise idle machine.

    python benchmarks/default_capacity.py
Writes benchmarks/results/default_capacity.json and a table in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from docs_table import write_block
from results_io import write_json
from runtime import measure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "default_capacity.json"
CANDIDATES = (("airnet", 0.5), ("airnet", 0.625), ("airnet", 0.75), ("airnet", 1.0), ("airbench", 1.0),
              ("resnet20", 1.0), ("mobilenet", 1.0))


def crops_per_second(onnx_path: Path, threads: int, seconds: float = 1.5, repeats: int = 5) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    crops = np.random.default_rng(0).integers(0, 256, (64, 32, 16, 3), dtype=np.uint8)
    run = lambda batch: session.run(None, {name: batch})
    measure(run, crops, len(crops), seconds)  # warm-up window, not counted (as default_model.py measures)
    return max(measure(run, crops, len(crops), seconds)["crops_per_s"] for _ in range(repeats))


def main() -> None:
    import torch

    from lowres_sdk import Classifier
    from lowres_sdk.export.fp16_weights import store_weights_fp16
    from lowres_sdk.export.graph import FusedModel
    from lowres_sdk.export.onnx_export import export_onnx
    from lowres_sdk.training.backbones import build_model, count_mflops, count_params

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = Classifier().bundle.spec  # the shipped default's input: size, kernel, letterbox
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, width in CANDIDATES:
            torch.manual_seed(0)
            net = build_model(arch, 12, spec.size, width).eval()
            path = Path(tmp) / f"{arch}{width}.onnx"
            export_onnx(FusedModel(net, spec), path)
            half = path.with_suffix(".fp16w.onnx")
            store_weights_fp16(path, half)  # `lowres export --fp16-weights`
            params = count_params(net)
            rows.append({"arch": arch, "width": width, "params": params, "mflops": round(count_mflops(net, spec.size), 1),
                         "fp32_mb": round(path.stat().st_size / 1e6, 2), "fp16_weights_mb": round(half.stat().st_size / 1e6, 2),
                         "int8_weights_mb": round(params / 1e6, 2),
                         "fp32_crops_per_s": round(crops_per_second(path, args.threads)),
                         "fp16_weights_crops_per_s": round(crops_per_second(half, args.threads))})
            print(rows[-1], flush=True)
    base = rows[0]["fp32_crops_per_s"]
    for r in rows:
        r["speed_vs_airnet_x0.5"] = round(r["fp32_crops_per_s"] / base, 2)
    write_json(RESULTS, rows)
    lines = [f"Candidate default nets at the shipped default's input ({spec.size} px native, letterbox, 12 classes), "
             "untrained; FP32 graph through onnxruntime, 2 threads, batch 64 of 32x16 px crops, best of 5 x 1.5 s, "
             "one run (`python benchmarks/default_capacity.py`). The issue's limits: >= 5,000 FP32 crops/s, bundle <= 2 MB "
             "(FP32 or FP16-stored graph + INT8).", "",
             "| net | params | MFLOPs | FP32 graph MB | graph with FP16-stored weights MB | weights as INT8 MB | FP32 crops/s | "
             "FP16-stored crops/s | vs airnet x0.5 |", "|---" * 9 + "|"]
    for r in rows:
        lines.append(f"| {r['arch']} x{r['width']:g} | {r['params']:,} | {r['mflops']} | {r['fp32_mb']} | {r['fp16_weights_mb']} | "
                     f"{r['int8_weights_mb']} | {r['fp32_crops_per_s']:,} | {r['fp16_weights_crops_per_s']:,} | {r['speed_vs_airnet_x0.5']}x |")
    write_block("default_capacity", lines)


if __name__ == "__main__":
    main()
