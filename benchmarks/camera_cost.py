"""What the camera degradation costs a training epoch: the same one-epoch run (a class-balanced
CIFAR-10 subset, same seed, same net) with ``--degradation fixed`` and ``camera``, rounds
interleaved and the best of each kept, all in one process (the ratio is what counts; the machine
must be otherwise idle). Writes benchmarks/results/camera_cost.json and the `camera_cost` block of
docs/benchmarks.md.

    python benchmarks/camera_cost.py [--per-class 500] [--rounds 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from docs_table import write_block
from results_io import write_json

from lowres_sdk.training.data import load_splits
from lowres_sdk.training.loop import train
from lowres_sdk.training.recipe import Recipe

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "camera_cost.json"
NETS = (("resnet20", 1.0), ("airnet", 0.5), ("airnet", 1.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--per-class", type=int, default=500)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train_set, test_set = load_splits(args.data, 32, limit_per_class=args.per_class)
    test_set = test_set.subset(range(0, len(test_set), 50))  # the per-epoch evaluation is not what is timed
    best: dict[tuple, float] = {}
    for _ in range(args.rounds):
        for arch, width in NETS:
            for degradation in ("fixed", "camera"):
                recipe = Recipe(method="lr", data=str(args.data), arch=arch, width=width, resolution=16, input_mode="native",
                                fit="letterbox", epochs=1, seed=0, degradation=degradation)
                with tempfile.TemporaryDirectory() as tmp:
                    t = time.perf_counter()
                    meta = train(recipe, Path(tmp) / "run", data=(train_set, test_set), progress=False)
                    wall = time.perf_counter() - t
                key = (arch, width, degradation)
                best[key] = min(best.get(key, float("inf")), meta["history"][-1]["seconds"])
                print(key, f"{best[key]:.1f}s (wall {wall:.1f}s)", flush=True)
    rows = [{"arch": a, "width": w, "images": len(train_set), "fixed_seconds": round(best[(a, w, "fixed")], 2),
             "camera_seconds": round(best[(a, w, "camera")], 2),
             "ratio": round(best[(a, w, "camera")] / best[(a, w, "fixed")], 3)} for a, w in NETS]
    write_json(RESULTS, {"threads": args.threads, "rounds": args.rounds, "rows": rows})
    write_block("camera_cost", [
        f"One training epoch on {len(train_set):,} CIFAR-10 images (native 16 px, batch 128, {args.threads} threads), "
        f"best of {args.rounds} interleaved rounds in one process (`python benchmarks/camera_cost.py`):", "",
        "| net | fixed kernel s | camera s | camera / fixed |", "|---|---|---|---|",
        *[f"| {r['arch']} x{r['width']:g} | {r['fixed_seconds']:.1f} | {r['camera_seconds']:.1f} | {r['ratio']:.2f} |" for r in rows]])


if __name__ == "__main__":
    main()
