"""Train, calibrate, export and measure the shipped default model (sdk/models/default): the
fixed-camera label set (person, car, truck, bird, cat, dog, horse, other) from a native-16 px
airnet (x0.625 unless `--width`; training/backbones.py) and, in a routed bundle (docs/bundle.md),
a native-32 px airnet x0.5 for the larger crops, trained on 12 fine classes (CIFAR-10 +
person + background, plus the moving objects of the first half of each given clip) through random
camera degradations (training/fixedcam.py, training/clipmine.py, training/degrade.py's `Camera`).

Stages (each resumable / skipped when done; runs under benchmarks/runs/default_model/, each
finished run copied to benchmarks/checkpoints/default_<run>, from where a fresh machine resumes):
  0. (`--hr-epochs N`, 8 by default) an HR start: the same net for N epochs on the clean 32x32
     objects (`default_airnet32_hr8_w0.625`),
  1. train `airnet16_w0.625_hr8` from it for 50 epochs through the camera, then continue it for 30
     (`airnet16_cont_bg_w0.625_hr8`: a second cosine cycle from lr 0.05, with motion-free crops of the
     clips' first halves as background); x0.5 from scratch (the earlier default) keeps the plain names,
  1b. (`--upper-epochs N`, 20 by default) the routed bundle's 32 px net: its own 8-epoch HR start
     (`default_airnet32_hr8_w0.5`), then N epochs through the camera at 12-32 px
     (`default_airnet32_w0.5_hr8`), three further cycles at 14-32 px (`--upper-continue-epochs`,
     `default_airnet32_cont{,2,3}_w0.5_hr8`), then (`--prepool-epochs`, 16 by default) its cheaper
     successor distilled from it: the same weights with the first block pooling before its first
     convolution (`--prepool-arch`, airnet-prepool1: 40 MFLOPs instead of 54;
     `default_airnet32pp1_kd_w0.5_hr8`), the 32 px net the bundle ships; the route (the smallest crop size
     from which it beats the 16 px net on half the kept CIFAR test classes, `choose_route`, or
     `--route-at`) decides whether the bundle holds one net or both,
  2. export the fine 12-class bundle (routed when the route is taken) (not shipped; CIFAR-10 figures for the robust-training issue),
  3. fit a temperature (one per route) on half of the held-out crops through random cameras, the `unknown`
     threshold, and measure ECE + a reliability diagram on the other half,
  4. export the shipped bundle: temperature, the fine->coarse merge and the dropped classes inside
     the graph (`fixedcam.COARSE`, `fixedcam.DROPPED`),
  5. measure through the bundle, with the real OpenCV / Pillow kernels: CIFAR classes by kernel and
     resolution, person recall on held-out people by width, street windows called person; label
     purity of `lowres video` on both clips (whole clip, and tracks born in the held-out half);
     crops/s at batch 64 (run it on an otherwise idle machine for that figure).
Writes benchmarks/results/default_model.json, PNGs and docs/default_model.md.

    python benchmarks/default_model.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from clip_purity import clip_purity
from docs_table import kernel_table
from results_io import bundle_weights, restore, save_figure, train_and_commit, write_json
from runtime import measure

from lowres_sdk.bundle import CALIBRATION_KEYS, load_bundle
from lowres_sdk.video.tracking import TrackerConfig
from lowres_sdk.training import fixedcam
from lowres_sdk.training.checkpoint import load_checkpoint
from lowres_sdk.training.degrade import Camera
from lowres_sdk.training.recipe import Recipe

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

RESULTS = HERE / "results"
DOC = ROOT / "docs" / "default_model.md"
MAX_BUNDLE_MB = 2.0  # the shipped bundle's limit (issue 14)
VARIANTS = RESULTS / "default_model_variants.json"  # one row per net tried (`record_variant`)
BUNDLE = ROOT / "sdk" / "models" / "default"
DEFAULT_WIDTH, DEFAULT_HR_EPOCHS = 0.625, 8  # the shipped net's width and HR-start epochs (`--width`, `--hr-epochs`)
UPPER_WIDTH, UPPER_EPOCHS = 0.5, 20  # the routed bundle's 32 px model (`upper_recipe`)
UPPER_CONTINUE_EPOCHS, UPPER_CONTINUE_MIN = (20, 12, 12), 14  # its further cycles (`upper_continuation`)
PREPOOL_EPOCHS = (16,)  # then its cheaper pool-first successor's cycles, distilled from it (`prepool_recipe`; none: not)
PREPOOL_ARCH = "airnet-prepool1"  # that successor's net (one of `PREPOOL_ARCHS`)
PLAIN = (0.5, 0)  # the first shipped recipe's (width, HR epochs): its runs and checkpoints keep the plain names


def named(name: str, width: float, hr_epochs: int = 0) -> str:
    """A run's / checkpoint's name: other widths and HR starts than `PLAIN` say theirs."""
    if (width, hr_epochs) == PLAIN:
        return name
    return f"{name}_w{width:g}" + (f"_hr{hr_epochs}" if hr_epochs else "")


def committed(stage: str) -> Path:
    """Where the finished run of the training stage ``stage`` is committed (`train_stage` copies it there)."""
    return HERE / "checkpoints" / f"default_{stage}"


def checkpoint_dir(width: float, hr_epochs: int = 0) -> Path:
    """Where the first run of ``width`` is committed (the continuation starts from it)."""
    return committed(named("airnet16", width, hr_epochs))


def teacher_dir(width: float, hr_epochs: int) -> Path:
    """Where the HR start of ``width`` is committed (the first run starts from it)."""
    return committed(f"airnet32_hr{hr_epochs}_w{width:g}")


KEPT = ("car", "truck", "bird", "cat", "dog", "horse")  # the CIFAR classes the coarse label set keeps
THRESHOLDS = np.round(np.arange(0.30, 1.0, 0.01), 2)  # the "unknown" thresholds tried


def smallest_threshold(conf: np.ndarray, right: np.ndarray, precision: float) -> float | None:
    """The smallest of `THRESHOLDS` whose kept predictions (conf >= it) are >= ``precision`` right, or None."""
    for thr in THRESHOLDS:
        kept = conf >= thr
        if kept.any() and right[kept].mean() >= precision:
            return float(thr)
    return None


def recipe(data: str, epochs: int, source: str = "fixedcam", width: float = DEFAULT_WIDTH, hr_epochs: int = 0,
           **changes) -> Recipe:
    """The first run: from scratch, or (``hr_epochs``) from the committed HR start of the same net
    (paper 001's staged fine-tuning, every layer trainable)."""
    # The run records where its data was, relative to the repository (as the committed checkpoint does).
    if hr_epochs:
        changes = {"init": os.path.relpath(teacher_dir(width, hr_epochs), ROOT), **changes}
    return Recipe(**{**dict(method="lr", data=f"{source}:{os.path.relpath(data, ROOT)}", arch="airnet", width=width, resolution=16,
                            input_mode="native", fit="letterbox",
                            epochs=epochs, batch_size=128, lr=0.1, warmup_epochs=1, seed=0, degradation="camera", camera_min=6,
                            camera_max=32, label_smoothing=0.1, ema_decay=0.999), **changes})


def hr_recipe(data: str, epochs: int, width: float) -> Recipe:
    """The HR start: the same net on the 12 fine classes' clean 32x32 objects (no camera)."""
    return Recipe(method="hr", data=f"fixedcam:{os.path.relpath(data, ROOT)}", arch="airnet", width=width, epochs=epochs,
                  batch_size=128, lr=0.1, warmup_epochs=1, seed=0, label_smoothing=0.1)


def continuation(data: str, epochs: int, clip_background: bool, width: float = DEFAULT_WIDTH, hr_epochs: int = 0) -> Recipe:
    """The same recipe, started from the committed first run's weights (a path relative to the
    repository: main() runs there) for a second cosine cycle from half the rate; ``clip_background``:
    with the clips' motion-free crops as background (`fixedcam.load`)."""
    return recipe(data, epochs, "fixedcam+clipbg" if clip_background else "fixedcam", width,
                  init=os.path.relpath(checkpoint_dir(width, hr_epochs), ROOT), lr=0.05)


def upper_recipe(data: str, epochs: int) -> Recipe:
    """The routed bundle's second model, for the larger crops (from the size `choose_route` measures):
    airnet x0.5 fed 32x32 natively (54 MFLOPs), from its own HR start, through the camera at 12-32 px
    (the sizes it may be routed, and below), the clips' motion-free crops as background included."""
    return recipe(data, epochs, "fixedcam+clipbg", width=UPPER_WIDTH, hr_epochs=DEFAULT_HR_EPOCHS, resolution=32,
                  camera_min=12)


def upper_stage_name(cycle: int) -> str:
    """The 32 px model's run / checkpoint name after ``cycle`` further cycles (0: its first run)."""
    return named("airnet32" + ("_cont" if cycle else "") + (str(cycle) if cycle > 1 else ""), UPPER_WIDTH, DEFAULT_HR_EPOCHS)


def upper_continuation(data: str, epochs: int, cycle: int = 1) -> Recipe:
    """The 32 px model's further cosine cycle number ``cycle`` (from lr 0.05, halved each cycle), started
    from the committed checkpoint of the cycle before, through the camera at 14-32 px only: the crops
    it is routed (>= 12 or 16 px, as `choose_route` measures) and a margin below."""
    return recipe(data, epochs, "fixedcam+clipbg", width=UPPER_WIDTH, resolution=32, camera_min=UPPER_CONTINUE_MIN,
                  lr=0.05 / 2 ** (cycle - 1),
                  init=os.path.relpath(committed(upper_stage_name(cycle - 1)), ROOT))


# the pool-first nets: their stages' names, and which blocks pool before their first convolution
PREPOOL_ARCHS = {"airnet-prepool": ("airnet32pp", "each block"), "airnet-prepool1": ("airnet32pp1", "the first block")}


def prepool_stage_name(cycle: int, arch: str = PREPOOL_ARCH) -> str:
    """The pool-first 32 px model's (``arch``, one of `PREPOOL_ARCHS`) run / checkpoint name after its
    cosine cycle number ``cycle`` (1, 2, ...)."""
    return named(PREPOOL_ARCHS[arch][0] + "_kd" + (str(cycle) if cycle > 1 else ""), UPPER_WIDTH, DEFAULT_HR_EPOCHS)


def prepool_recipe(data: str, epochs: int, cycle: int = 1, arch: str = PREPOOL_ARCH) -> Recipe:
    """The 32 px model's cheaper successor (`--prepool-epochs`): the same weights as ``arch`` (its blocks,
    all in `airnet-prepool`, the first in `airnet-prepool1`, pool before their first convolution: 25 or 40
    MFLOPs instead of 54), distilled from the 32 px model's last cycle (kd, teacher and student on the same
    camera crop) at the sizes it is routed, 12-32 px. Cycle 1 starts from the teacher's weights at lr
    0.05, each further cycle from the cycle before at half the rate."""
    last = os.path.relpath(committed(upper_stage_name(len(UPPER_CONTINUE_EPOCHS))), ROOT)
    init = last if cycle == 1 else os.path.relpath(committed(prepool_stage_name(cycle - 1, arch)), ROOT)
    return recipe(data, epochs, "fixedcam+clipbg", width=UPPER_WIDTH, resolution=32, camera_min=12, arch=arch,
                  method="kd", teacher=last, kd_same_view=True, init=init, lr=0.05 / 2 ** (cycle - 1))


def camera_views(images: np.ndarray, aspects: np.ndarray, seed: int) -> list[np.ndarray]:
    """One random camera crop (uint8 BGR) of each stored test object: random kernel, size 6-32 px."""
    cam, rng = Camera(), np.random.default_rng(seed)
    return [np.ascontiguousarray(cam(img, float(a), rng)[..., ::-1]) for img, a in zip(images, aspects)]


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[float, list]:
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total, rows = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            acc, c = float((pred[m] == labels[m]).mean()), float(conf[m].mean())
            total += m.mean() * abs(acc - c)
            rows.append({"lo": round(lo, 3), "hi": round(hi, 3), "n": int(m.sum()), "accuracy": acc, "confidence": c})
    return float(total), rows


def softmax_t(log_p: np.ndarray, t: float) -> np.ndarray:
    z = log_p / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def merge_probs(p: np.ndarray, fine: list[str]) -> np.ndarray:
    """The shipped head on fine probabilities: `fixedcam.DROPPED` removed, the rest renormalized and
    summed into `fixedcam.COARSE` (as `export.graph.FusedModel` does on the logits)."""
    kept = p.copy()
    kept[:, [fine.index(c) for c in fixedcam.DROPPED]] = 0
    kept /= kept.sum(1, keepdims=True)
    return np.stack([kept[:, [fine.index(c) for c in members]].sum(1) for members in fixedcam.COARSE.values()], 1)


def coarse_index(fine: str) -> int:
    """The shipped label (its index in `fixedcam.COARSE`, the bundle's label order) of a fine class;
    -1 for the `fixedcam.DROPPED` ones."""
    return next((j for j, members in enumerate(fixedcam.COARSE.values()) if fine in members), -1)


def merged_head_top1(fine_clf, images: np.ndarray, fine_labels: np.ndarray, temps: list[float], resolutions) -> dict:
    """Top-1 (%) on the kept CIFAR classes (OpenCV area) of the earlier head -- airplane, deer, frog
    and ship all merged into `other` -- from the same fine network(s) as the shipped head (whose own
    figures are `cifar_kept_by_kernel`'s area row); ``temps``: each route's temperature."""
    from lowres_sdk.bundle import route_index
    from lowres_sdk.export.kernel_eval import shrink

    fine = fine_clf.labels
    labels = np.array([coarse_index(fine[i]) for i in fine_labels])
    out = {"kernel": "area", "images": len(images), "top1": {}}
    sides = [x.min_side for x in fine_clf.bundle.routes] or [0]
    for r in resolutions:
        t = temps[route_index(sides, r, r)]
        p = softmax_t(np.log(np.clip(fine_clf([shrink(i, r, "area") for i in images]).probs, 1e-12, 1)), t)
        merged = np.stack([p[:, [fine.index(c) for c in members]].sum(1) for members in fixedcam.COARSE.values()], 1)
        merged[:, list(fixedcam.COARSE).index("other")] += p[:, [fine.index(c) for c in fixedcam.DROPPED]].sum(1)
        out["top1"][str(r)] = round(100 * float((merged.argmax(1) == labels).mean()), 2)
    return out


def calibrate(fine_bundle: Path, test, precision: float, png: Path | None, seed: int = 1) -> dict:
    """Temperature (grid search on NLL; a routed bundle: one for each route, on the views routed to
    it) on the even-index half of the held-out objects seen through random cameras; ECE before/after
    and the `unknown` threshold measured on the odd half; the reliability diagram into ``png`` (None: none)."""
    from lowres_sdk import Classifier
    from lowres_sdk.bundle import route_index

    clf = Classifier(str(fine_bundle))
    fine = clf.labels
    to_coarse = np.array([coarse_index(c) for c in fine])
    test = test.subset(np.flatnonzero(to_coarse[test.labels] >= 0))  # objects of the dropped classes have no label
    coarse_labels = to_coarse[test.labels]
    views = camera_views(test.images, test.aspects, seed)
    log_p = np.log(np.clip(clf(views).probs, 1e-12, 1))
    sides = [r.min_side for r in clf.bundle.routes] or [0]
    route = np.array([route_index(sides, *v.shape[:2]) for v in views])
    fit, held = np.arange(len(views)) % 2 == 0, np.arange(len(views)) % 2 == 1
    grid = np.round(np.arange(0.5, 3.01, 0.05), 3)  # T minimizing the NLL of the shipped (coarse) probabilities
    temps = []
    for k in range(len(sides)):
        f = fit & (route == k)
        nll = [float(-np.log(merge_probs(softmax_t(log_p[f], t), fine)[np.arange(f.sum()), coarse_labels[f]] + 1e-12).mean())
               for t in grid]
        temps.append(float(grid[int(np.argmin(nll))]))
    t_view = np.array(temps)[route][:, None]  # each view's route's temperature
    t = temps[0]
    out = {"temperature": t, "fitted_on": f"{int(fit.sum())} held-out objects (even indices of the test split: CIFAR-10 test "
                                            f"of the classes the shipped head keeps, held-out people and street windows), each through one random "
                                            f"camera (6-32 px)" + (f"; one temperature per route ({', '.join(f'>= {a} px: {b:g}' for a, b in zip(sides, temps))}), "
                                                                   "each in its own graph" if len(sides) > 1 else ""),
           "method": "temperature scaling (grid search on the NLL of the shipped labels' probabilities)"}
    if len(sides) > 1:
        out["route_temperatures"] = temps
        out["route_fit_objects"] = [int((fit & (route == k)).sum()) for k in range(len(sides))]
    before_p, after_p = merge_probs(softmax_t(log_p[held], 1.0), fine), merge_probs(softmax_t(log_p[held], t_view[held]), fine)
    out["ece_before"], rows_before = ece(before_p, coarse_labels[held])
    out["ece_after"], rows_after = ece(after_p, coarse_labels[held])
    # unknown: the smallest threshold whose kept predictions are >= `precision` right (on the fitting half),
    # over all predictions, and per label over the predictions of that label (the strictest tried where none
    # reaches it): a label seldom wrong (person) needs a lower score than one often confused (cat, dog).
    p_fit = merge_probs(softmax_t(log_p[fit], t_view[fit]), fine)
    conf, pred = p_fit.max(1), p_fit.argmax(1)
    right = pred == coarse_labels[fit]
    out["unknown_below"] = smallest_threshold(conf, right, precision) or float(THRESHOLDS[-1])
    out["unknown_below_by_label"] = {
        label: (smallest_threshold(conf[pred == j], right[pred == j], precision) or float(THRESHOLDS[-1]))
        if (pred == j).any() else out["unknown_below"] for j, label in enumerate(fixedcam.COARSE)}
    out["target_precision"] = precision
    conf_h, pred_h = after_p.max(1), after_p.argmax(1)
    right_h = pred_h == coarse_labels[held]
    out["held_out"] = {"objects": int(held.sum()), "accuracy_all": round(float(right_h.mean()), 4)}
    per_label = np.array(list(out["unknown_below_by_label"].values()))
    for name, kept in (("", conf_h >= out["unknown_below"]), ("_by_label", conf_h >= per_label[pred_h])):
        out["held_out"]["coverage" + name] = round(float(kept.mean()), 4)
        out["held_out"]["accuracy_kept" + name] = round(float(right_h[kept].mean()), 4)
    out["ece_before"], out["ece_after"] = round(out["ece_before"], 4), round(out["ece_after"], 4)
    if png:
        reliability_png(rows_before, rows_after, png, t)
    return out


ROUTE_CANDIDATES = (12, 16, 20, 24, 28, 32)  # crop sizes (longer side) the 32 px model may take over from
ROUTE_MARGIN = 1.0  # top-1 points the 32 px model must gain where it takes over: it costs twice the FLOPs a crop


def choose_route(small, large, images: np.ndarray, fine_labels: np.ndarray) -> tuple[int | None, dict]:
    """The smallest of `ROUTE_CANDIDATES` from which the 32 px model (``large``, fine bundle) beats
    the 16 px one (``small``) by at least `ROUTE_MARGIN` points at that size and every larger one
    (it costs twice the FLOPs a crop): coarse top-1 on ``images`` (the even half of the kept CIFAR
    test classes) shrunk with OpenCV area. None: never."""
    from lowres_sdk.export.kernel_eval import shrink

    labels = np.array([coarse_index(small.labels[i]) for i in fine_labels])
    table = {}
    for r in ROUTE_CANDIDATES:
        views = [shrink(i, r, "area") for i in images]
        table[str(r)] = [round(100 * float((merge_probs(m(views).probs, m.labels).argmax(1) == labels).mean()), 2)
                         for m in (small, large)]
    at = None
    for r in reversed(ROUTE_CANDIDATES):
        if table[str(r)][1] < table[str(r)][0] + ROUTE_MARGIN:
            break
        at = r
    return at, {"images": len(images), "kernel": "area", "top1_16px_net_vs_32px_net": table, "margin": ROUTE_MARGIN, "route_at": at}


def reliability_png(before: list, after: list, path: Path, t: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    for rows, name in ((before, "T = 1"), (after, f"T = {t:g}")):
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=name)
    ax.set_xlabel("confidence (top coarse probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability, held-out objects through random cameras", fontsize=8)
    ax.legend()
    save_figure(fig, path)


def people_by_width(clf, crops: list[np.ndarray], widths, kernels) -> dict:
    from lowres_sdk.export.kernel_eval import shrink

    person = clf.labels.index("person")
    return {k: {str(w): round(100 * float((clf([shrink(c, w, k, "width") for c in crops]).indices == person).mean()), 2)
                for w in widths} for k in kernels}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--runs", type=Path, default=HERE / "runs" / "default_model")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--continue-epochs", type=int, default=30,
                   help="then continue the trained run for N more epochs (a second cosine cycle from lr 0.05); 0: ship the first run")
    p.add_argument("--clip-background", action=argparse.BooleanOptionalAction, default=True,
                   help="the continuation also learns motion-free crops of the clips' first halves as background")
    p.add_argument("--width", type=float, default=DEFAULT_WIDTH,
                   help="airnet width (the shipped net's by default; runs and checkpoints of widths and HR starts other than "
                        "x0.5 from scratch say theirs: airnet16_w<width>[_hr<N>]; benchmarks/default_capacity.py says "
                        "which widths fit the 2 MB bundle)")
    p.add_argument("--hr-epochs", type=int, default=DEFAULT_HR_EPOCHS,
                   help="first train the same net for N epochs on the clean 32x32 objects (an HR start, paper 001's staged "
                        "fine-tuning) and start the camera run from it; 0: from scratch. Runs and checkpoints say _hr<N>")
    p.add_argument("--fp16-weights", action=argparse.BooleanOptionalAction, default=True,
                   help="the shipped model.onnx stores its weights as FP16 (`lowres export --fp16-weights`): half the file")
    p.add_argument("--upper-epochs", type=int, default=UPPER_EPOCHS,
                   help="also train the routed bundle's 32 px model (airnet x0.5 fed 32 px, from its own 8-epoch HR start) for "
                        "N camera epochs and route crops to it from the size where it beats the 16 px net by >= ROUTE_MARGIN "
                        "(measured); 0: one "
                        "16 px model")
    p.add_argument("--upper-continue-epochs", type=int, nargs="*", default=list(UPPER_CONTINUE_EPOCHS),
                   help=f"then continue the 32 px model for N more epochs (a further cosine cycle from lr 0.05, camera at "
                        f"{UPPER_CONTINUE_MIN}-32 px: the sizes it is routed), once per N given, each from half the rate of "
                        "the one before; none (an empty list): ship its first run")
    p.add_argument("--prepool-epochs", type=int, nargs="*", default=list(PREPOOL_EPOCHS),
                   help="then ship its pool-first variant (--prepool-arch), started from its last cycle's weights and "
                        "distilled from them at 12-32 px for N epochs, once per N given (a cosine cycle each, from lr 0.05, "
                        "halved each cycle; see prepool_recipe); none (an empty list): ship the 32 px model itself. "
                        "Needs all of the default --upper-continue-epochs")
    p.add_argument("--prepool-arch", choices=list(PREPOOL_ARCHS), default=PREPOOL_ARCH,
                   help="which pool-first variant --prepool-epochs trains: every block pooling before its first convolution "
                        "(airnet-prepool, 25 MFLOPs) or the first block only (airnet-prepool1, 40 MFLOPs)")
    p.add_argument("--route-at", type=int, default=None,
                   help="route crops whose longer side is >= N px to the 32 px model whatever the measurement says "
                        "(default: from where it measures >= ROUTE_MARGIN better, see choose_route)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--unknown-precision", type=float, default=0.8,
                   help="`unknown` threshold: the smallest top probability whose kept predictions are this often right")
    p.add_argument("--no-train", action="store_true", help="Use the run as it is (e.g. to check the later stages early); "
                                                          "the shipped bundle is then not replaced.")
    args = p.parse_args()
    args.data, args.runs = args.data.resolve(), args.runs.resolve()
    os.chdir(ROOT)  # the recipes name the committed checkpoints relative to the repository
    torch.set_num_threads(args.threads)
    from lowres_sdk import Classifier
    from lowres_sdk.export.exporter import export_run
    from lowres_sdk.export.routed import export_routed
    from lowres_sdk.export.kernel_eval import DEFAULT_KERNELS, accuracy_by_kernel, heatmap

    train_set, test_set, info = fixedcam.load(args.data)
    train_seconds, hr_note = 0.0, ""
    if args.hr_epochs:
        run, saved = args.runs / teacher_dir(args.width, args.hr_epochs).name, teacher_dir(args.width, args.hr_epochs)
        meta = train_stage(hr_recipe(str(args.data), args.hr_epochs, args.width), run, saved, (train_set, test_set),
                           args.no_train)
        train_seconds = sum(h["seconds"] for h in meta["history"])
        hr_note = (f"{meta['epoch']} epochs on the clean 32x32 objects (lr 0.1, cosine; {100 * meta['history'][-1]['test_top1']:.1f} % "
                   f"on the 12-class test split at 32 px), then ")
        print(f"HR start {run} ({meta['epoch']} epochs)", flush=True)
    run, first_committed = args.runs / named("airnet16", args.width, args.hr_epochs), checkpoint_dir(args.width, args.hr_epochs)
    t0 = time.time()
    meta = train_stage(recipe(str(args.data), args.epochs, width=args.width, hr_epochs=args.hr_epochs), run, first_committed,
                       (train_set, test_set), args.no_train)
    print(f"trained {run} ({meta['epoch']} epochs, {sum(h['seconds'] for h in meta['history']):.0f} s of training) "
          f"[{time.time() - t0:.0f}s]", flush=True)
    train_seconds, epochs = train_seconds + sum(h["seconds"] for h in meta["history"]), meta["epoch"]
    schedule = hr_note + f"{epochs} epochs " + ("from those weights through the camera" if args.hr_epochs else "from scratch") + \
        " (lr 0.1, cosine)"
    if args.continue_epochs:
        name = "airnet16_cont_bg" if args.clip_background else "airnet16_cont"
        name = named(name, args.width, args.hr_epochs)
        run, saved = args.runs / name, committed(name)
        cont_train = train_set
        if args.clip_background:  # the data of the run the results describe
            cont_train, _, info = fixedcam.load(args.data, clip_background=True)
        meta = train_stage(continuation(str(args.data), args.continue_epochs, args.clip_background, args.width, args.hr_epochs),
                           run, saved, (cont_train, test_set), args.no_train)
        train_seconds, epochs = train_seconds + sum(h["seconds"] for h in meta["history"]), epochs + meta["epoch"]
        print(f"continued {run} ({meta['epoch']} more epochs)", flush=True)
        schedule += (f", then {meta['epoch']} more from those weights (a second cosine cycle from lr 0.05"
                     + (", with the clips' motion-free crops as background)" if args.clip_background else ")"))

    upper = None
    if args.upper_epochs:  # the routed bundle's 32 px model: its HR start, then the camera at 12-32 px
        teacher = teacher_dir(UPPER_WIDTH, DEFAULT_HR_EPOCHS)
        hr_meta = train_stage(hr_recipe(str(args.data), DEFAULT_HR_EPOCHS, UPPER_WIDTH), args.runs / teacher.name, teacher,
                              (train_set, test_set), args.no_train)
        name = upper_stage_name(0)
        clipbg_train = cont_train if args.continue_epochs and args.clip_background else \
            fixedcam.load(args.data, clip_background=True)[0]
        up_meta = train_stage(upper_recipe(str(args.data), args.upper_epochs), args.runs / name,
                              committed(name), (clipbg_train, test_set), args.no_train)
        schedule_up = (f"{hr_meta['epoch']} epochs on the clean 32x32 objects (lr 0.1, cosine; "
                       f"{100 * hr_meta['history'][-1]['test_top1']:.1f} % on the 12-class test split at 32 px), then "
                       f"{up_meta['epoch']} epochs from those weights through the camera at "
                       f"{up_meta['recipe']['camera_min']}-{up_meta['recipe']['camera_max']} px (lr 0.1, cosine, "
                       "with the clips' motion-free crops as background)")
        history = hr_meta["history"] + up_meta["history"]
        if args.prepool_epochs and tuple(args.upper_continue_epochs) != UPPER_CONTINUE_EPOCHS:
            raise SystemExit("--prepool-epochs starts from the last of the default --upper-continue-epochs cycles")
        teacher_mflops = up_meta["mflops"]
        # further cosine cycles of the 32 px net, then those of its pool-first successor distilled from it
        stages = [(upper_stage_name(c), upper_continuation(str(args.data), n, c))
                  for c, n in enumerate(args.upper_continue_epochs, 1)]
        stages += [(prepool_stage_name(c, args.prepool_arch), prepool_recipe(str(args.data), n, c, args.prepool_arch))
                   for c, n in enumerate(args.prepool_epochs, 1)]
        for name, rec in stages:
            arch_before = up_meta["recipe"]["arch"]
            up_meta = train_stage(rec, args.runs / name, committed(name), (clipbg_train, test_set), args.no_train)
            history += up_meta["history"]
            pr = up_meta["recipe"]
            schedule_up += (f"; then the same weights with {PREPOOL_ARCHS[pr['arch']][1]} pooling before its first convolution ({pr['arch']}: "
                            f"{up_meta['mflops']:.1f} MFLOPs instead of {teacher_mflops:.1f}), {up_meta['epoch']} more epochs at "
                            f"{pr['camera_min']}-{pr['camera_max']} px distilled from the net before (kd, alpha {pr['kd_alpha']:g}, "
                            f"tau {pr['kd_tau']:g}, teacher and student on the same camera crop; lr {pr['lr']:g}, cosine)"
                            if pr["arch"] != arch_before else
                            f", then {up_meta['epoch']} more at {pr['camera_min']}-{pr['camera_max']} px (a further cosine "
                            f"cycle from lr {pr['lr']:g})")
        upper = {"run": args.runs / name, "recipe": up_meta["recipe"], "params": up_meta["params"], "mflops": up_meta["mflops"],
                 "train_seconds": round(sum(h["seconds"] for h in history)), "schedule": schedule_up,
                 "weights_sha256": up_meta["weights_sha256"]}
        train_seconds += upper["train_seconds"]
        print(f"trained the 32 px model {upper['run']} ({up_meta['epoch']} epochs)", flush=True)

    rng = np.random.default_rng(0)
    calib = train_set.subset(np.sort(rng.choice(len(train_set), 600, replace=False)))
    cifar_test = test_set.subset(np.flatnonzero(test_set.labels < 10))
    kept_idx = [fixedcam.FINE.index(c) for c in ("automobile", "truck", "bird", "cat", "dog", "horse")]
    mask = np.isin(cifar_test.labels, kept_idx)
    fine_bundle = args.runs / "bundle_fine"
    if bundle_weights(fine_bundle) != meta["weights_sha256"]:  # none yet, or one of other weights
        export_run(run, fine_bundle, test_set=test_set, calib_set=calib, log=print, overwrite=True)
    routes, route_choice = [(0, run)], None
    if upper:
        fine32 = args.runs / "bundle_fine32"
        if bundle_weights(fine32) != upper["weights_sha256"]:
            export_run(upper["run"], fine32, test_set=test_set, calib_set=calib, log=print, overwrite=True)
        even = np.flatnonzero(mask)[::2]  # route chosen on half the kept test images (the calibration's fitting half)
        route_at, route_choice = choose_route(Classifier(str(fine_bundle)), Classifier(str(fine32)), cifar_test.images[even],
                                              cifar_test.labels[even])
        if args.route_at is not None:
            route_at = route_choice["route_at"] = args.route_at
            route_choice["forced"] = True
        print("route", json.dumps(route_choice), flush=True)
        if route_at is not None:
            routes.append((route_at, upper["run"]))
            fine_bundle = args.runs / "bundle_fine_routed"
            export_routed(routes, fine_bundle, test_set=test_set, calib_set=calib, log=print, overwrite=True)
    calibration = calibrate(fine_bundle, test_set, args.unknown_precision,  # a --no-train run leaves the results alone
                            None if args.no_train else RESULTS / "default_model_reliability.png")
    print("calibration", json.dumps(calibration), flush=True)

    staging = args.runs / "bundle_default"
    if staging.exists():
        shutil.rmtree(staging)
    from lowres_sdk.errors import ExportError

    temps = calibration.get("route_temperatures", [calibration["temperature"]])
    heads = [{"temperature": t, "merge": {k: list(v) for k, v in fixedcam.COARSE.items()}, "drop": list(fixedcam.DROPPED)}
             for t in temps]
    int8_log = []  # the export's INT8 verdicts, for the doc

    def log(msg) -> None:
        print(msg, flush=True)
        if "INT8" in str(msg) and "calibrating" not in str(msg):
            int8_log.append(str(msg))

    shipped_args = dict(test_set=test_set, calib_set=calib, log=log, fp16_weights=args.fp16_weights,
                        calibration={k: calibration[k] for k in CALIBRATION_KEYS})
    if len(routes) > 1:  # INT8 for the routes that pass the export's gates, if the bundle stays small enough
        export_routed(routes, staging, int8=True, heads=heads, max_mb=MAX_BUNDLE_MB, **shipped_args)
    else:
        try:  # INT8 ships only if the export's accuracy and speed gates pass
            export_run(run, staging, int8=True, head=heads[0], **shipped_args)
        except ExportError as e:
            print(f"INT8 refused ({e}); shipping FP32 only", flush=True)
            export_run(run, staging, head=heads[0], **shipped_args)

    results = {"recipe": meta["recipe"], "data": info, "params": meta["params"], "mflops": meta["mflops"],
               "train_seconds": round(train_seconds), "epochs": epochs, "schedule": schedule,
               "history": meta["history"], "calibration": calibration, "upper": upper and {k: v for k, v in upper.items()
                                                                                          if k not in ("run", "weights_sha256")},
               "route": route_choice, "int8_log": int8_log}
    resolutions = (8, 12, 16, 24, 32)
    # Issue 13's figures: the fine model on the full CIFAR-10 test split, by real kernel.
    fine = Classifier(str(fine_bundle))
    rep = accuracy_by_kernel(fine, list(cifar_test.images), cifar_test.labels, DEFAULT_KERNELS, resolutions)
    results["cifar10_fine_by_kernel"] = rep
    if not args.no_train:  # the committed heat maps describe the shipped bundle
        heatmap(rep, RESULTS / "default_model_cifar10_kernels.png", "fine 12-class model, CIFAR-10 test (10k): top-1 % by kernel")
    # Issue 14's: the shipped coarse model on the CIFAR classes it keeps.
    shipped = Classifier(str(staging))
    assert shipped.labels == list(fixedcam.COARSE), shipped.labels  # coarse_index gives the bundle's label order
    labels = np.array([coarse_index(fixedcam.FINE[l]) for l in cifar_test.labels[mask]])
    rep = accuracy_by_kernel(shipped, list(cifar_test.images[mask]), labels, DEFAULT_KERNELS, resolutions)
    results["cifar_kept_by_kernel"] = rep
    results["merged_head"] = merged_head_top1(fine, cifar_test.images[mask], cifar_test.labels[mask], temps, resolutions)
    if not args.no_train:
        heatmap(rep, RESULTS / "default_model_kept_kernels.png", "shipped model, CIFAR test, kept classes: top-1 % by kernel")
    # People and street windows, from the original (non-square) held-out crops.
    _, people_test, _ = fixedcam.people(args.data / "person-reid-48x128.tar.gz", args.data / "pedestrians-mit-64x128.tar.gz")
    _, windows_test, _ = fixedcam.backgrounds(args.data / "street-background-64x128.tar.gz")
    widths = (8, 12, 16, 24, 32, 48)
    results["person_recall_by_width"] = people_by_width(shipped, people_test, widths, DEFAULT_KERNELS)
    results["windows_called_person_by_width"] = people_by_width(shipped, windows_test, widths, DEFAULT_KERNELS)
    results["windows_labels_at_16px_area"] = _label_counts(shipped, windows_test, 16)
    results["video"] = []
    for clip in ("pedestrians-480x360.avi", "highway-cars-1280x720.mp4"):
        # as `lowres video` runs it: one thread, the INT8 model when the bundle ships one
        row = clip_purity(args.data / "video" / clip, Classifier(str(staging), threads=1, precision="auto"))
        for name, threshold in (("without_unknown", None), ("one_threshold", calibration["unknown_below"])):
            row[name] = clip_purity(args.data / "video" / clip, Classifier(str(staging), threads=1, precision="auto",
                                                                           unknown_below=threshold))
        # tracks reported however little they travel (`lowres video --min-travel 0`)
        row["travel_off"] = clip_purity(args.data / "video" / clip, Classifier(str(staging), threads=1, precision="auto"),
                                        tracker=TrackerConfig(min_travel=0))
        results["video"].append(row)
        print("video", json.dumps(row), flush=True)
    reference = reference_bundle(args.runs / f"bundle_reference_{REFERENCE_COMMIT}")
    speed = {f"{h}x{w}": crops_per_second({"shipped": staging, **({"reference": reference} if reference else {})}, (h, w))
             for h, w in SPEED_SHAPES}
    results["speed"] = {shape: sp["shipped"] for shape, sp in speed.items()}
    results["speed_reference"] = reference and {"commit": REFERENCE_COMMIT, "floor_set_at": REFERENCE_SPEED,
                                                "model": reference_model_text(reference),
                                                "fp32": {shape: sp["reference"]["fp32"] for shape, sp in speed.items()}}
    print("speed", json.dumps(speed), flush=True)
    results["bundle"] = {"files": {n: i["bytes"] for n, i in shipped.bundle.meta["files"].items()},
                         "metrics": bundle_metrics(shipped.bundle),
                         "parity": shipped.bundle.meta["parity"]["max_abs_diff"],
                         "weights_storage": shipped.bundle.meta["provenance"].get("weights_storage", "fp32"),
                         "head_drop": (shipped.bundle.meta["provenance"].get("head") or {}).get("drop")}
    record_variant(f"{named('airnet16', args.width, args.hr_epochs)} (drops {'/'.join(fixedcam.DROPPED)})"
                   + (f" + airnet32 x{UPPER_WIDTH:g}" + "".join(f" +{n} epochs" for n in args.upper_continue_epochs)
                      + (f" -> {args.prepool_arch} kd" + "".join(f" +{n} epochs" for n in args.prepool_epochs)
                         if args.prepool_epochs else "")
                      + f" from {routes[1][0]} px" if len(routes) > 1 else ""), results,
                   shipped=not args.no_train)
    if args.no_train:
        print(json.dumps({k: results[k] for k in ("calibration", "person_recall_by_width", "windows_called_person_by_width")}))
        print(json.dumps(results["cifar_kept_by_kernel"]["top1"]), json.dumps(results["cifar10_fine_by_kernel"]["top1"]))
        return
    write_json(RESULTS / "default_model.json", results)
    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)  # the package's own shipped bundle, replaced by its script
    shutil.copytree(staging, BUNDLE)
    write_doc(results)
    print(json.dumps(results["bundle"]), flush=True)


