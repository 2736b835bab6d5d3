"""The shipped default model, run as a user runs it (`lowres video CLIP`, defaults), labels the given
clips' tracks as what they are. Both clips are seen data: the model trained on the moving objects of
each clip's first half (docs/default_model.md), so these guard the product against regressions; the
figures on unseen sources are in docs/sources.md."""
import json
import subprocess
import sys

import pytest

from conftest import SHARED_DATA

CLIPS = {  # clip -> (the label of its objects, the least share of reported tracks that carry it)
    "pedestrians-480x360.avi": ("person", 0.85),  # measured 120 of 128 (the rest unknown)
    "highway-cars-1280x720.mp4": ("car", 0.9),  # measured 35 of 35
}


@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_default_labels_the_given_clip_through_the_cli(clip, tmp_path):
    path = SHARED_DATA / "video" / clip
    if not path.is_file():
        pytest.skip(f"the given clip is not at {path}")
    # motion regions: this guards the classifier's labels (the detector's are in benchmarks/sequences.py)
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "video", str(path), "--out", str(tmp_path),
                        "--crops", "motion", "--no-video", "--quiet"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    labels, tracks = summary["track_labels"], sum(summary["track_labels"].values())
    label, least = CLIPS[clip]
    assert summary["finished"] and summary["frames_failed"] == 0 and tracks >= 20, summary
    assert labels.get(label, 0) >= least * tracks, labels
    # what is not labelled right is `unknown`, not another object: at most one track in 20 is named wrongly
    assert tracks - labels.get(label, 0) - labels.get("unknown", 0) <= 0.05 * tracks, labels
    lines = (tmp_path / "detections.jsonl").read_text().splitlines()
    assert len(lines) == summary["frames_processed"] == summary["frames_read"]
