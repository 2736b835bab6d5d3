"""The benchmarks' resumable training (benchmarks/results_io.py): a run restored from its committed
checkpoint continues instead of retraining, and a committed copy that was only restored is not rewritten."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs torch (pip install torch==2.13.0)")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from results_io import restore, train_and_commit  # noqa: E402

from conftest import tiny_recipe  # noqa: E402


def _bytes(run: Path) -> dict:
    return {f.name: f.read_bytes() for f in sorted(run.iterdir())}


def test_a_restored_committed_copy_is_not_rewritten_and_a_trained_run_is_committed(tiny_data, tmp_path, monkeypatch):
    from lowres_sdk.training import checkpoint

    recipe = tiny_recipe(tiny_data, epochs=1, ema_decay=0.9)
    saved, lines = tmp_path / "committed", []
    meta = train_and_commit(recipe, tmp_path / "first", saved, None, log=lines.append)
    assert meta["epoch"] == 1 and (saved / "checkpoint.json").exists()
    assert meta["weights_sha256"] == checkpoint.load_checkpoint(tmp_path / "first")[1]["weights_sha256"]
    assert lines[0] == "== first" and lines[1].startswith("== first done in ")
    committed = _bytes(saved)

    fresh = tmp_path / "fresh_machine"  # a later session: nothing local, the committed copy restored
    restore(fresh, saved)
    lines.clear()
    monkeypatch.setattr(checkpoint, "save_finished_copy", lambda *a: pytest.fail("re-saved a restored committed copy"))
    assert train_and_commit(recipe, fresh, saved, None, log=lines.append)["epoch"] == 1
    assert lines == []  # finished: nothing trained
    assert _bytes(saved) == committed  # re-saving would drop the copy's live weights and change the file

    restore(fresh, tmp_path / "elsewhere")  # an existing run is left alone
    assert _bytes(fresh) == committed
