"""Every method of the one table goes train -> interrupted -> resume -> export the same way."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_sdk.training.checkpoint import load_checkpoint
from lowres_sdk.training.loop import train
from lowres_sdk.training.methods import METHODS

from conftest import tiny_recipe

EXTRA = {  # what each method needs on the tiny data; "T" stands for the shared teacher run
    "baseline": {}, "highres": {}, "mixed": {}, "dfd": {"teacher": "T"}, "kd": {"teacher": "T"}, "staged": {"teacher": "T"},
    "sr": {"teacher": "T", "input_mode": "native"},
    "transfer": {"teacher": "T", "clusters": 4, "transfer_hidden": 8},
    "crossres": {"init": "T", "query_min": 4, "query_max": 8},
    "fsrgan": {"teacher": "T", "query_min": 4, "query_max": 8, "batch_size": 32, "fsr_critic_steps": 1, "fsr_views": 1},
}


def test_the_table_and_this_test_cover_the_same_methods():
    assert set(EXTRA) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_train_resume_export(name, tiny_data, tiny_teacher, tmp_path):
    from lowres_sdk import Classifier, Embedder
    from lowres_sdk.export.exporter import export_run

    extra = {k: (str(tiny_teacher) if v == "T" else v) for k, v in EXTRA[name].items()}
    recipe = tiny_recipe(tiny_data, method=name, epochs=2, **extra)
    run = tmp_path / name
    first = train(recipe, run, progress=False, _stop_after=1)
    resumed = train(recipe, run, progress=False, resume=True)
    assert resumed["epoch"] == recipe.epochs and load_checkpoint(run)[1]["epoch"] == recipe.epochs
    assert first["epoch"] in (1, recipe.epochs)  # transfer fits in one step
    task = "embed" if name in ("crossres", "fsrgan") else "classify"
    bundle = export_run(run, tmp_path / "bundle", task=task, eval_per_class=4, log=lambda *a: None)
    crops = [np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((9, 7), (16, 16), (40, 20))]
    if task == "classify":
        pred = Classifier(bundle)(crops)
        assert pred.probs.shape == (3, 3) and np.allclose(pred.probs.sum(1), 1, atol=1e-4)
    else:
        vectors = Embedder(bundle)(crops)
        assert vectors.shape[0] == 3 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
