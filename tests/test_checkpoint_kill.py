"""A kill at any instant of a checkpoint write leaves the previous or the new checkpoint whole, and
the run resumes to exactly the uninterrupted result."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

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


# The steps of a save, in order; the JSON's rename ("json committed") is the commit point.
STEPS = ("weights written", "weights pending", "json written", "json committed")
_SAVE_TWICE = """import os, signal, sys, torch
from lowres_sdk.training import checkpoint as ckpt
run, step = sys.argv[1:]
ckpt.save_checkpoint(run, {"model.w": torch.full((200_000,), 1.0)}, {"recipe": {}, "epoch": 1})
ckpt._reached = lambda at: os.kill(os.getpid(), signal.SIGKILL) if at == step else None
ckpt.save_checkpoint(run, {"model.w": torch.full((200_000,), 2.0)}, {"recipe": {}, "epoch": 2})
"""


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_of_a_save_never_loses_the_run(tmp_path, step):
    # A real SIGKILL, at exactly that step: no except/finally of ours runs, temp files stay behind.
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", _SAVE_TWICE, str(run), step], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    tensors, meta = load_checkpoint(run)  # raises if the pair were broken
    expected = 2 if STEPS.index(step) >= STEPS.index("json committed") else 1
    assert meta["epoch"] == expected and float(tensors["model.w"][0]) == expected
    save_checkpoint(run, _state(3.0), {"recipe": {}, "epoch": 3})  # and the next save goes through
    assert load_checkpoint(run)[1]["epoch"] == 3 and not (run / "checkpoint.safetensors.next").exists()


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
