"""What every data source shares: a pinned origin, a check of the snapshot's sha256s before anything is
read, and the crops folder it writes: ``<cache>/<source>/<label>/<group>__<k>.png`` plus ``manifest.json``."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from lowres_sdk.bundle import sha256_file
from lowres_sdk.errors import DataError

MANIFEST = "manifest.json"
# The labels a source may give its crops: the street camera's classes, CIFAR's, and `background`
# (a window with no object of interest). Sources name "car", never CIFAR's "automobile".
LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "bird", "cat", "dog", "horse",
          "airplane", "deer", "frog", "ship", "background")

Crop = tuple[str, str, np.ndarray]  # (label, group, BGR uint8 HxWx3); a group is what is held out whole


@dataclass(frozen=True)
class Source:
    """One public data source pinned to one version. ``pins``: path in the snapshot -> sha256;
    ``crops(snapshot)`` yields its labelled crops once every pinned file matched."""

    name: str
    origin: str          # "github:owner/repo" or "shared:<path under ../shared/data>"
    commit: str | None   # the pinned git commit of a github origin
    licence: str
    labels: tuple[str, ...]
    what: str            # one line: what the crops are and how they were cut
    pins: dict[str, str] = field(repr=False)
    crops: Callable[[Path], Iterator[Crop]] = field(repr=False)

    def __post_init__(self):
        unknown = set(self.labels) - set(LABELS)
        if unknown:
            raise ValueError(f"source {self.name}: labels {sorted(unknown)} are not in {LABELS}")

    @property
    def pins_digest(self) -> str:
        """One sha256 over every pinned (path, sha256): two builds from the same snapshot share it."""
        lines = "".join(f"{p}\t{h}\n" for p, h in sorted(self.pins.items()))
        return hashlib.sha256(lines.encode()).hexdigest()


def verify(source: Source, snapshot: Path) -> None:
    """DataError unless every pinned file of ``source`` is under ``snapshot`` with its pinned sha256."""
    if not snapshot.is_dir():
        raise DataError(f"{source.name}: snapshot folder not found: {snapshot}")
    missing, wrong = [], []
    for rel, expected in sorted(source.pins.items()):
        path = snapshot / rel
        if not path.is_file():
            missing.append(rel)
        elif sha256_file(path) != expected:
            wrong.append(rel)
    where = f"{source.origin}" + (f" at commit {source.commit}" if source.commit else "")
    if missing:
        raise DataError(f"{source.name}: {len(missing)} of {len(source.pins)} pinned files are missing under "
                        f"{snapshot} (first: {missing[0]}); expected a snapshot of {where}")
    if wrong:
        raise DataError(f"{source.name}: {len(wrong)} files differ from their pinned sha256 (first: {wrong[0]}); "
                        f"refusing to build from anything but {where}")


def cache_root(cache: str | os.PathLike | None = None) -> Path:
    from ..data import default_cache_dir  # there, not at the top: training/data.py imports torch

    return Path(cache) if cache else default_cache_dir() / "sources"


def read_manifest(folder: Path) -> dict | None:
    """A built source's manifest, or None when ``folder`` is not a complete build of ours."""
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _safe(group: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", group).strip("-") or "g"


def _write_crops(source: Source, snapshot: Path, out: Path) -> tuple[Counter, dict[str, set]]:
    import cv2

    counts, groups, per_group = Counter(), {}, Counter()
    for label, group, crop in source.crops(snapshot):
        if label not in source.labels:
            raise DataError(f"{source.name}: a crop labelled {label!r}, not one of {source.labels}")
        if crop.ndim != 3 or crop.shape[2] != 3 or min(crop.shape[:2]) < 1:
            continue
        key = (label, _safe(group))
        (out / label).mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out / label / f"{key[1]}__{per_group[key]}.png"), crop):
            raise DataError(f"{source.name}: could not write a crop under {out}")
        per_group[key] += 1
        counts[label] += 1
        groups.setdefault(label, set()).add(key[1])
    return counts, groups


def build(source: Source, snapshot: str | os.PathLike, cache: str | os.PathLike | None = None,
          overwrite: bool = False) -> Path:
    """Verify ``snapshot`` against the pins, then write the crops folder ``<cache>/<source.name>``.

    A complete build from the same pins is returned as it is; a folder that is not such a build is
    replaced only with ``overwrite``, and only when it is one of ours (it holds our manifest), so a
    user's own folder is never deleted. The crops go to a temp folder renamed when complete."""
    snapshot = Path(snapshot)
    verify(source, snapshot)
    root = cache_root(cache)
    target = root / source.name
    old = read_manifest(target)
    if old and old.get("pins_digest") == source.pins_digest and not overwrite:
        return target
    if target.exists():
        if old is None:
            raise DataError(f"{target} exists and is not a built source (no {MANIFEST}): not touching it")
        if not overwrite:
            raise DataError(f"{target} holds a build from other pins: pass overwrite (--overwrite) to replace it")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{source.name}-", dir=root))
    try:
        counts, groups = _write_crops(source, snapshot, tmp)
        if not counts:
            raise DataError(f"{source.name}: the snapshot gave no crops")
        manifest = {"source": source.name, "origin": source.origin, "commit": source.commit,
                    "licence": source.licence, "what": source.what, "pins_digest": source.pins_digest,
                    "crops": dict(sorted(counts.items())),
                    "groups": {label: len(g) for label, g in sorted(groups.items())}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        os.chmod(tmp, 0o755)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_crops(folder: Path) -> Iterator[tuple[str, str, Path]]:
    """(label, group, path) of every crop of a built source, in a fixed order."""
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(label_dir.glob("*.png")):
            yield label_dir.name, path.stem.rsplit("__", 1)[0], path
