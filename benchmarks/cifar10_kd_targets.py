"""Distillation targets for a 16 px CIFAR-10 student from an ensemble of the 16 px nets experiments/cifar10_robust.toml
trained: each training image shrunk to 16 px with the real OpenCV kernels named, each net's logits on the
crop and its mirror, averaged over views and nets (training/kd_targets.py's file; `--kd-targets` of a
`kd` run reads it). Prints and stores the ensemble's top-1 on the training split and on the test split
shrunk the same way (the teacher's accuracy the KD row is read against).

    python benchmarks/cifar10_kd_targets.py [--nets a,b,...] [--kernels area] [--out FILE] [--overwrite]   # ~10 min on 2 cores
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from results_io import nets_arguments

from lowres_sdk.errors import InputError

# the targets airbench16_kernels16_enskd of experiments/cifar10_robust.toml reads (2 MB, committed)
ENSEMBLE_TARGETS = Path(__file__).resolve().parent / "checkpoints" / "cifar10_robust" / "kd_targets16.safetensors"
NETS = ("airbench16_kernels16", "airbench16_kernels16_more", "airbench16_kernels16_cutout", "airbench16_route12",
        "airbench16_route12_bn64")
SIZE = 16


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    nets_arguments(p, NETS)
    p.add_argument("--kernels", default="area", help="OpenCV / Pillow kernels the views are shrunk with (default: %(default)s)")
    p.add_argument("--out", type=Path, default=ENSEMBLE_TARGETS, help="targets file (default: %(default)s, which "
                   "experiments/cifar10_robust.toml's airbench16_kernels16_enskd reads)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (the committed file, by default)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from lowres_sdk.training.kd_targets import make_targets

    names = [n for n in args.nets.split(",") if n]
    missing = [n for n in names if not (args.runs_dir / n / "checkpoint.json").exists()]
    if not names or missing:
        raise InputError(f"teacher runs not found under {args.runs_dir}: {missing or names} "
                         "(train them with python -m benchmarks.run benchmarks/experiments/cifar10_robust.toml --only ...)")
    about = make_targets([args.runs_dir / n for n in names], args.out, str(args.data), SIZE,
                         [k for k in args.kernels.split(",") if k], overwrite=args.overwrite, test_top1=True)
    print(f"wrote {args.out}: {about}")


if __name__ == "__main__":
    main()
