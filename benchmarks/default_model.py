"""Measure the default bundle (`lowres build-default` builds it; this script only reads it) through the
torch-free runtime with the real OpenCV / Pillow kernels: the kept CIFAR classes by kernel and size, the
12-class network on CIFAR-10, person recall and street windows by width, label purity on the given clips
and crops/s. Writes benchmarks/results/default_model.json (+ variants row, PNGs) and docs/default_model.md.

    python benchmarks/default_model.py [--bundle sdk/models/default] [--data ../shared/data] [--no-speed]

The training facts (recipe, schedule, seconds) are carried from the results of the run that trained the
committed checkpoints: the chains' earlier checkpoints are not committed (docs/artifacts.md).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from clip_purity import clip_purity
from results_io import write_json
from runtime import measure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# measured when the committed checkpoints were trained (route: when the route was chosen); carried over
TRAINING_KEYS = ("recipe", "data", "params", "mflops", "train_seconds", "epochs", "schedule", "history", "upper")
SPEED_SHAPES = ((32, 32), (32, 16), (16, 8), (10, 5))
REFERENCE_COMMIT, REFERENCE_SPEED = "94a376c", 9031.8  # the default the speed floor was set against
RESOLUTIONS, WIDTHS = (8, 12, 16, 24, 32), (8, 12, 16, 24, 32, 48)
CLIPS = ("pedestrians-480x360.avi", "highway-cars-1280x720.mp4")


def merged_head_top1(fine_clf, images, labels, head, temps: list[float]) -> dict:
    """Top-1 (%) on the kept CIFAR classes (OpenCV area) of the earlier head -- the dropped classes merged
    into `other` -- from the same fine network(s) as the shipped head; ``temps``: each route's."""
    from lowres_sdk.bundle import route_index
    from lowres_sdk.export.kernel_eval import shrink
    from lowres_sdk.training.pipelines.calibration import softmax_t

    other = head.labels.index("other")
    sides = [x.min_side for x in fine_clf.bundle.routes] or [0]
    out = {"kernel": "area", "images": len(images), "top1": {}}
    for r in RESOLUTIONS:
        p = softmax_t(np.log(np.clip(fine_clf([shrink(i, r, "area") for i in images]).probs, 1e-12, 1)),
                      temps[route_index(sides, r, r)])
        merged = np.stack([p[:, idx].sum(1) for idx in head.members], 1)
        merged[:, other] += p[:, [head.fine.index(c) for c in head.dropped]].sum(1)
        out["top1"][str(r)] = round(100 * float((merged.argmax(1) == labels).mean()), 2)
    return out


def people_by_width(clf, crops: list[np.ndarray], kernels) -> dict:
    from lowres_sdk.export.kernel_eval import shrink

    person = clf.labels.index("person")
    return {k: {str(w): round(100 * float((clf([shrink(c, w, k, "width") for c in crops]).indices == person).mean()), 2)
                for w in WIDTHS} for k in kernels}


def label_counts(clf, crops, width: int) -> dict:
    from collections import Counter

    from lowres_sdk.export.kernel_eval import shrink

    return dict(Counter(clf([shrink(c, width, "area", "width") for c in crops]).labels))


def reference_bundle(dest: Path) -> Path | None:
    """The default bundle as committed at `REFERENCE_COMMIT`, from git history into ``dest``; None where
    the history is not there (a shallow clone)."""
    import subprocess

    where = "sdk/models/default"
    try:
        names = subprocess.run(["git", "ls-tree", "--name-only", f"{REFERENCE_COMMIT}:{where}"], cwd=HERE.parent,
                               check=True, capture_output=True, text=True).stdout.split()
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            (dest / name).write_bytes(subprocess.run(["git", "show", f"{REFERENCE_COMMIT}:{where}/{name}"],
                                                     cwd=HERE.parent, check=True, capture_output=True).stdout)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"no reference speed: git cannot give {where} at {REFERENCE_COMMIT} ({e})", flush=True)
        return None
    return dest