def record_variant(name: str, r: dict, shipped: bool) -> None:
    """The headline figures of this run under ``name`` in `VARIANTS` (each run of the script, also
    `--no-train`, replaces its own row), so docs/default_model.md compares the nets tried."""
    rows = json.loads(VARIANTS.read_text()) if VARIANTS.exists() else {}
    kept, video = r["cifar_kept_by_kernel"], {v["clip"]: v for v in r["video"]}
    rows[name] = {
        "net": f"{r['recipe']['arch']} x{r['recipe']['width']:g}" + (
            f" + {r['upper']['recipe']['arch']} x{r['upper']['recipe']['width']:g} at 32 px for crops >= {r['route']['route_at']} px"
            if (r.get("route") or {}).get("route_at") else ""),
        "mflops": r["mflops"] if not (r.get("route") or {}).get("route_at") else f"{r['mflops']:g} / {r['upper']['mflops']:g}",
        "params": r["params"],
        "schedule": r["schedule"], "train_seconds": r["train_seconds"],
        "head_drops": list(r["bundle"].get("head_drop") or ()),
        "kept_area": {x: kept["top1"]["area"][x] for x in ("8", "12", "16", "32")},
        "kept_min_over_kernels": {x: kept["min_over_kernels"][x] for x in ("8", "12", "16", "32")},
        "person_recall_min": min(min(v.values()) for v in r["person_recall_by_width"].values()),
        "windows_as_person_max": max(max(v.values()) for v in r["windows_called_person_by_width"].values()),
        "clip_purity": {c: [v["label_purity"], v["held_out"]["label_purity"]] for c, v in video.items()},
        "bundle_mb": round(sum(r["bundle"]["files"].values()) / 1e6, 2),
        # FP32 crops/s at 32x32, and the issue's own default bundle's in the same run (`speed_reference_text`)
        "speed_32x32": {"fp32": (r.get("speed") or {}).get("32x32", {}).get("fp32"),
                        "reference_fp32": ((r.get("speed_reference") or {}).get("fp32") or {}).get("32x32")},
        "shipped": shipped or rows.get(name, {}).get("shipped", False)}  # re-measuring the shipped net keeps it so
    if shipped:
        for other in rows.values():
            other["shipped"] = False
        rows[name]["shipped"] = True
    write_json(VARIANTS, rows)


