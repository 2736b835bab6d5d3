"""`lowres classify` on many inputs: files, folders (-r), globs; a bad file among good ones costs its
own line (or JSON record) and sets exit 2; none readable is exit 1; --save writes labelled copies."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tiny_bundles import make_bundle


def run_cli(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=120, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    bundle = make_bundle(root / "bundle")
    imgs = root / "imgs"
    (imgs / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(19):
        cv2.imwrite(str(imgs / f"{i:02d}.png"), rng.integers(0, 256, (12 + i, 9, 3), dtype=np.uint8))
    (imgs / "10_bad.png").write_bytes(b"not a png")
    red = np.zeros((10, 10, 3), np.uint8)
    red[:, :, 2] = 255
    cv2.imwrite(str(imgs / "sub" / "red.jpg"), red)
    return root, bundle


def test_a_bad_file_among_good_ones_is_one_error_and_exit_2(world):
    root, bundle = world
    code, out, err = run_cli("classify", root / "imgs", "--bundle", bundle)
    assert code == 2
    assert len(out.splitlines()) == 19 and all(": " in line for line in out.splitlines())
    assert err.splitlines() == [f"error: cannot read image {root / 'imgs' / '10_bad.png'} (not an image, or corrupt)"]
    code, out, _ = run_cli("classify", root / "imgs", "--bundle", bundle, "--json", "--probs")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and len(rows) == 20 and sum("error" in r for r in rows) == 1
    assert [r["image"] for r in rows] == sorted(r["image"] for r in rows)
    good = [r for r in rows if "error" not in r]
    assert len(good) == 19 and all(len(r["probs"]) == 3 and r["known"] in (True, False) for r in good)


def test_none_readable_is_exit_1(world):
    root, bundle = world
    code, out, err = run_cli("classify", root / "imgs" / "10_bad.png", root / "missing.png", "--bundle", bundle)
    assert code == 1 and out == "" and len(err.splitlines()) == 2 and "image not found" in err


def test_folders_recursive_and_globs(world):
    root, bundle = world
    code, out, _ = run_cli("classify", root / "imgs", "-r", "--bundle", bundle, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and len(rows) == 21 and rows[-1]["image"].endswith("red.jpg") and rows[-1]["label"] == "red"
    code, out, _ = run_cli("classify", "imgs/0*.png", "--bundle", bundle, cwd=root)
    assert code == 0 and [line.split(":")[0] for line in out.splitlines()] == [f"imgs/{i:02d}.png" for i in range(10)]
    code, out, _ = run_cli("classify", "imgs/**/*.jpg", "-r", "--bundle", bundle, cwd=root)
    assert code == 0 and out.startswith("imgs/sub/red.jpg: red")
    code, _, err = run_cli("classify", root / "imgs" / "sub" / "*.png", "--bundle", bundle)
    assert code == 1 and "no image file matches" in err
    code, _, err = run_cli("classify", root, "--bundle", bundle)
    assert code == 1 and "no images" in err and "-r" in err


def test_save_writes_labelled_copies_and_refuses_a_used_folder(world, tmp_path):
    root, bundle = world
    code, _, _ = run_cli("classify", root / "imgs" / "sub" / "red.jpg", root / "imgs" / "00.png", "--bundle", bundle,
                         "--save", tmp_path / "saved")
    assert code == 0 and sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["00.png", "red.png"]
    copy = cv2.imread(str(tmp_path / "saved" / "red.png"))
    assert copy.shape[0] >= 160 and (copy != copy[-1, -1]).any()  # scaled up, a label drawn on it
    code, _, err = run_cli("classify", root / "imgs" / "00.png", "--bundle", bundle, "--save", tmp_path / "saved")
    assert code == 1 and err.startswith("error: --save") and len(list((tmp_path / "saved").iterdir())) == 2
