"""CIFAR-10 benchmark of issue 6: every method on the DFD benchmark's backbone and budget (ResNet-20,
8 student epochs, seed 0) at 8x8 and 16x16, plus paper 001's limited-data comparison (staged vs
mixed with 10 % and 100 % of the training set).

Reuses the DFD benchmark's HR teacher (benchmarks/runs/cifar10_dfd/hr32) and copies its lr/dfd rows.
Each run's rows are cached in its folder, so several copies of this script may run side by side on
different ``--only`` subsets; every copy rewrites benchmarks/results/cifar10_methods.json (+ .png)
and the table in docs/benchmarks.md from all finished runs.

    python benchmarks/cifar10_methods.py --data ../shared/data/cifar10-jpg.tar.gz
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from docs_table import write_block
from lowres_sdk.training.checkpoint import load_checkpoint, load_model
from lowres_sdk.training.data import load_splits
from lowres_sdk.training.recipe import Recipe
from lowres_sdk.training.evaluate import predict
from lowres_sdk.training.loop import train
from results_io import finished, write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cifar10_methods.json"
DFD_RESULTS = HERE / "results" / "cifar10_dfd.json"
ROWS_VERSION = 2  # bump when rows_for changes: cached rows of older versions are recomputed


def plan(args) -> list[tuple[str, Recipe]]:
    base = dict(data=args.data, arch=args.arch, seed=args.seed, batch_size=128, lr=0.1)
    teacher = str(args.teacher)
    runs = []
    for res in (8, 16):
        lr_res = dict(resolution=res, epochs=args.epochs, **base)
        # Same peak LR and schedule as the DFD student: staged minus DFD = what the feature loss adds.
        runs.append((f"staged{res}", Recipe(method="staged", teacher=teacher, **lr_res)))
        runs.append((f"mixed{res}", Recipe(method="mixed", **lr_res)))
        # Paper 000's transfer-net schedule (batch 1000, LR 0.01, x0.1 steps), 100 epochs on cached features.
        runs.append((f"transfer{res}", Recipe(method="transfer", teacher=teacher, resolution=res, epochs=100,
                                              **dict(base, batch_size=1000, lr=0.01))))
        # Our variant: each LR feature labelled by its own HR image's cluster instead of the nearest one.
        runs.append((f"transfer{res}_paired", Recipe(method="transfer", teacher=teacher, resolution=res, epochs=100,
                                                     transfer_labels="paired", **dict(base, batch_size=1000, lr=0.01))))
        runs.append((f"sr{res}", Recipe(method="sr", teacher=teacher, input_mode="native", **lr_res)))
    # Paper 001 table 2: staged vs mixed with little data. Small sets get 2x the epochs.
    f = args.fraction
    small = dict(base, train_fraction=f)
    runs.append((f"hr32_f{f:g}", Recipe(method="hr", epochs=2 * args.teacher_epochs, **small)))
    for res in (8, 16):
        lr_res = dict(resolution=res, epochs=2 * args.epochs, **small)
        runs.append((f"staged{res}_f{f:g}", Recipe(method="staged", teacher=str(args.runs / f"hr32_f{f:g}"), **lr_res)))
        runs.append((f"mixed{res}_f{f:g}", Recipe(method="mixed", **lr_res)))
    return runs


def rows_for(name: str, run_dir: Path, test) -> list[dict]:
    """Rows of a finished run, cached in RUN/bench_rows.json against its weights' hash."""
    cache = run_dir / "bench_rows.json"
    meta = load_checkpoint(run_dir)[1]
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached["weights_sha256"] == meta["weights_sha256"] and cached.get("version") == ROWS_VERSION:
            return cached["rows"]
    model, spec, meta = load_model(run_dir)
    r = meta["recipe"]
    seconds = sum(h.get("seconds", 0) for h in meta["history"])
    common = {"arch": r["arch"], "params": meta["params"], "mflops": meta["mflops"], "epochs": r["epochs"],
              "seed": r["seed"], "lr": r["lr"], "data_fraction": r.get("train_fraction", 1.0),
              "train_seconds": round(seconds, 1), "run": name, **meta.get("metrics", {})}
    if r["method"] == "transfer":
        common["transfer_labels"] = r.get("transfer_labels", "nearest")
    resolutions = [32, 16, 8] if r["method"] == "hr" else [r["resolution"]]
    out = []
    for res in resolutions:
        logits = predict(model, spec, test.images, resolution=res)
        row = {"method": r["method"], "resolution": res, "input_mode": r["input_mode"], **common,
               "top1": round(100 * float((logits.argmax(1) == test.labels).mean()), 2)}
        if r["method"] != "hr" and spec.resolution < spec.size:
            # The paper's other column: the same network fed HR test images. The model's own
            # pre-processing would shrink them to its resolution, so it is bypassed here.
            hr_logits = predict(model, replace(spec, resolution=spec.size), test.images)
            row["top1_hr_input"] = round(100 * float((hr_logits.argmax(1) == test.labels).mean()), 2)
        out.append(row)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"weights_sha256": meta["weights_sha256"], "version": ROWS_VERSION, "rows": out}, indent=2))
    os.replace(tmp, cache)
    return out


