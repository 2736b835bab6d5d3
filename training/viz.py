"""The pictures of papers 000 and 001, as PNG via matplotlib: t-SNE of HR / LR / transferred
features (scikit-learn's TSNE), occlusion heatmaps, and accuracy-vs-resolution curves."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lowres_sdk.errors import InputError
from lowres_sdk.spec import LETTERBOX_FILL

from .checkpoint import load_model
from .data import read_image_folder, resolve_data_root
from .degrade import Degrade, ModelInput
from .data import to_float


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_figure_path(path: str | os.PathLike) -> Path:
    """``path`` for a viz PNG, or OutputError when it names another command's file (a run's
    checkpoint, results or eval outputs) or is not a .png: viz never writes over those."""
    from lowres_sdk.errors import OutputError

    from .artifacts import RUN_FILES

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise OutputError(f"--out {path}: a viz figure is a .png file")
    if path.name in RUN_FILES:
        raise OutputError(f"--out {path}: {path.name} is written by another command (train / eval); "
                          f"choose another name")
    if path.is_dir():
        raise OutputError(f"--out {path} is a folder; give the .png file to write")
    return path


def _save(fig, path: str | os.PathLike) -> Path:
    from .evaluate import _save_figure

    _save_figure(fig, path)
    return Path(path)


def _test_images(meta: dict, data: str | None, per_class: int):
    recipe = meta["recipe"]
    root = resolve_data_root(data or recipe["data"])
    return read_image_folder(root / "test" if (root / "test").is_dir() else root, recipe["image_size"], per_class,
                             classes=meta["classes"], fit=meta["spec"].get("fit", "stretch"))


@torch.no_grad()
def _features(model, spec, images: np.ndarray, resolution: int | None) -> np.ndarray:
    model.eval()
    camera = Degrade(resolution, down=spec.down, up=spec.up) if resolution else None
    x = to_float(images)
    return model.forward_features(ModelInput(spec)(camera(x) if camera else x)).numpy()


def tsne_panels(run: str | os.PathLike, data: str | None = None, per_class: int = 100,
                resolution: int | None = None) -> dict[str, np.ndarray]:
    """Feature sets to embed, keyed by panel title: the HR model (the run's ``teacher`` when it has
    one, else the run itself) on HR and on LR images, then the run itself on LR images."""
    model, spec, meta = load_model(run)
    r = resolution or spec.resolution
    test = _test_images(meta, data, per_class)
    teacher = meta["recipe"].get("teacher")
    panels = {}
    if teacher:
        t_model, t_spec, _ = load_model(teacher)
        panels["HR features (HR model, HR input)"] = _features(t_model, t_spec, test.images, None)
        panels[f"LR features (HR model, {r} px input)"] = _features(t_model, t_spec, test.images, r)
    else:
        panels[f"{meta['recipe']['method']} model, HR input"] = _features(model, spec, test.images, None)
    panels[f"{meta['recipe']['method']} model, {r} px input"] = _features(model, spec, test.images, r)
    return panels, test.labels, meta["classes"]


def tsne_figure(run: str | os.PathLike, out: str | os.PathLike, data: str | None = None, per_class: int = 100,
                resolution: int | None = None, seed: int = 0) -> Path:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    out = check_figure_path(out)
    panels, labels, classes = tsne_panels(run, data, per_class, resolution)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, (title, f) in zip(axes[0], panels.items()):
        _log(f"t-SNE of {len(f)} features: {title}")
        # OpenMP inside t-SNE takes every core unless told; stay within torch's thread budget.
        with threadpool_limits(torch.get_num_threads()):
            xy = TSNE(n_components=2, perplexity=min(30.0, (len(f) - 1) / 3), init="pca",
                      random_state=seed).fit_transform(f)
        for c, name in enumerate(classes):
            m = labels == c
            ax.scatter(xy[m, 0], xy[m, 1], s=5, color=cmap(c % cmap.N), label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"t-SNE of pooled features: {Path(run).name}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


@torch.no_grad()
def occlusion_map(model, spec, image: np.ndarray, resolution: int | None = None, patch: float = 0.25,
                  batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Paper 001's heat map: gray out (128) a square patch centred on each pixel of the model's input
    image I and record ||Psi(I) - Psi(I')||^2 with Psi the logits. ``image`` is uint8 RGB HxWx3,
    first degraded to ``resolution`` px like a camera would. Returns (heat map, the input image)."""
    model.eval()
    pre = ModelInput(spec)
    x = to_float(image[None])
    if resolution:
        x = Degrade(resolution, down=spec.down, up=spec.up)(x)
    x = pre(x)  # normalised model input, spec.size px
    gray = pre.normalize(torch.full((1, 3, 1, 1), LETTERBOX_FILL / 255.0))
    size = x.shape[-1]
    half = max(1, round(patch * size)) // 2
    base = model(x)
    heat = torch.empty(size * size)
    coords = [(i, j) for i in range(size) for j in range(size)]
    for k in range(0, len(coords), batch_size):
        chunk = coords[k:k + batch_size]
        xs = x.repeat(len(chunk), 1, 1, 1)
        for n, (i, j) in enumerate(chunk):
            xs[n, :, max(0, i - half):i + half + 1, max(0, j - half):j + half + 1] = gray[0]
        heat[k:k + len(chunk)] = (model(xs) - base).pow(2).sum(1)
    shown = (x * pre.normalize.std + pre.normalize.mean).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return heat.view(size, size).numpy(), shown


