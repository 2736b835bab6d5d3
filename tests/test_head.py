"""The classifier head inside the exported graph: temperature, fine classes merged into labels,
fine classes dropped (their logits removed before the softmax)."""
import numpy as np
import pytest
import torch

from lowres_sdk import Classifier, ExportError
from lowres_sdk.export.exporter import export_run
from lowres_sdk.export.graph import FusedModel
from lowres_sdk.training.checkpoint import load_model


def crops(seed=0, n=6):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))


def test_drop_renormalizes_the_kept_classes_and_merge_orders_them(tiny_run):
    backbone, spec, meta = load_model(tiny_run)  # classes: blob, hstripes, vstripes
    x = crops()
    with torch.no_grad():
        full = FusedModel(backbone, spec)(x).numpy()  # softmax over all three
        out = FusedModel(backbone, spec, temperature=2.0, merge=[[1], [0]], drop=[2])(x).numpy()
    # softmax(logits / T) over the kept classes = their probabilities ** (1 / T), renormalized
    kept = full[:, [1, 0]] ** 0.5
    assert out.shape == (6, 2)
    assert np.abs(out - kept / kept.sum(1, keepdims=True)).max() < 1e-5
    with torch.no_grad():  # merging two fine classes sums their renormalized probabilities: one label left, p = 1
        one = FusedModel(backbone, spec, merge=[[0, 1]], drop=[2])(x).numpy()
    assert np.allclose(one, 1.0, atol=1e-6)


@pytest.mark.parametrize("merge, drop", [([[0], [1]], []), ([[0], [1, 2]], [2]), ([[0], [1]], [3])])
def test_each_fine_class_must_be_named_exactly_once(tiny_run, merge, drop):
    backbone, spec, _ = load_model(tiny_run)
    with pytest.raises(ValueError, match="exactly once"):
        FusedModel(backbone, spec, merge=merge, drop=drop)
    with pytest.raises(ValueError, match="merged head"):
        FusedModel(backbone, spec, drop=[2])


def test_exported_head_drops_a_class_and_measures_the_kept_ones(tiny_run, tmp_path):
    head = {"temperature": 1.5, "merge": {"stripes": ["hstripes"], "blob": ["blob"]}, "drop": ["vstripes"]}
    bundle = export_run(tiny_run, tmp_path / "b", eval_per_class=12, head=head, log=lambda *a: None)
    assert bundle.labels == ["stripes", "blob"]
    assert bundle.meta["provenance"]["head"] == {"temperature": 1.5, "merge": head["merge"], "drop": ["vstripes"]}
    assert bundle.meta["metrics"]["test_images"] == 24  # 12 a class, vstripes' left out
    backbone, spec, _ = load_model(tiny_run)
    x = crops(1)
    with torch.no_grad():
        expected = FusedModel(backbone, spec, temperature=1.5, merge=[[1], [0]], drop=[2])(x).numpy()
    assert np.abs(Classifier(bundle.path)(list(x.numpy())).probs - expected).max() < 1e-4


@pytest.mark.parametrize("head, match", [
    ({"merge": {"a": ["blob"], "b": ["hstripes"]}, "drop": ["cat"]}, "does not have"),
    ({"merge": {"a": ["blob"], "b": ["hstripes"]}}, "exactly once"),
    ({"drop": ["blob"]}, "needs a merge")])
def test_export_refuses_a_head_that_does_not_cover_the_classes(tiny_run, tmp_path, head, match):
    with pytest.raises(ExportError, match=match):
        export_run(tiny_run, tmp_path / "b", eval_per_class=12, head=head, log=lambda *a: None)
    assert not (tmp_path / "b").exists()
