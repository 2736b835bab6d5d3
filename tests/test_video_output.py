"""What `lowres video` leaves for a person and a machine: a one-line summary (or --json), an --out
that never mixes two runs, JSONL objects in the sdk/results.py schema with xyxy beside box, plain
progress lines when stderr is a log, and labels drawn on filled tags inside the frame."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lowres_sdk.progress import Progress, progress
from lowres_sdk.results import RECORD_KEYS
from lowres_sdk.video.outputs import annotate, label_style
from lowres_sdk.video.pipeline import Detection

from conftest import write_flat_clip
from test_video import make_clip
from tiny_bundles import make_bundle


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lowres_sdk.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_out")
    make_clip(root / "squares.avi", n=45)
    write_flat_clip(root / "still.avi", 15, (64, 48), fps=10)
    return root, make_bundle(root / "bundle")


def test_a_used_out_is_refused_then_replaced_whole_with_overwrite(world, tmp_path):
    root, bundle = world
    out = tmp_path / "run"
    p = _cli("video", root / "squares.avi", "--crops", "motion", "--bundle", bundle, "--out", out, "--min-size", "8")
    assert p.returncode == 0, p.stderr
    line = p.stdout.splitlines()[0]
    assert line.startswith("45 frames, ") and "{" not in line and "frames/s" in line
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert set(before) == {"annotated.mkv", "detections.jsonl", "summary.json"}
    p = _cli("video", root / "squares.avi", "--crops", "motion", "--bundle", bundle, "--out", out, "--no-video")
    assert p.returncode == 1 and p.stderr.startswith(f"error: {out} holds an earlier run's")
    assert "--overwrite" in p.stderr
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    p = _cli("video", root / "squares.avi", "--crops", "motion", "--bundle", bundle, "--out", out, "--no-video", "--overwrite", "--json",
             "--min-size", "8")
    assert p.returncode == 0 and json.loads(p.stdout)["frames_processed"] == 45
    assert sorted(f.name for f in out.iterdir()) == ["detections.jsonl", "summary.json"]  # no stale video beside it
    objects = [o for line in (out / "detections.jsonl").read_text().splitlines()
               for key in ("objects", "tentative") for o in json.loads(line)[key]]
    assert objects
    for o in objects:
        x, y, w, h = o["box"]
        assert o["xyxy"] == [x, y, x + w, y + h] and set(RECORD_KEYS) <= set(o)
        assert o["known"] == (o["label"] != "unknown") and o["best"] in ("blue", "green", "red")


def test_an_empty_run_says_so_plainly(world, tmp_path):
    root, bundle = world
    p = _cli("video", root / "still.avi", "--crops", "motion", "--bundle", bundle, "--out", tmp_path / "still")
    assert p.returncode == 0, p.stderr
    line = p.stdout.splitlines()[0]
    assert line.startswith("15 frames, no objects;") and "saved by tracking" not in line and "0 of 0" not in line
    summary = json.loads((tmp_path / "still" / "summary.json").read_text())
    assert summary["crops_seen"] == 0 and summary["classifications_saved"] is None


def test_progress_in_a_log_is_plain_lines_and_quiet_is_silent(world, tmp_path):
    root, bundle = world
    p = _cli("video", root / "squares.avi", "--crops", "motion", "--bundle", bundle, "--out", tmp_path / "a", "--no-video")
    assert "\r" not in p.stderr and p.stderr.splitlines()[-1].startswith("video: 45/45 frames (100 %), ")
    p = _cli("video", root / "squares.avi", "--crops", "motion", "--bundle", bundle, "--out", tmp_path / "b", "--no-video", "--quiet")
    assert p.returncode == 0 and p.stderr == ""


def test_progress_prints_a_line_every_period_not_a_bar():
    stream = io.StringIO()
    with Progress(total=5, desc="steps", unit="items", every=0.0, stream=stream) as bar:
        for _ in range(5):
            bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6 and "\r" not in stream.getvalue()  # one a period (here: every update) + the last
    assert lines[0].startswith("steps: 1/5 items (20 %), ") and lines[-1].startswith("steps: 5/5 items (100 %)")
    assert list(progress(range(3), quiet=True)) == [0, 1, 2]


@pytest.mark.parametrize("height", [360, 1080])
def test_labels_are_filled_tags_inside_the_frame(height):
    image = np.zeros((height, height * 16 // 9, 3), np.uint8)
    W = image.shape[1]
    corner = Detection((W - 12, height - 20, 11, 19), 7, "person", 0.9, True)  # a tag there would leave the frame
    out = annotate(image, [corner, Detection((W - 40, height - 20, 11, 19), 8, "car", 0.8, True)])
    drawn = np.argwhere(out.any(axis=2))
    scale, _ = label_style(height)
    (tw, th), _ = cv2.getTextSize("person 0.90 #7", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    assert th >= 8  # legible: at least 8 px tall text
    # the tag is filled (a solid block as tall as the text), and it was moved inside the frame
    rows = np.unique(drawn[:, 0])
    assert drawn[:, 1].max() == W - 1 and rows.max() == height - 1
    assert (out[height - 21 - th:height - 21, W - tw:W].any(axis=2).mean()) > 0.5
