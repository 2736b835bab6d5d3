"""A training run's results.csv and curves.png (training/artifacts.py), written after every epoch."""
from __future__ import annotations

import csv

import pytest

pytest.importorskip("torch", reason="training needs torch (pip install torch==2.13.0)")
pytest.importorskip("matplotlib", reason="curves.png needs matplotlib (the train extra)")

from lowres_sdk.training.artifacts import results_csv  # noqa: E402

from conftest import tiny_recipe  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_results_csv_names_the_resolution_and_keeps_every_key():
    history = [{"epoch": 1, "train_loss": 1.5, "train_acc": 0.25, "test_top1": 0.5, "seconds": 3.25},
               {"epoch": 2, "train_loss": 1.0, "train_acc": 0.5, "test_top1": 0.625, "seconds": 3.0, "lr": 0.01}]
    rows = list(csv.DictReader(results_csv(history, 16).splitlines()))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "test_top1_at_16px", "seconds", "lr"]
    assert [r["test_top1_at_16px"] for r in rows] == ["0.5", "0.625"]
    assert rows[0]["lr"] == "" and rows[1]["lr"] == "0.01"


def test_a_run_writes_results_csv_and_curves_png_each_epoch(tiny_data, tmp_path):
    from lowres_sdk.training.loop import train

    meta = train(tiny_recipe(tiny_data, epochs=2), tmp_path / "run", progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "results.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [float(r["test_top1_at_8px"]) for r in rows] == pytest.approx([h["test_top1"] for h in meta["history"]],
                                                                          abs=1e-5)
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == PNG