def occlusion_figure(runs: list[str], out: str | os.PathLike, data: str | None = None, images: int = 4,
                     resolution: int | None = None, patch: float = 0.25) -> Path:
    """One row per test image: for every run, its input image and its heat map side by side."""
    if not runs:
        raise InputError("give at least one run")
    out = check_figure_path(out)
    loaded = [(Path(r).name, *load_model(r)) for r in runs]
    test = _test_images(loaded[0][3], data, -(-images // len(loaded[0][3]["classes"])))
    pick = np.linspace(0, len(test) - 1, images).round().astype(int)
    plt = _pyplot()
    fig, axes = plt.subplots(len(pick), 2 * len(loaded), figsize=(2.2 * 2 * len(loaded), 2.3 * len(pick)),
                             squeeze=False)
    for row, idx in enumerate(pick):
        _log(f"occlusion maps: image {row + 1} of {len(pick)}")
        for col, (name, model, spec, meta) in enumerate(loaded):
            r = resolution or spec.resolution
            heat, shown = occlusion_map(model, spec, test.images[idx], r, patch)
            pred = meta["classes"][int(model(ModelInput(spec)(Degrade(r)(to_float(test.images[idx][None])))).argmax())]
            axes[row][2 * col].imshow(shown, interpolation="nearest")
            axes[row][2 * col].set_title(f"{name} @{r}px: {pred}", fontsize=7)
            axes[row][2 * col + 1].imshow(heat / max(heat.max(), 1e-12), cmap="inferno", interpolation="nearest")
            axes[row][2 * col + 1].set_title("||Psi(I) - Psi(I')||^2", fontsize=7)
        axes[row][0].set_ylabel(test.classes[test.labels[idx]], fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, out)


def resolution_figure(runs: list[str], out: str | os.PathLike, resolutions: list[int], data: str | None = None,
                      limit_per_class: int | None = None) -> Path:
    """Accuracy vs input resolution, one curve per run (each evaluated like `lowres eval`)."""
    from .evaluate import evaluate, plot_accuracy_vs_resolution

    if not runs:
        raise InputError("give at least one run")
    out = check_figure_path(out)
    # write=False: eval.json and its PNGs belong to `lowres eval`, not to a figure of several runs
    reports = {Path(r).name: evaluate(r, resolutions, data, limit_per_class, write=False, log=_log) for r in runs}
    plot_accuracy_vs_resolution(reports, out)
    return out


def _log(line: str) -> None:
    """A long step's progress on stderr (stdout is the command's result)."""
    import sys

    print(line, file=sys.stderr, flush=True)
