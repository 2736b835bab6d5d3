"""The fixed-camera training set (training/fixedcam.py) plus street-level people and hard negatives cut from
public MOT sequences (training/sources/mot_people.py), one whole sequence held out; CIFAR-10 is subsampled
so that an epoch of fine-tuning stays short while every person and background crop is used."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowres_sdk.errors import DataError

from .. import fixedcam
from ..data import ImageSet
from .base import read_crops, read_manifest
from .wide import concat

SOURCES = ("adl-rundle-6-people", "mot17-mini-people")


@dataclass(frozen=True)
class PeopleData:
    """How the set is drawn: the held-out sequences (people, windows and parts), how often each MOT person
    and background crop repeats, whether parts of people join the background, and the fraction of CIFAR-10 kept."""

    held_out: tuple[str, ...] = ("mot17-11",)
    person_repeat: int = 2
    background_repeat: int = 1
    parts: bool = True
    no_windows_from: tuple[str, ...] = ()  # sequences whose gt misses people (ADL-Rundle-6: behind the shop glass)
    cifar_fraction: float = 0.6
    seed: int = 0


def _kept(group: str, plan: PeopleData) -> bool:
    base = group.removesuffix("-bg").removesuffix("-part")
    if group.endswith("-bg") and base in plan.no_windows_from:
        return False
    return base not in plan.held_out and (plan.parts or not group.endswith("-part"))


def mot_set(cache: Path, plan: PeopleData) -> tuple[ImageSet, dict]:
    """The MOT sources' crops (RGB, stored 32x32 with their aspect) as one set of the fine classes."""
    import cv2

    people, background, info = [], [], {}
    for name in SOURCES:
        folder = Path(cache) / name
        if read_manifest(folder) is None:
            raise DataError(f"source {name} is not built under {cache}: run `lowres sources build {name} "
                            f"--from DIR --cache {cache}` first")
        counts = {"person": 0, "background": 0}
        for label, group, path in read_crops(folder):
            if _kept(group, plan):
                (people if label == "person" else background).append(cv2.imread(str(path))[:, :, ::-1])
                counts[label] += 1
        info[name] = counts
    groups = [(people, "person", plan.person_repeat), (background, "background", plan.background_repeat)]
    return fixedcam._as_set(groups, None), info


def subsample_cifar(train: ImageSet, fraction: float, seed: int) -> ImageSet:
    """A seeded random ``fraction`` of each CIFAR-10 class; every other class whole."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(train.classes)):
        idx = np.flatnonzero(train.labels == c)
        if train.classes[c] in fixedcam.CIFAR:
            idx = np.sort(rng.choice(idx, max(1, round(fraction * len(idx))), replace=False))
        keep.append(idx)
    return train.subset(np.sort(np.concatenate(keep)))


def load(data_dir: str | os.PathLike, cache: str | os.PathLike, plan: PeopleData = PeopleData()
         ) -> tuple[ImageSet, ImageSet, dict]:
    """(train, test, info): fixedcam with the clips' background, CIFAR subsampled, plus the MOT crops; the
    test set stays fixedcam's, so in-source figures compare with the shipped default's."""
    train, test, info = fixedcam.load(Path(data_dir), clip_background=True)
    more, more_info = mot_set(Path(cache), plan)
    train = concat(subsample_cifar(train, plan.cifar_fraction, plan.seed), more)
    return train, test, {**info, "mot_sources": more_info, "people_data": plan.__dict__}
