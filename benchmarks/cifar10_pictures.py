"""The pictures of the CIFAR-10 methods benchmark, from the finished runs of experiments/cifar10_dfd.toml and
experiments/cifar10_methods.toml: t-SNE of LR features, occlusion heat maps at 8 px and accuracy against
input resolution, into benchmarks/results/ (about 5 min).

    python benchmarks/cifar10_pictures.py [--data ../shared/data/cifar10-jpg.tar.gz]
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "cifar10-jpg.tar.gz"))
    p.add_argument("--runs", type=Path, default=HERE / "runs", help="the run cache (default: %(default)s)")
    args = p.parse_args()
    from lowres_sdk.training.viz import occlusion_figure, resolution_figure, tsne_figure

    dfd, methods = args.runs / "cifar10_dfd", args.runs / "cifar10_methods"
    have = lambda d: (d / "checkpoint.json").exists()  # noqa: E731
    for name in ("transfer8", "staged8"):
        if have(methods / name):
            print(f"== t-SNE {name}", flush=True)
            tsne_figure(methods / name, OUT / f"cifar10_tsne_{name}.png", args.data, per_class=100)
    occl = [d for d in (dfd / "hr32", dfd / "lr8", methods / "staged8", methods / "mixed8") if have(d)]
    print("== occlusion", flush=True)
    occlusion_figure([str(d) for d in occl], OUT / "cifar10_occlusion_8px.png", args.data, images=4, resolution=8)
    curves = [d for d in (dfd / "hr32", dfd / "lr8", dfd / "dfd8", methods / "staged8", methods / "mixed8",
                          methods / "transfer8", methods / "sr8") if have(d)]
    print("== accuracy vs resolution", flush=True)
    resolution_figure([str(d) for d in curves], OUT / "cifar10_resolution.png", [8, 12, 16, 24, 32], args.data,
                      limit_per_class=200)


if __name__ == "__main__":
    main()
