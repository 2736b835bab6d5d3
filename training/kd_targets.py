"""Precomputed distillation targets: a teacher's logits on every training image, computed once and read
by `kd` (``kd_targets``) in place of running the teacher at every step. An ensemble of several nets, each
averaged over mirrored and differently shrunk views, then costs one pass over the data instead of its
forwards in every epoch -- and no teacher weights travel with the run.

The file is safetensors: ``logits`` (N x classes, float32; the teacher's, before any temperature) and
``labels`` (N, int64: the training split's labels in its order, which `load_targets` checks against the
split it is given, so targets made for another split, order or subset fail loudly), metadata ``classes``
(JSON list) and ``about`` (JSON: how they were made). `ensemble_logits` makes them; `lowres kd-targets` is its CLI.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from lowres_sdk.errors import CheckpointError, InputError

from .degrade import ModelInput, camera_resize


@torch.no_grad()
def ensemble_logits(teachers: Sequence[tuple[torch.nn.Module, object]], images: np.ndarray, size: int,
                    kernels: Sequence[str] = ("area",), flip: bool = True, batch: int = 500,
                    progress: bool = True) -> np.ndarray:
    """Mean logits over ``teachers`` ((net in eval mode, its InputSpec) pairs) x ``kernels`` x (the crop and, with
    ``flip``, its mirror) for each of ``images`` (uint8 N x H x W x 3 RGB): every image shrunk to ``size`` px
    square with the real OpenCV / Pillow kernel named, then through each net's own input (resize to its input
    size, normalisation) -- the views a deployed student of ``size`` px sees."""
    if not teachers or not kernels:
        raise InputError("ensemble_logits needs at least one teacher and one kernel")
    views = [ModelInput(spec) for _, spec in teachers]
    out = None
    for i in tqdm(range(0, len(images), batch), desc="teacher logits", disable=not progress, leave=False):
        for k in kernels:
            crops = np.stack([camera_resize(im, (size, size), k) for im in images[i:i + batch]])
            x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
            for (net, _), view in zip(teachers, views):
                v = view(x).contiguous(memory_format=torch.channels_last)
                z = (net(v) + net(v.flip(-1))) / 2 if flip else net(v)
                if out is None:
                    out = np.zeros((len(images), z.shape[1]), np.float64)
                out[i:i + batch] += z.double().numpy()
    return (out / (len(teachers) * len(kernels))).astype(np.float32)


def save_targets(path: str | os.PathLike, logits: np.ndarray, labels: np.ndarray, classes: list[str],
                 about: dict) -> None:
    """Write the targets atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    logits, labels = np.asarray(logits, np.float32), np.asarray(labels, np.int64)
    if logits.ndim != 2 or logits.shape != (len(labels), len(classes)):
        raise InputError(f"targets need logits of shape (N, {len(classes)}) for N = {len(labels)} labels, got "
                         f"{logits.shape}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"logits": torch.from_numpy(logits), "labels": torch.from_numpy(labels)}, str(tmp),
              metadata={"classes": json.dumps(classes), "about": json.dumps(about)})
    os.replace(tmp, path)


def load_targets(path: str | os.PathLike, labels: np.ndarray, classes: list[str]) -> torch.Tensor:
    """The logits (N x classes) of a targets file made for a training split with these ``labels`` (in order)
    and ``classes``; CheckpointError when the file is missing, unreadable or made for other data."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"kd_targets: no file {path} (make one with `lowres kd-targets`)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            logits, saved = f.get_tensor("logits"), f.get_tensor("labels")
        saved_classes = json.loads(meta.get("classes", "null"))
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"kd_targets: {path} is not a targets file ({e})") from e
    if saved_classes != list(classes):
        raise CheckpointError(f"kd_targets: {path} was made for classes {saved_classes}, the data has {list(classes)}")
    if len(saved) != len(labels) or not np.array_equal(saved.numpy(), np.asarray(labels)):
        raise CheckpointError(f"kd_targets: {path} was made for another training split ({len(saved)} images whose "
                              f"labels differ from this split's {len(labels)}: another order, subset or "
                              f"--train-fraction)")
    if logits.shape != (len(labels), len(classes)):
        raise CheckpointError(f"kd_targets: {path} holds logits of shape {tuple(logits.shape)}, expected "
                              f"{(len(labels), len(classes))}")
    return logits.float()


def make_targets(runs: Sequence[str | os.PathLike], out: str | os.PathLike, data: str | None = None,
                 size: int | None = None, kernels: Sequence[str] = ("area",), flip: bool = True,
                 overwrite: bool = False, progress: bool = True, test_top1: bool = False) -> dict:
    """`ensemble_logits` of the trained ``runs`` on the whole training split of ``data`` (default: the first
    run's), at ``size`` px (default: the first run's input size), written to ``out``. Returns what the file's
    ``about`` says: the ensemble's top-1 on that split, the seconds its logits took and, with ``test_top1``, its
    top-1 on the test split shrunk the same way (the teacher a student is read against; +20 % time). An
    existing ``out`` is replaced only with ``overwrite``."""
    from .checkpoint import load_role
    from .data import load_splits
    from .degrade import KERNELS

    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    unknown = [k for k in kernels if k not in KERNELS]
    if unknown or not kernels:
        raise InputError(f"kernels: unknown {', '.join(unknown) or '(none given)'}; expected some of "
                         f"{', '.join(KERNELS)}")
    if not runs:
        raise InputError("kd targets need at least one trained run")
    loaded = [load_role(run, "kd-targets teacher") for run in runs]
    classes = loaded[0][2]["classes"]
    other = [str(r) for r, (_, _, m) in zip(runs, loaded) if m["classes"] != classes]
    if other:
        raise CheckpointError(f"the teachers must share their classes; {', '.join(other)} differ from {runs[0]}'s "
                              f"{classes}")
    recipe = loaded[0][2]["recipe"]
    size = size or loaded[0][1].size
    train_set, test_set = load_splits(data or recipe["data"], recipe.get("image_size", 32),
                                      fit=recipe.get("fit", "stretch"))
    if train_set.classes != classes:
        raise CheckpointError(f"the teachers were trained on classes {classes}, the data has {train_set.classes}")
    teachers = [(net.to(memory_format=torch.channels_last), spec) for net, spec, _ in loaded]
    t0 = time.perf_counter()
    logits = ensemble_logits(teachers, train_set.images, size, tuple(kernels), flip, progress=progress)
    about = {"teachers": [str(r) for r in runs], "size": size, "kernels": list(kernels), "flip": flip,
             "train_top1": round(100 * float((logits.argmax(1) == train_set.labels).mean()), 2),
             "seconds": round(time.perf_counter() - t0)}
    if test_top1:
        test_logits = ensemble_logits(teachers, test_set.images, size, tuple(kernels), flip, progress=progress)
        about["test_top1"] = round(100 * float((test_logits.argmax(1) == test_set.labels).mean()), 2)
    save_targets(out, logits, train_set.labels, classes, about)
    return about
