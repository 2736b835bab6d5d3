"""Rebuild sdk/models/coco/yolox_nano.onnx from its pinned public origin: YOLOX-Nano's COCO weights
(Megvii, Apache-2.0), as exported to ONNX in the repository below, with its weights stored as float16
(each one Cast back to float32 at load, which onnxruntime folds away: the same speed, half the bytes;
detections differ by under 1e-2 in score).

    python -m training.coco_detector GIT_DIR [--out sdk/models/coco/yolox_nano.onnx]

GIT_DIR: a clone (or the `fetch` tool's snapshot) of the origin; the file is read at the pinned
commit with `git show` and its sha256 checked."""
from __future__ import annotations

import argparse
import hashlib
import subprocess
from pathlib import Path

ORIGIN = "hamacom2004jp/iinfer"
COMMIT = "c7f9a3c5216c6f8b3e8b35886f863dffa2dc0bf9"
PATH = "models/yolox_nano.onnx"
SHA256 = "d39bee73564e338080378b0ad567fbb40e818b55bbfaf971de82a0267ed16b8a"
OUT = Path(__file__).resolve().parent.parent / "sdk" / "models" / "coco" / "yolox_nano.onnx"


def pinned_model(git_dir: Path) -> bytes:
    data = subprocess.run(["git", "-C", str(git_dir), "show", f"{COMMIT}:{PATH}"], capture_output=True,
                          check=True).stdout
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{ORIGIN}@{COMMIT}:{PATH} has sha256 {digest}, expected {SHA256}")
    return data


def main() -> None:
    import tempfile

    from export.fp16_weights import store_weights_fp16

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("git_dir", type=Path, help=f"a clone of github.com/{ORIGIN}")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pinned = Path(tmp) / "yolox_nano.onnx"
        pinned.write_bytes(pinned_model(args.git_dir))
        store_weights_fp16(pinned, args.out, min_elements=16)  # every weight tensor; biases of 16+ values too
    print(f"{args.out}: {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
