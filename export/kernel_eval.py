"""Accuracy by resize kernel: real uint8 test images shrunk with the actual OpenCV / Pillow
functions a camera pipeline or a user would call, then run through the exported bundle with the
torch-free runtime -- what users run. Answers "how much does my accuracy hang on the kernel?"."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from lowres_sdk.errors import InputError
from lowres_sdk.training.degrade import KERNELS, camera_resize
from lowres_sdk._io import atomic_write_text

DEFAULT_KERNELS = ("area", "linear", "cubic", "nearest", "lanczos", "pil-bicubic")
SIDES = ("long", "width", "height")


def shrink(image_rgb: np.ndarray, size: int, kernel: str, side: str = "long") -> np.ndarray:
    """``image_rgb`` (uint8 HxWx3) resized so that its ``side`` is ``size`` px, aspect kept, with
    ``kernel``; returned as uint8 BGR, the runtime's input convention."""
    h, w = image_rgb.shape[:2]
    ref = {"long": max(h, w), "width": w, "height": h}[side]
    scale = size / ref
    out = camera_resize(np.ascontiguousarray(image_rgb), (max(1, round(w * scale)), max(1, round(h * scale))), kernel)
    return np.ascontiguousarray(out[..., ::-1])


def accuracy_by_kernel(classifier, images: Sequence[np.ndarray], labels: np.ndarray,
                       kernels: Sequence[str] = DEFAULT_KERNELS, resolutions: Sequence[int] = (8, 12, 16, 24, 32),
                       side: str = "long", progress: bool = True) -> dict:
    """Top-1 (%) and per-class accuracy of ``classifier`` (a `Classifier`) at each kernel x
    resolution; ``labels`` index ``classifier.labels``. Also the minimum over kernels and the
    spread (best - worst) at each resolution."""
    bad = [k for k in kernels if k not in KERNELS]
    if bad:
        raise InputError(f"unknown kernels {bad}; expected some of {', '.join(KERNELS)}")
    if side not in SIDES:
        raise InputError(f"side must be one of {SIDES}, got {side!r}")
    if not resolutions or min(resolutions) < 1:
        raise InputError(f"resolutions must be positive integers, got {list(resolutions)}")
    labels = np.asarray(labels)
    classes = list(classifier.labels)
    top1, per_class = {}, {}
    bar = tqdm(total=len(kernels) * len(resolutions), desc="kernels x resolutions", disable=not progress, leave=False)
    for k in kernels:
        top1[k], per_class[k] = {}, {}
        for r in resolutions:
            crops = [shrink(img, r, k, side) for img in images]
            pred = classifier(crops).indices
            top1[k][str(r)] = round(100 * float((pred == labels).mean()), 2)
            per_class[k][str(r)] = {c: round(100 * float((pred[labels == i] == i).mean()), 1)
                                    for i, c in enumerate(classes) if (labels == i).any()}
            bar.update()
    bar.close()
    res = [str(r) for r in resolutions]
    worst = {r: min(top1[k][r] for k in kernels) for r in res}
    best = {r: max(top1[k][r] for k in kernels) for r in res}
    return {"kernels": list(kernels), "resolutions": [int(r) for r in res], "side": side, "images": len(images),
            "classes": classes, "top1": top1, "per_class": per_class, "min_over_kernels": worst,
            "spread": {r: round(best[r] - worst[r], 2) for r in res}}


def heatmap(report: dict, path: str | os.PathLike, title: str = "") -> None:
    """PNG: top-1 by kernel (rows) x resolution (columns), plus the minimum and the spread."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernels, res = report["kernels"], [str(r) for r in report["resolutions"]]
    grid = np.array([[report["top1"][k][r] for r in res] for k in kernels])
    fig, ax = plt.subplots(figsize=(1.1 * len(res) + 2.5, 0.45 * len(kernels) + 1.8))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(len(kernels)):
        for j in range(len(res)):
            ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center",
                    color="white" if grid[i, j] < 60 else "black", fontsize=8)
    ticks = [f"{r} px\nmin {report['min_over_kernels'][r]:.1f}\nspread {report['spread'][r]:.1f}" for r in res]
    ax.set_xticks(range(len(res)), ticks, fontsize=7)
    ax.set_yticks(range(len(kernels)), kernels, fontsize=8)
    ax.set_title(title or f"top-1 % by resize kernel ({report['images']} images, {report['side']} side)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict, out_dir: str | os.PathLike, name: str = "kernels") -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, png = out / f"{name}.json", out / f"{name}.png"
    atomic_write_text(js, json.dumps(report, indent=2))
    heatmap(report, png)
    return js, png
