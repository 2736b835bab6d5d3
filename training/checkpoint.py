"""Checkpoints that rebuild their model alone and never unpickle: safetensors tensors (weights and
optimizer buffers) + a JSON with the recipe, input spec, classes, epoch and metrics.

Both files are written to temp names and renamed; the JSON (written last) carries the weights'
sha256, so a half-written checkpoint is detected instead of loaded.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lowres_sdk.bundle import sha256_file
from lowres_sdk.errors import CheckpointError, InputError
from lowres_sdk.spec import InputSpec

from .backbones import Backbone, build_model

FORMAT = "lowres_sdk.checkpoint/1"
WEIGHTS, META = "checkpoint.safetensors", "checkpoint.json"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(run_dir: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic_write(run_dir / WEIGHTS, lambda p: save_file(tensors, p))
    digest = sha256_file(run_dir / WEIGHTS)
    meta = {"format": FORMAT, **meta, "weights_sha256": digest}
    _atomic_write(run_dir / META, lambda p: Path(p).write_text(json.dumps(meta, indent=2)))


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a run, verified; CheckpointError says what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run not found: {run_dir}")
    if not (run_dir / META).is_file() or not (run_dir / WEIGHTS).is_file():
        raise CheckpointError(f"{run_dir} is not a training run (no {META} + {WEIGHTS})")
    try:
        meta = json.loads((run_dir / META).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{run_dir / META} is not valid JSON: {e}") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir / META} has format {meta.get('format')!r}, expected {FORMAT!r}")
    digest = sha256_file(run_dir / WEIGHTS)
    if digest != meta.get("weights_sha256"):
        raise CheckpointError(f"{run_dir / WEIGHTS} does not match its {META} (sha256 differs): corrupt or half-written")
    try:
        tensors = load_file(run_dir / WEIGHTS)
    except SafetensorError as e:
        raise CheckpointError(f"cannot read {run_dir / WEIGHTS}: {e}") from e
    return tensors, meta


def load_model(run_dir: str | os.PathLike) -> tuple[Backbone, InputSpec, dict]:
    """The trained backbone of a run (eval mode), its input spec and the run's metadata."""
    tensors, meta = load_checkpoint(run_dir)
    recipe = meta["recipe"]
    spec = InputSpec.from_dict(meta["spec"])
    if meta.get("chain"):  # a backbone with stages around it (SR net, transfer net, SVM head, ...)
        from .chain import build_chain

        model = build_chain(meta["chain"])
    else:
        model = build_model(recipe["arch"], len(meta["classes"]), spec.size, recipe["width"])
    state = {k[len("model.backbone."):]: v for k, v in tensors.items() if k.startswith("model.backbone.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{run_dir}: weights do not fit {recipe['arch']} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), spec, meta


def load_teacher(recipe, needs: str, role: str = "teacher") -> tuple[Backbone, InputSpec, dict]:
    """The run a method builds on (``recipe.teacher``, usually an ``hr`` run), via `load_model`:
    InputError when none is given (saying what the method ``needs`` it for), its CheckpointError
    prefixed with the ``role`` the run plays."""
    if not recipe.teacher:
        raise InputError(f"{recipe.method} needs {needs}: pass --teacher RUN (a '--method hr' run)")
    try:
        return load_model(recipe.teacher)
    except CheckpointError as e:
        raise CheckpointError(f"{role}: {e}") from e
