"""A training run's history as files a person opens: ``results.csv`` (one row per epoch) and
``curves.png`` (loss and accuracy by epoch), rewritten after every epoch from checkpoint.json's
history, so a killed run's files match its last saved epoch."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from lowres_sdk._io import atomic_write_bytes, atomic_write_text

RESULTS_CSV, CURVES_PNG = "results.csv", "curves.png"
# Files of a run that other commands own: a figure must never be written over one of them.
RUN_FILES = ("checkpoint.json", "checkpoint.safetensors", RESULTS_CSV, CURVES_PNG, "eval.json",
             "eval_resolution.png", "eval_confusion.png", "kernels.json", "kernels.png")


def history_columns(history: list[dict]) -> list[str]:
    """The CSV's columns: epoch first, then every key the history holds, in first-seen order."""
    cols = ["epoch"]
    for row in history:
        cols += [k for k in row if k not in cols]
    return cols


def results_csv(history: list[dict], resolution: int) -> str:
    """The history as CSV; ``test_top1`` is named by the resolution it was measured at."""
    cols = history_columns(history)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"test_top1_at_{resolution}px" if c == "test_top1" else c for c in cols])
    for row in history:
        writer.writerow(["" if row.get(c) is None else f"{row[c]:.6g}" if isinstance(row[c], float) else row[c]
                         for c in cols])
    return out.getvalue()


def curves_png(history: list[dict], resolution: int, title: str = "") -> bytes:
    """Loss (left) and train / test accuracy (right) by epoch, as PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(8, 3.2))
    loss.plot(epochs, [row.get("train_loss") for row in history], marker=".", label="train loss")
    loss.set_xlabel("epoch")
    loss.set_ylabel("loss")
    for key, name in (("train_acc", "train (augmented)"), ("test_top1", f"test @{resolution} px")):
        if any(key in row for row in history):
            acc.plot(epochs, [100 * row[key] if row.get(key) is not None else None for row in history], marker=".",
                     label=name)
    acc.set_xlabel("epoch")
    acc.set_ylabel("top-1 (%)")
    for ax in (loss, acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_run_artifacts(run_dir: str | os.PathLike, history: list[dict], resolution: int) -> None:
    """RUN/results.csv and RUN/curves.png from ``history`` (checkpoint.json's), each replaced atomically."""
    if not history:
        return
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / RESULTS_CSV, results_csv(history, resolution))
    atomic_write_bytes(run_dir / CURVES_PNG, curves_png(history, resolution, run_dir.name))
