"""The fixed-camera training set (training/fixedcam.py) widened with the crops of built sources, some of
their groups held out, so a model can learn from more kinds of camera and still be scored on what it never saw."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lowres_sdk.errors import DataError

from .. import fixedcam
from ..data import ImageSet
from .base import cache_root, read_crops, read_manifest

# a source's label -> the fine class the training set names it by (CIFAR's names)
FINE_CLASS = {"car": "automobile", **{c: c for c in fixedcam.FINE if c != "automobile"}}


@dataclass(frozen=True)
class Extra:
    """A built source added to training: each crop ``repeat`` times, ``held_out`` groups left out."""

    name: str
    repeat: int = 1
    held_out: tuple[str, ...] = field(default=())


def extra_set(extras: list[Extra], cache: str | os.PathLike | None = None) -> tuple[ImageSet, dict]:
    """The training crops of ``extras`` as one set of the fine classes (RGB, stored 32x32 with their aspect)."""
    import cv2

    groups, info = [], {}
    for extra in extras:
        folder = cache_root(cache) / extra.name
        if read_manifest(folder) is None:
            raise DataError(f"source {extra.name} is not built under {folder.parent}: "
                            f"run `lowres sources build {extra.name} --from DIR` first")
        by_label: dict[str, list[np.ndarray]] = {}
        for label, group, path in read_crops(folder):
            if group in extra.held_out:
                continue
            if label not in FINE_CLASS:
                raise DataError(f"source {extra.name}: label {label!r} has no class in {fixedcam.FINE}")
            by_label.setdefault(label, []).append(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])
        for label, crops in sorted(by_label.items()):
            groups.append((crops, FINE_CLASS[label], extra.repeat))
        info[extra.name] = {"crops": {k: len(v) for k, v in by_label.items()}, "repeat": extra.repeat,
                            "held_out_groups": list(extra.held_out)}
    return fixedcam._as_set(groups, None), info


def concat(a: ImageSet, b: ImageSet) -> ImageSet:
    if list(a.classes) != list(b.classes):
        raise DataError(f"cannot join sets of different classes: {a.classes} vs {b.classes}")
    aspects = [np.ones(len(s), np.float32) if s.aspects is None else s.aspects for s in (a, b)]
    return ImageSet(np.concatenate([a.images, b.images]), np.concatenate([a.labels, b.labels]), list(a.classes),
                    np.concatenate(aspects))


def load(data_dir: str | os.PathLike, extras: list[Extra], cache: str | os.PathLike | None = None
         ) -> tuple[ImageSet, ImageSet, dict]:
    """`fixedcam.load` (with the clips' motion-free background) plus the extras' training crops; the test
    set stays fixedcam's, so in-source figures compare with the shipped default's."""
    train, test, info = fixedcam.load(Path(data_dir), clip_background=True)
    more, more_info = extra_set(extras, cache)
    return concat(train, more), test, {**info, "sources": more_info}
