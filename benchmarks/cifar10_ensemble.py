"""What the camera-robust CIFAR-10 nets of benchmarks/experiments/cifar10_robust.toml reach *together* (the
16 px question): every subset of 2+ of them, their softmax outputs averaged, and each one with
horizontal-flip averaging. An ensemble of k nets costs k times the FLOPs, so it is not a candidate
for the <= 111 MFLOP student; it bounds what distilling those nets into one (the issue's "teacher
ensemble") could give, and flip averaging what test-time augmentation could.

Every figure: the full CIFAR-10 test split (10k), each image shrunk (square) with the real OpenCV
kernel named, through each run's exported FP32 bundle (made by experiments/cifar10_robust.toml; re-exported here
when missing or stale, which needs the run's checkpoint).

Writes benchmarks/results/cifar10_ensemble.json, a PNG and a table in docs/benchmarks.md.

    python benchmarks/cifar10_ensemble.py [--runs-dir benchmarks/runs/cifar10_robust] [--nets RUN,RUN,...]
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from results_io import bundle_of, nets_arguments, publish_report, save_figure
from tables import ensemble as summary
from tqdm import tqdm

from lowres_sdk.errors import InputError

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cifar10_ensemble.json"
NETS = ("airbench16_route12", "airbench16_route12_bn64", "airbench16_route12_ab94", "airbench16_kernels16",
        "airbench16_kernels16_cutout", "airbench16_x07_kernels16", "airbench32_half_route12", "airbench32_half_route12_more")
CONDITIONS = ((12, "area"), (16, "area"), (16, "nearest"), (24, "area"))  # (test crop size, OpenCV kernel)


def top1(probs: np.ndarray, labels: np.ndarray) -> float:
    return round(100 * float((probs.argmax(1) == labels).mean()), 2)


def measure(probs: dict[str, np.ndarray], flipped: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    """One condition: each net alone and flip-averaged, and every subset of >= 2 nets (mean of softmax)."""
    names = list(probs)
    single = {n: {"top1": top1(probs[n], labels), "flip_avg": top1(probs[n] + flipped[n], labels)} for n in names}
    subsets = [{"nets": list(c), "top1": top1(sum(probs[n] for n in c), labels)}
               for k in range(2, len(names) + 1) for c in itertools.combinations(names, k)]
    best = {k: max((s for s in subsets if len(s["nets"]) == k), key=lambda s: s["top1"]) for k in range(2, len(names) + 1)}
    return {"single": single, "subsets": subsets, "best_of_size": {str(k): v for k, v in best.items()}}


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for c in report["conditions"]:
        ks = [1] + [int(k) for k in c["best_of_size"]]
        ys = [max(s["top1"] for s in c["single"].values())] + [v["top1"] for v in c["best_of_size"].values()]
        ax.plot(ks, ys, marker="o", label=f"{c['resolution']} px {c['kernel']}")
    ax.axhline(86, color="grey", ls="--", lw=0.8, label="target: 86 % at 16 px area")
    ax.set_xlabel("nets averaged (best subset)")
    ax.set_ylabel("CIFAR-10 top-1 %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    nets_arguments(p, NETS)
    args = p.parse_args()

    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import shrink
    from lowres_sdk.training.checkpoint import load_checkpoint
    from lowres_sdk.training.data import load_splits

    nets = [n for n in args.nets.split(",") if n]
    # each net from its run (bundle_of exports its bundle or reuses it) or, without the run, from a bundle left of it
    runs = {n: args.runs_dir / n for n in nets if (args.runs_dir / n / "checkpoint.json").exists()}
    left = {n: args.runs_dir / "bundles" / n for n in nets
            if n not in runs and (args.runs_dir / "bundles" / n / "bundle.json").exists()}
    missing = [n for n in nets if n not in runs and n not in left]
    if len(nets) < 2 or missing:
        raise InputError(f"need >= 2 trained nets; not found under {args.runs_dir}: {missing} "
                         "(train them with python -m benchmarks.run benchmarks/experiments/cifar10_robust.toml --only ...)")
    test = load_splits(args.data, 32)[1]
    labels = np.asarray(test.labels)
    clfs = {}
    for n in nets:
        bundle = bundle_of(n, runs[n], load_checkpoint(runs[n])[1], test, args.runs_dir / "bundles") if n in runs else left[n]
        clfs[n] = Classifier(str(bundle))
    report = {"nets": nets, "images": len(labels), "conditions": []}
    for res, kernel in tqdm(CONDITIONS, desc="conditions"):
        crops = [shrink(img, res, kernel) for img in test.images]
        mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        probs = {n: clfs[n](crops).probs for n in nets}
        flipped = {n: clfs[n](mirrored).probs for n in nets}
        report["conditions"].append({"resolution": res, "kernel": kernel, **measure(probs, flipped, labels)})
    print("\n".join(publish_report("cifar10_ensemble", RESULTS, report, plot, summary)))


if __name__ == "__main__":
    main()
