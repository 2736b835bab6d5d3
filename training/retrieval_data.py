"""The retrieval datasets and their fixed, documented splits: each gives a training set
(square images for the loop), held-out images of the training classes, and an evaluation side of
queries + gallery at their native size (the queries are degraded later, per query resolution).

- ``reid``: pedestrian crops (62 people x 2 cameras x 8 views, 48x128). Identities sorted by id:
  the first 31 train, the last 31 evaluate (no person on both sides). Evaluation: camera 01 views
  are the queries, camera 02 views the gallery; same person = relevant (8 per query). Training
  uses views 1-7 of both cameras of the 31 training people; view 8 of both is the held-out test.
- ``orl``: AT&T/ORL faces (30 people x 10, 92x112 gray). Identities sorted by number: the first 15
  train (images 1-8; 9-10 held out), the last 15 evaluate: images 1-5 are queries, 6-10 the
  gallery (5 relevant per query). Paper 003 also keeps its test identities out of training.
- ``classes``: any ImageFolder dataset with train/ and test/ (CIFAR-10, the tests' tiny data): same
  class = relevant; of each test class the first half (at most ``per_class``) are queries and the
  next as many the gallery; training uses train/ (at most ``train_per_class`` per class).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lowres_sdk.errors import DataError, InputError

from .data import ImageSet, letterbox, read_image, read_image_folder, resolve_data_root

DATASETS = ("reid", "orl", "classes")


@dataclass
class RetrievalSet:
    name: str
    train: ImageSet      # training classes, square at the model's image size
    test: ImageSet       # held-out images of the training classes (the loop's per-epoch top-1)
    queries: ImageSet    # evaluation identities at native size; labels shared with the gallery
    gallery: ImageSet
    split: str           # the split, in words (goes into every report)


def to_square(images: list[np.ndarray], image_size: int, fit: str) -> np.ndarray:
    """Native-size RGB images -> uint8 [N, S, S, 3], stretched or letterboxed (as `read_image_folder`)."""
    out = []
    for img in images:
        if fit == "letterbox":
            img = letterbox(img)
        shrink = image_size < min(img.shape[:2])
        out.append(cv2.resize(img, (image_size, image_size),
                              interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC))
    return np.stack(out)


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _identities(root: Path, pattern: str, expected: int) -> dict[str, list[Path]]:
    ids = {d.name: sorted(d.glob(pattern), key=lambda p: _natural(p.name))
           for d in sorted(root.iterdir(), key=lambda d: _natural(d.name)) if d.is_dir() and not d.name.startswith(".")}
    ids = {k: v for k, v in ids.items() if v}
    if len(ids) != expected:
        raise DataError(f"{root} has {len(ids)} identity folders with {pattern} images, expected {expected}")
    return ids


def _image_set(pairs: list[tuple[Path, int]], classes: list[str], image_size: int | None, fit: str) -> ImageSet:
    images = [read_image(p) for p, _ in pairs]
    if len({im.shape for im in images}) > 1 and image_size is None:
        raise DataError("retrieval images differ in size; they must share one native size")
    arr = to_square(images, image_size, fit) if image_size else np.stack(images)
    return ImageSet(arr, np.asarray([label for _, label in pairs], np.int64), classes)


def _views(cameras, numbers) -> set[str]:
    """File stems: ``<camera>_<k>`` (re-ID) or ``<k>`` when there are no cameras (ORL)."""
    return {f"{c}_{k}" for c in cameras for k in numbers} if cameras else {str(k) for k in numbers}


def _split_by_identity(name, ids, n_train, train_views, test_views, query_views, gallery_views, image_size, fit, split):
    names = list(ids)
    train_ids, eval_ids = names[:n_train], names[n_train:]

    def pick(people: list[str], views: set[str]) -> list[tuple[Path, int]]:
        return [(f, i) for i, k in enumerate(people) for f in ids[k] if f.stem in views]

    train, test = pick(train_ids, train_views), pick(train_ids, test_views)
    queries, gallery = pick(eval_ids, query_views), pick(eval_ids, gallery_views)
    return RetrievalSet(name, _image_set(train, train_ids, image_size, fit),
                        _image_set(test, train_ids, image_size, fit), _image_set(queries, eval_ids, None, fit),
                        _image_set(gallery, eval_ids, None, fit), split)


def load_retrieval(name: str, path: str | os.PathLike, image_size: int = 32, fit: str = "stretch",
                   per_class: int | None = 100, train_per_class: int | None = None) -> RetrievalSet:
    """The dataset ``name`` (one of `DATASETS`) from a folder or archive, split as the module says."""
    if name not in DATASETS:
        raise InputError(f"unknown retrieval dataset {name!r}; expected one of {', '.join(DATASETS)}")
    root = resolve_data_root(path)
    if name == "reid":
        ids = _identities(root, "0[12]_*.jpg", 62)
        both, first, second = ("01", "02"), ("01",), ("02",)
        return _split_by_identity(
            "reid", ids, 31, _views(both, range(1, 8)), _views(both, (8,)), _views(first, range(1, 9)),
            _views(second, range(1, 9)), image_size, fit,
            "person-reid: ids sorted, first 31 train (views 1-7 of both cameras; view 8 held out), last 31 evaluate: "
            "camera 01 views = queries, camera 02 views = gallery, same person = relevant")
    if name == "orl":
        ids = _identities(root, "*.pgm", 30)
        return _split_by_identity(
            "orl", ids, 15, _views((), range(1, 9)), _views((), (9, 10)), _views((), range(1, 6)),
            _views((), range(6, 11)), image_size, fit,
            "ORL faces: ids sorted by number, first 15 train (images 1-8; 9-10 held out), last 15 evaluate: "
            "images 1-5 = queries, 6-10 = gallery, same person = relevant")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{path} has no '{split}/' folder (the 'classes' dataset needs train/ and test/)")
    train = read_image_folder(root / "train", image_size, train_per_class, fit=fit)
    test = read_image_folder(root / "test", None, 2 * per_class if per_class else None, classes=train.classes)
    half = [np.flatnonzero(test.labels == c) for c in range(len(test.classes))]
    q = np.concatenate([idx[:len(idx) // 2] for idx in half])
    g = np.concatenate([idx[len(idx) // 2:] for idx in half])
    if not len(q):
        raise DataError(f"{root / 'test'} needs at least 2 images per class for queries and gallery")
    held_out = test.subset(g)
    held_out = ImageSet(to_square(list(held_out.images), image_size, fit), held_out.labels, held_out.classes)
    return RetrievalSet("classes", train, held_out, test.subset(q), test.subset(g),
                        f"{Path(path).name}: test split, per class the first half (<= {per_class}) = queries, the "
                        f"next as many = gallery, same class = relevant; training on train/")
