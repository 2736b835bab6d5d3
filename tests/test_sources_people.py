"""Street-level people cut from MOT sequences (training/sources/mot_people.py) and the training set built
from them (training/sources/people.py): only counted pedestrians become `person`, background windows touch
no annotated box, and a held-out sequence stays out of training whole (people, windows and parts)."""
import cv2
import numpy as np
import pytest

from lowres_sdk.errors import DataError
from lowres_sdk.training import fixedcam
from lowres_sdk.training.data import ImageSet
from lowres_sdk.training.sources import base, mot_people, people


def test_only_counted_pedestrians_are_people():
    rows = mot_people.read_gt("1,1,10,10,20,60,1,1,0.9\n"     # MOT17 pedestrian
                              "1,2,10,10,20,60,0,1,0.9\n"     # not considered (conf 0)
                              "1,3,10,10,20,60,1,7,1.0\n"     # static person: avoided, not learnt
                              "1,4,10,10,20,60,1,-1,-1,-1\n"  # MOT15 row: a pedestrian
                              "1,5,10,10,20,60,1\n")          # MOT15 without class: a pedestrian
    assert [r[6] for r in rows] == [True, False, False, True, True]


def test_people_are_tall_enough_visible_and_capped_per_track():
    rows = [(f, 1, 0.0, 0.0, 20.0, 60.0, True, 1.0) for f in range(1, 101)]
    rows += [(1, 2, 0.0, 0.0, 8.0, 20.0, True, 1.0), (1, 3, 0.0, 0.0, 20.0, 60.0, True, 0.2),
             (1, 4, 0.0, 0.0, 20.0, 60.0, False, 1.0)]
    chosen = mot_people.pick_people(rows)
    ids = [r[1] for picks in chosen.values() for r in picks]
    assert ids == [1] * mot_people.PEOPLE_PER_TRACK and min(chosen) == 1 and max(chosen) == 100


def test_background_windows_touch_no_annotated_box():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[50:150, 100:160] = 255                           # the annotated object, bright
    windows = mot_people.free_windows(frame, [(100, 50, 60, 100)], np.random.default_rng(0), 30)
    assert len(windows) == 30 and all(w.max() == 0 for w in windows)
    assert all(w.shape[0] >= 24 for w in windows)


def test_parts_are_the_top_or_bottom_of_a_fully_visible_person():
    frame = np.zeros((300, 200, 3), np.uint8)
    frame[0:100] = 50
    person = (1, 1, 50.0, 0.0, 40.0, 200.0, True, 1.0)
    hidden = (1, 2, 100.0, 0.0, 40.0, 200.0, True, 0.5)
    got = mot_people.parts(frame, [person, hidden, person], np.random.default_rng(1), 40)
    assert len(got) == 2 and all(p.shape[1] == 40 for p in got)
    assert all(44 <= p.shape[0] <= 65 or 70 <= p.shape[0] <= 91 for p in got)  # 22-32 % or 35-45 % of 200


def _mot_sequence(folder, frames=3):
    (folder / "img1").mkdir(parents=True)
    (folder / "gt").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, frames + 1):
        cv2.imwrite(str(folder / "img1" / f"{i:06d}.jpg"), rng.integers(0, 255, (240, 320, 3), np.uint8))
    (folder / "gt" / "gt.txt").write_text("".join(f"{i},1,40,40,30,90,1,1,1.0\n" for i in range(1, frames + 1)))


def test_a_held_out_sequence_leaves_training_whole(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    for name in people.SOURCES:
        folder = cache / name
        (folder / "person").mkdir(parents=True)
        (folder / "background").mkdir()
        (folder / base.MANIFEST).write_text("{}")
    crop = np.full((30, 10, 3), 90, np.uint8)
    adl, mot = cache / people.SOURCES[0], cache / people.SOURCES[1]
    for path in (adl / "person" / "adl__0.png", mot / "person" / "mot17-02__0.png", mot / "person" / "mot17-11__0.png",
                 mot / "background" / "mot17-11-bg__0.png", mot / "background" / "mot17-11-part__0.png",
                 mot / "background" / "mot17-02-part__0.png", mot / "background" / "mot17-02-bg__0.png"):
        cv2.imwrite(str(path), crop)
    got, info = people.mot_set(cache, people.PeopleData(held_out=("mot17-11",), person_repeat=3))
    names = [fixedcam.FINE[i] for i in got.labels]
    assert names.count("person") == 6 and names.count("background") == 2
    assert info[people.SOURCES[1]] == {"person": 1, "background": 2}
    got, _ = people.mot_set(cache, people.PeopleData(held_out=("mot17-11",), person_repeat=1, parts=False))
    assert [fixedcam.FINE[i] for i in got.labels].count("background") == 1
    got, _ = people.mot_set(cache, people.PeopleData(held_out=(), no_windows_from=("mot17-02",), background_repeat=2))
    assert [fixedcam.FINE[i] for i in got.labels].count("background") == 2 * 3  # 11's window and parts, 02's part
    with pytest.raises(DataError, match="not built"):
        people.mot_set(tmp_path / "empty", people.PeopleData())


def test_sequence_crops_give_people_windows_and_parts(tmp_path):
    _mot_sequence(tmp_path / "seq")
    crops = list(mot_people.sequence_crops(tmp_path / "seq", "s"))
    groups = {g for _, g, _ in crops}
    assert [c for c in crops if c[0] == "person"] and groups <= {"s", "s-bg", "s-part"} and "s-bg" in groups
    assert all(c[2].shape == (90, 30, 3) for c in crops if c[0] == "person")


def test_cifar_is_subsampled_per_class_and_the_rest_kept_whole():
    labels = np.repeat(np.arange(len(fixedcam.FINE)), 10)
    data = ImageSet(np.zeros((len(labels), 2, 2, 3), np.uint8), labels, list(fixedcam.FINE))
    got = people.subsample_cifar(data, 0.3, seed=0)
    counts = np.bincount(got.labels, minlength=len(fixedcam.FINE))
    assert list(counts) == [3] * len(fixedcam.CIFAR) + [10, 10]
