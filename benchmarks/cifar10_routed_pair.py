"""A routed pair of experiments/cifar10_robust.toml's nets as a user gets it: one bundle (`lowres export LOW --route
AT:HIGH`) whose graph sends crops under AT px to LOW and the rest to HIGH, on the full CIFAR-10 test
split shrunk with the real OpenCV / Pillow kernels (what `lowres eval` measures): top-1 by kernel and
size, the worst kernel and the spread at each size, and the pair's training seconds (each run of the two
`init` chains counted once, so a shared start is not counted twice).

    python benchmarks/cifar10_routed_pair.py [--low RUN] [--high RUN] [--at 12]   # ~5 min on 2 cores
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from results_io import nets_arguments, publish_report, train_seconds
from tables import routed_pair as summary

from lowres_sdk.errors import InputError
from lowres_sdk.training.checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cifar10_routed_pair.json"
LOW, HIGH, AT = "airbench16_route8_enskd_n4", "airbench16_route16_from8", 12
KERNELS = ("area", "linear", "cubic", "nearest", "lanczos", "pil-bicubic")  # as experiments/cifar10_robust.toml
RESOLUTIONS = (8, 12, 16, 24, 32)


def plot(report: dict, path: Path) -> None:
    from lowres_sdk.export.kernel_eval import heatmap

    heatmap(report["by_kernel"], path, f"routed pair (< {report['at']} px: {report['low']}; else {report['high']}): "
                                       "CIFAR-10 test top-1 %")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    nets_arguments(p, None)
    p.add_argument("--low", default=LOW, help="the run for crops under --at px (default: %(default)s)")
    p.add_argument("--high", default=HIGH, help="the run for crops of --at px and more (default: %(default)s)")
    p.add_argument("--at", type=int, default=AT, help="the routing size, px of the crop's longer side (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import accuracy_by_kernel
    from lowres_sdk.export.routed import export_routed
    from lowres_sdk.training.data import load_splits

    runs = [args.runs_dir / args.low, args.runs_dir / args.high]
    missing = [str(r) for r in runs if not (r / "checkpoint.json").exists()]
    if missing:
        raise InputError(f"runs not found: {missing} (train them with python -m benchmarks.run benchmarks/experiments/cifar10_robust.toml --only ...)")
    test = load_splits(args.data, 32)[1]
    bundle = args.runs_dir / "bundles" / f"pair_{args.low}_{args.at}_{args.high}"
    export_routed([(0, runs[0]), (args.at, runs[1])], bundle, test_set=test.subset(np.arange(0, len(test), 10)),
                  overwrite=True, log=lambda *a: None)
    rep = accuracy_by_kernel(Classifier(str(bundle)), list(test.images), test.labels, KERNELS, RESOLUTIONS)
    report = {"low": args.low, "high": args.high, "at": args.at, "images": len(test.labels),
              "mflops": [load_checkpoint(r)[1]["mflops"] for r in runs],
              "train_seconds": round(train_seconds(*runs)), "by_kernel": rep}
    print("\n".join(publish_report("cifar10_routed_pair", RESULTS, report, plot, summary)))


if __name__ == "__main__":
    main()
