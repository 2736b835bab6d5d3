"""Weight averaging ("model soup", Wortsman et al. 2022) of the 16 px CIFAR-10 nets of
benchmarks/experiments/cifar10_robust.toml that all start from the same HR run (`airbench32_hr`): if averaging their
weights kept their ensemble's gain, a 16 px student would get it at one net's FLOPs.

Every subset of 2+ nets, their (EMA) weights averaged uniformly, with two BatchNorm statistics:
the nets' running statistics averaged like the weights, and statistics re-estimated by one pass over
10k training images shrunk to 16 px with a random real kernel (area, linear, cubic, nearest, lanczos,
pil-bicubic) and mirrored at random. Each net alone is measured the same ways.

Every figure: the full CIFAR-10 test split (10k) shrunk (square) to 16 px with the real OpenCV
kernel named (export/kernel_eval.py `shrink`), run through the torch net; the torch nets give the
bundles' figures of experiments/cifar10_robust.toml (within 0.1 point; the bundle is that net plus its resize).

Writes benchmarks/results/cifar10_soup.json, a PNG and a table in docs/benchmarks.md (~8 min).

    python benchmarks/cifar10_soup.py [--runs-dir benchmarks/runs/cifar10_robust] [--nets RUN,RUN,...]
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch
from results_io import nets_arguments, publish_report, save_figure
from tables import soup as summary
from tqdm import tqdm

from lowres_sdk.errors import InputError

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cifar10_soup.json"
NETS = ("airbench16_kernels16", "airbench16_kernels16_more", "airbench16_kernels16_kd", "airbench16_kernels16_cutout")
KERNELS = ("area", "nearest")  # test kernels: the target's, and the worst at 16 px of the nets above
BN_KERNELS = ("area", "linear", "cubic", "nearest", "lanczos", "pil-bicubic")
SIZE = 16


def to_input(crops: list[np.ndarray], spec) -> torch.Tensor:
    """uint8 BGR crops (the runtime's convention, as `shrink` returns them) -> the net's normalised RGB batch."""
    from lowres_sdk.training.degrade import Normalize

    x = torch.from_numpy(np.ascontiguousarray(np.stack(crops)[..., ::-1])).permute(0, 3, 1, 2).float() / 255
    return Normalize(spec.mean, spec.std)(x)


@torch.no_grad()
def top1(net: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    pred = torch.cat([net(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return round(100 * float((pred == labels).float().mean()), 2)


@torch.no_grad()
def reestimate_bn(net: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """BatchNorm running statistics replaced by the plain average over ``x`` (one pass, train mode)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    net.train()
    for i in range(0, len(x), 500):
        net(x[i:i + 500])
    return net.eval()


def averaged(nets: list[torch.nn.Module], build) -> torch.nn.Module:
    """A fresh net (``build()``) holding the uniform average of ``nets``' weights and buffers."""
    soup = build()
    states = [n.state_dict() for n in nets]
    soup.load_state_dict({k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype)
                          for k, v in soup.state_dict().items()})
    return soup.eval()


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r["area_averaged"] for r in rows], 0.4, label="stats averaged")
    ax.barh(y + 0.2, [r["area_reestimated"] for r in rows], 0.4, label="stats re-estimated")
    ax.set_yticks(y, [" + ".join(n.replace("airbench16_", "") for n in r["nets"]) for r in rows], fontsize=7)
    ax.axvline(86, color="grey", ls="--", lw=0.8, label="target: 86 %")
    lo = min(min(r["area_averaged"], r["area_reestimated"]) for r in rows)
    ax.set_xlim(lo - 1, 87)
    ax.set_xlabel(f"CIFAR-10 top-1 % at {SIZE} px, OpenCV area")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    nets_arguments(p, NETS)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from lowres_sdk.export.kernel_eval import shrink
    from lowres_sdk.training.backbones import build_model
    from lowres_sdk.training.checkpoint import load_model
    from lowres_sdk.training.data import load_splits

    names = [n for n in args.nets.split(",") if n]
    missing = [n for n in names if not (args.runs_dir / n / "checkpoint.json").exists()]
    if len(names) < 2 or missing:
        raise InputError(f"need >= 2 trained runs; not found under {args.runs_dir}: {missing} "
                         "(train them with python -m benchmarks.run benchmarks/experiments/cifar10_robust.toml --only ...)")
    loaded = {n: load_model(args.runs_dir / n) for n in names}
    shapes = {(m["recipe"]["arch"], m["recipe"]["width"], spec.size) for _, spec, m in loaded.values()}
    if len(shapes) != 1:
        raise InputError(f"weights average only within one architecture and input size; got {sorted(shapes)}")
    (arch, width, size), = shapes
    spec = next(iter(loaded.values()))[1]
    classes = len(next(iter(loaded.values()))[2]["classes"])

    def build():
        return build_model(arch, classes, size, width)

    train, test = load_splits(args.data, 32)
    labels = torch.as_tensor(np.asarray(test.labels))
    tests = {k: to_input([shrink(im, SIZE, k) for im in test.images], spec) for k in KERNELS}
    rng = np.random.default_rng(0)
    picked = rng.choice(len(train.images), 10_000, replace=False)
    bn_crops = [shrink(train.images[i], SIZE, BN_KERNELS[rng.integers(len(BN_KERNELS))]) for i in picked]
    bn_x = to_input([c[:, ::-1] if rng.random() < 0.5 else c for c in bn_crops], spec)

    subsets = [c for k in range(1, len(names) + 1) for c in itertools.combinations(names, k)]
    rows = []
    for combo in tqdm(subsets, desc="subsets"):
        net = averaged([loaded[n][0] for n in combo], build)
        row = {"nets": list(combo), **{f"{k}_averaged": top1(net, x, labels) for k, x in tests.items()}}
        net = reestimate_bn(net, bn_x)
        rows.append({**row, **{f"{k}_reestimated": top1(net, x, labels) for k, x in tests.items()}})
    report = {"nets": names, "images": len(labels), "resolution": SIZE, "rows": rows}
    print("\n".join(publish_report("cifar10_soup", RESULTS, report, plot, summary)))


if __name__ == "__main__":
    main()
