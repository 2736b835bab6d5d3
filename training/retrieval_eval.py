"""Cross-resolution retrieval of a run: low-res queries against a full-resolution gallery,
by query resolution (paper 003) and by downscale factor (paper 004); mAP, P@k and R@k per query
resolution (`retrieval_metrics`), as JSON + a PNG of the curves.

A query "at r px" is the native image shrunk so its shortest side is r px, aspect kept (antialiased
bilinear, the camera), then put through the model's own pre-processing (`ModelInput`), exactly as
the exported graph would receive that crop. The gallery is embedded from the native images. For an
``fsrgan`` run the gallery is embedded by the extractor alone (real HR features, as in paper 004)
and the queries both with and without the generator G.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lowres_sdk.errors import InputError
from lowres_sdk._io import atomic_write_text

from .checkpoint import load_model
from .degrade import ModelInput
from .data import to_float
from .retrieval import retrieval_metrics
from .retrieval_data import RetrievalSet, load_retrieval

DEFAULT_RESOLUTIONS = (8, 12, 16, 24, 32)


def camera(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """NCHW [0, 1] images shrunk so the shortest side is ``resolution`` px, aspect kept."""
    h, w = x.shape[-2:]
    if resolution >= min(h, w):
        return x
    scale = resolution / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def embed(model, spec, images: np.ndarray, resolution: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Pooled features of uint8 RGB images, first shrunk to ``resolution`` px (shortest side) if given."""
    model.eval()
    pre = ModelInput(spec)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_float(images[i:i + batch_size])
        if resolution is not None:
            x = camera(x, resolution)
        out.append(model.forward_features(pre(x)))
    return torch.cat(out).numpy()


def query_resolutions(native: int, resolutions=None, factors=None) -> list[int]:
    """Query resolutions (px, shortest side) from explicit ones and/or downscale factors, plus the
    native size (the HR query); InputError for any above the native size or below 1."""
    res = set(resolutions or ())
    for f in factors or ():
        if f < 1:
            raise InputError(f"downscale factors must be >= 1, got {f}")
        res.add(max(1, round(native / f)))
    bad = sorted(r for r in res if not 1 <= r <= native)
    if bad:
        raise InputError(f"query resolutions {bad} px are outside 1..{native} px, the queries' native shortest side")
    return sorted(res | {native})


def retrieval_report(run_dir: str | os.PathLike, dataset: RetrievalSet, resolutions=None,
                     factors=None, ks: tuple[int, ...] = (1, 5, 10), progress: bool = True) -> dict:
    model, spec, meta = load_model(run_dir)
    recipe = meta["recipe"]
    native = min(dataset.queries.images.shape[1:3])
    if resolutions is None and factors is None:  # the defaults that fit below the native size
        resolutions = [r for r in DEFAULT_RESOLUTIONS if r < native]
    res = query_resolutions(native, resolutions, factors)
    fsr = recipe["method"] == "fsrgan"
    extractor = model.backbone if fsr else model
    variants = {"fsr": model, "raw": extractor} if fsr else {"model": model}
    gallery = embed(extractor, spec, dataset.gallery.images)
    rows = []
    todo = [(v, r) for v in variants for r in res]
    for variant, r in tqdm(todo, desc="retrieval", disable=not progress, leave=False, dynamic_ncols=True):
        q = embed(variants[variant], spec, dataset.queries.images, r)
        m = retrieval_metrics(q, dataset.queries.labels, gallery, dataset.gallery.labels, ks)
        rows.append({"variant": variant, "query_resolution": r, "downscale_factor": round(native / r, 3), **m})
    return {"run": str(run_dir), "method": recipe["method"], "arch": recipe["arch"], "dataset": dataset.name,
            "split": dataset.split, "queries": len(dataset.queries), "gallery": len(dataset.gallery),
            "native_resolution": int(native), "ks": list(ks), "rows": rows}


def evaluate_retrieval(run_dir: str | os.PathLike, dataset: str, data: str | None = None, resolutions=None,
                       factors=None, ks=(1, 5, 10), per_class: int | None = 100,
                       out_dir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """`retrieval_report` on a named dataset; writes ``out_dir``/retrieval.json and retrieval.png
    (``out_dir`` defaults to the run folder)."""
    _, spec, meta = load_model(run_dir)
    path = data or meta["recipe"]["data"]
    if not path:
        raise InputError(f"{run_dir} records no dataset; pass --data")
    rset = load_retrieval(dataset, path, meta["recipe"]["image_size"], spec.fit, per_class, train_per_class=1)
    report = retrieval_report(run_dir, rset, resolutions, factors, ks, progress)
    out = Path(out_dir or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "retrieval.json", json.dumps(report, indent=2))
    plot_curves({Path(run_dir).name: report}, out / "retrieval.png")
    return report


def plot_curves(reports: dict[str, dict], path: str | os.PathLike) -> None:
    """mAP, P@k and R@k (largest k) against query resolution, one line per run and variant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = max(next(iter(reports.values()))["ks"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, rep in reports.items():
        for variant in dict.fromkeys(r["variant"] for r in rep["rows"]):
            rows = [r for r in rep["rows"] if r["variant"] == variant]
            label = name if variant == "model" else f"{name} ({variant})"
            for ax, key in zip(axes, ("map", f"p_at_{k}", f"r_at_{k}")):
                ax.plot([r["query_resolution"] for r in rows], [r[key] for r in rows], marker="o", label=label)
    for ax, title in zip(axes, ("mAP", f"precision@{k}", f"recall@{k}")):
        ax.set_xlabel("query resolution (px, shortest side)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{next(iter(reports.values()))['dataset']}: low-res queries vs full-res gallery", fontsize=10)
    fig.tight_layout()
    tmp = Path(path).with_name("." + Path(path).name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
