"""The leave-one-source-out scorecard: a bundle on every built data source (training/sources), through
the bundle, each crop shrunk with OpenCV INTER_AREA to 8-48 px wide: right / unknown / wrong per source.

A source the model's manifest (benchmarks/manifests/) names is scored on its held-out groups only and
always labelled seen; every other source is unseen. Build the sources first (`lowres sources build`).

    python benchmarks/sources.py [--bundle DIR] [--manifest FILE] [--cache DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WIDTHS = (8, 12, 16, 24, 32, 48)
KERNEL = "OpenCV INTER_AREA"
VEHICLES = {"car", "truck", "bus", "motorcycle"}  # any vehicle label counts as right for a vehicle
MAX_PER_SOURCE = 3000  # evenly spaced crops: enough for +-2 points, and CIFAR's 10,000 stay quick


def status(manifest: dict, source: str) -> str:
    """"seen" when the model's manifest names ``source`` (trained, tuned or held out of it), else "unseen"."""
    return "seen" if source in manifest["seen"] else "unseen"


def scored_groups(manifest: dict, source: str) -> set[str] | None:
    """The groups of ``source`` the scorecard uses: a seen source's held-out groups; None (all) for an unseen
    source, or a seen one the model held nothing out of (its column then shows crops it trained on)."""
    if status(manifest, source) == "unseen" or "held_out_groups" not in manifest["seen"][source]:
        return None
    return set(manifest["seen"][source]["held_out_groups"])


def scored_part(manifest: dict, source: str) -> str:
    if status(manifest, source) == "unseen":
        return "all"
    return "held-out groups" if scored_groups(manifest, source) is not None else "trained on (nothing held out)"


def accepted(label: str, model_labels: list[str]) -> set[str] | None:
    """The model's labels that are right for a crop of true ``label``, or None when the model has no class
    for it (such crops are counted apart, never as wrong)."""
    if label == "background":
        return {"other"} if "other" in model_labels else None
    if label not in model_labels:
        return None
    return VEHICLES & set(model_labels) if label in VEHICLES else {label}


def shrink(img: np.ndarray, width: int) -> np.ndarray | None:
    """``img`` at ``width`` px wide, aspect kept (INTER_AREA); None when it is narrower (never enlarged)."""
    import cv2

    h, w = img.shape[:2]
    if w < width:
        return None
    height = max(1, round(h * width / w))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def select(crops: list[tuple[str, str, Path]], groups: set[str] | None, limit: int) -> list[tuple[str, str, Path]]:
    kept = [c for c in crops if groups is None or c[1] in groups]
    if len(kept) > limit:
        kept = [kept[i] for i in np.linspace(0, len(kept) - 1, limit).round().astype(int)]
    return kept


def tally(clf, images: list[np.ndarray], truths: list[set[str]]) -> dict:
    """right / unknown / wrong (% and counts) of ``clf`` on ``images``; argmax right ignores the threshold."""
    pred = clf(images)
    right = sum(lab in ok for lab, ok in zip(pred.labels, truths))
    unknown = sum(not k for k in pred.known)
    argmax = sum(clf.labels[i] in ok for i, ok in zip(pred.indices, truths))
    wrong_as = Counter(lab for lab, ok, k in zip(pred.labels, truths, pred.known) if k and lab not in ok)
    n = len(images)
    pct = lambda v: round(100.0 * v / n, 1)  # noqa: E731
    hits = np.array([clf.labels[i] in ok for i, ok in zip(pred.indices, truths)])
    return {"n": n, "right": pct(right), "unknown": pct(unknown), "wrong": pct(n - right - unknown),
            "right_argmax": pct(argmax), "ece": ece(np.asarray(pred.scores, float), hits),
            "wrong_as": dict(wrong_as.most_common(4))}


