"""What the camera's optics / sensor / codec realism (`camera_realism`) buys: CIFAR-10 test crops shrunk
with OpenCV INTER_AREA, then given sensor noise and / or JPEG as a real camera would, through the
exported bundles of experiments/cifar10_robust.toml's runs that differ in realism (same net, start and budget).

Conditions (on the uint8 LR crop, as `Camera` applies them in training, but fixed, not drawn):
clean; Gaussian read noise sigma 8 (of 255) + shot noise (variance 0.3 x value); JPEG quality 40;
both. Seeded. Needs the runs of experiments/cifar10_robust.toml (their bundles are exported when missing).

    python benchmarks/cifar10_sensor.py [--runs-dir benchmarks/runs/cifar10_robust]
Writes benchmarks/results/cifar10_sensor.json and a table in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from docs_table import write_block
from results_io import bundle_weights, finished, write_json
from tables import sensor as table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cifar10_sensor.json"
RUNS = ("airnet16_staged_short", "airnet16_staged_short_mild", "airnet16_staged_short_clean",
        "airbench16_staged", "airbench16_more")
CONDITIONS = ("clean", "noise", "jpeg40", "noise+jpeg40")
RESOLUTIONS = (8, 16)


def degrade(crop_bgr: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The condition's sensor noise and / or JPEG, with the functions `Camera` draws them through."""
    from lowres_sdk.training.degrade import jpeg_roundtrip, sensor_noise

    out = crop_bgr
    if "noise" in condition:
        out = sensor_noise(out, 8.0, 0.3, rng)
    if "jpeg40" in condition:
        out = jpeg_roundtrip(out, 40)
    return out


def measure(bundle: Path, images, labels) -> dict:
    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import shrink

    clf = Classifier(str(bundle))
    top1 = {}
    for res in RESOLUTIONS:
        crops = [shrink(img, res, "area") for img in images]
        for cond in CONDITIONS:
            rng = np.random.default_rng(res)  # the same noise for every run
            pred = clf([degrade(c, cond, rng) for c in crops]).indices
            top1[f"{cond}@{res}"] = round(100 * float((pred == labels).mean()), 2)
    return top1


def main() -> None:
    import torch

    from lowres_sdk.export.exporter import export_run
    from lowres_sdk.training.checkpoint import load_checkpoint
    from lowres_sdk.training.data import load_splits

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--runs-dir", type=Path, default=HERE / "runs" / "cifar10_robust")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    _, test = load_splits(args.data, 32)
    rows = []
    for name in RUNS:
        run = args.runs_dir / name
        if not finished(run, 1):
            print(f"skip {name}: no checkpoint in {run} (train it with python -m benchmarks.run benchmarks/experiments/cifar10_robust.toml --only {name})")
            continue
        meta = load_checkpoint(run)[1]
        bundle = args.runs_dir / "bundles" / name
        if bundle_weights(bundle) != meta["weights_sha256"]:
            export_run(run, bundle, test_set=test.subset(np.arange(0, len(test), 10)), log=lambda *a: None, overwrite=True)
        r = meta["recipe"]
        rows.append({"run": name, "arch": r["arch"], "epochs": r["epochs"], "camera_realism": r.get("camera_realism", 1.0),
                     "top1": measure(bundle, list(test.images), test.labels)})
        print(rows[-1], flush=True)
    write_json(RESULTS, rows)
    write_block("cifar10_sensor", table(rows))


if __name__ == "__main__":
    main()
