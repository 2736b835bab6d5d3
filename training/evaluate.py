"""Evaluate a run on its test split at several input resolutions: top-1, per-class accuracy and
the confusion matrix as JSON, plus PNGs of accuracy vs resolution and of the confusion matrices."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from lowres_sdk.errors import InputError
from lowres_sdk.spec import InputSpec
from lowres_sdk._io import atomic_write_text

from .checkpoint import load_model
from .data import read_image_folder, resolve_data_root
from .data import to_float
from .degrade import Degrade, ModelInput


@torch.no_grad()
def predict(model: torch.nn.Module, spec: InputSpec, images: np.ndarray, resolution: int | None = None,
            batch_size: int = 500) -> np.ndarray:
    """Logits for uint8 RGB images, first degraded to ``resolution`` px (the camera), then put
    through the model's own input pipeline (``ModelInput``), exactly as the exported graph will."""
    model.eval()
    pre = ModelInput(spec)
    camera = Degrade(resolution, down=spec.down, up=spec.up) if resolution else None
    out = []
    for i in range(0, len(images), batch_size):
        x = to_float(images[i:i + batch_size])
        if camera is not None:
            x = camera(x)
        out.append(model(pre(x)))
    return torch.cat(out).numpy()



def accuracy_report(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    k = len(classes)
    confusion = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {"top1": float((labels == predicted).mean()),
            "per_class": {c: float(a) for c, a in zip(classes, per_class)},
            "confusion": confusion.tolist()}


def evaluate(run_dir: str | os.PathLike, resolutions: list[int], data: str | None = None,
             limit_per_class: int | None = None, write: bool = True, log=None) -> dict:
    """Evaluate ``run_dir`` at each resolution; with ``write``, writes RUN/eval.json,
    RUN/eval_resolution.png and RUN/eval_confusion.png. ``log(line)`` hears each resolution's result."""
    run_dir = Path(run_dir)
    model, spec, meta = load_model(run_dir)
    recipe = meta["recipe"]
    image_size = recipe["image_size"]
    too_big = [r for r in resolutions if not 1 <= r <= image_size]
    if too_big:
        raise InputError(f"resolutions {too_big} are outside 1..{image_size} px, the size the test images are read at")
    root = resolve_data_root(data or recipe["data"])
    test = read_image_folder(root / "test" if (root / "test").is_dir() else root, image_size, limit_per_class,
                             classes=meta["classes"], fit=spec.fit)
    report = {"run": str(run_dir), "method": recipe["method"], "arch": recipe["arch"],
              "trained_resolution": spec.resolution, "input_size": spec.size, "test_images": len(test),
              "classes": meta["classes"], "resolutions": {}}
    for r in resolutions:
        predicted = predict(model, spec, test.images, resolution=r).argmax(1)
        report["resolutions"][str(r)] = accuracy_report(test.labels, predicted, meta["classes"])
        if log is not None:
            log(f"{run_dir.name} @{r} px: top-1 {100 * report['resolutions'][str(r)]['top1']:.2f} % "
                f"on {len(test)} test images")
    if write:
        atomic_write_text(run_dir / "eval.json", json.dumps(report, indent=2))
        plot_accuracy_vs_resolution({run_dir.name: report}, run_dir / "eval_resolution.png")
        plot_confusion(report, run_dir / "eval_confusion.png")
    return report


def _save_figure(fig, path: str | os.PathLike) -> None:
    """``fig`` as a PNG at ``path`` (its folder made if missing), replaced atomically."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def plot_confusion(report: dict, path: str | os.PathLike, most: int = 4) -> None:
    """Row-normalised confusion matrices (true class by row) at up to ``most`` of the report's
    resolutions, the smallest first: where low resolution sends each class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = report["classes"]
    shown = sorted(report["resolutions"], key=int)[:most]
    side = 1.2 + 0.45 * len(classes)
    fig, axes = plt.subplots(1, len(shown), figsize=(side * len(shown), side), squeeze=False)
    for ax, r in zip(axes[0], shown):
        m = np.array(report["resolutions"][r]["confusion"], dtype=float)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        for i, j in np.ndindex(m.shape):
            if m[i, j] >= 0.005:
                ax.text(j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_title(f"@{r} px: top-1 {100 * report['resolutions'][r]['top1']:.1f} %", fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
    axes[0][0].set_ylabel("true (% of its row)", fontsize=7)
    fig.suptitle(f"{Path(report['run']).name} on {report['test_images']} test images", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_accuracy_vs_resolution(reports: dict[str, dict], path: str | os.PathLike) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, rep in reports.items():
        rs = sorted(int(r) for r in rep["resolutions"])
        ax.plot(rs, [100 * rep["resolutions"][str(r)]["top1"] for r in rs], marker="o",
                label=f"{name} ({rep['method']}, trained @{rep['trained_resolution']} px)")
    ax.set_xlabel("input resolution (px)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
