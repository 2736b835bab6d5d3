"""A kill at any instant of a checkpoint write leaves the previous or the new checkpoint whole, and
the run resumes to exactly the uninterrupted result."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from lowres_sdk.training import checkpoint as ckpt
from lowres_sdk.training.checkpoint import load_checkpoint, save_checkpoint
from lowres_sdk.training.loop import train

from conftest import tiny_recipe


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the chosen instant runs."""


def _kill_at_replace(monkeypatch, n: int):
    """Die just before the n-th os.replace of the checkpoint module (0-based)."""
    calls = {"n": 0}
    real = os.replace

    def replace(src, dst):
        if calls["n"] == n:
            raise Killed()
        calls["n"] += 1
        return real(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)


def _state(value: float) -> dict:
    return {"model.w": torch.full((64,), value)}


@pytest.mark.parametrize("instant", [0, 1, 2, 3])
def test_kill_at_each_step_leaves_old_or_new_whole(tmp_path, monkeypatch, instant):
    run = tmp_path / "run"
    save_checkpoint(run, _state(1.0), {"recipe": {}, "epoch": 1})
    _kill_at_replace(monkeypatch, instant)  # 0: before .next, 1: before JSON, 2: before the weights' rename, 3: never
    try:
        save_checkpoint(run, _state(2.0), {"recipe": {}, "epoch": 2})
    except Killed:
        pass
    monkeypatch.undo()
    tensors, meta = load_checkpoint(run)
    expected = 1.0 if instant < 2 else 2.0  # the JSON's rename is the commit point
    assert meta["epoch"] == int(expected)
    assert torch.equal(tensors["model.w"], _state(expected)["model.w"])
    save_checkpoint(run, _state(3.0), {"recipe": {}, "epoch": 3})  # and the next save goes through
    assert load_checkpoint(run)[1]["epoch"] == 3
    assert not (run / "checkpoint.safetensors.next").exists()


def test_sigkill_during_repeated_saves_never_loses_the_run(tmp_path):
    run = tmp_path / "run"
    code = (f"import torch; from lowres_sdk.training.checkpoint import save_checkpoint\n"
            f"i = 0\n"
            f"while True:\n"
            f"    i += 1; save_checkpoint({str(run)!r}, {{'model.w': torch.full((200_000,), float(i))}}, "
            f"{{'recipe': {{}}, 'epoch': i}})\n")
    for delay in (0.05, 0.13, 0.21):
        proc = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.time() + 120
        while not (run / "checkpoint.json").exists() and time.time() < deadline:  # torch imported, saving
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tensors, meta = load_checkpoint(run)  # raises if the pair were broken
        assert float(tensors["model.w"][0]) == meta["epoch"] >= 1


def test_run_killed_mid_checkpoint_resumes_to_the_uninterrupted_weights(tiny_data, tmp_path, monkeypatch):
    full = tmp_path / "full"
    train(tiny_recipe(tiny_data, epochs=3), full, progress=False)
    part = tmp_path / "part"
    train(tiny_recipe(tiny_data, epochs=3), part, progress=False, _stop_after=1)
    _kill_at_replace(monkeypatch, 2)  # epoch 2's JSON is written, its weights not yet renamed
    with pytest.raises(Killed):
        train(tiny_recipe(tiny_data, epochs=3), part, progress=False, resume=True)
    monkeypatch.undo()
    assert load_checkpoint(part)[1]["epoch"] == 2
    train(tiny_recipe(tiny_data, epochs=3), part, progress=False, resume=True)
    a, b = load_file(full / "checkpoint.safetensors"), load_file(part / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
