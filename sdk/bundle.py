"""The bundle format: one directory with ``model.onnx`` (+ optional variants) and ``bundle.json``.

``bundle.json`` = the bundle's description (schema version, task, labels, input contract,
pre-processing, provenance, metrics, parity) + ``files`` (sha256 and size of every file). The
description without ``files`` is also stored in the ONNX ``metadata_props`` under
``lowres_sdk.bundle``, so a model file that travels alone still says what it is. `load_bundle`
checks the schema version and every hash before anything runs. See docs/bundle.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleError
from .spec import InputSpec

SCHEMA_VERSION = 1
META_FILE = "bundle.json"
ONNX_METADATA_KEY = "lowres_sdk.bundle"
TASKS = ("classify", "embed")

# What every bundle accepts: raw crops as OpenCV gives them.
INPUT_CONTRACT = {"name": "images", "dtype": "uint8", "layout": "NHWC", "channel_order": "BGR",
                  "batch": "dynamic", "height": "any", "width": "any"}

DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "default"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    path: Path
    meta: dict

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def labels(self) -> list[str]:
        return self.meta["labels"]

    @property
    def spec(self) -> InputSpec:
        return InputSpec.from_dict(self.meta["preprocessing"])

    @property
    def fingerprint(self) -> str:
        """sha256 of the FP32 model: identifies the weights a gallery or an engine was made with."""
        return self.meta["files"]["model.onnx"]["sha256"]

    @property
    def embedding_space(self) -> str:
        """Identifies the space an embedder's vectors live in: the sha256 of the trained weights
        (the extractor's for an FSR embedder, whose generator maps into it). Older bundles: the
        model's fingerprint."""
        return self.meta.get("embedding_space") or self.fingerprint

    def file(self, name: str = "model.onnx") -> Path:
        if name not in self.meta["files"]:
            raise BundleError(f"{self.path} has no {name} (it has {', '.join(self.meta['files'])})")
        return self.path / name

    @property
    def variants(self) -> dict[str, str]:
        return {"fp32": "model.onnx", **self.meta.get("variants", {})}


def describe(task: str, labels: list[str], spec: InputSpec, *, embedding_dim: int, provenance: dict,
             metrics: dict | None = None, parity: dict | None = None, variants: dict | None = None) -> dict:
    """The bundle description (everything but the file hashes)."""
    if task not in TASKS:
        raise BundleError(f"task must be one of {TASKS}, got {task!r}")
    return {"schema_version": SCHEMA_VERSION, "task": task, "labels": list(labels), "input": dict(INPUT_CONTRACT),
            "preprocessing": spec.to_dict(),
            "output": {"name": "probs" if task == "classify" else "embeddings",
                       "shape": ["N", len(labels) if task == "classify" else embedding_dim]},
            "embedding_dim": embedding_dim, "provenance": provenance, "metrics": metrics or {},
            "parity": parity or {}, "variants": variants or {}}


def write_bundle(out_dir: str | os.PathLike, description: dict, files: dict[str, str | os.PathLike]) -> Bundle:
    """Assemble a bundle from finished files (``name -> source path``) in a temp directory, then
    rename it into place: a crash leaves no half bundle that looks valid."""
    out_dir = Path(out_dir)
    if "model.onnx" not in files:
        raise BundleError("a bundle needs a model.onnx")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the result should read like any folder
    try:
        for name, src in files.items():
            shutil.copyfile(src, tmp / name)
        meta = {**description, "files": {n: {"sha256": sha256_file(tmp / n), "bytes": (tmp / n).stat().st_size}
                                         for n in sorted(files)}}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(out_dir)


def load_bundle(path: str | os.PathLike | None = None) -> Bundle:
    """Open and verify a bundle (``None``: the default one shipped in the package)."""
    path = Path(path) if path is not None else DEFAULT_BUNDLE
    if path.is_file() and path.name == META_FILE:
        path = path.parent
    if not path.is_dir():
        if path == DEFAULT_BUNDLE:
            raise BundleError(f"no default bundle is shipped in this installation ({path}); pass a bundle path")
        raise BundleError(f"bundle not found: {path} (expected a directory with model.onnx and {META_FILE})")
    try:
        meta = json.loads((path / META_FILE).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} is not a bundle: no {META_FILE}") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path / META_FILE} is not valid JSON: {e}") from e
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"{path} has bundle schema_version {version!r}; this lowres_sdk reads version {SCHEMA_VERSION}")
    for key in ("task", "labels", "input", "preprocessing", "files"):
        if key not in meta:
            raise BundleError(f"{path / META_FILE} lacks '{key}'")
    if meta["task"] not in TASKS:
        raise BundleError(f"{path} has task {meta['task']!r}, expected one of {TASKS}")
    if "model.onnx" not in meta["files"]:
        raise BundleError(f"{path / META_FILE} lists no model.onnx")
    for name, info in meta["files"].items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{path} is missing {name}, which {META_FILE} lists")
        if f.stat().st_size != info["bytes"] or sha256_file(f) != info["sha256"]:
            raise BundleError(f"{f} does not match the sha256 in {META_FILE}: the file was changed or damaged")
    try:
        InputSpec.from_dict(meta["preprocessing"])
    except (TypeError, ValueError) as e:
        raise BundleError(f"{path / META_FILE} has an invalid preprocessing section: {e}") from e
    return Bundle(path, meta)


def description_of(meta: dict) -> dict:
    """The part of bundle.json that is also embedded in the ONNX metadata."""
    return {k: v for k, v in meta.items() if k != "files"}
