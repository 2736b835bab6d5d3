"""The scripts in examples/ run as a user would run them."""
import subprocess
import sys
from pathlib import Path


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args):
    p = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_classify_crops(tiny_bundle, tiny_data):
    out = run(EXAMPLES / "classify_crops.py", "--bundle", tiny_bundle.path, tiny_data / "test" / "blob" / "000.png")
    assert out.startswith(str(tiny_data / "test" / "blob" / "000.png") + ": ")
    if __import__("importlib").util.find_spec("skimage"):
        assert len(run(EXAMPLES / "classify_crops.py", "--bundle", tiny_bundle.path).splitlines()) == len(__import__("lowres_sdk.demo").demo.demo_crops())


def test_video_objects(tiny_bundle, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_video import make_clip

    make_clip(tmp_path / "clip.avi")
    out = run(EXAMPLES / "video_objects.py", tmp_path / "clip.avi", "--bundle", tiny_bundle.path, "--max-frames", "30")
    assert "labels over all frames:" in out and len(out.splitlines()) > 5


def test_train_and_export(tiny_data, tmp_path):
    out = run(EXAMPLES / "train_and_export.py", tiny_data, tmp_path, "--epochs", "1", "--image-size", "16")
    assert "exported" in out and (tmp_path / "bundle" / "model.onnx").is_file()
