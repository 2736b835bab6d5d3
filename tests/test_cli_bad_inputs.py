"""`lowres` runtime commands (classify, inspect, bench, index, search, export, check) on bad input:
each is an error line on stderr with a non-zero exit -- never a traceback, never exit 0, never a
deleted user file. All cases run in ONE subprocess (a driver calling `main(argv)` per case), to keep
CI time low; the missing-torch hint needs a second one."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from tiny_bundles import make_bundle

DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    from lowres_sdk.cli import main
    results = []
    for argv in json.loads(sys.argv[1]):
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                main(argv)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                code, err = "traceback", io.StringIO(traceback.format_exc())
        results.append({"argv": argv, "code": code, "stderr": err.getvalue(), "stdout": out.getvalue()})
    print(json.dumps(results))
""")


def run_driver(cases, cwd):
    out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True, text=True,
                         cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("cli"))


def build_world(root):
    """Bundles, images, galleries and a user's folder for the cases (also used by benchmarks/reliability.py)."""
    w = {"root": root, "clf": make_bundle(root / "clf"), "emb": make_bundle(root / "emb", task="embed")}
    bad = make_bundle(root / "badmodel")
    (bad / "model.onnx").write_bytes(b"\0" * 10)
    from tiny_bundles import rehash
    rehash(bad)
    w["badmodel"] = bad
    (root / "imgs" / "cls").mkdir(parents=True)
    img = np.zeros((12, 10, 3), np.uint8)
    img[..., 2] = 255
    cv2.imwrite(str(root / "imgs" / "cls" / "a.png"), img)
    w["img"] = root / "imgs" / "cls" / "a.png"
    (root / "empty_imgs").mkdir()
    (root / "notes.txt").write_text("not an image")
    user = root / "user_dir"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    w["user"] = user
    # a gallery whose metadata is shorter than its ids, and one without a recorded bundle
    from lowres_sdk.gallery import Gallery
    g = Gallery(4, None)
    g.add(np.eye(4)[:2], ["a", "b"])
    g.save(root / "nobundle_gallery")
    g.save(root / "short_gallery")
    meta = json.loads((root / "short_gallery" / "gallery.json").read_text())
    meta["metadata"] = meta["metadata"][:1]
    (root / "short_gallery" / "gallery.json").write_text(json.dumps(meta))
    strip = np.full((1, 30000, 3), 200, np.uint8)
    cv2.imwrite(str(root / "strip.png"), strip)
    (root / "afile").write_text("x")
    return w


def bad_cases(w):
    clf, emb, img, user, root = str(w["clf"]), str(w["emb"]), str(w["img"]), str(w["user"]), w["root"]
    return [
        ["classify", str(root / "missing.png"), "--bundle", clf],
        ["classify", str(root / "notes.txt"), "--bundle", clf],
        ["classify", str(root / "imgs"), "--bundle", clf],
        ["classify", img, "--bundle", str(root / "nope")],
        ["classify", img, "--bundle", str(w["badmodel"])],
        ["classify", img, "--bundle", clf, "--top-k", "0"],
        ["classify", img, "--bundle", clf, "--top-k", "a"],
        ["classify", img, "--bundle", clf, "--unknown-below", "2"],
        ["classify", img, "--bundle", clf, "--precision", "int8"],
        ["classify", img, "--bundle", emb],
        ["inspect", str(root / "nope")],
        ["inspect", str(w["badmodel"])],
        ["inspect", str(root / "afile")],
        ["bench", clf, "--batch-sizes", "a"],
        ["bench", clf, "--batch-sizes", "-1"],
        ["bench", clf, "--batch-sizes", "1,,2"],
        ["bench", clf, "--threads", "-1"],
        ["bench", clf, "--threads", "0"],
        ["bench", clf, "--threads", "100000"],
        ["bench", clf, "--size", "0"],
        ["bench", clf, "--seconds", "0"],
        ["index", str(root / "imgs"), "--bundle", clf, "--out", str(root / "g1")],
        ["index", str(root / "imgs"), "--bundle", emb, "--out", user],
        ["index", str(root / "imgs"), "--bundle", emb, "--out", "."],
        ["index", str(root / "imgs"), "--bundle", emb, "--out", str(root / "afile")],
        ["index", str(root / "imgs"), "--bundle", emb, "--out", "/proc/self/lowres-gallery"],
        ["index", str(root / "imgs"), "--bundle", emb, "--out", str(root / "g2"), "--batch-size", "0"],
        ["index", str(root / "empty_imgs"), "--bundle", emb, "--out", str(root / "g3")],
        ["search", img, "--gallery", str(root / "nope")],
        ["search", img, "--gallery", str(root / "short_gallery"), "--json"],
        ["search", img, "--gallery", str(root / "nobundle_gallery")],
        ["search", img, "--gallery", str(root / "nobundle_gallery"), "--bundle", clf],
        ["search", img, "--gallery", str(root / "nobundle_gallery"), "--bundle", emb, "--top-k", "0"],
        ["export", str(root / "norun"), "--out", user],
        ["export", str(root / "norun"), "--out", "."],
        ["export", str(root / "norun"), "--out", str(root / "afile")],
        ["export", str(root / "norun"), "--out", str(root / "b_new"), "--eval-per-class", "0"],
        ["check", clf, "--against", str(root / "norun"), "--tolerance", "-1"],
    ]