def ece(confidence: np.ndarray, hit: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top probability (equal-width bins): how far, on average over
    the crops, the model's confidence is from how often it is right."""
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gaps = [abs(hit[which == b].mean() - confidence[which == b].mean()) * (which == b).sum()
            for b in range(bins) if (which == b).any()]
    return round(float(sum(gaps) / len(hit)), 3)


def score_source(clf, folder: Path, manifest: dict, widths=WIDTHS, limit: int = MAX_PER_SOURCE) -> dict:
    """One scorecard column: ``folder`` (a built source) by crop width."""
    import cv2

    from lowres_sdk.training.sources.base import read_crops, read_manifest

    name = folder.name
    crops = select(list(read_crops(folder)), scored_groups(manifest, name), sys.maxsize)
    outside = Counter(label for label, _, _ in crops if accepted(label, clf.labels) is None)
    crops = select([c for c in crops if accepted(c[0], clf.labels) is not None], None, limit)
    images = [cv2.imread(str(path), cv2.IMREAD_COLOR) for _, _, path in crops]
    by_width = {}
    for width in widths:
        pairs = [(small, accepted(label, clf.labels)) for (label, _, _), img in zip(crops, images)
                 if (small := shrink(img, width)) is not None]
        by_width[str(width)] = tally(clf, [p[0] for p in pairs], [p[1] for p in pairs]) if pairs else {"n": 0}
    info = read_manifest(folder) or {}
    return {"status": status(manifest, name), "origin": info.get("origin"), "commit": info.get("commit"),
            "scored_part": scored_part(manifest, name),
            "labels": dict(sorted(Counter(label for label, _, _ in crops).items())),
            "outside_label_set": dict(outside), "by_width": by_width}


def table(report: dict) -> list[str]:
    """The docs table: a row per source (unseen first), right / unknown / wrong % at each width."""
    widths = report["widths"]
    lines = [f"Bundle `{report['bundle']}`; crops shrunk to each width with {report['kernel']} (aspect kept, never "
             "enlarged); cells: right / unknown / wrong % (n).",
             "", "| source | seen by the model? | labels | " + " | ".join(f"{w} px wide" for w in widths) + " |",
             "|---|---|---|" + "---|" * len(widths)]
    for name, col in _columns(report):
        cells = []
        for w in widths:
            c = col["by_width"][str(w)]
            cells.append(f"{c['right']} / {c['unknown']} / {c['wrong']} ({c['n']})" if c["n"] else "--")
        seen = "**unseen**" if col["status"] == "unseen" else f"seen ({col['scored_part']})"
        labels = ", ".join(col["labels"])
        lines.append(f"| {name} | {seen} | {labels} | " + " | ".join(cells) + " |")
    lines += _per_width(report, "right_argmax", "The same crops with the `unknown` threshold off (argmax), right %:")
    lines += _per_width(report, "ece", "Expected calibration error of the top probability (15 bins; 0 = confidence "
                                       "matches accuracy):")
    return lines


def _per_width(report: dict, key: str, title: str) -> list[str]:
    """A smaller table: one figure ``key`` per source and width."""
    widths = report["widths"]
    lines = ["", title, "", "| source | seen by the model? | " + " | ".join(f"{w} px" for w in widths) + " |",
             "|---|---|" + "---|" * len(widths)]
    for name, col in _columns(report):
        cells = [str(col["by_width"][str(w)].get(key, "--")) for w in widths]
        lines.append(f"| {name} | {col['status']} | " + " | ".join(cells) + " |")
    return lines


def _columns(report: dict) -> list[tuple[str, dict]]:
    """Unseen sources first, then seen ones, each by name."""
    return sorted(report["sources"].items(), key=lambda kv: (kv[1]["status"] == "seen", kv[0]))


def plot(report: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from results_io import save_figure

    cols = _columns(report)
    n = len(cols)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(2.6 * ((n + 1) // 2), 5.6), sharey=True, squeeze=False)
    for ax, (name, col) in zip(axes.flat, cols):
        ws = [w for w in report["widths"] if col["by_width"][str(w)]["n"]]
        x = np.arange(len(ws))
        bottom = np.zeros(len(ws))
        for part, color in (("right", "#4a9a4a"), ("unknown", "#bbbbbb"), ("wrong", "#c84040")):
            v = np.array([col["by_width"][str(w)][part] for w in ws])
            ax.bar(x, v, bottom=bottom, color=color, label=part)
            bottom += v
        ax.set_xticks(x, [str(w) for w in ws], fontsize=7)
        ax.set_title(f"{name}\n({col['status']})", fontsize=8, color="black" if col["status"] == "unseen" else "gray")
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("% of crops")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{report['bundle']}: right / unknown / wrong by crop width (px, {report['kernel']})", fontsize=9)
    save_figure(fig, png)


def _shown(path: str) -> str:
    """``path`` relative to the repository when inside it: results name no machine's folders."""
    p = Path(path).resolve()
    return p.relative_to(HERE.parent).as_posix() if p.is_relative_to(HERE.parent) else p.name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None, help="bundle folder [default: the shipped default]")
    ap.add_argument("--manifest", default=str(HERE / "manifests" / "default.json"))
    ap.add_argument("--cache", default=None, help="built sources [default: ~/.cache/lowres_sdk/sources]")
    ap.add_argument("--out", default=str(HERE / "results" / "sources.json"))
    ap.add_argument("--doc", default=str(HERE.parent / "docs" / "sources.md"))
    ap.add_argument("--block", default="sources-scorecard", help="the marked block of --doc to rewrite")
    ap.add_argument("--limit", type=int, default=MAX_PER_SOURCE, help="crops per source at most (evenly spaced)")
    args = ap.parse_args(argv)

    from lowres_sdk import Classifier
    from lowres_sdk.training.sources.base import cache_root, read_manifest

    from docs_table import write_block
    from results_io import write_json

    manifest = json.loads(Path(args.manifest).read_text())
    folders = [p for p in sorted(cache_root(args.cache).iterdir()) if read_manifest(p)]
    if not folders:
        print(f"no built sources under {cache_root(args.cache)}: run `lowres sources build NAME --from DIR`")
        return 1
    clf = Classifier(args.bundle, threads=2)
    report = {"bundle": _shown(args.bundle) if args.bundle else manifest["model"],
              "manifest": Path(args.manifest).name, "kernel": KERNEL,
              "widths": list(WIDTHS), "labels": clf.labels, "sources": {}}
    for folder in folders:
        report["sources"][folder.name] = col = score_source(clf, folder, manifest, limit=args.limit)
        print(folder.name, col["status"], {w: c.get("right") for w, c in col["by_width"].items()}, flush=True)
    out = Path(args.out)
    write_json(out, report)
    plot(report, out.with_suffix(".png"))
    write_block(args.block, table(report), doc=Path(args.doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
