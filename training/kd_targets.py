"""Precomputed distillation targets: a teacher's logits on every training image, computed once and read
by `kd` (``kd_targets``) in place of running the teacher at every step. An ensemble of several nets, each
averaged over mirrored and differently shrunk views, then costs one pass over the data instead of its
forwards in every epoch -- and no teacher weights travel with the run.

The file is safetensors: ``logits`` (N x classes, float32; the teacher's, before any temperature) and
``labels`` (N, int64: the training split's labels in its order, which `load_targets` checks against the
split it is given, so targets made for another split, order or subset fail loudly), metadata ``classes``
(JSON list) and ``about`` (JSON: how they were made).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from lowres_sdk.errors import CheckpointError, InputError


def save_targets(path: str | os.PathLike, logits: np.ndarray, labels: np.ndarray, classes: list[str], about: dict) -> None:
    """Write the targets atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    logits, labels = np.asarray(logits, np.float32), np.asarray(labels, np.int64)
    if logits.ndim != 2 or logits.shape != (len(labels), len(classes)):
        raise InputError(f"targets need logits of shape (N, {len(classes)}) for N = {len(labels)} labels, got {logits.shape}")
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
        raise CheckpointError(f"kd_targets: no file {path} (make one with benchmarks/cifar10_kd_targets.py)")
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
        raise CheckpointError(f"kd_targets: {path} was made for another training split ({len(saved)} images whose labels "
                              f"differ from this split's {len(labels)}: another order, subset or --train-fraction)")
    if logits.shape != (len(labels), len(classes)):
        raise CheckpointError(f"kd_targets: {path} holds logits of shape {tuple(logits.shape)}, expected {(len(labels), len(classes))}")
    return logits.float()
