"""Distillation targets for a 16 px CIFAR-10 student from an ensemble of the 16 px nets cifar10_robust.py
trained: each training image shrunk to 16 px with the real OpenCV kernels named, each net's logits on the
crop and its mirror, averaged over views and nets (training/kd_targets.py's file; `--kd-targets` of a
`kd` run reads it). Prints and stores the ensemble's top-1 on the training split and on the test split
shrunk the same way (the teacher's accuracy the KD row is read against).

    python benchmarks/cifar10_kd_targets.py [--nets a,b,...] [--kernels area] [--out FILE]   # ~10 min on 2 cores
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from cifar10_robust import ENSEMBLE_TARGETS, nets_arguments
from cifar10_soup import to_input
from tqdm import tqdm

from lowres_sdk.errors import InputError

NETS = ("airbench16_kernels16", "airbench16_kernels16_more", "airbench16_kernels16_cutout", "airbench16_route12",
        "airbench16_route12_bn64")
SIZE = 16


@torch.no_grad()
def view_logits(nets: list[torch.nn.Module], images: np.ndarray, kernels: list[str], spec, batch: int = 1000) -> np.ndarray:
    """Mean logits over nets x kernels x {crop, mirror} for each of ``images`` (uint8 RGB)."""
    from lowres_sdk.export.kernel_eval import shrink

    out = np.zeros((len(images), nets[0].fc.out_features), np.float64)
    for i in tqdm(range(0, len(images), batch), desc="teacher logits", leave=False):
        for k in kernels:
            x = to_input([shrink(im, SIZE, k) for im in images[i:i + batch]], spec).contiguous(memory_format=torch.channels_last)
            for net in nets:
                out[i:i + batch] += (net(x) + net(x.flip(-1))).double().numpy()
    return (out / (len(nets) * len(kernels) * 2)).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    nets_arguments(p, NETS)
    p.add_argument("--kernels", default="area", help="OpenCV / Pillow kernels the views are shrunk with (default: %(default)s)")
    p.add_argument("--out", type=Path, default=ENSEMBLE_TARGETS, help="targets file (default: %(default)s, which "
                   "cifar10_robust.py's airbench16_kernels16_enskd reads)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from lowres_sdk.training.checkpoint import load_model
    from lowres_sdk.training.data import load_splits
    from lowres_sdk.training.kd_targets import save_targets

    names = [n for n in args.nets.split(",") if n]
    kernels = [k for k in args.kernels.split(",") if k]
    missing = [n for n in names if not (args.runs_dir / n / "checkpoint.json").exists()]
    if not names or missing:
        raise InputError(f"teacher runs not found under {args.runs_dir}: {missing or names} "
                         "(train them with benchmarks/cifar10_robust.py --only ...)")
    loaded = [load_model(args.runs_dir / n) for n in names]
    sizes = {spec.size for _, spec, _ in loaded}
    if sizes != {SIZE}:
        raise InputError(f"the teachers must take {SIZE} px; got {sorted(sizes)}")
    nets, spec, classes = [m.to(memory_format=torch.channels_last) for m, _, _ in loaded], loaded[0][1], loaded[0][2]["classes"]
    train, test = load_splits(args.data, 32)
    t0 = time.time()
    logits = view_logits(nets, train.images, kernels, spec)
    seconds = time.time() - t0
    test_top1 = float((view_logits(nets, test.images, kernels, spec).argmax(1) == test.labels).mean())
    about = {"teachers": names, "kernels": kernels, "views": "each kernel's 16 px crop and its mirror", "size": SIZE,
             "train_top1": round(100 * float((logits.argmax(1) == train.labels).mean()), 2),
             "test_top1": round(100 * test_top1, 2), "seconds": round(seconds)}
    save_targets(args.out, logits, train.labels, classes, about)
    print(f"wrote {args.out}: {about}")


if __name__ == "__main__":
    main()
