"""The training loop: checkpoints, resume, DDP, and the data it reads."""
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from lowres_sdk import CheckpointError, DataError, InputError
from lowres_sdk.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from lowres_sdk.training.recipe import Recipe
from lowres_sdk.training.loop import train

from conftest import tiny_recipe


def weights(run):
    return {k: v for k, v in load_file(run / "checkpoint.safetensors").items() if k.startswith("model.")}


def test_checkpoint_round_trip_rebuilds_the_model(tiny_data, tmp_path):
    run = tmp_path / "lr"
    meta = train(tiny_recipe(tiny_data, epochs=1), run, progress=False)
    assert meta["epoch"] == 1 and meta["classes"] == ["blob", "hstripes", "vstripes"]
    assert Recipe.from_dict(meta["recipe"]) == tiny_recipe(tiny_data, epochs=1)
    model, spec, _ = load_model(run)
    assert (spec.size, spec.resolution) == (16, 8)
    saved = weights(run)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[f"model.backbone.{k}"]), k
    assert not list(tmp_path.glob("lr/.*"))  # no temp files left behind


def test_resumed_run_ends_with_the_same_weights(tiny_data, tmp_path):
    full = tmp_path / "full"
    train(tiny_recipe(tiny_data, epochs=3), full, progress=False)
    part = tmp_path / "part"
    train(tiny_recipe(tiny_data, epochs=3), part, progress=False, _stop_after=1)
    assert load_checkpoint(part)[1]["epoch"] == 1
    train(tiny_recipe(tiny_data, epochs=3), part, progress=False, resume=True)
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_checkpoint(part)[1]["history"][-1]["test_top1"] == load_checkpoint(full)[1]["history"][-1]["test_top1"]


def test_resume_refuses_a_different_recipe_and_overwrite_needs_resume(tiny_data, tmp_path):
    run = tmp_path / "r"
    train(tiny_recipe(tiny_data, epochs=1), run, progress=False)
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(tiny_recipe(tiny_data, epochs=1), run, progress=False)
    with pytest.raises(CheckpointError, match="different recipe"):
        train(tiny_recipe(tiny_data, epochs=2, lr=0.5), run, progress=False, resume=True)