def train_stage(rec: Recipe, run: Path, saved: Path, data, no_train: bool) -> dict:
    """Train ``rec`` into ``run`` (resumed; started from the committed copy ``saved`` when ``run`` is new),
    then commit its finished copy; ``no_train``: the run as it is. Returns its metadata."""
    restore(run, saved)
    if no_train:
        return load_checkpoint(run)[1]
    return train_and_commit(rec, run, saved, data)


# 32x32: the runtime benchmark's crop (issue 14's floor); in the shipped routed bundle the 32 px model takes the
# first three, its 16 px model the last
SPEED_SHAPES = ((32, 32), (32, 16), (16, 8), (10, 5))
# The default model when issue 14 set its 5,000 crops/s floor ("not slower"), measured in the same run: the
# floor was set on a VM where it did REFERENCE_SPEED (benchmarks/results/runtime.json then: 32x32, batch 64, FP32).
REFERENCE_COMMIT, REFERENCE_SPEED, SPEED_FLOOR = "94a376c", 9031.8, 5000


def reference_bundle(dest: Path) -> Path | None:
    """The default bundle as committed at `REFERENCE_COMMIT`, from git history into ``dest``; None (with
    the reason printed) where the history is not there (e.g. a shallow clone)."""
    import subprocess

    where = "sdk/models/default"
    try:
        names = subprocess.run(["git", "ls-tree", "--name-only", f"{REFERENCE_COMMIT}:{where}"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split()
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            (dest / name).write_bytes(subprocess.run(["git", "show", f"{REFERENCE_COMMIT}:{where}/{name}"], cwd=ROOT,
                                                     check=True, capture_output=True).stdout)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"no reference speed: git cannot give {where} at {REFERENCE_COMMIT} ({e})", flush=True)
        return None
    return dest


def reference_model_text(bundle: Path) -> str:
    """What the reference bundle's net is, from its own provenance (e.g. "resnet20 fed 16 px, 20.4 MFLOPs")."""
    prov = load_bundle(bundle).meta["provenance"]
    return f"{prov['recipe']['arch']} fed {prov['recipe']['resolution']} px, {prov['mflops']:g} MFLOPs"


def crops_per_second(bundles: dict[str, Path], shape: tuple[int, int], seconds: float = 1.5, repeats: int = 5) -> dict:
    """`Classifier` throughput of each of ``bundles`` on 64 crops of ``shape`` (h, w) px per call (2 onnxruntime
    threads), FP32 and (the first bundle, when it ships one) INT8: best of ``repeats`` windows of ``seconds``
    after one warm-up window, the bundles' windows interleaved (this VM's speed drifts over minutes).
    Returns {name: {precision: crops/s, or why there is none}}."""
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
            measure(clfs[name, precision], crops, len(crops), seconds)  # warm-up (the first runs on this VM are slow)
            out[name][precision] = 0
    for _ in range(repeats):
        for (name, precision), clf in clfs.items():
            out[name][precision] = max(out[name][precision], round(measure(clf, crops, len(crops), seconds)["crops_per_s"]))
    return out


def _label_counts(clf, crops, width) -> dict:
    from collections import Counter

    from lowres_sdk.export.kernel_eval import shrink

    return dict(Counter(clf([shrink(c, width, "area", "width") for c in crops]).labels))


def bundle_metrics(bundle) -> dict | list[dict]:
    """A bundle's export metrics; a routed bundle's, one dict per route."""
    return bundle.meta["metrics"] or [r.metrics for r in bundle.routes]


def int8_verdict(r: dict) -> str:
    """What the export's INT8 gates said, per route of a routed bundle, and whether INT8 shipped (a routed
    bundle's routes keep their gates' figures also when the size cap then shipped FP32 only)."""
    m = r["bundle"]["metrics"]
    shipped = "model.int8.onnx" in r["bundle"]["files"]
    routed = isinstance(m, list)
    parts = []
    for i, metrics in enumerate(m if routed else [m]):
        top1 = next((k for k in metrics if k.startswith("int8_top1_at")), None)
        if top1 is None:
            continue
        verdict = f"refused: {metrics['int8_refused']}" if metrics.get("int8_refused") else "passed"
        speed = f", {metrics['int8_speedup_batch64']}x FP32 speed at batch 64" if metrics.get("int8_speedup_batch64") else ""
        parts.append(f"{f'route {i}: ' if routed else ''}INT8 top-1 {metrics[top1]} vs FP32 "
                     f"{metrics.get(top1.replace('int8_', ''))}{speed} ({verdict})")
    log = [x for x in r.get("int8_log") or [] if "bundle is" in x]  # the size check's verdict
    return ("shipped" if shipped else "not shipped") + (" (" + "; ".join(parts + log) + ")" if parts or log else "")


def write_doc(r: dict) -> None:
    def people(rep: dict) -> list[str]:
        ws = list(next(iter(rep.values())))
        rows = ["| kernel | " + " | ".join(f"{w} px wide" for w in ws) + " |", "|---|" + "---|" * len(ws)]
        return rows + [f"| {k} | " + " | ".join(f"{v[w]:.1f}" for w in ws) + " |" for k, v in rep.items()]

    c, d = r["calibration"], r["data"]
    kept = r["cifar_kept_by_kernel"]
    lines = ["# The shipped default model", "",
             "Written by `python benchmarks/default_model.py` from its last run (JSON: `benchmarks/results/default_model.json`). "
             "Every figure goes through the exported bundle with the torch-free runtime; test images are shrunk with the "
             "real OpenCV / Pillow functions named in each table (`lowres_sdk.export.kernel_eval`).", "",
             "## What it is", "",
             f"- Labels: **{', '.join(fixedcam.COARSE)}** -- what a street or building camera sees. `other` = no object of "
             f"interest: the fine classes {', '.join(fixedcam.COARSE['other'])} (street background"
             + (" and CIFAR's frog: a green-brown blob on grass, whose probability on a street camera's crops is grass, gravel "
                "and leaves -- the textures a motion detector hands over" if "frog" in fixedcam.COARSE["other"] else "") + "). "
             f"CIFAR's {', '.join(fixedcam.DROPPED)}, which such a camera does not see, are trained on (negatives that shape "
             "the features) and left out of the shipped head: their logits are removed inside the graph before the softmax. "
             "On a street camera's images their probability is mass taken from the classes it does see: all four of "
             "airplane, deer, frog and ship merged into `other` (the earlier bundles) pulled cats, birds and horses into "
             f"`other` -- the same network scores {r['merged_head']['top1']['16']:.1f} % on the kept CIFAR classes at 16 px "
             f"(area) with that head, {kept['top1']['area']['16']:.1f} % with the shipped one (8 px: "
             f"{r['merged_head']['top1']['8']:.1f} -> {kept['top1']['area']['8']:.1f}; `merged_head` in the JSON). "
             "Which classes to drop is a trade measured below (\"The nets tried\"): dropping frog too gains CIFAR points; "
             "with the single 16 px net it lost the background fragments that merged frog absorbed, with the routed pair "
             "it does not (the clips' label purity is the same with either head).",
             f"- Network: {r['recipe']['arch']} x{r['recipe']['width']:g} (training/backbones.py) fed **16x16 natively** "
             f"({r['mflops']} MFLOPs, {r['params']:,} params), trained on 12 fine "
             f"classes (CIFAR-10 + person + background): {r.get('schedule', str(r['epochs']) + ' epochs')} ({r['train_seconds'] / 60:.0f} min of "
             "training on the 2-core CPU), label smoothing 0.1, EMA 0.999."
             + (f" **Routed** (docs/bundle.md, schema version 2): crops whose longer side is >= {r['route']['route_at']} px go "
                f"to a second net in the same graph, {r['upper']['recipe']['arch']} x{r['upper']['recipe']['width']:g} fed "
                f"**32x32 natively** ({r['upper']['mflops']} MFLOPs, {r['upper']['params']:,} params): {r['upper']['schedule']} "
                f"({r['upper']['train_seconds'] / 60:.0f} min; the minutes above count both nets). The route is where the 32 px net "
                f"starts to beat the 16 px one by >= {r['route'].get('margin', 0):g} point (it costs "
                f"{r['upper']['mflops'] / r['mflops']:.1f}x the FLOPs a crop), measured on the even half of the kept CIFAR "
                "test classes (area; coarse top-1 "
                "% of the 16 px net / the 32 px net: " + ", ".join(f"{k} px {a:.1f} / {b:.1f}" for k, (a, b) in
                                                             r["route"]["top1_16px_net_vs_32px_net"].items()) + ")."
                if r.get("route") and r["route"].get("route_at") else "")
             + (" A 32 px net was trained but loses to the 16 px one at every candidate size, so the bundle holds one model."
                if r.get("route") and not r["route"].get("route_at") else ""),
             "- Every training sample goes through a random camera (`Camera` in training/degrade.py): box jitter +-20 %, "
             "square objects cut and stretched to aspects 1:2.5-2.5:1, people kept at their aspect x/÷1.25, defocus or "
             "motion blur, a random real downscale kernel (OpenCV area/linear/cubic/nearest/Lanczos, Pillow "
             f"bicubic/bilinear, our antialiased bilinear) to a long side of {r['recipe']['camera_min']}-{r['recipe']['camera_max']} "
             "px, Gaussian + Poisson noise, JPEG "
             "30-95 -- then the exported graph's own letterbox + resize. So neither shape, padding nor kernel names a class.",
             f"- Data: CIFAR-10 train; people: {d['person_train']} crops (re-ID identities except every 5th, held out: "
             f"{len(d['reid_held_out_ids'])} ids; MIT crops except every 5th), repeated x{d['person_repeat']}; background: "
             f"{d['background_train_crops']} street windows and random sub-windows of them from {d['background_scenes'] - len(d['background_held_out_scenes'])} "
             f"scenes ({len(d['background_held_out_scenes'])} scenes held out). From the two given clips, the moving objects of "
             "their first half (training/clipmine.py: motion boxes of tracks seen on >= 5 frames, <= 12 crops a track, "
             "labelled by clip: " + ", ".join(f"{k} -> {v['label']} {v['crops']} crops from {v['tracks']} tracks, x{v['repeat']}"
                                              for k, v in d.get("clips", {}).items()) + "); "
             + ("and motion-free crops of the same frames as background (training/clipmine.py `background`: random boxes of "
                "12-64 px clear of every motion box: road, grass, floor, signs, parts of parked cars; "
                + ", ".join(f"{k} {v['background']['crops']}" for k, v in d.get("clips", {}).items()) + "); "
                if any("background" in v for v in d.get("clips", {}).values()) else "")
             + "their second half is held out.",
             f"- Calibration: {c['method']}, T = {c['temperature']}, fitted on {c['fitted_on']}. Expected calibration error of "
             f"the coarse probabilities on the other half: **{c['ece_before']:.3f} -> {c['ece_after']:.3f}** "
             "(15 bins; diagram: `benchmarks/results/default_model_reliability.png`). `unknown` below a top probability "
             "that depends on the label: for each label the smallest threshold whose kept predictions *of that label* are >= "
             f"{100 * c['target_precision']:.0f} % right on the fitting half (`calibration.unknown_below_by_label` in bundle.json): "
             + ", ".join(f"{k} **{v:g}**" for k, v in c["unknown_below_by_label"].items())
             + f". On the other half these keep {100 * c['held_out']['coverage_by_label']:.1f} % of the objects at "
             f"{100 * c['held_out']['accuracy_kept_by_label']:.1f} % accuracy (all: {100 * c['held_out']['accuracy_all']:.1f} %); "
             f"one threshold for every label (the same rule over all predictions: {c['unknown_below']:g}, the earlier "
             f"bundles' only one) keeps {100 * c['held_out']['coverage']:.1f} % at {100 * c['held_out']['accuracy_kept']:.1f} %. "
             "The per-label thresholds matter on video: person predictions are seldom wrong, so a person seen small or "
             "cut off no longer falls under a threshold set by the cat/dog confusions.",
             "- Bundle: " + ", ".join(f"{n} {b / 1e6:.2f} MB" for n, b in r["bundle"]["files"].items()) +
             (" (model.onnx stores its weights as FP16, computes in FP32)" if r["bundle"].get("weights_storage") == "fp16" else "") +
             f"; parity (onnxruntime vs torch) {r['bundle']['parity']:.1e}. INT8 is shipped when the export's gates pass "
             "(<= 1 point top-1 loss, >= 1.1x FP32 speed at batch 64; docs/deployment.md): " + int8_verdict(r) + ".", "",
             "## CIFAR classes it keeps (car, truck, bird, cat, dog, horse), CIFAR-10 test, top-1 % (coarse labels)", "",
             f"{kept['images']} test images, shrunk to the resolution (square) by each kernel; a prediction of any other label "
             "(`other`, `person`, a wrong animal) counts as wrong.", "", *kernel_table(kept), "",
             "## Person recall on held-out people (%), by crop width", "",
             "Held-out re-ID identities and held-out MIT crops (original 48x128 / 64x128, aspect kept), shrunk to the width.", "",
             *people(r["person_recall_by_width"]), "",
             "## Held-out person-free street windows labelled `person` (%), by width", "",
             *people(r["windows_called_person_by_width"]), "",
             f"Their labels at 16 px wide (area): {r['windows_labels_at_16px_area']}.", "",
             "## The 12-class network on the full CIFAR-10 test split (top-1 %, argmax over all 12 classes)", "",
             *kernel_table(r["cifar10_fine_by_kernel"]), ""]
    if r.get("video"):
        def share(p: dict) -> str:
            return f"{100 * p['label_purity']:.1f} %" if p["label_purity"] is not None else "-"

        lines += ["## Label purity on the given clips", "",
                  "The pipeline with its defaults (`lowres video CLIP`: the bundle's INT8 model, motion crops, tracks reported after 3 processed frames "
                  f"and once their centre moved {TrackerConfig().min_travel:g} box sides from where they were first seen, "
                  "`other` not reported (however unsure: when no object is the best guess the track is background), a track's label = its "
                  "size-weighted evidence, `unknown` below its label's calibrated threshold); "
                  "a track's label = the label most of its reported boxes carry. The model trained on the moving objects of each "
                  "clip's first half, so **held-out** = the tracks first seen in the second half (the same camera, other "
                  "people and cars -- though a car of the first half may still be in view).", "",
                  "| clip | reported tracks | labelled right | unknown | labels | held-out tracks | held-out right | held-out unknown | "
                  "held-out, one threshold for all labels | held-out, no unknown threshold | held-out, reported however little they "
                  "travel (`--min-travel 0`) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in r["video"]:
            h = v["held_out"]
            lines.append(f"| {v['clip']} | {v['tracks']} | {share(v)} | {100 * v['unknown_share']:.1f} % | {v['labels']} | "
                         f"{h['tracks']} | {share(h)} | {100 * (h['unknown_share'] or 0):.1f} % | "
                         f"{share(v['one_threshold']['held_out'])} | {share(v['without_unknown']['held_out'])} | "
                         + (f"{share(v['travel_off']['held_out'])} ({v['travel_off']['held_out']['tracks']} tracks) |"
                            if "travel_off" in v else "- |"))
        lines.append("")
    if r.get("speed"):
        lines += ["## Speed", "", "`Classifier()` on 64 crops per call, 2 onnxruntime threads, best of 5 x 1.5 s (run on an "
                  "otherwise idle machine for these to mean anything)"
                  + (" -- in a routed bundle the crop size picks the net" if r.get("upper") else "") + ": "
                  + "; ".join(f"{shape} px: " + ", ".join(f"{k.upper()} {v:,} crops/s" if isinstance(v, int) else f"{k.upper()} not shipped"
                                                          for k, v in sp.items()) for shape, sp in r["speed"].items())
                  + f" (the issue's floor: {SPEED_FLOOR:,} FP32)." + speed_reference_text(r), ""]
    if VARIANTS.exists():
        lines += variants_table(json.loads(VARIANTS.read_text()))
    DOC.write_text("\n".join(lines) + "\n")


def speed_reference_text(r: dict) -> str:
    """The speed floor in this machine's terms: the issue's default model measured in the same run."""
    ref = r.get("speed_reference")
    if not ref or not isinstance(ref["fp32"].get("32x32"), int):
        return ""
    here, ours = ref["fp32"]["32x32"], r["speed"]["32x32"]["fp32"]
    return (f" The floor was set when the default model was commit {ref['commit']}'s ({ref['model']}), "
            f"which did {ref['floor_set_at']:,.0f} crops/s on 32x32 crops on that session's machine (batch 64, FP32, 2 threads); "
            f"measured in this run, that bundle does {here:,} on this machine ({here / ref['floor_set_at']:.2f}x that one), "
            f"so the floor in this machine's terms is {SPEED_FLOOR * here / ref['floor_set_at']:,.0f}: the shipped bundle does "
            f"{ours / here:.2f}x the issue's model on 32x32 crops (the floor allows {SPEED_FLOOR / ref['floor_set_at']:.2f}x; "
            "per crop shape, shipped / issue's model: "
            + ", ".join(f"{shape} {sp['fp32']:,} / {ref['fp32'][shape]:,}" for shape, sp in r["speed"].items()
                        if isinstance(sp.get("fp32"), int) and isinstance(ref["fp32"].get(shape), int)) + ").")


def _speed_cell(sp: dict) -> str:
    if not sp.get("fp32"):
        return "-"  # rows measured before the script measured 32x32 crops
    return f"{sp['fp32']:,}" + (f" ({sp['reference_fp32']:,})" if sp.get("reference_fp32") else "")


def variants_table(rows: dict) -> list[str]:
    out = ["## The nets tried (one seed each; `benchmarks/results/default_model_variants.json`)", "",
           "Each row is one run of this script (`--width`, `--hr-epochs`; `--no-train` measures an existing run without "
           "shipping it). Kept CIFAR classes: 6,000 CIFAR-10 test images shrunk to the size with OpenCV area (and the "
           "worst of the six kernels); clip purity: share of reported tracks labelled right, whole clip / held-out half; "
           "train min: wall time on the shared 2-core CPU.", "",
           "| run | net | MFLOPs | bundle MB | head drops | train min | kept 8 / 12 / 16 / 32 px, area | worst kernel | "
           "person recall (min) | windows as person (max) | pedestrians clip | highway clip | 32x32 crops/s (issue's model) | "
           "shipped |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in rows.items():
        pur = v["clip_purity"]
        out.append(f"| {name} | {v['net']} | {v['mflops'] if isinstance(v['mflops'], str) else format(v['mflops'], 'g')} | {v['bundle_mb']:.2f} | {', '.join(v['head_drops']) or '-'} | "
                   f"{v['train_seconds'] / 60:.0f} | " + " / ".join(f"{x:.1f}" for x in v["kept_area"].values()) + " | "
                   + " / ".join(f"{x:.1f}" for x in v["kept_min_over_kernels"].values())
                   + f" | {v['person_recall_min']:.1f} | {v['windows_as_person_max']:.1f} | "
                   + " | ".join(f"{100 * a:.1f} / {100 * b:.1f} %" for a, b in (pur.get("pedestrians-480x360.avi", [0, 0]),
                                                                           pur.get("highway-cars-1280x720.mp4", [0, 0])))
                   + f" | {_speed_cell(v.get('speed_32x32') or {})} | {'yes' if v['shipped'] else ''} |")
    return out + ["", "What the rows say: at the same network (x0.5, first row and the x0.5 row that drops all four) the "
                  "head that drops the four classes the camera never sees lifts the kept CIFAR classes at every size; on the "
                  "highway clip it costs held-out tracks: 15-18 px motion boxes on background (a guard-rail post, a grass edge, "
                  "a car's shadow), which the merged head sent to `other`, are reported as `bird` or `unknown`, and the demo's "
                  "grass and gravel become cat or bird. Keeping frog in `other` (dropping airplane, deer and ship only) gives "
                  "back 2.4-3.0 of the CIFAR points and keeps the textures and most fragments as `other`: the shipped "
                  "trade with the single 16 px net, because real footage is what this model is for (with the routed pair, "
                  "the last row, frog is dropped too). Width x0.625 and the HR start each add on CIFAR "
                  "at every size. A net fed 16 px scores a 32 px crop as a 16 px one; the routed row sends crops of 16 px "
                  "and more to a second net fed 32 px (airnet x0.5, 54 MFLOPs), which lifts the kept classes at 16-32 px "
                  "(and the highway clip) at about half the FP32 speed for those crops. Further cosine cycles of that net "
                  "at 14-32 px (the rows with +N epochs: +20 from lr 0.05, then +12 from lr 0.025, then +12 from lr 0.0125) "
                  "add 1.5-1.9 (at 16-32 px), then 0.6-1.1, then 0.1-0.4 points (at 12-32 px); the 32 px net takes over where it gains >= 1 point on the route's images "
                  "(`ROUTE_MARGIN`: it costs twice the FLOPs a crop): after the first further cycle from 16 px (at 12 px it "
                  "gained 0.4), after the second from 12 px (1.1), so 12-15 px crops now run at its speed. With the routed "
                  "pair after its fourth cycle, the head that drops frog too (the last row) keeps the clips' label purity "
                  "of the head that merges it into `other` (the row before: pedestrians 93.0 / 89.7 %, highway 100 / 100 % "
                  "with either) and adds 1.7-2.7 points at every size: the first row to reach all four of the issue's "
                  "kept-class floors (55 / 70 / 80 / 84 % at 8 / 12 / 16 / 32 px), at 0.49x the issue's own model's speed "
                  "(the floor allows 0.55x). The two pool-first rows keep that 32 px net's weights and are distilled from it "
                  "on the same camera crops at 12-32 px (kd). Pooling before every block's first convolution "
                  "(`--prepool-arch airnet-prepool --prepool-epochs 20 12`: 25 MFLOPs instead of 54, 20 + 12 epochs, 75 min) "
                  "gives 5,805 FP32 crops/s on 32x32 crops -- over the 5,000 floor, 0.88x the issue's own model in the same "
                  "run -- but 83.3 % at 32 px, under the 84 floor (0.6 / 1.2 / 1.6 points under the net it learned from at "
                  "12 / 16 / 32 px); a one-off 10 more epochs of it at 24-32 px only (not in the script) reached 83.7. "
                  "Pooling first in the first block alone (the shipped row, the defaults `--prepool-arch airnet-prepool1 "
                  "--prepool-epochs 16`: 40 MFLOPs, 16 epochs, 34 min) keeps the teacher's accuracy at every size (84.9 % "
                  "at 32 px; switched on untrained it already kept 73 %, every block pooling first 0 %) and the clips' "
                  "purity (pedestrians 93.8 / 91.4 %), at 4,279 FP32 crops/s on 32x32 crops, 0.63x the issue's model "
                  "in the same run: over the floor in this machine's terms, under 5,000 in absolute ones on this VM "
                  "(see Speed).", ""]


if __name__ == "__main__":
    main()
