"""The repository's promises: the README's two opening commands, CI running its test command, and no
machine paths in anything tracked or shipped."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_opens_with_install_and_test_commands():
    first, second = readme_commands()[:2]
    assert first.startswith("pip install torch==2.13.0 ") and "lowres " in first
    assert "pytest" in second


def test_readme_is_short():  # detail lives in docs/
    assert len((ROOT / "README.md").read_text().splitlines()) <= 120


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == readme_commands()[1]
    assert any("pip install -q torch==2.13.0" in line for line in ci)


# A path of one machine: a top-level work, root, home, tmp or Users folder (not inside a URL, nor after ~
# or ..), or a Windows drive letter. The patterns are written so that this file does not match itself.
UNIX_MACHINE_PATH = re.compile(rb"(?<![\w.~-])/(?:work|root|home|tmp|Users)/")
DRIVE_PATH = re.compile(rb"(?<![\w\\])[A-Za-z]:\\")


def machine_paths(data: bytes) -> list[bytes]:
    """The machine paths in ``data``; a binary file (weights, ONNX) is only searched for Unix ones,
    since a drive letter and a backslash turn up in any long run of random bytes."""
    patterns = [UNIX_MACHINE_PATH] + ([] if b"\0" in data else [DRIVE_PATH])
    return [data[max(0, m.start() - 30):m.end() + 30] for p in patterns for m in p.finditer(data)]


def tracked_files() -> list[str]:
    """The paths git tracks (a test skips where this is not a git checkout, e.g. an installed package)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"not a git checkout ({e})")
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_machine_path_pattern_finds_what_it_should():
    assert machine_paths(b'"init": "/wo' + b'rk/main/runs/x"') and machine_paths(b"C:" + b"\\Users\\me")
    assert machine_paths(b"\0 /ro" + b"ot/.cache")  # binary: still searched for Unix paths
    assert not machine_paths(b"../shared/data https://example.com/home/ ~/.cache runs/tmp/x \0C:\\")


def test_no_tracked_file_names_a_machine_path():
    found = {}
    for name in tracked_files():
        f = ROOT / name
        if f.is_file() and not f.is_symlink():
            hits = machine_paths(f.read_bytes())
            if hits:
                found[name] = hits[:2]
    assert not found, f"machine paths in tracked files (make them relative): {found}"


def test_committed_weights_stay_under_10_mb():
    # Only what the shipped models need to rebuild is committed (docs/artifacts.md); experiments recreate theirs.
    weights = [ROOT / n for n in tracked_files() if n.endswith((".safetensors", ".pt", ".onnx"))]
    assert weights and sum(f.stat().st_size for f in weights if f.is_file()) <= 10 << 20


def test_shipped_bundle_names_no_machine_path():
    from lowres_sdk.bundle import DEFAULT_BUNDLE, load_bundle

    bundle = load_bundle()  # verified: what the hashes and the embedded description say is what ships
    files = [DEFAULT_BUNDLE / "bundle.json", *(DEFAULT_BUNDLE / n for n in bundle.meta["files"])]
    found = {f.name: machine_paths(f.read_bytes())[:2] for f in files if machine_paths(f.read_bytes())}
    assert not found, found


def test_an_export_records_no_machine_path(tiny_bundle, tiny_run):
    # The run lies in a temporary folder outside the working directory: provenance keeps its name only,
    # and the graph keeps no stack trace naming this checkout's source files.
    assert tiny_bundle.meta["provenance"]["source_run"] == tiny_run.name
    for f in tiny_bundle.path.iterdir():
        assert str(ROOT).encode() not in f.read_bytes(), f


def test_readme_python_runs_as_written(tmp_path):
    import cv2
    import numpy as np

    blocks = re.findall(r"```python\n(.+?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README shows the Python API"
    cv2.imwrite(str(tmp_path / "crop.jpg"), np.random.default_rng(0).integers(0, 256, (24, 10, 3), np.uint8))
    for code in blocks:
        p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]
    from lowres_sdk import Classifier

    labels = Classifier().labels + ["unknown"]
    printed = p.stdout.strip()  # the tour's last line prints the labels and scores of the one crop
    assert re.fullmatch(r"\['(\w+)'\] \[[0-9.e-]+\]", printed) and re.match(r"\['(\w+)'", printed)[1] in labels, printed


def test_readme_commands_are_lowres_commands():
    import click

    from lowres_sdk.cli import cli

    used = set(re.findall(r"^lowres ([a-z][\w-]*)", (ROOT / "README.md").read_text(), re.M))
    assert used >= {"classify", "video", "serve", "train", "export"}
    assert used <= set(cli.list_commands(click.Context(cli))), used