def test_corrupt_checkpoint_is_refused(tiny_data, tmp_path):
    run = tmp_path / "c"
    train(tiny_recipe(tiny_data, epochs=1), run, progress=False)
    raw = bytearray((run / "checkpoint.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (run / "checkpoint.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_model(run)
    (run / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(run)
    with pytest.raises(CheckpointError, match="not a training run"):
        load_model(tmp_path)


def test_ddp_two_processes_match_one(tiny_data, tmp_path):
    args = ["train", "--method", "lr", "--data", str(tiny_data), "--arch", "resnet20", "--width", "0.5",
            "--image-size", "16", "--resolution", "8", "--epochs", "3", "--batch-size", "32", "--lr", "0.05",
            "--seed", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    single = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", *args, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    # --standalone: the rendezvous takes a free port (a fixed one fails when another run holds it)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "lowres_sdk.cli", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    # Same global batches, gradients averaged across processes. BatchNorm statistics are per process
    # (16 samples each instead of 32; no SyncBatchNorm on CPU), which alone changes a step's
    # gradient by ~70 % at init on this net -- hence tolerances on the outcome, not equality.
    keys = [k for k in a if a[k].is_floating_point() and "running" not in k]
    wa, wb = torch.cat([a[k].flatten() for k in keys]), torch.cat([b[k].flatten() for k in keys])
    assert ((wa - wb).norm() / wa.norm()).item() < 0.15
    ha, hb = (load_checkpoint(tmp_path / r)[1]["history"] for r in ("one", "two"))
    for ea, eb in zip(ha, hb):  # the loss curves agree epoch by epoch
        assert eb["train_loss"] == pytest.approx(ea["train_loss"], rel=0.1)
    assert abs(ha[-1]["test_top1"] - hb[-1]["test_top1"]) <= 0.25  # 36 test images
    assert ddp.stdout.count("epochs, test top-1") == 1  # only rank 0 reports


def test_training_learns_the_tiny_task(tiny_data, tmp_path):
    meta = train(tiny_recipe(tiny_data, method="hr", epochs=4), tmp_path / "hr", progress=False)
    assert meta["history"][-1]["test_top1"] > 0.8  # chance is 1/3


def test_bad_data_raises_clear_errors(tiny_data, tmp_path):
    with pytest.raises(DataError, match="data not found"):
        train(tiny_recipe(tmp_path / "missing"), tmp_path / "a", progress=False)
    empty = tmp_path / "empty"
    (empty / "train" / "cat").mkdir(parents=True)
    (empty / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="has no images"):
        train(tiny_recipe(empty), tmp_path / "b", progress=False)
    broken = tmp_path / "broken"
    for split in ("train", "test"):
        (broken / split / "cat").mkdir(parents=True)
        (broken / split / "cat" / "0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read image .*0.jpg"):
        train(tiny_recipe(broken), tmp_path / "c", progress=False)
    with pytest.raises(InputError, match="resolution 64 px"):
        tiny_recipe(tiny_data, resolution=64)


def test_init_from_another_run_with_a_new_head(tiny_data, tmp_path):
    from lowres_sdk.training.backbones import build_model
    from lowres_sdk.training.loop import init_from_run

    src = tmp_path / "src"
    train(tiny_recipe(tiny_data, method="hr", epochs=1), src, progress=False)
    source, _, _ = load_model(src)
    wider_head = build_model("resnet20", 5, 16, 0.5)  # 5 classes instead of 3
    left = init_from_run(wider_head, src)
    assert left == ["fc.bias", "fc.weight"]
    assert torch.equal(wider_head.stem[0].weight, source.stem[0].weight)
    with pytest.raises(CheckpointError, match="does not fit"):
        init_from_run(build_model("mobilenet", 3, 16), src)


def test_ema_and_label_smoothing_resume_exactly_and_the_ema_is_what_loads(tiny_data, tmp_path):
    recipe = tiny_recipe(tiny_data, epochs=2, ema_decay=0.9, label_smoothing=0.1, degradation="camera", camera_min=4,
                         camera_max=16)
    full, part = tmp_path / "full", tmp_path / "part"
    train(recipe, full, progress=False)
    train(recipe, part, progress=False, _stop_after=1)
    train(recipe, part, progress=False, resume=True)
    a, b = load_file(full / "checkpoint.safetensors"), load_file(part / "checkpoint.safetensors")
    assert any(k.startswith("ema.") for k in a) and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    model, _, _ = load_model(full)
    for k, v in model.state_dict().items():
        assert torch.equal(v, a[f"ema.backbone.{k}"]), k
    assert not all(torch.equal(a[f"ema.backbone.{k}"], a[f"model.backbone.{k}"]) for k in model.state_dict())


def test_a_finished_copy_drops_the_optimizer_and_still_resumes_as_finished(tiny_data, tmp_path):
    from lowres_sdk.training.checkpoint import save_finished_copy

    recipe = tiny_recipe(tiny_data, epochs=1)
    train(recipe, tmp_path / "run", progress=False)
    save_finished_copy(tmp_path / "run", tmp_path / "copy")
    tensors, meta = load_checkpoint(tmp_path / "copy")
    assert not any(k.startswith("optim.") for k in tensors) and meta["epoch"] == 1
    assert all(torch.equal(v, load_file(tmp_path / "run" / "checkpoint.safetensors")[k]) for k, v in tensors.items())
    assert train(recipe, tmp_path / "copy", progress=False, resume=True)["epoch"] == 1  # finished: nothing to do
    with_ema = tiny_recipe(tiny_data, epochs=1, ema_decay=0.9)  # its copy keeps the EMA only: what load_model reads
    train(with_ema, tmp_path / "ema_run", progress=False)
    save_finished_copy(tmp_path / "ema_run", tmp_path / "ema_copy")
    tensors, _ = load_checkpoint(tmp_path / "ema_copy")
    assert tensors and all(k.startswith("ema.") for k in tensors)
    run_model, copy_model = load_model(tmp_path / "ema_run")[0], load_model(tmp_path / "ema_copy")[0]
    assert all(torch.equal(v, copy_model.state_dict()[k]) for k, v in run_model.state_dict().items())
    assert train(with_ema, tmp_path / "ema_copy", progress=False, resume=True)["epoch"] == 1
    longer = tiny_recipe(tiny_data, epochs=2)
    train(longer, tmp_path / "part", progress=False, _stop_after=1)
    with pytest.raises(CheckpointError, match="not finished"):
        save_finished_copy(tmp_path / "part", tmp_path / "copy2")
    tensors, meta = load_checkpoint(tmp_path / "part")  # an unfinished run stripped by hand cannot continue
    save_checkpoint(tmp_path / "part", {k: v for k, v in tensors.items() if not k.startswith("optim.")},
                    {k: v for k, v in meta.items() if k not in ("format", "weights_sha256")})
    with pytest.raises(CheckpointError, match="without optimizer state"):
        train(longer, tmp_path / "part", progress=False, resume=True)


def test_cutout_fills_one_clipped_square_per_sample_with_the_mean_and_keeps_the_rest():
    from lowres_sdk.training.loop import cutout
    x = torch.rand(64, 3, 12, 12)
    out = cutout(x.clone(), torch.Generator().manual_seed(0), 4, (0.1, 0.2, 0.3))
    hole = (out != x).any(1)  # [n, h, w]
    filled = out.permute(0, 2, 3, 1)[hole]
    assert torch.equal(filled, torch.tensor([0.1, 0.2, 0.3]).expand_as(filled))
    rows, cols = hole.any(2), hole.any(1)
    for r, c, h in zip(rows, cols, hole):  # one axis-aligned rectangle of at most 4 x 4 (clipped at the border)
        assert 1 <= r.sum() <= 4 and 1 <= c.sum() <= 4 and h.sum() == r.sum() * c.sum()
    assert (hole.sum((1, 2)) == 16).float().mean() > 0.3  # most squares lie wholly inside
    again = cutout(x.clone(), torch.Generator().manual_seed(0), 4, (0.1, 0.2, 0.3))
    assert torch.equal(out, again)
    with pytest.raises(InputError, match="cutout"):
        Recipe(data="x", cutout=40)
