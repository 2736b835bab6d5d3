"""Pinned data sources (training/sources) and the leave-one-source-out scorecard (benchmarks/sources.py):
builds refuse a snapshot that differs from its pins, never delete a folder they did not make, and the
scorecard never calls a source the shipped model saw unseen."""
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from lowres_sdk.cli import cli
from lowres_sdk.errors import DataError
from lowres_sdk.training.sources import base, highway_webcam, penn_fudan, sequences
from lowres_sdk.training.sources.registry import SOURCES

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import sources as scorecard  # noqa: E402  (benchmarks/sources.py)

MANIFEST = json.loads((ROOT / "benchmarks" / "manifests" / "default.json").read_text())
BUNDLE = json.loads((ROOT / "sdk" / "models" / "default" / "bundle.json").read_text())


def _tiny_source(snapshot: Path, text: str = "person a\nperson a\ncar b\n") -> base.Source:
    """A source of one pinned text file naming its crops: "label group" per line, each a 10x6 grey crop."""
    (snapshot / "list.txt").write_text(text)

    def crops(snap):
        for i, line in enumerate((snap / "list.txt").read_text().split("\n")):
            if line:
                label, group = line.split()
                yield label, group, np.full((10, 6, 3), 40 * i, np.uint8)

    pins = {"list.txt": hashlib.sha256((snapshot / "list.txt").read_bytes()).hexdigest()}
    return base.Source("tiny", "github:someone/tiny", "0" * 40, "test", ("person", "car"), "test crops", pins, crops)


def test_build_writes_the_crops_layout_and_a_manifest(tmp_path):
    snap, cache = tmp_path / "snap", tmp_path / "cache"
    snap.mkdir()
    out = base.build(_tiny_source(snap), snap, cache)
    assert out == cache / "tiny"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == \
        ["car/b__0.png", "person/a__0.png", "person/a__1.png"]
    assert cv2.imread(str(out / "person" / "a__1.png")).shape == (10, 6, 3)
    info = base.read_manifest(out)
    assert info["crops"] == {"car": 1, "person": 2} and info["groups"] == {"car": 1, "person": 1}
    pairs = [(label, group) for label, group, _ in base.read_crops(out)]
    assert pairs == [("car", "b"), ("person", "a"), ("person", "a")]
    stamp = (out / "car" / "b__0.png").stat().st_mtime_ns
    assert base.build(_tiny_source(snap), snap, cache) == out  # same pins: the build is kept as it is
    assert (out / "car" / "b__0.png").stat().st_mtime_ns == stamp


def test_a_snapshot_that_differs_from_its_pins_is_refused(tmp_path):
    snap, cache = tmp_path / "snap", tmp_path / "cache"
    snap.mkdir()
    source = _tiny_source(snap)
    (snap / "list.txt").write_text("person a\n")
    with pytest.raises(DataError, match="differ from their pinned sha256"):
        base.build(source, snap, cache)
    (snap / "list.txt").unlink()
    with pytest.raises(DataError, match="1 of 1 pinned files are missing"):
        base.build(source, snap, cache)
    assert not (cache / "tiny").exists()


def test_a_folder_that_is_not_our_build_is_never_replaced(tmp_path):
    snap, cache = tmp_path / "snap", tmp_path / "cache"
    snap.mkdir()
    (cache / "tiny").mkdir(parents=True)
    (cache / "tiny" / "mine.txt").write_text("the user's")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="not a built source"):
            base.build(_tiny_source(snap), snap, cache, overwrite=overwrite)
    assert (cache / "tiny" / "mine.txt").read_text() == "the user's"


def test_a_build_from_other_pins_is_replaced_only_when_asked(tmp_path):
    snap, cache = tmp_path / "snap", tmp_path / "cache"
    snap.mkdir()
    base.build(_tiny_source(snap), snap, cache)
    changed = _tiny_source(snap, "car c\n")
    with pytest.raises(DataError, match="--overwrite"):
        base.build(changed, snap, cache)
    assert base.read_manifest(cache / "tiny")["crops"] == {"car": 1, "person": 2}
    base.build(changed, snap, cache, overwrite=True)
    assert base.read_manifest(cache / "tiny")["crops"] == {"car": 1}


