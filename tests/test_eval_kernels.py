"""`lowres eval --kernels` reports the accuracy of crops shrunk by the real OpenCV / Pillow functions:
its figures equal those of the same test images resized here with cv2 and PIL directly."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
from PIL import Image

from lowres_sdk import Classifier

RESIZE = {  # what each kernel name means, written independently of lowres_sdk.training.degrade
    "area": lambda bgr, r: cv2.resize(bgr, (r, r), interpolation=cv2.INTER_AREA),
    "nearest": lambda bgr, r: cv2.resize(bgr, (r, r), interpolation=cv2.INTER_NEAREST),
    "pil-bicubic": lambda bgr, r: np.asarray(Image.fromarray(bgr[..., ::-1]).resize((r, r), Image.BICUBIC))[..., ::-1],
}
SIZES = (3, 5, 8)  # below the tiny model's 8 px: where kernels disagree


def top1_here(clf: Classifier, data, kernel: str, size: int) -> float:
    files = sorted((data / "test").glob("*/*.png"))  # square 16 px images
    crops = [np.ascontiguousarray(RESIZE[kernel](cv2.imread(str(f)), size)) for f in files]
    labels = np.array([clf.labels.index(f.parent.name) for f in files])
    return round(100 * float((clf(crops).indices == labels).mean()), 2)


def test_eval_kernels_values_match_cv2_and_pil_resizes(tiny_bundle, tiny_data, tmp_path):
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "eval", str(tiny_bundle.path), "--data", str(tiny_data),
                        "--kernels", ",".join(RESIZE), "--resolutions", ",".join(map(str, SIZES)), "--json",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["images"] == 36 and report["side"] == "long"
    clf = Classifier(tiny_bundle.path)
    here = {k: {str(r): top1_here(clf, tiny_data, k, r) for r in SIZES} for k in RESIZE}
    assert report["top1"] == here
    # The comparison can tell kernels apart: at some size they score differently.
    assert any(len({here[k][str(r)] for k in RESIZE}) > 1 for r in SIZES), here
    assert report["min_over_kernels"] == {str(r): min(here[k][str(r)] for k in RESIZE) for r in SIZES}
