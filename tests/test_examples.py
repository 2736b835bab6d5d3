"""The scripts in examples/ run as a user would run them, and print what the API gives."""
import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2

from lowres_sdk import Classifier, load_bundle

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args):
    p = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_classify_crops(tiny_bundle, tiny_data):
    files = sorted((tiny_data / "test").glob("*/00[01].png"))
    out = run(EXAMPLES / "classify_crops.py", "--bundle", tiny_bundle.path, *files)
    pred = Classifier(tiny_bundle.path)([cv2.imread(str(f)) for f in files])
    assert out.splitlines() == [f"{f}: {label} ({score:.2f})" for f, label, score in zip(files, pred.labels,
                                                                                        pred.scores)]
    if __import__("importlib").util.find_spec("skimage"):  # no images given: the demo crops, one line each
        from lowres_sdk.demo import demo_crops

        lines = run(EXAMPLES / "classify_crops.py", "--bundle", tiny_bundle.path).splitlines()
        names = [line.split(": ")[0] for line in lines]
        assert names == [c.name for c in demo_crops()]


def test_video_objects(tiny_bundle, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_video import make_clip

    from lowres_sdk.video import run as run_video
    from lowres_sdk.video.regions import MotionCrops

    make_clip(tmp_path / "clip.avi")
    out = run(EXAMPLES / "video_objects.py", tmp_path / "clip.avi", "--bundle", tiny_bundle.path, "--max-frames", "30")
    results = list(run_video(tmp_path / "clip.avi", Classifier(tiny_bundle.path), crops=MotionCrops(), max_frames=30))
    expected = Counter(d.label for r in results for d in r.objects)
    *frames, last = out.splitlines()
    assert last == f"labels over all frames: {dict(expected)}" and sum(expected.values()) > 0
    assert [int(line.split()[0]) for line in frames] == [r.index for r in results if r.objects]


def test_train_and_export(tiny_data, tmp_path):
    out = run(EXAMPLES / "train_and_export.py", tiny_data, tmp_path, "--epochs", "1", "--image-size", "16")
    bundle = load_bundle(tmp_path / "bundle")  # verified: hashes and embedded description
    last = out.splitlines()[-1]  # after the training's epoch lines
    assert last.startswith(f"exported {bundle.path} labels: ['blob', 'hstripes', 'vstripes'] metrics: ")
    assert ast.literal_eval(last.split(" metrics: ", 1)[1]) == bundle.meta["metrics"]
    recipe = bundle.meta["provenance"]["recipe"]
    assert recipe["method"] == "dfd" and recipe["resolution"] == 8 and bundle.meta["provenance"]["trained_epochs"] == 1
