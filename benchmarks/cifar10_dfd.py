"""CIFAR-10 benchmark of issue 3: HR teacher, LR baseline and DFD at 8x8 and 16x16 (upsampled input,
the paper's setting) plus native 16x16 students, one CPU-budget backbone (ResNet-20).

Writes benchmarks/results/cifar10_dfd.json (+ .png) and the table in docs/benchmarks.md after every
finished run; runs live in benchmarks/runs/ and resume, so re-running the script continues.

    python benchmarks/cifar10_dfd.py --data ../shared/data/cifar10-jpg.tar.gz
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from docs_table import write_block
from lowres_sdk.training.checkpoint import load_model
from lowres_sdk.training.data import load_splits
from lowres_sdk.training.recipe import Recipe
from lowres_sdk.training.evaluate import predict
from lowres_sdk.training.loop import train
from results_io import finished, write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cifar10_dfd.json"


def plan(args) -> list[tuple[str, Recipe]]:
    base = dict(data=args.data, arch=args.arch, seed=args.seed, batch_size=128, lr=0.1)
    teacher = str(args.runs / "hr32")
    runs = [("hr32", Recipe(method="hr", epochs=args.teacher_epochs, **base))]
    for res in (8, 16):
        runs.append((f"lr{res}", Recipe(method="lr", resolution=res, epochs=args.epochs, **base)))
        runs.append((f"dfd{res}", Recipe(method="dfd", resolution=res, epochs=args.epochs, teacher=teacher, **base)))
    runs.append(("lr16native", Recipe(method="lr", resolution=16, input_mode="native", epochs=args.epochs, **base)))
    runs.append(("dfd16native", Recipe(method="dfd", resolution=16, input_mode="native", epochs=args.epochs,
                                       teacher=teacher, **base)))
    return runs


def rows_for(name: str, run_dir: Path, test) -> list[dict]:
    model, spec, meta = load_model(run_dir)
    r = meta["recipe"]
    seconds = sum(h["seconds"] for h in meta["history"])
    common = {"arch": r["arch"], "params": meta["params"], "mflops": meta["mflops"], "epochs": r["epochs"],
              "seed": r["seed"], "train_seconds": round(seconds, 1), "run": name}
    # The teacher is also measured on LR input (8/16 px, upsampled): the gap DFD exists to close.
    resolutions = [32, 16, 8] if r["method"] == "hr" else [r["resolution"]]
    out = []
    for res in resolutions:
        logits = predict(model, spec, test.images, resolution=res)
        top1 = float((logits.argmax(1) == test.labels).mean())
        out.append({"method": r["method"], "resolution": res, "input_mode": r["input_mode"], **common,
                    "top1": round(100 * top1, 2)})
    return out


def write_results(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS, rows)
    plot(rows)
    table = ["| method | resolution | input | arch | params | MFLOPs | epochs | seed | top-1 % | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['method']} | {r['resolution']} | {r['input_mode']} | {r['arch']} | {r['params']:,} | "
                     f"{r['mflops']} | {r['epochs']} | {r['seed']} | {r['top1']:.2f} | {r['train_seconds']:.0f} |")
    write_block("cifar10_dfd", table)


def plot(rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['method']}\n{r['resolution']}px {r['input_mode'][:4]}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4))
    bars = ax.bar(range(len(rows)), [r["top1"] for r in rows],
                  color=["#888" if r["method"] == "hr" else "#4a7" if r["method"] == "dfd" else "#47a" for r in rows])
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("CIFAR-10 test top-1 (%)")
    ax.set_title(f"{rows[0]['arch']}: HR teacher, LR baseline and DFD by input resolution")
    fig.tight_layout()
    fig.savefig(RESULTS.with_suffix(".png"), dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/cifar10-jpg.tar.gz")
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--epochs", type=int, default=8, help="student epochs")
    p.add_argument("--teacher-epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=HERE / "runs" / "cifar10_dfd")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_splits(args.data)
    rows = []
    for name, recipe in plan(args):
        run_dir = args.runs / name
        if not finished(run_dir, recipe.epochs):
            t = time.time()
            print(f"== {name}", flush=True)
            train(recipe, run_dir, resume=True, data=data, progress=sys.stderr.isatty())
            print(f"== {name} done in {time.time() - t:.0f}s", flush=True)
        rows += rows_for(name, run_dir, data[1])
        write_results(rows)
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
