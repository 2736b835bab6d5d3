"""Cross-resolution retrieval benchmark: low-res queries against a full-res gallery on
person re-ID, ORL faces and CIFAR-10, for the HR-trained baseline, cross-resolution fine-tuning
(paper 003) at several p, and FSR-GAN (paper 004) on top of the baseline.

Writes benchmarks/results/retrieval.json (+ .png) and the tables in docs/benchmarks.md after every
dataset; runs live in benchmarks/runs/retrieval/ and resume, so re-running the script continues.

    python benchmarks/retrieval.py --cifar-teacher ../main/benchmarks/runs/cifar10_dfd/hr32

The CIFAR-10 teacher (a `--method hr` run, read only) is the CIFAR baseline and the pre-training of
the re-ID and face baselines (their first layers start from it, a new identity head on top); without
it the re-ID and face baselines train from scratch and CIFAR-10 is skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from docs_table import write_block
from lowres_sdk.training.checkpoint import load_checkpoint
from lowres_sdk.training.recipe import Recipe
from lowres_sdk.training.loop import train
from lowres_sdk.training.retrieval_data import load_retrieval
from lowres_sdk.training.retrieval_eval import retrieval_report
from results_io import finished, write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "retrieval.json"
SHARED = HERE.parent.parent / "shared" / "data"
QUERY_RESOLUTIONS = [8, 12, 16, 24, 32]


def plan(name: str, path: str, args) -> tuple[str | None, list[tuple[str, Recipe]]]:
    """(baseline run folder or None if it is trained here, [(run name, recipe)]) for one dataset."""
    base = dict(data=path, arch="resnet20", width=1.0, image_size=32, seed=args.seed, query_min=8, query_max=32)
    runs, baseline = [], None
    if name == "classes":
        baseline = args.cifar_teacher
        ft = dict(epochs=args.cifar_epochs, batch_size=64, lr=0.01, **base)
    else:
        epochs = args.reid_epochs if name == "reid" else args.orl_epochs
        runs.append(("hr", Recipe(method="hr", epochs=epochs, batch_size=32, lr=0.05, init=args.cifar_teacher, **base)))
        ft = dict(epochs=epochs // 2, batch_size=32, lr=0.01, **base)
    teacher = baseline or str(args.runs / name / "hr")
    for p in args.ps:
        runs.append((f"crossres_p{p:g}", Recipe(method="crossres", crossres_p=p, init=teacher, **ft)))
    runs.append(("fsrgan", Recipe(method="fsrgan", teacher=teacher, epochs=args.fsr_epochs, batch_size=64, **base)))
    return baseline, runs


def rows_for(dataset: str, report: dict, recipe: dict, seconds: float) -> list[dict]:
    method = recipe["method"]
    out = []
    for r in report["rows"]:
        if r["variant"] == "raw":
            continue  # the extractor without G: identical to the baseline's rows
        out.append({"dataset": dataset, "method": method, "p": recipe["crossres_p"] if method == "crossres" else None,
                    "query_resolution": r["query_resolution"], "map": round(r["map"], 4),
                    "p_at_10": round(r["p_at_10"], 4), "r_at_10": round(r["r_at_10"], 4),
                    "p_at_1": round(r["p_at_1"], 4), "downscale_factor": r["downscale_factor"],
                    "queries": report["queries"], "gallery": report["gallery"], "epochs": recipe["epochs"],
                    "train_seconds": round(seconds, 1)})
    return out


def write_results(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS, rows)
    plot(rows)
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        res = sorted({r["query_resolution"] for r in mine})
        lines += [f"**{dataset}** ({mine[0]['queries']} queries, {mine[0]['gallery']} gallery images; cell = mAP / P@10; "
                  f"{res[-1]} px = the native, HR query)", "",
                  "| method | p | epochs | " + " | ".join(f"{q} px" for q in res) + " |",
                  "|---|---|---|" + "---|" * len(res)]
        for key in dict.fromkeys((r["method"], r["p"]) for r in mine):
            cells = {r["query_resolution"]: r for r in mine if (r["method"], r["p"]) == key}
            epochs = next(iter(cells.values()))["epochs"]
            lines.append(f"| {key[0]} | {'' if key[1] is None else key[1]} | {epochs} | " +
                         " | ".join(f"{cells[q]['map']:.3f} / {cells[q]['p_at_10']:.3f}" for q in res) + " |")
        lines.append("")
    write_block("retrieval", lines[:-1])


def plot(rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(len(datasets), 3, figsize=(13, 3.4 * len(datasets)), squeeze=False)
    for row_axes, dataset in zip(axes, datasets):
        mine = [r for r in rows if r["dataset"] == dataset]
        for key in dict.fromkeys((r["method"], r["p"]) for r in mine):
            pts = sorted((r for r in mine if (r["method"], r["p"]) == key), key=lambda r: r["query_resolution"])
            label = key[0] if key[1] is None else f"{key[0]} p={key[1]}"
            style = "--" if key[0] == "hr" else ":" if key[0] == "fsrgan" else "-"
            for ax, metric in zip(row_axes, ("map", "p_at_10", "r_at_10")):
                ax.plot([r["query_resolution"] for r in pts], [r[metric] for r in pts], style, marker="o", ms=3, label=label)
        for ax, title in zip(row_axes, ("mAP", "precision@10", "recall@10")):
            ax.set_title(f"{dataset}: {title}", fontsize=9)
            ax.set_xlabel("query resolution (px, shortest side)", fontsize=8)
            ax.grid(alpha=0.3)
        row_axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS.with_suffix(".png"), dpi=75)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reid", default=str(SHARED / "person-reid-48x128.tar.gz"))
    p.add_argument("--orl", default=str(SHARED / "faces-orl-92x112.tar.gz"))
    p.add_argument("--cifar", default=str(SHARED / "cifar10-jpg.tar.gz"))
    p.add_argument("--cifar-teacher", default=str(HERE / "runs" / "cifar10_dfd" / "hr32"),
                   help="a CIFAR-10 --method hr run (ResNet-20, 32 px; python -m benchmarks.run benchmarks/experiments/cifar10_dfd.toml trains it); read only")
    p.add_argument("--ps", type=lambda s: [float(v) for v in s.split(",")], default=[0.0, 0.1, 0.3, 0.5, 0.7, 1.0],
                   help="crossres down-sampling probabilities: paper 003's, plus 0 = the same fine-tuning budget "
                        "on HR images only (the control for the extra epochs)")
    p.add_argument("--reid-epochs", type=int, default=30, help="re-ID baseline epochs (crossres fine-tunes half as many)")
    p.add_argument("--orl-epochs", type=int, default=40, help="face baseline epochs (crossres fine-tunes half as many)")
    p.add_argument("--cifar-epochs", type=int, default=3, help="CIFAR crossres fine-tuning epochs")
    p.add_argument("--cifar-train-per-class", type=int, default=300, help="CIFAR train images per class for fine-tuning")
    p.add_argument("--cifar-per-class", type=int, default=100, help="CIFAR test queries (and gallery images) per class")
    p.add_argument("--fsr-epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=HERE / "runs" / "retrieval")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--datasets", default="reid,orl,classes")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not (Path(args.cifar_teacher) / "checkpoint.json").exists():  # every dataset starts from it
        sys.exit(f"{args.cifar_teacher} missing: run python -m benchmarks.run benchmarks/experiments/cifar10_dfd.toml first (it trains the HR ResNet-20)")
    rows = []
    for name in args.datasets.split(","):
        path = {"reid": args.reid, "orl": args.orl, "classes": args.cifar}[name]
        label = {"reid": "person-reid", "orl": "orl-faces", "classes": "cifar10"}[name]
        rset = load_retrieval(name, path, 32, "stretch", args.cifar_per_class, args.cifar_train_per_class)
        print(f"== {label}: train {len(rset.train)}, queries {len(rset.queries)}, gallery {len(rset.gallery)}", flush=True)
        baseline, runs = plan(name, path, args)
        resolutions = [r for r in QUERY_RESOLUTIONS if r < min(rset.queries.images.shape[1:3])]
        done = {}
        if baseline:
            report = retrieval_report(baseline, rset, resolutions, progress=False)
            meta = load_checkpoint(baseline)[1]
            rows += rows_for(label, report, meta["recipe"], sum(h.get("seconds", 0) for h in meta["history"]))
            done["hr"] = report
        for run_name, recipe in runs:
            run_dir = args.runs / name / run_name
            if not finished(run_dir, recipe.epochs):
                t = time.time()
                print(f"== {label} {run_name}", flush=True)
                train(recipe, run_dir, resume=True, data=(rset.train, rset.test), progress=sys.stderr.isatty())
                print(f"== {label} {run_name} done in {time.time() - t:.0f}s", flush=True)
            meta = load_checkpoint(run_dir)[1]
            report = retrieval_report(run_dir, rset, resolutions, progress=False)
            done[run_name] = report
            if run_name == "fsrgan":  # the extractor alone must reproduce the baseline exactly
                raw = [r["map"] for r in report["rows"] if r["variant"] == "raw"]
                assert np.allclose(raw, [r["map"] for r in done["hr"]["rows"]]), "fsrgan raw != baseline"
            rows += rows_for(label, report, meta["recipe"], sum(h.get("seconds", 0) for h in meta["history"]))
            write_results(rows)
            print(json.dumps([r for r in rows if r["method"] == meta["recipe"]["method"]][-1]), flush=True)
        write_results(rows)


if __name__ == "__main__":
    main()
