"""`lowres eval BUNDLE` without --data evaluates on the dataset the bundle's provenance records, and
says plainly when it records none."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="eval needs the export extra (torch)")

from tiny_bundles import make_bundle  # noqa: E402


def _eval(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "eval", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_eval_bundle_defaults_to_its_recorded_data(tiny_bundle, tmp_path):
    p = _eval(tiny_bundle.path, "--resolutions", "8", "--kernels", "area", "--json", "--out", tmp_path / "ev",
              cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["images"] > 0 and "needs --data" not in p.stderr


def test_eval_bundle_without_recorded_data_asks_for_it(tmp_path):
    p = _eval(make_bundle(tmp_path / "b"), "--resolutions", "8", "--kernels", "area", cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.strip().endswith("records no dataset; pass --data (a dataset folder or "
                                                           "archive with test/<class>/)")