def test_penn_fudan_boxes_are_zero_based_and_end_exclusive():
    note = ('Bounding box for object 1 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (160, 182) - (302, 431)\n'
            'Bounding box for object 2 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (1, 1) - (5, 9)\n')
    assert penn_fudan.boxes(note) == [(159, 181, 302, 431), (0, 0, 5, 9)]


def test_sequence_crops_skip_ignore_regions_and_cap_each_track(tmp_path):
    gt = tmp_path / "x.gt.txt"
    rows = [f"{f},7,10,10,8,20,1,1,1" for f in range(1, 41)]              # one track, 40 frames
    rows += ["3,8,50,50,8,20,0,1,1", "5,9,50,50,8,20,1,2,1"]               # an ignore region, an uncounted class
    rows += [f"{f},-1,100,100,20,10,1,3,1" for f in (1, 2, 11, 12)]       # no ids: every 10th frame only
    gt.write_text("\n".join(rows) + "\n")
    chosen = sequences.pick(sequences.read_boxes(gt), "x")
    tracked = [g for picks in chosen.values() for g, _, _ in picks if g == "x-id7"]
    assert len(tracked) == sequences.PER_TRACK and min(chosen) == 1 and max(chosen) == 40
    untracked = sorted(f for f, picks in chosen.items() for g, _, label in picks if g == "x")
    assert untracked == [1, 11] and all(label == "car" for f in untracked for g, _, label in chosen[f] if g == "x")
    assert not any(g in ("x-id8", "x-id9") for picks in chosen.values() for g, _, _ in picks)
    frame = np.zeros((100, 100, 3), np.uint8)
    assert sequences.cut(frame, (10, 10, 8, 20)).shape == (20, 8, 3)
    assert sequences.cut(frame, (90, 10, 20, 20)) is None          # half outside the frame
    assert sequences.cut(frame, (10, 10, 3, 20)) is None           # too thin to hold an object


def test_highway_webcam_reads_only_the_labelled_jpegs(tmp_path):
    ok, jpg = cv2.imencode(".jpg", np.full((12, 20, 3), 90, np.uint8))
    with zipfile.ZipFile(tmp_path / highway_webcam.ARCHIVE, "w") as zf:
        zf.writestr("cropped_data/car/cropcar1.jpg", jpg.tobytes())
        zf.writestr("cropped_data/truck/croptruck1.jpg", jpg.tobytes())
        zf.writestr("__MACOSX/cropped_data/car/._cropcar1.jpg", b"\0\5\x16\7")
        zf.writestr("cropped_data/.DS_Store", b"junk")
    got = [(label, group, crop.shape) for label, group, crop in highway_webcam.crops(tmp_path)]
    assert got == [("car", "cropcar1", (12, 20, 3)), ("truck", "croptruck1", (12, 20, 3))]


def test_every_registered_source_is_pinned():
    assert len(SOURCES) >= 10
    for s in SOURCES.values():
        assert s.pins and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in s.pins.values()), s.name
        assert set(s.labels) <= set(base.LABELS)
        if s.origin.startswith("github:"):
            assert re.fullmatch(r"[0-9a-f]{40}", s.commit or ""), s.name
        else:
            assert s.origin.startswith("shared:") and s.commit is None
    reserved = ("inria", "cinic", "town-centre", "towncentre", "stadtmitte")
    assert not [n for n in SOURCES if any(r in n for r in reserved)]