def crops_per_second(bundles: dict[str, Path], shape: tuple[int, int], seconds: float = 1.5,
                     repeats: int = 5) -> dict:
    """Throughput of each bundle on 64 crops of ``shape`` per call (2 threads), FP32 and (the first bundle)
    INT8: best of ``repeats`` windows after a warm-up, the bundles' windows interleaved."""
    from lowres_sdk import Classifier
    from lowres_sdk.errors import BundleError

    crops = list(np.random.default_rng(0).integers(0, 256, (64, *shape, 3), dtype=np.uint8))
    out, clfs = {name: {} for name in bundles}, {}
    for i, (name, bundle) in enumerate(bundles.items()):
        for precision in ("fp32", "int8") if i == 0 else ("fp32",):
            try:
                clfs[name, precision] = Classifier(str(bundle), precision=precision, threads=2)
            except BundleError as e:  # a bundle without INT8
                out[name][precision] = str(e)
                continue
            measure(clfs[name, precision], crops, len(crops), seconds)
            out[name][precision] = 0
    for _ in range(repeats):
        for (name, precision), clf in clfs.items():
            rate = measure(clf, crops, len(crops), seconds)["crops_per_s"]
            out[name][precision] = max(out[name][precision], round(rate))
    return out


def speed(bundle: Path, work: Path) -> dict:
    from lowres_sdk.bundle import load_bundle

    reference = reference_bundle(work / f"bundle_reference_{REFERENCE_COMMIT}")
    both = {"shipped": bundle, **({"reference": reference} if reference else {})}
    sp = {f"{h}x{w}": crops_per_second(both, (h, w)) for h, w in SPEED_SHAPES}
    out = {"speed": {shape: s["shipped"] for shape, s in sp.items()}}
    if reference:
        prov = load_bundle(reference).meta["provenance"]
        out["speed_reference"] = {"commit": REFERENCE_COMMIT, "floor_set_at": REFERENCE_SPEED,
                                  "model": f"{prov['recipe']['arch']} fed {prov['recipe']['resolution']} px, "
                                           f"{prov['mflops']:g} MFLOPs",
                                  "fp32": {shape: s["reference"]["fp32"] for shape, s in sp.items()}}
    return out


def video(bundle: Path, data: Path, calibration: dict) -> list[dict]:
    """Label purity of `lowres video` on the given clips: as it runs (INT8 when shipped, one thread), and
    held out without the unknown threshold, with one threshold, and with tracks however little they travel."""
    from lowres_sdk import Classifier
    from lowres_sdk.video.tracking import TrackerConfig

    rows = []
    for clip in CLIPS:
        path = data / "video" / clip
        row = clip_purity(path, Classifier(str(bundle), threads=1, precision="auto"))
        for name, threshold in (("without_unknown", None), ("one_threshold", calibration["unknown_below"])):
            row[name] = clip_purity(path, Classifier(str(bundle), threads=1, precision="auto", unknown_below=threshold))
        row["travel_off"] = clip_purity(path, Classifier(str(bundle), threads=1, precision="auto"),
                                        tracker=TrackerConfig(min_travel=0))
        rows.append(row)
        print("video", json.dumps(row), flush=True)
    return rows


def reliability_png(rows: dict, path: Path, temps) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from results_io import save_figure

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    for key, name in (("before", "T = 1"), ("after", f"T = {temps}")):
        ax.plot([b["confidence"] for b in rows[key]], [b["accuracy"] for b in rows[key]], marker="o", label=name)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability, held-out objects through random cameras", fontsize=8)
    ax.legend()
    save_figure(fig, path)


