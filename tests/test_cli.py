"""The `lowres` command: help, version, train + eval end to end, and one-line errors."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lowres_sdk import __version__
from lowres_sdk.cli import cli


def run_cli(*args):
    """Run `lowres ARGS` as a user would (subprocess), returning (code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_version_and_help():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = CliRunner().invoke(cli, ["--help"])
    from lowres_sdk.cli import LAZY_COMMANDS

    listed = {line.split()[0] for line in r.output.split("Commands:")[1].splitlines() if line.strip()}
    assert r.exit_code == 0 and set(LAZY_COMMANDS) <= listed and {"classify", "video", "serve"} <= listed
    r = CliRunner().invoke(cli, ["train", "--help"])
    assert r.exit_code == 0 and "--resolution" in r.output and "--teacher" in r.output


def test_help_does_not_import_torch():
    code = "import sys; sys.modules['torch'] = None; from lowres_sdk.cli import main; main(['--help'])"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Commands:" in p.stdout


def test_train_then_eval_end_to_end(tiny_data, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--method", "hr", "--data", tiny_data, "--image-size", "16", "--width", "0.5",
                             "--epochs", "3", "--batch-size", "16", "--lr", "0.05", "--out", run)
    assert code == 0, err
    from lowres_sdk.training.checkpoint import load_checkpoint

    meta = load_checkpoint(run)[1]  # the line reports the saved run: 3 epochs and its last test top-1
    assert meta["epoch"] == 3 and len(meta["history"]) == 3
    assert f"{run}: 3 epochs, test top-1 {100 * meta['history'][-1]['test_top1']:.2f} % at 16 px" in out
    assert meta["history"][-1]["test_top1"] > 0.45  # above chance on the 3-class task (1/3; measured 0.67)
    code, out, err = run_cli("eval", run, "--resolutions", "4,8,16")
    assert code == 0, err
    report = json.loads((run / "eval.json").read_text())
    assert set(report["resolutions"]) == {"4", "8", "16"}
    r16 = report["resolutions"]["16"]
    assert len(r16["confusion"]) == 3 and sum(map(sum, r16["confusion"])) == 36
    assert r16["top1"] == pytest.approx(sum(r16["confusion"][i][i] for i in range(3)) / 36)
    assert set(r16["per_class"]) == {"blob", "hstripes", "vstripes"}
    png = (run / "eval_resolution.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    # by kernel, through a temporary bundle: with --json, stdout is the JSON alone (progress goes to stderr)
    code, out, err = run_cli("eval", run, "--resolutions", "8,16", "--kernels", "area,nearest", "--json")
    assert code == 0, err
    assert set(json.loads(out)["top1"]) == {"area", "nearest"} and "temporary bundle" in err


@pytest.mark.parametrize("case, pattern", [
    ("missing_data", "data not found"),
    ("empty_class", "has no images"),
    ("unreadable", "cannot read image"),
    ("too_large", "resolution 64 px"),
    ("wrong_teacher", "needs an HR teacher"),
    ("missing_teacher", "teacher: run not found"),
])
def test_bad_input_is_one_clear_line(case, pattern, tiny_data, tmp_path):
    data = tiny_data
    extra = []
    if case == "missing_data":
        data = tmp_path / "nowhere"
    elif case in ("empty_class", "unreadable"):
        data = tmp_path / "bad"
        for split in ("train", "test"):
            (data / split / "cat").mkdir(parents=True)
            if case == "unreadable":
                (data / split / "cat" / "x.jpg").write_bytes(b"garbage")
    elif case == "too_large":
        extra = ["--resolution", "64"]
    elif case == "wrong_teacher":
        lr_run = tmp_path / "lr"
        assert run_cli("train", "--method", "lr", "--data", tiny_data, "--image-size", "16", "--width", "0.5",
                       "--epochs", "1", "--batch-size", "32", "--out", lr_run)[0] == 0
        extra = ["--method", "dfd", "--teacher", lr_run]
    elif case == "missing_teacher":
        extra = ["--method", "dfd", "--teacher", tmp_path / "no-teacher"]
    args = ["train", "--data", data, "--image-size", "16", "--epochs", "1", "--out", tmp_path / "out"]
    if "--method" not in extra:
        args += ["--method", "lr"]
    code, out, err = run_cli(*args, *extra)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], err
    assert "Traceback" not in err


def test_eval_refuses_resolution_above_the_image_size(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--method", "lr", "--data", tiny_data, "--image-size", "16", "--width", "0.5",
                   "--epochs", "1", "--batch-size", "32", "--out", run)[0] == 0
    code, _, err = run_cli("eval", run, "--resolutions", "8,32")
    assert code == 1 and "outside 1..16 px" in err
    code, _, err = run_cli("eval", run, "--resolutions", "8,x")
    assert code == 2 and "comma-separated integers" in err
