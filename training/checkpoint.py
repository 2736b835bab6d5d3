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
NEXT = ".next"  # suffix of weights written but not yet renamed into place


def _reached(step: str) -> None:
    """Called at each step of `save_checkpoint`; a test replaces it to SIGKILL the process exactly there."""


def _atomic_write(path: Path, write, step: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _reached(step)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(run_dir: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write the pair so that a kill at any instant leaves the previous or the new checkpoint whole:
    (1) new weights to ``checkpoint.safetensors.next``, (2) the JSON naming their sha256, (3) the
    weights renamed into place. Killed after (1): the old pair is intact. Killed after (2):
    `load_checkpoint` finds the weights the JSON names in the ``.next`` file."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    pending = run_dir / (WEIGHTS + NEXT)
    _atomic_write(pending, lambda p: save_file(tensors, p), "weights written")
    _reached("weights pending")
    digest = sha256_file(pending)
    meta = {"format": FORMAT, **meta, "weights_sha256": digest}
    _atomic_write(run_dir / META, lambda p: Path(p).write_text(json.dumps(meta, indent=2)), "json written")
    _reached("json committed")
    os.replace(pending, run_dir / WEIGHTS)


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a run, verified; CheckpointError says what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run not found: {run_dir}")
    if not (run_dir / META).is_file():
        raise CheckpointError(f"{run_dir} is not a training run (no {META} + {WEIGHTS})")
    try:
        meta = json.loads((run_dir / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise CheckpointError(f"{run_dir / META} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{run_dir / META} has format {got!r}, expected {FORMAT!r}")
    if not isinstance(meta.get("recipe"), dict):
        raise CheckpointError(f"{run_dir / META} has no recipe (a checkpoint.json written by lowres train has one)")
    weights = weights_file(run_dir, meta)
    try:
        tensors = load_file(weights)
    except SafetensorError as e:
        raise CheckpointError(f"cannot read {weights}: {e}") from e
    return tensors, meta


def weights_file(run_dir: Path, meta: dict) -> Path:
    """The weights ``meta`` names by sha256: in place, or still pending (a save killed between
    writing the JSON and renaming the weights)."""
    candidates = [run_dir / WEIGHTS, run_dir / (WEIGHTS + NEXT)]
    for path in candidates:
        if path.is_file() and sha256_file(path) == meta.get("weights_sha256"):
            return path
    if not any(p.is_file() for p in candidates):
        raise CheckpointError(f"{run_dir} is not a training run (no {META} + {WEIGHTS})")
    raise CheckpointError(f"{run_dir / WEIGHTS} does not match its {META} (sha256 differs): corrupt or half-written")


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
    # A run with an EMA of its weights is used through the EMA (what its evaluation measured).
    prefix = "ema.backbone." if any(k.startswith("ema.backbone.") for k in tensors) else "model.backbone."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{run_dir}: weights do not fit {recipe['arch']} (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]})")
    return model.eval(), spec, meta


def load_teacher(recipe, needs: str, role: str = "teacher") -> tuple[Backbone, InputSpec, dict]:
    """The run a method builds on (``recipe.teacher``, usually a ``highres`` run), via `load_role`:
    InputError when none is given (saying what the method ``needs`` it for)."""
    if not recipe.teacher:
        raise InputError(f"{recipe.method} needs {needs}: pass --teacher RUN (a '--method highres' run)")
    return load_role(recipe.teacher, role)


def load_role(run: str | os.PathLike, role: str) -> tuple[Backbone, InputSpec, dict]:
    """`load_model` of a run a method uses, its CheckpointError prefixed with the ``role`` the run plays."""
    try:
        return load_model(run)
    except CheckpointError as e:
        raise CheckpointError(f"{role}: {e}") from e


def existing_run(run_dir: str | os.PathLike, recipe, resume: bool) -> dict | None:
    """The metadata of the run already in ``run_dir`` (None if there is none) when ``resume`` may
    continue it; CheckpointError if it may not (not resuming, or trained with another recipe --
    the error lists the fields that differ)."""
    if not (Path(run_dir) / META).exists():
        return None
    if not resume:
        raise CheckpointError(f"{run_dir} already holds a run; pass resume=True (--resume) or choose another --out")
    meta = load_checkpoint(run_dir)[1]
    saved = type(recipe).from_dict(meta.get("recipe") or {})
    if saved != recipe:
        raise CheckpointError(f"{run_dir} was trained with a different recipe; resume needs the same one "
                              f"({'; '.join(saved.differences(recipe)[:5])})")
    return meta


def save_finished_copy(run_dir: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy a finished run without its optimizer state (a third of the file) and, when it keeps an
    EMA of its weights, without the live weights too (the EMA is what evaluation, export, a teacher
    and `--init` read): enough to evaluate, export, teach or start another run from it, which is
    what a committed checkpoint is for."""
    tensors, meta = load_checkpoint(run_dir)
    if meta["epoch"] < meta["recipe"].get("epochs", meta["epoch"]):
        raise CheckpointError(f"{run_dir} is not finished ({meta['epoch']} of {meta['recipe']['epochs']} epochs)")
    has_ema = any(k.startswith("ema.") for k in tensors)
    kept = {k: v for k, v in tensors.items() if not k.startswith("optim.") and not (has_ema and k.startswith("model."))}
    save_checkpoint(dest, kept, {k: v for k, v in meta.items() if k not in ("format", "weights_sha256")})