def test_cli_refuses_unknown_sources_and_bad_snapshots(tmp_path):
    r = CliRunner().invoke(cli, ["sources", "build", "no-such-source", "--from", str(tmp_path)])
    assert r.exit_code == 2 and "unknown source" in r.output
    r = CliRunner().invoke(cli, ["sources", "build", "highway-webcam", "--from", str(tmp_path),
                                 "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1 and "pinned files are missing" in r.output and not (tmp_path / "cache").exists()
    r = CliRunner().invoke(cli, ["sources", "list"])
    assert r.exit_code == 0 and all(name in r.output for name in SOURCES)


# -- the scorecard ---------------------------------------------------------------------------------

SEEN_BY_DATA = {  # what each part of a recipe's `data` string trains on (training/fixedcam.py)
    "fixedcam": {"cifar10", "person-reid", "pedestrians-mit", "street-background"},
    "clipbg": {"clip:pedestrians-480x360.avi", "clip:highway-cars-1280x720.mp4", "pets09-s2l1"},
    "mot-people": {"adl-rundle-6-people", "mot17-mini-people"},  # training/sources/people.py
}


def test_the_manifest_covers_every_source_the_shipped_model_trained_on():
    routes = BUNDLE["routes"]
    assert MANIFEST["route_checkpoints_sha256"] == [r["provenance"]["checkpoint_sha256"] for r in routes], \
        "the shipped default changed: update benchmarks/manifests/default.json"
    for route in routes:
        parts = route["provenance"]["recipe"]["data"].split(":")[0].split("+")
        assert set(parts) <= set(SEEN_BY_DATA), f"unknown training data {parts}: name its sources in the manifest"
        for part in parts:
            assert SEEN_BY_DATA[part] <= set(MANIFEST["seen"]), part


# what a bundle's model card lists as seen (shared-data files) -> the sources they are or contain
SEEN_BY_FILE = {"cifar10-jpg.tar.gz": {"cifar10"}, "person-reid-48x128.tar.gz": {"person-reid"},
                "pedestrians-mit-64x128.tar.gz": {"pedestrians-mit"},
                "street-background-64x128.tar.gz": {"street-background"},
                "video/pedestrians-480x360.avi": {"clip:pedestrians-480x360.avi", "pets09-s2l1"},
                "video/highway-cars-1280x720.mp4": {"clip:highway-cars-1280x720.mp4"},
                "adl-rundle-6-people": {"adl-rundle-6-people"}, "mot17-mini-people": {"mot17-mini-people"}}


def test_the_manifest_agrees_with_the_shipped_model_card():
    card = BUNDLE.get("model_card")
    if card is None:
        pytest.skip("the shipped bundle has no model card")
    for name in card.get("data_seen", {}):
        assert SEEN_BY_FILE[name] <= set(MANIFEST["seen"]), name
    assert not set(card.get("data_unseen", [])) & set(MANIFEST["seen"])


def test_a_seen_source_is_never_called_unseen():
    for name in MANIFEST["seen"]:
        assert scorecard.status(MANIFEST, name) == "seen"
    assert scorecard.status(MANIFEST, "penn-fudan") == "unseen"
    assert scorecard.scored_groups(MANIFEST, "cifar10") == {"test"}
    assert scorecard.scored_groups(MANIFEST, "pets09-s2l1") is None  # nothing held out: trained-on crops
    assert scorecard.scored_part(MANIFEST, "pets09-s2l1").startswith("trained on")
    published = 0
    for results in (ROOT / "benchmarks" / "results").glob("sources*.json"):  # every published scorecard
        report = json.loads(results.read_text())
        manifest = json.loads((ROOT / "benchmarks" / "manifests" / report["manifest"]).read_text())
        for name, col in report["sources"].items():
            assert col["status"] == scorecard.status(manifest, name), (results.name, name)
            published += 1
    assert published >= 10 or not (ROOT / "benchmarks" / "results" / "sources.json").exists()


def test_what_counts_as_right():
    labels = BUNDLE["labels"]
    assert scorecard.accepted("truck", labels) == {"car", "truck"}  # any vehicle label
    assert scorecard.accepted("background", labels) == {"other"}
    assert scorecard.accepted("cat", labels) == {"cat"}
    assert scorecard.accepted("ship", labels) is None and scorecard.accepted("bus", labels) is None
    assert scorecard.shrink(np.zeros((20, 10, 3), np.uint8), 8).shape == (16, 8, 3)
    assert scorecard.shrink(np.zeros((20, 10, 3), np.uint8), 12) is None  # never enlarged


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 20000)
    assert scorecard.ece(conf, rng.uniform(size=conf.size) < conf) < 0.02      # right as often as it is sure
    assert scorecard.ece(conf, rng.uniform(size=conf.size) < conf / 2) > 0.25  # sure twice as often as right


def test_a_seen_source_is_scored_on_its_held_out_groups_only(tmp_path):
    snap, cache = tmp_path / "snap", tmp_path / "cache"
    snap.mkdir()
    folder = base.build(_tiny_source(snap, "person a\nperson a\nperson b\ncar b\ncar c\n"), snap, cache)

    def classify(images):  # a fake model: "person" for the darkest crops, "bird" for the rest, never unsure
        idx = np.array([0 if img.mean() < 20 else 1 for img in images])
        return SimpleNamespace(labels=[["person", "bird"][i] for i in idx], known=np.ones(len(idx), bool), indices=idx,
                               scores=np.full(len(idx), 0.9))

    clf = type("Fake", (), {"labels": ["person", "bird", "car", "other"], "__call__": lambda self, x: classify(x)})()
    seen = {"seen": {"tiny": {"held_out_groups": ["a"]}}}
    col = scorecard.score_source(clf, folder, seen, widths=(4, 8))
    assert col["status"] == "seen" and col["labels"] == {"person": 2}
    assert col["by_width"]["4"] == {"n": 2, "right": 50.0, "unknown": 0.0, "wrong": 50.0, "right_argmax": 50.0,
                                    "ece": 0.4, "wrong_as": {"bird": 1}}  # 90 % sure, half right
    assert col["by_width"]["8"] == {"n": 0}  # 6 px wide crops are never enlarged
    col = scorecard.score_source(clf, folder, {"seen": {}}, widths=(4,))
    assert col["status"] == "unseen" and col["labels"] == {"car": 2, "person": 3}


@pytest.mark.skipif(not (SHARED_DATA / "person-reid-48x128.tar.gz").is_file(),
                    reason=f"no shared data at {SHARED_DATA}")
def test_the_manifest_held_out_groups_are_the_ones_training_held_out():
    from lowres_sdk.training import fixedcam

    _, _, people = fixedcam.people(SHARED_DATA / "person-reid-48x128.tar.gz",
                                   SHARED_DATA / "pedestrians-mit-64x128.tar.gz")
    assert MANIFEST["seen"]["person-reid"]["held_out_groups"] == people["reid_held_out_ids"]
    _, _, scenes = fixedcam.backgrounds(SHARED_DATA / "street-background-64x128.tar.gz")
    assert MANIFEST["seen"]["street-background"]["held_out_groups"] == scenes["background_held_out_scenes"]
    mit = MANIFEST["seen"]["pedestrians-mit"]["held_out_groups"]
    assert len(mit) == -(-people["mit_images"] // fixedcam.HOLD_OUT_EVERY) and mit[:2] == ["per00001", "per00006"]


def test_extra_training_crops_leave_their_held_out_groups_out(tmp_path):
    from lowres_sdk.training import fixedcam
    from lowres_sdk.training.sources import wide

    snap, cache = tmp_path / "snap", tmp_path / "cache"
    snap.mkdir()
    base.build(_tiny_source(snap, "person a\nperson a\nperson b\ncar b\ncar c\n"), snap, cache)
    extra, info = wide.extra_set([wide.Extra("tiny", repeat=3, held_out=("b",))], cache)
    names = [extra.classes[i] for i in extra.labels]
    assert names == ["automobile"] * 3 + ["person"] * 6 and extra.images.shape[1:] == (32, 32, 3)
    assert np.allclose(extra.aspects, 0.6)  # 6 wide, 10 tall: kept beside the square copy
    assert info["tiny"] == {"crops": {"car": 1, "person": 2}, "repeat": 3, "held_out_groups": ["b"]}
    joined = wide.concat(extra, extra.subset(np.arange(2)))
    assert len(joined) == 11 and list(joined.classes) == list(fixedcam.FINE)
    with pytest.raises(DataError, match="not built"):
        wide.extra_set([wide.Extra("absent")], cache)


@pytest.mark.skipif(not (SHARED_DATA / "sequences" / "tud-campus-640x480.mp4").is_file(),
                    reason=f"no annotated sequences under {SHARED_DATA}")
def test_tud_campus_builds_from_the_shared_sequences(tmp_path):
    out = base.build(SOURCES["tud-campus"], SHARED_DATA, tmp_path)
    info = base.read_manifest(out)
    assert info["crops"] == {"person": 116} and info["groups"] == {"person": 8}  # 8 people, <= 16 boxes each
    shapes = [cv2.imread(str(p)).shape for _, _, p in base.read_crops(out)]
    assert np.median([h / w for h, w, _ in shapes]) > 1.8  # standing people: tall crops
