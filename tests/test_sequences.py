"""Scoring video against MOT ground truth (exact counts on hand-made frames), the region detector
(training on a tiny synthetic sequence, ONNX metadata, the onnxruntime provider), naming within a
detector's category, the tracker's distance gate, and the no-leak rule of the sequence benchmark."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import write_flat_clip
from lowres_sdk import BundleError, InputError
from lowres_sdk.video.scoring import score
from lowres_sdk.video.tracking import IoUTracker, TrackerConfig

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path, gt_lines, frames):
    gt = tmp_path / "seq.gt.txt"
    gt.write_text("\n".join(gt_lines) + "\n")
    jsonl = tmp_path / "detections.jsonl"
    jsonl.write_text("".join(json.dumps({"frame": f, "objects": objs}) + "\n" for f, objs in frames))
    return gt, jsonl


def test_score_counts_hits_misses_ignores_and_labels(tmp_path):
    gt, jsonl = _write(tmp_path, [
        "1,1,10,10,20,40,1,1,1",     # hit, named person
        "1,2,100,10,20,40,1,1,1",    # hit, named bird
        "1,3,200,10,40,80,1,1,1",    # missed
        "1,4,300,10,10,20,1,1,1",    # under 16 px wide: don't care
        "1,-1,400,0,60,60,0,1,1",    # an ignore region
    ], [(0, [{"box": [11, 10, 20, 40], "track": 1, "label": "person"},
             {"box": [100, 12, 20, 40], "track": 2, "label": "bird"},
             {"box": [300, 10, 10, 20], "track": 3, "label": "person"},   # on the small one: dropped
             {"box": [405, 5, 50, 50], "track": 4, "label": "person"},    # on the ignore region: dropped
             {"box": [600, 100, 20, 40], "track": 5, "label": "person"}])])  # a false positive
    every = score(gt, jsonl, named_only=False)
    assert (every["ground_truth"], every["hits"], every["output"]) == (3, 2, 3)
    assert every["recall"] == round(2 / 3, 4) and every["precision"] == round(2 / 3, 4)
    assert every["named_right"] == 0.5 and every["matched_labels"] == {"person": 1, "bird": 1}
    assert every["recall_by_width"] == {"16-32": 1.0, "32-64": 0.0}
    named = score(gt, jsonl)  # only boxes named person count as output
    assert (named["hits"], named["output"], named["recall"]) == (1, 2, round(1 / 3, 4))
    small = score(gt, jsonl, min_width=0, named_only=False)
    assert small["ground_truth"] == 4 and small["hits"] == 3 and small["recall_by_width"]["0-16"] == 1.0


def test_score_idf1_is_one_for_perfect_tracks_and_refuses_mixed_classes(tmp_path):
    lines = [f"{f},{i},{10 + 5 * f + 100 * i},20,20,40,1,1,1" for f in range(1, 6) for i in (1, 2)]
    frames = [(f - 1, [{"box": [10 + 5 * f + 100 * i, 20, 20, 40], "track": 7 + i, "label": "person"}
                       for i in (1, 2)]) for f in range(1, 6)]
    gt, jsonl = _write(tmp_path, lines, frames)
    s = score(gt, jsonl)
    assert s["recall"] == 1.0 and s["precision"] == 1.0 and s["idf1"] == 1.0 and s["mota"] == 1.0
    gt.write_text("1,1,0,0,20,20,1,1,1\n1,2,50,0,20,20,1,3,1\n")
    with pytest.raises(InputError, match="one annotated class"):
        score(gt, jsonl)


def test_distance_gate_keeps_a_fast_track_that_iou_loses():
    boxes = [np.array([[10 + 30 * i, 50, 20, 20]]) for i in range(4)]  # 1.5 box sides a frame: IoU 0
    plain, gated = IoUTracker(TrackerConfig()), IoUTracker(TrackerConfig(gate=2.0))
    plain_ids = {plain.update(b)[0][0].id for b in boxes}
    gated_tracks = [gated.update(b)[0][0] for b in boxes]
    assert len(plain_ids) == 4 and len({t.id for t in gated_tracks}) == 1 and gated_tracks[-1].hits == 4
    assert np.allclose(gated_tracks[-1].velocity, [30, 0])


def test_a_vehicle_may_stand_still_a_person_must_travel():
    config = TrackerConfig(min_hits=2, min_travel=0.1, static_categories=(1,))
    tracker = IoUTracker(config)
    for _ in range(3):
        (person, _), (car, _) = tracker.update(np.array([[10, 10, 20, 40], [100, 10, 40, 20]]))
        IoUTracker.observe_category(person, [0.9, 0.1])
        IoUTracker.observe_category(car, [0.1, 0.9])
    assert car.hits == 3 and config.confirmed(car) and not config.confirmed(person)
    tracker.update(np.array([[14, 10, 20, 40]]))  # the person moves 0.14 box sides
    assert config.confirmed(person)


def test_bytetrack_behind_the_tracker_interface_keeps_a_walking_box_one_track():
    pytest.importorskip("trackers", reason="Roboflow's trackers package (ByteTrack) is optional")
    from lowres_sdk.video.tracking import make_tracker

    tracker = make_tracker(TrackerConfig(method="bytetrack"))
    seen = [tracker.update(np.array([[10 + 3 * i, 50, 20, 40]]), np.array([0.9]))[0][0] for i in range(6)]
    assert len({t.id for t in seen[1:]}) == 1 and seen[-1].hits == 5
    with pytest.raises(InputError, match="tracker method"):
        make_tracker(TrackerConfig(method="sort"))


def _sequence(folder: Path, n=12, size=(96, 64)):
    """A bright 'person' walking right over noise, MOT ground truth beside it."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(folder / "walk.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, size)
    lines = []
    for f in range(n):
        img = rng.integers(40, 80, (size[1], size[0], 3)).astype(np.uint8)
        x = 10 + 5 * f
        img[20:52, x:x + 12] = 230
        writer.write(img)
        lines.append(f"{f + 1},1,{x},20,12,32,1,1,1")
    writer.release()
    (folder / "walk.gt.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("sequences")
    _sequence(folder)
    out = folder / "detector.onnx"
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "train-detector", str(folder), "--out", str(out),
                        "--steps", "3", "--work", str(folder / "work")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return folder, out


def test_train_detector_records_what_it_saw_and_refuses_to_overwrite(detector):
    from lowres_sdk.video.detector import read_meta

    folder, out = detector
    meta = read_meta(out)
    assert meta["trained_on"] == ["walk"] and meta["categories"] == ["person", "vehicle"] and meta["steps"] == 3
    again = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "train-detector", str(folder), "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    bad = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "train-detector", str(folder), "--out",
                          str(folder / "x.onnx"), "--exclude", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_detector_regions_gives_boxes_in_the_frame_with_category_scores(detector):
    from lowres_sdk.video.detector import DetectorRegions

    _, out = detector
    regions = DetectorRegions(out, threshold=0.01, min_size=1)  # an untrained net: low bars so boxes come out
    frame = np.random.default_rng(1).integers(0, 255, (70, 101, 3)).astype(np.uint8)  # odd sizes: padded
    boxes = regions(frame, 0)
    assert boxes.dtype == np.int64 and boxes.shape[1] == 4 and len(boxes) > 0
    assert regions.last_categories.shape == (len(boxes), 2)
    assert (boxes[:, 0] + boxes[:, 2] / 2 < 101).all() and (boxes[:, 1] + boxes[:, 3] / 2 < 70).all()
    with pytest.raises(InputError, match="threshold"):
        DetectorRegions(out, threshold=1.5)
    with pytest.raises(InputError, match="not found"):
        DetectorRegions(out.parent / "missing.onnx")
    junk = out.parent / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(BundleError, match="not a loadable ONNX model"):
        DetectorRegions(junk)


def test_thresholds_per_category_come_from_the_model_metadata_or_the_caller(detector, tmp_path):
    import shutil

    from lowres_sdk.video.detector import DetectorRegions
    from training.detector_tune import write_meta

    _, out = detector
    tuned = tmp_path / "tuned.onnx"
    shutil.copy(out, tuned)
    write_meta(tuned, {"thresholds": {"person": 0.2, "vehicle": 0.6}, "thresholds_chosen_on": ["walk"]})
    regions = DetectorRegions(tuned)
    assert regions.by_category.tolist() == pytest.approx([0.2, 0.6]) and regions.threshold == pytest.approx(0.2)
    boxes = np.array([[0, 0, 20, 40], [50, 0, 20, 40], [100, 0, 40, 20]], np.float64)
    scores = np.array([[0.25, 0.1], [0.1, 0.5], [0.1, 0.65]], np.float32)  # a person, a weak and a sure vehicle
    assert sorted(regions.select(boxes, scores).tolist()) == [[0, 0, 20, 40], [100, 0, 40, 20]]
    assert regions.last_categories.shape == (2, 2)
    assert DetectorRegions(tuned, threshold=0.3).by_category.tolist() == pytest.approx([0.3, 0.3])
    assert DetectorRegions(out).by_category.tolist() == pytest.approx([0.3, 0.3])  # no thresholds stored: 0.3
    with pytest.raises(InputError, match="vehicle"):
        DetectorRegions(tuned, threshold={"person": 0.3})


class _Provider:
    """Two fixed boxes, the first found as a person, the second as a vehicle."""
    categories = ("person", "vehicle")

    def __call__(self, frame, index):
        self.last_categories = np.array([[0.9, 0.1], [0.2, 0.7]], np.float32)
        return np.array([[10, 10, 20, 40], [60, 20, 30, 20]])


class _Birdy:
    """A classifier that calls everything a bird, a little less sure of truck than car."""
    labels = ["person", "car", "truck", "bird", "other"]
    thresholds = None

    def __call__(self, crops):
        return SimpleNamespace(probs=np.tile([0.05, 0.1, 0.15, 0.65, 0.05], (len(crops), 1)))


def test_a_detector_category_names_the_track_and_the_classifier_the_vehicle_type(tmp_path):
    from lowres_sdk.video import run

    path = write_flat_clip(tmp_path / "blank.avi", 4, (120, 80))
    with run(path, _Birdy(), _Provider(), tracker=TrackerConfig(min_hits=1, min_travel=0), threads=False) as results:
        last = list(results)[-1]
    labels = {d.box: (d.label, round(d.score, 2)) for d in last.objects}
    assert labels == {(10, 10, 20, 40): ("person", 0.9), (60, 20, 30, 20): ("truck", 0.7)}


def test_no_sequence_is_scored_by_a_detector_that_trained_on_it():
    """The benchmark's rows (benchmarks/results/sequences.json) and the fold models it names."""
    from lowres_sdk.video.detector import read_meta

    results = ROOT / "benchmarks" / "results" / "sequences.json"
    if not results.exists():
        pytest.skip("benchmarks/results/sequences.json not written yet (python -m benchmarks.sequences)")
    rows = json.loads(results.read_text())["rows"]
    assert rows, "the benchmark wrote no rows"
    for row in rows:
        assert row["sequence"] not in row["trained_on"] and row["seen"] is False, row["sequence"]
        if row["regions"] in ("detector", "street"):  # street: the own detector's vehicles (COCO saw none of these)
            model = ROOT / "benchmarks" / "checkpoints" / "detector" / row["model"]
            assert row["sequence"] not in read_meta(model)["trained_on"], (row["sequence"], row["model"])