def on_test_split(bundle: Path, data: Path, checkpoints: Path) -> dict:
    """The figures on the held-out test split: calibration re-fitted on the fine bundle of the routes'
    committed checkpoints (as the build fits it), the fine network on CIFAR-10, the shipped labels on the
    kept CIFAR classes, and the earlier merged head."""
    from dataclasses import replace

    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import DEFAULT_KERNELS, accuracy_by_kernel, heatmap
    from lowres_sdk.training import fixedcam
    from lowres_sdk.training.checkpoint import load_checkpoint
    from lowres_sdk.training.pipelines import default_model as dm
    from lowres_sdk.training.pipelines.calibration import Head, calibrate

    shipped = Classifier(str(bundle))
    routes = shipped.bundle.routes or []
    runs = [r.provenance["source_run"] for r in routes] or [shipped.bundle.meta["provenance"]["source_run"]]
    # a run folder is named after its stage, a committed checkpoint default_<stage>
    names = [Path(r).name.removeprefix("default_") for r in runs]
    plan = replace(dm.Plan(), routes=tuple(names), route_at=routes[1].min_side if len(routes) > 1 else None)
    checkpoints_of = [dm.committed(checkpoints, n) for n in names]
    _, test, _ = fixedcam.load(data, clips=False)  # the test split does not depend on the clips
    head = Head(load_checkpoint(checkpoints_of[0])[1]["classes"], plan.merge, plan.dropped)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        fine, _, _ = dm.fine_bundle(plan, checkpoints_of, (test, None), head, Path(tmp), print)
        fine_clf = Classifier(str(fine))
        out["calibration"], rows = calibrate(fine_clf, test, head, plan.unknown_precision, about=plan.test_about)
        temps = out["calibration"].get("route_temperatures", [out["calibration"]["temperature"]])
        reliability_png(rows, RESULTS / "default_model_reliability.png", temps)
        cifar = test.subset(np.flatnonzero(test.labels < len(fixedcam.CIFAR)))
        out["cifar10_fine_by_kernel"] = accuracy_by_kernel(fine_clf, list(cifar.images), cifar.labels,
                                                           DEFAULT_KERNELS, RESOLUTIONS)
        kept = cifar.subset(np.flatnonzero(head.to_coarse[cifar.labels] >= 0))
        labels = head.to_coarse[kept.labels]
        out["cifar_kept_by_kernel"] = accuracy_by_kernel(shipped, list(kept.images), labels, DEFAULT_KERNELS,
                                                         RESOLUTIONS)
        out["merged_head"] = merged_head_top1(fine_clf, kept.images, labels, head, temps)
    heatmap(out["cifar10_fine_by_kernel"], RESULTS / "default_model_cifar10_kernels.png",
            "fine 12-class model, CIFAR-10 test (10k): top-1 % by kernel")
    heatmap(out["cifar_kept_by_kernel"], RESULTS / "default_model_kept_kernels.png",
            "shipped model, CIFAR test, kept classes: top-1 % by kernel")
    return out


def measure_bundle(bundle: Path, data: Path, checkpoints: Path, work: Path, with_speed: bool) -> dict:
    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import DEFAULT_KERNELS
    from lowres_sdk.training import fixedcam

    out = on_test_split(bundle, data, checkpoints)
    shipped = Classifier(str(bundle))
    _, people, _ = fixedcam.people(data / "person-reid-48x128.tar.gz", data / "pedestrians-mit-64x128.tar.gz")
    _, windows, _ = fixedcam.backgrounds(data / "street-background-64x128.tar.gz")
    out["person_recall_by_width"] = people_by_width(shipped, people, DEFAULT_KERNELS)
    out["windows_called_person_by_width"] = people_by_width(shipped, windows, DEFAULT_KERNELS)
    out["windows_labels_at_16px_area"] = label_counts(shipped, windows, 16)
    out["video"] = video(bundle, data, out["calibration"])
    if with_speed:
        out.update(speed(bundle, work))
    meta = shipped.bundle.meta
    out["bundle"] = {"files": {n: i["bytes"] for n, i in meta["files"].items()},
                     "metrics": meta["metrics"] or [r.metrics for r in shipped.bundle.routes],
                     "parity": meta["parity"]["max_abs_diff"],
                     "weights_storage": meta["provenance"].get("weights_storage", "fp32"),
                     "head_drop": (meta["provenance"].get("head") or {}).get("drop")}
    return out


def main() -> None:
    import torch

    import default_model_doc

    from lowres_sdk.bundle import DEFAULT_BUNDLE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="the bundle to measure, read only "
                   "(default: the package's shipped one)")
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    p.add_argument("--checkpoints", type=Path, default=HERE / "checkpoints",
                   help="the committed checkpoints of the bundle's routes (the fine network is exported from them)")
    p.add_argument("--work", type=Path, default=HERE / "runs" / "default_model")
    p.add_argument("--no-speed", action="store_true", help="skip crops/s (meaningless on a busy machine)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = RESULTS / "default_model.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    carried = [*TRAINING_KEYS, "route", *(("speed", "speed_reference") if args.no_speed else ())]
    results = {**{k: earlier[k] for k in carried if k in earlier},
               **measure_bundle(args.bundle, args.data, args.checkpoints, args.work, not args.no_speed)}
    write_json(path, results)
    default_model_doc.write()
    print(json.dumps(results["bundle"]), flush=True)


if __name__ == "__main__":
    main()
