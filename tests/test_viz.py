"""`lowres viz`: the occlusion map on a hand-made model, and every picture written from real runs."""
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lowres_sdk.cli import cli
from lowres_sdk.spec import InputSpec
from lowres_sdk.training.loop import train
from lowres_sdk.training.viz import occlusion_map

from conftest import tiny_recipe


class TopLeftModel(torch.nn.Module):
    """Logits = the mean of the top-left 4x4 pixels: only patches touching them can matter."""

    def forward(self, x):
        return x[:, :, :4, :4].mean(dim=(1, 2, 3)).unsqueeze(1)


def test_occlusion_map_lights_up_only_where_the_model_looks():
    spec = InputSpec(size=16, resolution=16, mean=(0, 0, 0), std=(1, 1, 1))
    image = np.full((16, 16, 3), 255, np.uint8)  # white: a gray patch changes what it covers
    heat, shown = occlusion_map(TopLeftModel(), spec, image, patch=3 / 16)  # a 3x3 patch centred on each pixel
    assert heat.shape == (16, 16) and shown.shape == (16, 16, 3)
    touches = np.zeros((16, 16), bool)
    touches[:5, :5] = True  # a centre within 1 px of the 4x4 corner
    assert (heat[touches] > 0).all() and (heat[~touches] == 0).all()
    # by hand: centred at (0, 0) the patch covers 2x2 pixels of the 16: mean drops by 4/16 * (1 - 128/255)
    assert heat[0, 0] == pytest.approx((4 / 16 * (1 - 128 / 255)) ** 2, rel=1e-5)


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("viz_runs")
    train(tiny_recipe(tiny_data, method="hr", epochs=2), root / "hr", progress=False)
    train(tiny_recipe(tiny_data, method="dfd", teacher=str(root / "hr"), epochs=1), root / "dfd", progress=False)
    return root


def _png(path):
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 5, path
    return img


def test_viz_commands_write_their_pictures(runs, tmp_path):
    r = CliRunner().invoke(cli, ["viz", "tsne", str(runs / "dfd"), "--per-class", "8", "--out", str(tmp_path / "t.png")])
    assert r.exit_code == 0, r.output
    assert _png(tmp_path / "t.png").shape[1] > 2.5 * _png(tmp_path / "t.png").shape[0]  # three panels side by side
    r = CliRunner().invoke(cli, ["viz", "occlusion", str(runs / "hr"), str(runs / "dfd"), "--images", "2",
                                 "--resolution", "8", "--out", str(tmp_path / "o.png")])
    assert r.exit_code == 0, r.output
    _png(tmp_path / "o.png")
    r = CliRunner().invoke(cli, ["viz", "resolution", str(runs / "hr"), str(runs / "dfd"), "--resolutions", "4,8,16",
                                 "--out", str(tmp_path / "r.png")])
    assert r.exit_code == 0, r.output
    _png(tmp_path / "r.png")
    assert not list(tmp_path.glob(".*"))  # no temp files left


def test_viz_makes_missing_folders_and_never_writes_another_commands_file(runs, tmp_path):
    before = sorted(p.name for p in (runs / "hr").iterdir())
    r = CliRunner().invoke(cli, ["viz", "resolution", str(runs / "hr"), "--resolutions", "8",
                                 "--out", str(tmp_path / "new" / "deeper" / "r.png")])
    assert r.exit_code == 0, r.output
    _png(tmp_path / "new" / "deeper" / "r.png")
    assert sorted(p.name for p in (runs / "hr").iterdir()) == before  # no eval.json written beside the run
    for taken in ("eval.json", "eval_resolution.png", "curves.png", "notes.txt"):
        r = CliRunner().invoke(cli, ["viz", "resolution", str(runs / "hr"), "--resolutions", "8",
                                     "--out", str(runs / "hr" / taken)])
        assert r.exit_code != 0 and not (runs / "hr" / taken).exists() or taken == "curves.png"
    assert (runs / "hr" / "curves.png").read_bytes()[:4] == b"\x89PNG"  # the run's own, untouched


def test_eval_writes_a_confusion_matrix_png(runs):
    from lowres_sdk.training.evaluate import evaluate

    report = evaluate(runs / "dfd", [4, 8])
    assert set(report["resolutions"]) == {"4", "8"}
    img = _png(runs / "dfd" / "eval_confusion.png")
    assert img.shape[1] > 1.5 * img.shape[0]  # two matrices side by side
