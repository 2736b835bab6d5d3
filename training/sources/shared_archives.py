"""The crop archives of ``../shared/data`` as sources, so the sets the shipped model trained on are
scored the same way as the new ones. A group is what the default's training held out whole."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import Crop, Source

CIFAR_LABELS = {"automobile": "car"}  # the street camera's name for CIFAR's class


def _images(root: Path, pattern: str) -> Iterator[tuple[Path, object]]:
    import cv2

    from lowres_sdk.errors import DataError

    for path in sorted(root.glob(pattern)):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"cannot read image {path} (not an image or corrupt)")
        yield path, img


def _extract(snapshot: Path, archive: str) -> Path:
    from ..data import extract_archive

    return extract_archive(snapshot / archive)


def cifar10_crops(snapshot: Path) -> Iterator[Crop]:
    root = _extract(snapshot, "cifar10-jpg.tar.gz")
    for path, img in _images(root, "*/*/*.jpg"):
        split, label = path.parent.parent.name, path.parent.name
        yield CIFAR_LABELS.get(label, label), split, img


def reid_crops(snapshot: Path) -> Iterator[Crop]:
    for path, img in _images(_extract(snapshot, "person-reid-48x128.tar.gz"), "*/*.jpg"):
        yield "person", path.parent.name, img


def mit_crops(snapshot: Path) -> Iterator[Crop]:
    for path, img in _images(_extract(snapshot, "pedestrians-mit-64x128.tar.gz"), "person/*.jpg"):
        yield "person", path.stem, img


def background_crops(snapshot: Path) -> Iterator[Crop]:
    for path, img in _images(_extract(snapshot, "street-background-64x128.tar.gz"), "background/*.jpg"):
        yield "background", path.stem.rsplit("_", 1)[0], img


RESEARCH = "research use; credit the authors named in ../shared/data/README.md"

CIFAR10 = Source(
    "cifar10", "shared:cifar10-jpg.tar.gz", None, "research use (Krizhevsky 2009)",
    ("car", "truck", "bird", "cat", "dog", "horse", "airplane", "deer", "frog", "ship"),
    "CIFAR-10 as JPEG, 32x32; group = split (train / test); automobile named car",
    {"cifar10-jpg.tar.gz": "f09d4d98e774cf940e9b89f70e48edf086781ba2c265ae111fc2e30a26ea95cb"}, cifar10_crops)

PERSON_REID = Source(
    "person-reid", "shared:person-reid-48x128.tar.gz", None, RESEARCH, ("person",),
    "62 identities x 2 cameras x 8 views, 48x128; group = identity",
    {"person-reid-48x128.tar.gz": "e63bfd1a17e930ef56c636283856b3ab58323e1d35d33be7bb709085402bde61"}, reid_crops)

PEDESTRIANS_MIT = Source(
    "pedestrians-mit", "shared:pedestrians-mit-64x128.tar.gz", None, "research use; credit MIT CBCL", ("person",),
    "924 front / back views of people in city streets, 64x128; group = image",
    {"pedestrians-mit-64x128.tar.gz": "a58e0b5ebbeb937a7f91ee2fdbc89819cb26acfb3e07e527dc2aa5b9458434f7"},
    mit_crops)

STREET_BACKGROUND = Source(
    "street-background", "shared:street-background-64x128.tar.gz", None,
    "research use (INRIA Person's person-free images)", ("background",),
    "272 person-free 64x128 street windows; group = scene",
    {"street-background-64x128.tar.gz": "7a6b575a9f9d7d0e046c7a4a02744901dd09861f4f841d8020d14f422ac6f575"},
    background_crops)
