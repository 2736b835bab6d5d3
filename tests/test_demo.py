"""`lowres demo`: its shipped MEVA assets, the rules that cut them, and the figures it prints, recomputed here
from the crops, the clip's annotations and the pipeline's JSONL by code of the test's own."""
import configparser
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from lowres_sdk import Classifier
from lowres_sdk.demo import ASSETS, asset_path, assets, demo_crops
from lowres_sdk.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
RIGHT = {"person": {"person"}, "vehicle": {"vehicle", "car", "truck", "bus", "motorcycle"},
         "background": {"other", "background"}}


def test_assets_are_the_listed_files_small_and_shipped():
    meta = assets()
    files = [c["file"] for c in meta["crops"]] + [meta["clip"]["file"], meta["clip"]["gt"]]
    for name in files:
        assert asset_path(name).is_file()  # present, and its sha256 is demo.json's
    on_disk = {p.relative_to(ASSETS).as_posix() for p in ASSETS.rglob("*") if p.is_file()}
    assert on_disk == {*files, "demo.json", "README.md"}
    assert sum((ASSETS / f).stat().st_size for f in on_disk) <= 400_000
    assert Counter(c["category"] for c in meta["crops"]) == {"person": 16, "vehicle": 12, "background": 9}
    assert all(max(c["size"]) <= 48 and c["size"] == list(cv2.imread(str(ASSETS / c["file"])).shape[1::-1])
               for c in meta["crops"])
    readme = (ASSETS / "README.md").read_text()
    assert "CC BY 4.0" in readme and meta["source"]["frames_commit"] in readme and meta["source"]["gt_commit"] in readme
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["lowres_sdk"].split(",")]
    packaged = {p.relative_to(ASSETS).as_posix() for g in globs for p in ASSETS.parent.glob(g)
                if p.is_file() and ASSETS in p.parents}
    assert packaged == on_disk, "every asset must be in setup.cfg's package_data"


def test_a_damaged_asset_is_refused(tmp_path, monkeypatch):
    import shutil

    import lowres_sdk.demo as demo

    shutil.copytree(ASSETS, tmp_path / "assets")
    first = assets()["crops"][0]["file"]
    (tmp_path / "assets" / first).write_bytes(b"not the shipped png")
    monkeypatch.setattr(demo, "ASSETS", tmp_path / "assets")
    with pytest.raises(InputError, match="reinstall"):
        demo.demo_crops()


def test_crop_rule_takes_evenly_spaced_whole_views_and_free_windows():
    from lowres_sdk.training.demo_assets import MIN_SIDE, VIEWS_PER_TRACK, background_window, pick_views

    boxes = [(f, (100, 100, 120, 140), f % 10 == 0) for f in range(50)]  # every 10th touches the edge
    views = pick_views({"category": "person", "boxes": boxes}, {})
    frames = [v[0] for v in views]
    assert len(views) == VIEWS_PER_TRACK and frames[0] == 1 and frames[-1] == 49 and not any(v[2] for v in views)
    small = [(f, (0, 0, MIN_SIDE - 1, 40), False) for f in range(5)]
    assert pick_views({"category": "person", "boxes": small}, {}) == []
    at_car = {f: [(90, 90, 130, 150)] for f in range(50)}  # a vehicle's box around the person's: the crop is car
    assert pick_views({"category": "person", "boxes": boxes}, at_car) == []
    assert len(pick_views({"category": "vehicle", "boxes": boxes}, at_car)) == VIEWS_PER_TRACK
    rng = np.random.default_rng(0)
    occupied = [(0, 70, 400, 504)]
    for aspect in (0.5, 4 / 3):
        x0, y0, x1, y1 = background_window("G340", aspect, occupied, rng)
        assert x0 >= 400 and y0 >= 70 and x1 <= 896 and y1 <= 504
        assert abs((x1 - x0) / (y1 - y0) - aspect) < 0.1


@pytest.mark.skipif(not os.environ.get("LOWRES_DEMO_SNAPSHOT"),
                    reason="set LOWRES_DEMO_SNAPSHOT to a fetched snapshot's git directory of the source "
                           "(sdk/demo_assets/README.md) to rebuild the crops")
def test_rebuilt_crops_equal_the_shipped_ones(tmp_path):
    from lowres_sdk.training.demo_assets import Snapshot, build_crops

    rebuilt = build_crops(Snapshot(Path(os.environ["LOWRES_DEMO_SNAPSHOT"])), tmp_path)
    shipped = assets()["crops"]
    assert [{k: v for k, v in r.items() if k != "sha256"} for r in rebuilt] == \
        [{k: v for k, v in r.items() if k != "sha256"} for r in shipped]
    for r in shipped:
        assert np.array_equal(cv2.imread(str(tmp_path / r["file"])), cv2.imread(str(ASSETS / r["file"])))


