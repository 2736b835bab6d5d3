"""The demo input (scikit-image's photos) and `lowres demo` end to end."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage", reason="the demo needs the `demo` extra (scikit-image)")

from lowres_sdk.demo import demo_crops, make_demo_clip  # noqa: E402


def test_demo_crops_are_low_res_bgr():
    crops = demo_crops((32, 12))
    assert len(crops) == 14  # 7 sources (2 people, a cat, a horse, 3 object-free textures) x 2 sizes
    for c in crops:
        assert c.image.dtype == np.uint8 and c.image.ndim == 3 and c.image.shape[2] == 3
        assert max(c.image.shape[:2]) == int(c.name.split("@")[1][:-2])
    assert {c.expected for c in crops} == {"person", "cat", "horse", "other"}


def test_demo_clip_has_the_objects_where_it_says(tmp_path):
    truth = make_demo_clip(tmp_path / "clip.avi", n_frames=40)
    cap = cv2.VideoCapture(str(tmp_path / "clip.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    assert truth[0] == [] and {n for n, _ in truth[-1]} >= {"person", "cat"}
    heights = [b[3] for boxes in truth for _, b in boxes]
    assert min(heights) >= 30 and max(heights) <= 56


def test_lowres_demo_end_to_end(tiny_bundle, tmp_path):
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "demo", "--bundle", str(tiny_bundle.path),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "1. still crops" in p.stdout and "2. video" in p.stdout
    import re

    tally = re.search(r"of (\d+) crops whose true label the model has: (\d+) right, (\d+) unknown "
                      r"\(best guess right for (\d+)\), (\d+) wrong", p.stdout)
    n, right, unknown, _, wrong = map(int, tally.groups())
    assert n == right == unknown == wrong == 0  # the tiny bundle's labels (blob, stripes) name none of the crops
    lines = (tmp_path / "detections.jsonl").read_text().splitlines()
    assert len(lines) == 90
    assert sum(bool(json.loads(line)["objects"]) for line in lines) > 60  # the motion crops find the sprites
    assert (tmp_path / "annotated.mkv").stat().st_size > 10_000


def test_lowres_demo_with_the_shipped_default_counts_each_crop_once(tmp_path):
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "demo", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    import re

    marks = re.findall(r"^   (ok|\?\?|--) \S+@\d+px .* expected (\w+) +got (\w+)", p.stdout, re.M)
    tally = re.search(r"of (\d+) crops whose true label the model has: (\d+) right, (\d+) unknown "
                      r"\(best guess right for (\d+)\), (\d+) wrong", p.stdout)
    n, right, unknown, best, wrong = map(int, tally.groups())
    # Every demo crop's label is one of the default's, so each is counted, under the mark its line shows.
    assert n == len(marks) >= 20 and best <= unknown
    assert [right, unknown, wrong] == [sum(m == k for m, _, _ in marks) for k in ("ok", "??", "--")]
    assert all((m == "ok") == (want == got) and (m == "??") == (got == "unknown") for m, want, got in marks)
