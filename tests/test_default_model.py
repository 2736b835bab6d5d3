"""The default bundle shipped in the package: it loads with no argument, verifies, and recognises
people it never saw (held-out identities of the re-ID set) and CIFAR-10 test images."""
import tarfile

import cv2
import numpy as np
import pytest

from lowres_sdk import Classifier
from lowres_sdk.bundle import DEFAULT_BUNDLE

from conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not (DEFAULT_BUNDLE / "bundle.json").is_file(),
                                reason=f"no default bundle shipped at {DEFAULT_BUNDLE} (benchmarks/default_model.py writes it)")
PERSON_ARCHIVE = SHARED_DATA / "person-reid-48x128.tar.gz"


def test_default_bundle_loads_and_describes_itself():
    clf = Classifier()
    m = clf.bundle.meta
    assert "person" in clf.labels and len(clf.labels) == 11
    assert m["preprocessing"]["resolution"] == 16 and m["provenance"]["recipe"]["method"] == "dfd"
    assert m["parity"]["max_abs_diff"] <= 1e-4
    assert sum(f["bytes"] for f in m["files"].values()) <= 3_000_000
    assert m["metrics"]["top1_at_16px"] > 60


@pytest.mark.skipif(not PERSON_ARCHIVE.is_file(), reason=f"person re-ID crops not found at {PERSON_ARCHIVE}")
def test_default_model_recognises_held_out_people(tmp_path):
    with tarfile.open(PERSON_ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    ids = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    held_out = ids[::5]  # the identities benchmarks/default_model.py kept out of training
    crops = [cv2.imread(str(f)) for i in held_out for f in sorted((tmp_path / i).glob("*.jpg"))]
    assert len(crops) == 16 * len(held_out)
    pred = Classifier()(crops)  # raw 48x128 crops: the graph does the rest
    person = np.mean(np.array(pred.labels) == "person")
    assert person > 0.8, person
