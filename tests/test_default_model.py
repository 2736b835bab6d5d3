"""The default bundle shipped in the package: it loads with no argument, verifies, is calibrated,
recognises people it never saw, and takes neither shape nor padding for a class (held-out real data)."""
import tarfile

import cv2
import numpy as np
import pytest

from lowres_sdk import Classifier
from lowres_sdk.bundle import DEFAULT_BUNDLE

from conftest import CIFAR_ARCHIVE, SHARED_DATA

pytestmark = pytest.mark.skipif(not (DEFAULT_BUNDLE / "bundle.json").is_file(),
                                reason=f"no default bundle shipped at {DEFAULT_BUNDLE} (`lowres build-default` builds it)")
PERSON_ARCHIVE = SHARED_DATA / "person-reid-48x128.tar.gz"
WINDOWS_ARCHIVE = SHARED_DATA / "street-background-64x128.tar.gz"
KEPT_CIFAR = {"automobile": "car", "truck": "truck", "bird": "bird", "cat": "cat", "dog": "dog", "horse": "horse"}  # CIFAR class -> shipped label


def test_default_bundle_loads_and_describes_itself():
    clf = Classifier()
    m = clf.bundle.meta
    assert clf.labels == ["person", "car", "truck", "bird", "cat", "dog", "horse", "other"]
    assert m["preprocessing"]["resolution"] == 16 and m["provenance"]["recipe"]["degradation"] == "camera"
    assert m["parity"]["max_abs_diff"] <= 1e-4
    assert sum(f["bytes"] for f in m["files"].values()) <= 2_000_000
    cal = m["calibration"]
    assert 0 < cal["temperature"] and cal["ece_after"] < cal["ece_before"]
    by_label = cal.get("unknown_below_by_label", {})
    assert clf.thresholds.tolist() == [by_label.get(label, cal["unknown_below"]) for label in clf.labels]


def _extract(archive, tmp_path):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path


@pytest.mark.skipif(not PERSON_ARCHIVE.is_file(), reason=f"person re-ID crops not found at {PERSON_ARCHIVE}")
def test_default_model_recognises_held_out_people_at_low_resolution(tmp_path):
    root = _extract(PERSON_ARCHIVE, tmp_path)
    ids = sorted(p.name for p in root.iterdir() if p.is_dir())
    held_out = ids[::5]  # the identities training/fixedcam.py keeps out of training
    crops = [cv2.imread(str(f)) for i in held_out for f in sorted((root / i).glob("*.jpg"))]
    assert len(crops) == 16 * len(held_out)
    clf = Classifier(unknown_below=None)
    for width in (12, 24, 48):  # 48x128 crops shrunk with OpenCV's area kernel to the width
        small = [cv2.resize(c, (width, round(width * 128 / 48)), interpolation=cv2.INTER_AREA) for c in crops]
        person = np.mean(np.array(clf(small).labels) == "person")
        assert person >= 0.9, (width, person)  # measured 0.98+ (docs/default_model.md)


@pytest.mark.skipif(not WINDOWS_ARCHIVE.is_file(), reason=f"street windows not found at {WINDOWS_ARCHIVE}")
def test_a_person_free_tall_crop_is_not_a_person(tmp_path):
    root = _extract(WINDOWS_ARCHIVE, tmp_path)
    files = sorted((root / "background").glob("*.jpg"))
    scenes = sorted({f.stem.rsplit("_", 1)[0] for f in files})
    held = set(scenes[::5])  # the scenes training/fixedcam.py keeps out of training
    crops = [cv2.resize(cv2.imread(str(f)), (16, 32), interpolation=cv2.INTER_AREA) for f in files
             if f.stem.rsplit("_", 1)[0] in held]
    person = np.mean(np.array(Classifier(unknown_below=None)(crops).labels) == "person")
    assert person <= 0.1, person  # the old model: 0.9


@pytest.mark.skipif(not CIFAR_ARCHIVE.is_file(), reason=f"CIFAR-10 not found at {CIFAR_ARCHIVE}")
def test_a_letterboxed_or_tall_animal_is_still_that_animal_not_a_person():
    from lowres_sdk.training.data import load_splits

    test = load_splits(CIFAR_ARCHIVE, 32, limit_per_class=60)[1]
    clf = Classifier(unknown_below=None)
    idx = [i for i, label in enumerate(test.labels) if test.classes[label] in KEPT_CIFAR]
    truth = np.array([KEPT_CIFAR[test.classes[test.labels[i]]] for i in idx])
    square = [np.ascontiguousarray(test.images[i][..., ::-1]) for i in idx]
    # The same objects as tall crops: cut to a 1:2 strip (what a loose motion box of a walking
    # animal gives), which the graph then letterboxes with gray.
    tall = [np.ascontiguousarray(img[:, 8:24]) for img in square]
    acc_square = np.mean(np.array(clf(square).labels) == truth)
    acc_tall = np.mean(np.array(clf(tall).labels) == truth)
    called_person = np.mean(np.array(clf(tall).labels) == "person")
    assert acc_square > 0.55 and acc_tall > acc_square - 0.2, (acc_square, acc_tall)
    assert called_person < 0.1, called_person


def test_default_bundle_sends_each_crop_to_the_model_of_its_size(tmp_path):
    from lowres_sdk.bundle import route_index
    from lowres_sdk.export.routed import split_route

    b = Classifier().bundle
    sides = [r.min_side for r in b.routes]
    assert len(sides) >= 2 and [r.preprocessing.resolution for r in b.routes] == sorted(r.preprocessing.resolution for r in b.routes)
    assert all(v["max_abs_diff"] <= 1e-4 for v in b.meta["parity"]["routing"].values())
    own = [Classifier(split_route(b, k, tmp_path / f"r{k}", log=lambda *a: None), unknown_below=None) for k in range(len(sides))]
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(8, 8), (sides[1] - 1, 5), (sides[1], 5), (32, 16), (48, 48)]]
    got = Classifier(unknown_below=None)(crops).probs
    for crop, p in zip(crops, got):
        mine = own[route_index(sides, *crop.shape[:2])]([crop]).probs[0]
        assert np.abs(p - mine).max() < 1e-6


@pytest.mark.skipif(not CIFAR_ARCHIVE.is_file(), reason=f"CIFAR-10 not found at {CIFAR_ARCHIVE}")
def test_default_model_meets_the_kept_class_floors_on_a_cifar_subset():
    """Issue 14's floors (55 / 70 / 80 / 84 % at 8 / 12 / 16 / 32 px, OpenCV area) on the first 100
    test images of each kept CIFAR class (measured 75.5 / 79.3 / 84.2 / 86.8 %; the full 6,000:
    docs/default_model.md)."""
    from lowres_sdk.training.data import load_splits

    test = load_splits(CIFAR_ARCHIVE, 32, limit_per_class=100)[1]
    idx = [i for i, label in enumerate(test.labels) if test.classes[label] in KEPT_CIFAR]
    truth = np.array([KEPT_CIFAR[test.classes[test.labels[i]]] for i in idx])
    clf = Classifier(unknown_below=None)
    for size, floor in ((8, 0.55), (12, 0.70), (16, 0.80), (32, 0.84)):
        crops = [cv2.resize(np.ascontiguousarray(test.images[i][..., ::-1]), (size, size), interpolation=cv2.INTER_AREA)
                 for i in idx]
        accuracy = np.mean(np.array(clf(crops).labels) == truth)
        assert accuracy >= floor, (size, accuracy)
