"""Datasets as in-memory uint8 arrays: an ImageFolder reader (one folder per class) and the
archive helper that extracts e.g. CIFAR-10 once into a user cache dir and verifies it.

Low-res images are small: 60k CIFAR images are 184 MB as uint8, so we decode once and keep
them in memory instead of running a DataLoader per epoch on a 2-core machine.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import zlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from lowres_sdk.bundle import sha256_file
from lowres_sdk.crops import IMAGE_SUFFIXES
from lowres_sdk.errors import DataError
from lowres_sdk.progress import Progress
from lowres_sdk.spec import LETTERBOX_FILL


# Archives we know, by file name: their sha256, checked before anything is extracted.
KNOWN_ARCHIVES = {
    "cifar10-jpg.tar.gz": "f09d4d98e774cf940e9b89f70e48edf086781ba2c265ae111fc2e30a26ea95cb",
    "person-reid-48x128.tar.gz": "e63bfd1a17e930ef56c636283856b3ab58323e1d35d33be7bb709085402bde61",
    "faces-orl-92x112.tar.gz": "bedf36bcef2acb454867578959311608492c93bc74e8f3429cf90db538ad6e7b",
}


@dataclass
class ImageSet:
    """Images as uint8 [N, H, W, 3] RGB, integer labels [N], and the class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    aspects: np.ndarray | None = None  # width / height of each object before it was stored square (None: all 1)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        aspects = None if self.aspects is None else self.aspects[index]
        return ImageSet(self.images[index], self.labels[index], self.classes, aspects)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lowres_sdk"


def extract_archive(archive: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extract a .tar.gz dataset once into ``cache_dir`` and return the extracted folder.

    The archive's sha256 is checked against ``KNOWN_ARCHIVES`` when its name is known; the
    extraction happens in a temp folder that is renamed only when complete, and a manifest
    (archive hash + file count) marks it valid, so an interrupted run never looks finished.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"dataset archive not found: {archive}")
    digest = sha256_file(archive)
    expected = KNOWN_ARCHIVES.get(archive.name)
    if expected and digest != expected:
        raise DataError(f"{archive} has sha256 {digest[:16]}..., expected {expected[:16]}... "
                        f"(corrupt or different file)")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / "datasets" / f"{archive.name.split('.')[0]}-{digest[:12]}"
    manifest = target / ".lowres_manifest.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        if info.get("sha256") == digest and _count_files(target) == info.get("files"):
            return target
        shutil.rmtree(target)  # incomplete or tampered: extract again
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the result should read like any folder
    try:
        # member by member, so a long extraction (CIFAR-10: ~17 s) shows progress (sdk/progress.py)
        with tarfile.open(archive, "r:*") as tar, Progress(desc=f"extracting {archive.name}", unit="files") as bar:
            for member in tar:
                tar.extract(member, tmp, filter="data")
                bar.update()
        (tmp / ".lowres_manifest.json").write_text(json.dumps({"sha256": digest, "files": _count_files(tmp),
                                                               "archive": str(archive)}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:  # a truncated .tar.gz raises EOFError
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"could not extract {archive}: {e}") from e
    return target


def _count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and p.name != ".lowres_manifest.json")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image as uint8 HxWx3 RGB (gray is replicated); DataError if it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read image {path} (not an image or corrupt)")
    return img[:, :, ::-1]


def letterbox(img: np.ndarray) -> np.ndarray:
    """Centre ``img`` on a gray square (the same fill the exported graph pads with)."""
    h, w = img.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(img, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT,
                              value=(LETTERBOX_FILL,) * 3)


def read_image_folder(root: str | os.PathLike, image_size: int | None = 32,
                      limit_per_class: int | None = None, classes: list[str] | None = None,
                      fit: str = "stretch") -> ImageSet:
    """Read ``root/<class>/*.jpg`` (ImageFolder layout) into memory.

    Images are resized to ``image_size`` square (OpenCV INTER_AREA when shrinking, cubic when
    enlarging); ``None`` keeps them as they are, which needs them all to share one size.
    ``classes`` fixes the label order (e.g. a test split read with the train split's classes).
    ``fit="letterbox"`` pads non-square images to a gray square first instead of stretching them.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise DataError(f"{root} has no class folders (expected {root}/<class>/<image>)")
    if classes is not None and set(found) != set(classes):
        raise DataError(f"{root} has classes {found}, expected {classes}")
    classes = list(classes) if classes is not None else found
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"class folder {root / name} has no images ({', '.join(IMAGE_SUFFIXES)})")
        for path in files[:limit_per_class]:
            img = read_image(path)
            if fit == "letterbox":
                img = letterbox(img)
            if image_size is not None and img.shape[:2] != (image_size, image_size):
                shrink = image_size < min(img.shape[:2])
                img = cv2.resize(img, (image_size, image_size),
                                 interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
            images.append(img)
            labels.append(label)
    if len({im.shape for im in images}) > 1:
        raise DataError(f"images under {root} differ in size; pass an image_size to resize them")
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), classes)


def resolve_data_root(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder as is, or an archive extracted (once) into the cache."""
    path = Path(path)
    if path.is_file() and "".join(path.suffixes[-2:]) in (".tar.gz", ".tgz") or path.suffix in (".tar", ".tgz"):
        return extract_archive(path, cache_dir)
    if not path.exists():
        raise DataError(f"data not found: {path}")
    return path


def load_splits(path: str | os.PathLike, image_size: int | None = 32, limit_per_class: int | None = None,
                cache_dir: str | os.PathLike | None = None, fit: str = "stretch") -> tuple[ImageSet, ImageSet]:
    """The ``train/`` and ``test/`` splits of a dataset folder or archive (e.g. CIFAR-10)."""
    root = resolve_data_root(path, cache_dir)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{path} has no '{split}/' folder (expected {split}/<class>/<image>)")
    train = read_image_folder(root / "train", image_size, limit_per_class, fit=fit)
    test = read_image_folder(root / "test", image_size, limit_per_class, classes=train.classes, fit=fit)
    return train, test


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC RGB -> float NCHW in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def fraction_per_class(data: ImageSet, fraction: float) -> ImageSet:
    """The first ``fraction`` of every class (at least one image each), in the set's order."""
    keep = []
    for c in range(len(data.classes)):
        idx = np.flatnonzero(data.labels == c)
        keep.append(idx[:max(1, round(fraction * len(idx)))])
    return data.subset(np.sort(np.concatenate(keep)))