def classify_result(r) -> str:
    if r["code"] == "traceback" or "Traceback" in r["stderr"]:
        return "traceback"
    if r["code"] == 0:
        return "exit 0"
    lines = [x for x in r["stderr"].splitlines() if x.strip()]
    if lines and lines[0].startswith("Usage:") and lines[-1].startswith("Error:"):
        return "usage error"
    return "one-line error" if len(lines) == 1 and lines[0].lower().startswith("error") else "other"


def test_bad_inputs_are_one_line_errors_and_user_files_survive(world):
    cases = bad_cases(world)
    work = world["root"] / "cwd"
    work.mkdir(exist_ok=True)
    (work / "keep.txt").write_text("mine")
    results = run_driver(cases, work)
    kinds = {" ".join(r["argv"][:1] + [a for a in r["argv"][1:] if a.startswith("--")]): classify_result(r)
             for r in results}
    bad = {" ".join(r["argv"]): (classify_result(r), r["stderr"][-400:]) for r in results
           if classify_result(r) not in ("one-line error", "usage error")}
    assert not bad, bad
    assert len(results) == len(cases) >= 35 and kinds
    assert (world["user"] / "thesis.tex").read_text() == "precious" and (work / "keep.txt").read_text() == "mine"
    assert (world["root"] / "afile").read_text() == "x"
    by_argv = {tuple(r["argv"]): r for r in results}
    clf, emb, imgs = str(world["clf"]), str(world["emb"]), str(world["root"] / "imgs")
    assert "not a gallery" in by_argv[("index", imgs, "--bundle", emb, "--out", str(world["user"]))]["stderr"]
    assert by_argv[("index", imgs, "--bundle", clf, "--out", str(world["root"] / "g1"))]["stderr"].strip() == \
        f"error: {clf} is a 'classify' bundle; Embedder needs 'embed'"


def test_good_inputs_including_a_1x30000_png_and_unknown(world):
    root, clf = world["root"], str(world["clf"])
    results = run_driver([
        ["classify", str(root / "strip.png"), str(world["img"]), "--bundle", clf, "--json"],
        ["classify", str(root / "strip.png"), "--bundle", clf, "--unknown-below", "0.5"],
        ["index", str(root / "imgs"), "--bundle", str(world["emb"]), "--out", str(root / "gal")],
        ["index", str(root / "imgs"), "--bundle", str(world["emb"]), "--out", str(root / "gal")],  # over itself
        ["search", str(world["img"]), "--gallery", str(root / "gal"), "--json"],
        ["inspect", clf],
    ], root)
    assert [r["code"] for r in results] == [0] * 6, [r["stderr"] for r in results]
    rows = [json.loads(x) for x in results[0]["stdout"].splitlines()]
    assert rows[1]["label"] == "red" and rows[1]["known"] is True
    assert results[1]["stdout"].split(": ", 1)[1].startswith("unknown (")  # gray strip: 1/3 each < 0.5
    assert json.loads(results[4]["stdout"])["hits"][0]["id"] == "cls/a.png"
    assert "graph signatures" in results[5]["stdout"]


def test_missing_torch_is_an_install_hint(world, tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from lowres_sdk.cli import main\n"
            f"main(['export', {str(world['root'] / 'norun')!r}, '--out', {str(tmp_path / 'b')!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: this command needs torch, which is not installed: pip install 'lowres_sdk[export]'"]
