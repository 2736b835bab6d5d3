"""`lowres eval-retrieval`: query resolutions, the camera model, the dataset splits and the CLI end to end."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lowres_sdk import InputError
from lowres_sdk.cli import main
from lowres_sdk.training.checkpoint import load_model
from lowres_sdk.training.retrieval import retrieval_metrics
from lowres_sdk.training.retrieval_data import load_retrieval
from lowres_sdk.training.retrieval_eval import camera, embed, query_resolutions

from conftest import SHARED_DATA


def test_query_resolutions_from_pixels_and_factors():
    assert query_resolutions(48, [8, 16]) == [8, 16, 48]  # the native (HR) query is always there
    assert query_resolutions(48, None, [2, 4, 6]) == [8, 12, 24, 48]
    with pytest.raises(InputError, match="outside 1..48"):
        query_resolutions(48, [64])
    with pytest.raises(InputError, match=">= 1"):
        query_resolutions(48, None, [0.5])


def test_camera_keeps_the_aspect_and_shrinks_the_shortest_side():
    x = torch.rand(2, 3, 128, 48)  # a pedestrian crop
    assert camera(x, 8).shape[-2:] == (21, 8)
    assert camera(x, 48) is x
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert torch.allclose(camera(flat, 8), torch.full((1, 3, 8, 8), 0.25))  # antialiased: a mean stays a mean


def test_eval_retrieval_cli_end_to_end(tiny_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "report"
    base = [sys.executable, "-m", "lowres_sdk.cli", "eval-retrieval", str(tiny_run), "--dataset", "classes",
            "--data", str(tiny_data), "--out", str(out)]
    p = subprocess.run(base + ["--resolutions", "4,8", "--k", "1,5", "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert json.loads((out / "retrieval.json").read_text()) == report and (out / "retrieval.png").stat().st_size > 1000
    assert [r["query_resolution"] for r in report["rows"]] == [4, 8, 16]
    assert [r["downscale_factor"] for r in report["rows"]] == [4.0, 2.0, 1.0]
    assert report["queries"] == report["gallery"] == 18  # 12 test images per class: 6 queries + 6 gallery
    # The same numbers from the pieces: split halves, camera at r px, model pre-processing, metrics.
    rset = load_retrieval("classes", tiny_data, 16, per_class=100)
    model, spec, _ = load_model(tiny_run)
    gallery = embed(model, spec, rset.gallery.images)
    for row in report["rows"]:
        r = row["query_resolution"]
        expected = retrieval_metrics(embed(model, spec, rset.queries.images, r), rset.queries.labels, gallery,
                                     rset.gallery.labels, ks=(1, 5))
        for key in ("map", "p_at_1", "p_at_5", "r_at_1", "r_at_5"):
            assert row[key] == pytest.approx(expected[key]), (r, key)
    assert report["rows"][-1]["map"] > 0.6  # the 3 tiny classes are easy at full size (chance is ~0.36)
    with pytest.raises(SystemExit) as exit_code:  # the CLI's own error path, in-process (no second torch import)
        main(base[3:] + ["--resolutions", "64"])
    assert exit_code.value.code == 1 and "error: query resolutions [64] px are outside 1..16 px" in capsys.readouterr().err


REID = SHARED_DATA / "person-reid-48x128.tar.gz"
ORL = SHARED_DATA / "faces-orl-92x112.tar.gz"


@pytest.mark.skipif(not REID.is_file(), reason=f"{REID} not present (shared data)")
def test_reid_split_keeps_identities_apart_and_cameras_on_their_side():
    s = load_retrieval("reid", REID, 32)
    assert len(s.train.classes) == len(s.queries.classes) == 31 and not set(s.train.classes) & set(s.queries.classes)
    assert s.queries.classes == s.gallery.classes
    assert len(s.queries) == len(s.gallery) == 31 * 8 and s.queries.images.shape[1:] == (128, 48, 3)
    assert len(s.train) == 31 * 14 and len(s.test) == 31 * 2 and s.train.images.shape[1:] == (32, 32, 3)
    assert np.bincount(s.queries.labels).tolist() == [8] * 31
    assert not np.array_equal(s.queries.images[0], s.gallery.images[0])  # camera 01 vs camera 02


@pytest.mark.skipif(not ORL.is_file(), reason=f"{ORL} not present (shared data)")
def test_orl_split_by_identity():
    s = load_retrieval("orl", ORL, 32)
    assert s.train.classes == [f"s{i}" for i in range(3, 18)] and s.queries.classes == [f"s{i}" for i in range(18, 33)]
    assert len(s.queries) == len(s.gallery) == 75 and s.queries.images.shape[1:] == (112, 92, 3)
    assert len(s.train) == 120 and len(s.test) == 30