def _demo(tmp_path, *args):
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "demo", "--out", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _printed_tallies(out: str) -> dict:
    found = re.findall(r"^   (as stored \(<= 48 px\)|shrunk to 16 px): (\d+) of (\d+) right \(\d+ %\), (\d+) unknown, "
                       r"(\d+) wrong", out, re.M)
    return {name: tuple(map(int, nums)) for name, *nums in found}


def _recomputed_tallies(classifier) -> dict:
    """right / n / unknown / wrong of the shipped crops at both sizes, from the files themselves."""
    meta = assets()["crops"]
    images = [cv2.imread(str(ASSETS / c["file"])) for c in meta]
    out = {}
    for name, size in (("as stored (<= 48 px)", None), ("shrunk to 16 px", 16)):
        shown = []
        for im in images:
            h, w = im.shape[:2]
            s = 1.0 if size is None or max(h, w) <= size else size / max(h, w)
            shown.append(im if s == 1.0 else cv2.resize(im, (max(1, round(w * s)), max(1, round(h * s))),
                                                        interpolation=cv2.INTER_AREA))
        labels = classifier(shown).labels
        right = sum(label in RIGHT[c["category"]] for c, label in zip(meta, labels))
        unknown = sum(label == "unknown" for label in labels)
        out[name] = (right, len(meta), unknown, len(meta) - right - unknown)
    return out


def _printed_clip(out: str) -> dict:
    found = re.findall(r"^   (people|vehicles) in the clip \(annotated\): (\d+); followed by a track: (\d+); "
                       r"named [a-z ]+: (\d+)", out, re.M)
    return {kind: tuple(map(int, nums)) for kind, *nums in found}


def _recomputed_clip(jsonl: Path) -> dict:
    """Per annotated object: the reported track overlapping it (IoU >= 0.3, its best box per frame) on most
    frames, and that track's majority label."""
    truth = defaultdict(list)
    for line in (ASSETS / "clip.gt.txt").read_text().splitlines():
        f, oid, x, y, w, h, _, cls = (float(v) for v in line.split(",")[:8])
        truth[int(f) - 1].append((int(oid), "person" if cls == 1 else "vehicle", (x, y, x + w, y + h)))

    def iou(a, b):
        iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
        inter = max(iw, 0) * max(ih, 0)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    hits, labels = defaultdict(Counter), defaultdict(Counter)
    for line in jsonl.read_text().splitlines():
        rec = json.loads(line)
        for o in rec["objects"]:
            labels[o["track"]][o["label"]] += 1
        for oid, _, box in truth.get(rec["frame"], []):
            scored = [(iou(box, o["xyxy"]), o["track"]) for o in rec["objects"]]
            best = max(scored, default=(0, None))
            if best[0] >= 0.3:
                hits[oid][best[1]] += 1
    kinds = {oid: kind for boxes in truth.values() for oid, kind, _ in boxes}
    out = {}
    for kind, plural in (("person", "people"), ("vehicle", "vehicles")):
        ids = [oid for oid, k in kinds.items() if k == kind]
        tracks = [hits[oid].most_common(1)[0][0] for oid in ids if hits[oid]]
        named = sum(labels[t].most_common(1)[0][0] in RIGHT[kind] for t in tracks)
        out[plural] = (len(ids), len(tracks), named)
    return out


def test_demo_prints_what_the_crops_and_the_clip_give(tmp_path):
    """The shipped default: the printed figures equal the recomputed ones; the issue's floor (>= 80 % of the
    still crops right) is asserted at both sizes because this model reaches it (89 / 86 % on 8 Dec 2026)."""
    out = _demo(tmp_path)
    printed = _printed_tallies(out)
    assert printed == _recomputed_tallies(Classifier())
    for right, n, _, _ in printed.values():
        assert right / n >= 0.8
    clip = _printed_clip(out)
    assert clip == _recomputed_clip(tmp_path / "detections.jsonl")
    assert clip["people"][0] == 4 and clip["vehicles"][0] == 3
    assert len((tmp_path / "detections.jsonl").read_text().splitlines()) == 150
    assert (tmp_path / "annotated.mkv").stat().st_size > 10_000


def test_demo_with_another_bundle_counts_every_crop_and_reruns_into_the_same_out(tiny_bundle, tmp_path):
    for _ in range(2):  # the second run replaces the first's outputs
        out = _demo(tmp_path, "--bundle", str(tiny_bundle.path))
    printed = _printed_tallies(out)
    assert [t[:2] for t in printed.values()] == [(0, 37), (0, 37)]  # its labels (blob, stripes) name none of them
    assert printed == _recomputed_tallies(Classifier(tiny_bundle.path))
    assert _printed_clip(out) == _recomputed_clip(tmp_path / "detections.jsonl")


def test_demo_crops_are_bgr_with_names_and_groups():
    crops = demo_crops()
    assert [c.name for c in crops] == [Path(c["file"]).stem for c in assets()["crops"]]
    assert all(c.image.dtype == np.uint8 and c.image.ndim == 3 and c.image.shape[2] == 3 for c in crops)
    assert len({c.group for c in crops if c.category == "person"}) == 4