def collect(args, test) -> list[dict]:
    rows = []
    if DFD_RESULTS.exists():  # the issue-3 runs this benchmark extends (same backbone, budget and seed)
        dfd_runs = args.teacher.parent
        for name in dict.fromkeys(r["run"] for r in json.loads(DFD_RESULTS.read_text())):
            if (dfd_runs / name / "checkpoint.json").exists():
                rows += [dict(r, source="cifar10_dfd") for r in rows_for(name, dfd_runs / name, test)]
            else:  # runs not on this machine: their published rows, without the HR-input column
                rows += [dict(r, data_fraction=1.0, lr=0.1, source="cifar10_dfd.json")
                         for r in json.loads(DFD_RESULTS.read_text()) if r["run"] == name]
    for name, recipe in plan(args):
        if finished(args.runs / name, recipe.epochs):
            rows += rows_for(name, args.runs / name, test)
    return rows


def write_results(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS, rows)
    plot(rows)
    table = ["| method | data | resolution | input | MFLOPs | epochs | peak LR | top-1 % | top-1 % on HR input | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["data_fraction"], r["resolution"], r["method"] != "hr")):
        note = ""
        if "svm_lr_features_top1" in r:
            note = (f"{r.get('transfer_labels', 'nearest')} pseudo-labels; SVM on raw LR features "
                    f"{r['svm_lr_features_top1']:.2f} %, on HR features (HR test) {r['svm_hr_features_top1']:.2f} %")
        hr_in = f"{r['top1_hr_input']:.2f}" if "top1_hr_input" in r else ""
        table.append(f"| {r['method']} | {100 * r['data_fraction']:.0f} % | {r['resolution']} | {r['input_mode']} | "
                     f"{r['mflops']} | {r['epochs']} | {r['lr']:g} | {r['top1']:.2f} | {hr_in} | {note} |")
    write_block("cifar10_methods", table)


def plot(rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = [r for r in rows if r["data_fraction"] == 1.0 and r["method"] != "hr"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, res in zip(axes, (8, 16)):
        sel = [r for r in full if r["resolution"] == res and (r["input_mode"] == "upsampled" or r["method"] == "sr")]
        names = [r["method"] + ("\n(paired)" if r.get("transfer_labels") == "paired" else "") for r in sel]
        bars = ax.bar(range(len(sel)), [r["top1"] for r in sel], color="#47a")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(range(len(sel)), names, fontsize=8)
        ax.set_title(f"{res}x{res} input, 100 % data")
    axes[0].set_ylabel("CIFAR-10 test top-1 (%)")
    fig.tight_layout()
    fig.savefig(RESULTS.with_suffix(".png"), dpi=120)
    plt.close(fig)


def pictures(args) -> None:
    """The issue's pictures from the finished runs, into benchmarks/results/ (about 5 min)."""
    from lowres_sdk.training.viz import occlusion_figure, resolution_figure, tsne_figure

    dfd_runs, out = args.teacher.parent, RESULTS.parent
    have = lambda d: (d / "checkpoint.json").exists()  # noqa: E731
    for name in ("transfer8", "staged8"):
        if have(args.runs / name):
            print(f"== t-SNE {name}", flush=True)
            tsne_figure(args.runs / name, out / f"cifar10_tsne_{name}.png", args.data, per_class=100)
    occl = [d for d in (args.teacher, dfd_runs / "lr8", args.runs / "staged8", args.runs / "mixed8") if have(d)]
    print("== occlusion", flush=True)
    occlusion_figure([str(d) for d in occl], out / "cifar10_occlusion_8px.png", args.data, images=4, resolution=8)
    curves = [d for d in (args.teacher, dfd_runs / "lr8", dfd_runs / "dfd8", args.runs / "staged8", args.runs / "mixed8",
                          args.runs / "transfer8", args.runs / "sr8") if have(d)]
    print("== accuracy vs resolution", flush=True)
    resolution_figure([str(d) for d in curves], out / "cifar10_resolution.png", [8, 12, 16, 24, 32], args.data,
                      limit_per_class=200)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/cifar10-jpg.tar.gz")
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--epochs", type=int, default=8, help="student epochs (x2 on the limited-data runs)")
    p.add_argument("--teacher-epochs", type=int, default=15, help="HR epochs of the limited-data stage 1 (x2)")
    p.add_argument("--fraction", type=float, default=0.1, help="training-set fraction of the limited-data runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", type=Path, default=HERE / "runs" / "cifar10_dfd" / "hr32")
    p.add_argument("--runs", type=Path, default=HERE / "runs" / "cifar10_methods")
    p.add_argument("--only", default="*", help="comma-separated glob(s) of run names to train, e.g. 'staged*,mixed8'")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pictures", action="store_true", help="only draw the t-SNE / occlusion / resolution pictures")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.teacher / "checkpoint.json").exists():
        sys.exit(f"{args.teacher} missing: run benchmarks/cifar10_dfd.py first (it trains the HR teacher)")
    if args.pictures:
        return pictures(args)
    data = load_splits(args.data)
    patterns = args.only.split(",")
    for name, recipe in plan(args):
        if not any(fnmatch.fnmatch(name, pat) for pat in patterns) or finished(args.runs / name, recipe.epochs):
            continue
        t = time.time()
        print(f"== {name}", flush=True)
        train(recipe, args.runs / name, resume=True, data=data, progress=sys.stderr.isatty())
        print(f"== {name} done in {time.time() - t:.0f}s", flush=True)
        write_results(collect(args, data[1]))
    write_results(collect(args, data[1]))


if __name__ == "__main__":
    main()
