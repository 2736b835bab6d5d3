"""The default model built by the package (lowres_sdk.training.pipelines): its calibration fitting, its stages
against the committed checkpoints, and the whole pipeline -- stages, route, calibration, export, model card --
end to end on tiny data."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the pipeline trains and exports (pip install torch==2.13.0)")

from lowres_sdk.training import fixedcam  # noqa: E402
from lowres_sdk.training.pipelines import calibration as cal  # noqa: E402
from lowres_sdk.training.pipelines import default_model as dm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FINE = list(fixedcam.FINE)


def test_the_head_drops_renormalises_and_merges_like_the_graph():
    head = cal.Head(["a", "b", "c", "d"], {"x": ("a", "b"), "y": ("c",)}, ("d",))
    p = np.array([[0.1, 0.2, 0.2, 0.5], [0.0, 0.0, 0.5, 0.5]])
    np.testing.assert_allclose(head(p), [[0.6, 0.4], [0.0, 1.0]])
    assert head.to_coarse.tolist() == [0, 0, 1, -1]


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 4))
    head = cal.Head(["a", "b", "c", "d"], {k: (k,) for k in "abcd"}, ())
    for true_t in (0.7, 1.5):  # labels drawn from softmax(logits / T): the NLL is least at that T
        p = cal.softmax_t(logits, true_t)
        labels = np.array([rng.choice(4, p=row) for row in p])
        fitted, = cal.fit_temperatures(logits, labels, np.zeros(len(labels), int), 1, head)
        assert abs(fitted - true_t) <= 0.1, (true_t, fitted)


def test_unknown_thresholds_keep_only_predictions_right_often_enough():
    head = cal.Head(["a", "b"], {"a": ("a",), "b": ("b",)}, ())
    # label a: wrong at 0.55 and 0.5, right from 0.7; label b: always right
    p = np.array([[0.95, 0.05], [0.7, 0.3], [0.55, 0.45], [0.5, 0.5], [0.2, 0.8], [0.35, 0.65]])
    labels = np.array([0, 0, 1, 1, 1, 1])
    overall, by_label = cal.unknown_thresholds(p, labels, head, precision=1.0)
    assert by_label == {"a": 0.56, "b": 0.3} and overall == 0.56  # the smallest of THRESHOLDS above 0.55


COMMITTED = [s for s in dm.STAGES
             if (dm.committed(ROOT / "benchmarks" / "checkpoints", s.name) / "checkpoint.json").exists()]


@pytest.mark.parametrize("stage", COMMITTED, ids=lambda s: s.name)
def test_a_stage_is_the_recipe_its_committed_checkpoint_was_trained_with(stage, monkeypatch):
    from lowres_sdk.training.recipe import Recipe

    monkeypatch.chdir(ROOT)  # the committed recipes name data and checkpoints relative to the repository
    saved = json.loads((dm.committed(Path("benchmarks/checkpoints"), stage.name) / "checkpoint.json").read_text())
    mine = dm.stage_recipe(stage, "../shared/data", Path("benchmarks/checkpoints"))
    assert mine == Recipe.from_dict(saved["recipe"]), mine.differences(Recipe.from_dict(saved["recipe"]))


def _tiny_sets(per_class: int, seed: int):
    """The 12 fine classes as 32x32 colour patches with a class-specific colour and bar (learnable)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(len(FINE)):
        for _ in range(per_class):
            img = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
            img[:, :, k % 3] += np.uint8(80 + 14 * k)
            img[4 + 2 * k: 8 + 2 * k, :] = 255
            images.append(img)
            labels.append(k)
    from lowres_sdk.training.data import ImageSet

    return ImageSet(np.stack(images), np.array(labels), FINE, np.ones(len(labels)))


TINY = dict(method="lr", arch="airnet", width=0.25, input_mode="native", fit="letterbox", epochs=1, batch_size=32,
            lr=0.05, seed=0)


def test_the_pipeline_builds_a_calibrated_routed_bundle_with_its_card_from_tiny_data(tmp_path, monkeypatch):
    from lowres_sdk import Classifier

    monkeypatch.chdir(tmp_path)  # relative data / checkpoint / run paths, as from the repository root
    plan = replace(dm.Plan(), stages=(dm.Stage("small", dict(TINY, resolution=16)),
                                      dm.Stage("large", dict(TINY, resolution=32, init="stage:small"))),
                   routes=("small", "large"), route_at=12, int8=False, calib_images=48)
    sets = (_tiny_sets(12, 0), _tiny_sets(8, 1))
    lines = []
    result = dm.build("bundle", "data", "ckpt", plan=plan, train=True, runs="runs", sets=sets, log=lines.append)

    assert sorted(p.name for p in Path("ckpt").iterdir()) == ["default_large", "default_small"]
    clf = Classifier("bundle")
    assert clf.labels == list(fixedcam.COARSE)
    assert [r.min_side for r in clf.bundle.routes] == [0, 12]
    meta = clf.bundle.meta
    assert meta["calibration"]["temperature"] == result["calibration"]["temperature"]
    assert len(result["calibration"]["route_temperatures"]) == 2
    card = meta["model_card"]
    assert card["labels"] == list(fixedcam.COARSE) and card["trained_on_not_labelled"] == list(fixedcam.DROPPED)
    assert [s["stage"] for s in card["built_by"]["stages"]] == ["small", "large"]
    assert card["built_by"]["stages"][1]["checkpoint"] == "ckpt/default_large"
    assert len(card["built_by"]["stages"][1]["weights_sha256"]) == 64
    assert all(len(s["recipe_sha256"]) == 64 for s in card["built_by"]["stages"])
    assert [r["min_side"] for r in card["figures"]["held_out_seen_sources"]["routes"]] == [0, 12]
    text = Path("bundle/bundle.json").read_text()
    assert str(tmp_path) not in text  # provenance is relative
    crops = [np.ascontiguousarray(img[..., ::-1]) for img in sets[1].images[::7]]
    probs = clf(crops).probs
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)

    # the rebuild from those committed checkpoints, no training, gives the same model's behaviour
    again = dm.build("rebuilt", "data", "ckpt", plan=plan, sets=sets, log=lines.append)
    assert again["calibration"] == result["calibration"]
    np.testing.assert_allclose(Classifier("rebuilt")(crops).probs, probs, atol=1e-5)


def test_a_rebuild_without_its_checkpoints_or_onto_a_user_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    from lowres_sdk.errors import InputError, OutputError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="no committed checkpoint at"):
        dm.build("bundle", "data", "nowhere", sets=(_tiny_sets(1, 0), _tiny_sets(1, 1)))
    Path("mine").mkdir()
    (Path("mine") / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError):
        dm.build("mine", "data", "nowhere")
    assert (Path("mine") / "notes.txt").read_text() == "keep me"


def test_build_default_refuses_bad_input_in_one_line_and_touches_nothing(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    Path("mine").mkdir()
    (Path("mine") / "notes.txt").write_text("keep me")
    cases = ((["--out", "mine"], "mine"), (["--out", "new", "--checkpoints", "nowhere"], "no committed checkpoint"))
    for args, said in cases:
        p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "build-default", *args], capture_output=True,
                           text=True)
        assert p.returncode != 0 and said in p.stderr, (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert (Path("mine") / "notes.txt").read_text() == "keep me" and not Path("new").exists()
