"""The bundle format: one directory with ``model.onnx`` (+ optional variants) and ``bundle.json``.

``bundle.json`` = the bundle's description (schema version, task, labels, input contract,
pre-processing, provenance, metrics, parity, optional calibration) + ``files`` (sha256 and size of
every file). The description without ``files`` is also stored in the ONNX ``metadata_props`` under
``lowres_sdk.bundle``, so a model file that travels alone still says what it is. `load_bundle`
validates bundle.json against `BundleMeta`, confines every file to the bundle folder and checks
every hash before anything runs; the runtime then checks the graph's signature. See docs/bundle.md.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ._io import check_replaceable, check_writable, replace_dir
from .errors import BundleError, InputError
from .spec import InputSpec

SCHEMA_VERSION = 1  # a bundle of one model
ROUTED_SCHEMA_VERSION = 2  # a routed bundle: `routes` lists its models (readers of version 1 refuse it)
SCHEMA_VERSIONS = (SCHEMA_VERSION, ROUTED_SCHEMA_VERSION)
META_FILE = "bundle.json"
ONNX_METADATA_KEY = "lowres_sdk.bundle"
TASKS = ("classify", "embed")
MAX_META_BYTES = 32 << 20  # a real bundle.json is a few kB; refuse to parse a huge file

INPUT_NAME = "images"
# The graph's output is named after what it holds. Bundles exported before this rule named the
# graph's output "output" while bundle.json said "probs"/"embeddings"; the runtime still reads them.
OUTPUT_NAMES = {"classify": "probs", "embed": "embeddings"}
LEGACY_OUTPUT_NAME = "output"

# What every bundle accepts: raw crops as OpenCV gives them.
INPUT_CONTRACT = {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channel_order": "BGR",
                  "batch": "dynamic", "height": "any", "width": "any"}

DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "default"

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- validation helpers: every failure is a BundleError naming the field -------------------------

def _need(ok: bool, where: str, expected: str, got) -> None:
    if not ok:
        shown = repr(got)
        raise BundleError(f"{where}: expected {expected}, got {shown[:80] + '...' if len(shown) > 80 else shown}")


def _int(d: dict, key: str, where: str, lo: int = 0) -> int:
    v = d.get(key)
    _need(isinstance(v, int) and not isinstance(v, bool) and v >= lo, f"{where}.{key}", f"an integer >= {lo}", v)
    return v


def _float(v, where: str, lo: float, hi: float, lo_open: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if lo_open else v >= lo) and v <= hi
    _need(ok, where, f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]", v)
    return float(v)


def _str(d: dict, key: str, where: str) -> str:
    v = d.get(key)
    _need(isinstance(v, str) and v != "", f"{where}.{key}", "a non-empty string", v)
    return v


def _dict(d: dict, key: str, where: str, default=None) -> dict:
    v = d.get(key, default)
    _need(isinstance(v, dict), f"{where}.{key}", "an object", v)
    return v


def safe_relative(name) -> bool:
    """A file name a bundle may list: relative, no ``..``, no empty or absolute parts."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return False
    p = PurePosixPath(name)
    return not p.is_absolute() and all(part not in ("", ".", "..") for part in name.split("/"))


# ---- the typed description ---------------------------------------------------------------------

@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int

    @classmethod
    def from_dict(cls, d, where: str) -> "FileEntry":
        _need(isinstance(d, dict), where, "an object with sha256 and bytes", d)
        sha = d.get("sha256")
        _need(isinstance(sha, str) and _SHA256.fullmatch(sha) is not None, f"{where}.sha256", "64 hex digits", sha)
        return cls(sha, _int(d, "bytes", where))

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "bytes": self.bytes}


CALIBRATION_KEYS = ("temperature", "unknown_below", "unknown_below_by_label", "method", "fitted_on", "ece_before",
                    "ece_after")


@dataclass(frozen=True)
class Calibration:
    """How the probabilities were calibrated (temperature scaling, applied inside the graph) and the
    score under which a prediction is reported as "unknown": ``unknown_below``, or for the labels
    ``unknown_below_by_label`` names, their own (a label whose predictions are rarely wrong needs a
    lower score than one often confused)."""

    temperature: float
    unknown_below: float
    method: str = "temperature scaling"
    fitted_on: str = ""
    ece_before: float | None = None
    ece_after: float | None = None
    unknown_below_by_label: dict[str, float] | None = None

    def __post_init__(self):
        where = "calibration"
        _float(self.temperature, f"{where}.temperature", 0.0, 1e6, lo_open=True)
        _float(self.unknown_below, f"{where}.unknown_below", 0.0, 1.0)
        by_label = self.unknown_below_by_label
        if by_label is not None:
            _need(isinstance(by_label, dict) and all(isinstance(k, str) and k for k in by_label),
                  f"{where}.unknown_below_by_label", "an object of label -> threshold", by_label)
            for label, v in by_label.items():
                _float(v, f"{where}.unknown_below_by_label[{label!r}]", 0.0, 1.0)
        _need(isinstance(self.method, str), f"{where}.method", "a string", self.method)
        _need(isinstance(self.fitted_on, str), f"{where}.fitted_on", "a string", self.fitted_on)
        for key in ("ece_before", "ece_after"):
            v = getattr(self, key)
            if v is not None:
                _float(v, f"{where}.{key}", 0.0, 1.0)

    @classmethod
    def from_dict(cls, d) -> "Calibration":
        _need(isinstance(d, dict), "calibration", "an object", d)
        for key in ("temperature", "unknown_below"):
            _need(key in d, f"calibration.{key}", "a number", None)
        unknown = set(d) - set(CALIBRATION_KEYS)
        _need(not unknown, "calibration", f"only {', '.join(CALIBRATION_KEYS)}", sorted(unknown))
        return cls(**d)

    def check_labels(self, labels, where: str) -> None:
        """BundleError unless every label ``unknown_below_by_label`` names is one of ``labels``."""
        stray = sorted(set(self.unknown_below_by_label or ()) - set(labels))
        _need(not stray, f"{where}.unknown_below_by_label", f"labels of the bundle {list(labels)}", stray)

    def to_dict(self) -> dict:
        d = {"temperature": self.temperature, "unknown_below": self.unknown_below, "method": self.method,
             "fitted_on": self.fitted_on, "ece_before": self.ece_before, "ece_after": self.ece_after}
        # Absent, not null, in bundles without it (their embedded copy lacks it).
        if self.unknown_below_by_label is not None:
            d["unknown_below_by_label"] = dict(self.unknown_below_by_label)
        return d


def route_index(min_sides, height: int, width: int) -> int:
    """The route a crop of ``height`` x ``width`` goes to: the last whose ``min_side`` <= its longer
    side (``min_sides`` ascending, the first 0). The routed graph (`lowres_sdk.export.routed`)
    implements this rule; tests hold the two together."""
    side = max(height, width)
    return max(i for i, m in enumerate(min_sides) if m <= side)


@dataclass(frozen=True)
class Route:
    """One model of a routed bundle: crops whose longer side is >= ``min_side`` (and below the next
    route's) go through it. Its pre-processing, provenance, metrics and parity are its own; ``int8``:
    its graph inside model.int8.onnx is INT8 (False: its INT8 was refused by the export's gates, so
    the INT8 model runs this route in FP32)."""

    min_side: int
    preprocessing: InputSpec
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    int8: bool = False

    @classmethod
    def from_dict(cls, d, where: str, int8_shipped: bool) -> "Route":
        """``int8`` may be absent (bundles written before it: every route was INT8 when the bundle
        shipped INT8); it is then ``int8_shipped``."""
        _need(isinstance(d, dict), where, "an object with min_side and preprocessing", d)
        unknown = set(d) - {"min_side", "preprocessing", "provenance", "metrics", "parity", "int8"}
        _need(not unknown, where, "only min_side, preprocessing, provenance, metrics, parity, int8", sorted(unknown))
        _need("preprocessing" in d, f"{where}.preprocessing", "an object", None)
        int8 = d.get("int8", int8_shipped)
        _need(isinstance(int8, bool), f"{where}.int8", "true or false", int8)
        return cls(_int(d, "min_side", where), _spec(d["preprocessing"], f"{where}.preprocessing"),
                   _dict(d, "provenance", where, {}), _dict(d, "metrics", where, {}), _dict(d, "parity", where, {}),
                   int8)

    def to_dict(self) -> dict:
        return {"min_side": self.min_side, "preprocessing": self.preprocessing.to_dict(), "provenance": self.provenance,
                "metrics": self.metrics, "parity": self.parity, "int8": self.int8}


def _routes(raw, spec: "InputSpec", where: str, int8_shipped: bool) -> tuple[Route, ...]:
    """A version-2 bundle's ``routes``: >= 2, ``min_side`` from 0 strictly ascending, the first
    route's pre-processing the bundle's own; INT8 routes only when the bundle ships INT8 (``int8_shipped``),
    and then at least one."""
    _need(isinstance(raw, list) and len(raw) >= 2, where, "a list of at least 2 routes", raw)
    routes = tuple(Route.from_dict(r, f"{where}[{i}]", int8_shipped) for i, r in enumerate(raw))
    sides = [r.min_side for r in routes]
    _need(sides[0] == 0 and all(a < b for a, b in zip(sides, sides[1:])), f"{where}.min_side",
          "0 for the first route, then strictly ascending", sides)
    _need(routes[0].preprocessing == spec, f"{where}[0].preprocessing", "the bundle's preprocessing (the first "
          "route's)", routes[0].preprocessing.to_dict())
    int8 = [r.int8 for r in routes]
    _need(any(int8) == int8_shipped, f"{where}[*].int8",
          "at least one route true when the bundle ships an int8 variant (its model.int8.onnx), none otherwise", int8)
    return routes


def _spec(prep, where: str) -> InputSpec:
    """A valid `InputSpec` from bundle.json's ``prep``, or BundleError naming ``where``."""
    _need(isinstance(prep, dict), where, "an object", prep)
    try:
        spec = InputSpec.from_dict(prep)
    except (TypeError, ValueError) as e:  # InputError is a ValueError
        raise BundleError(f"{where} is invalid: {e}") from e
    for key, n in (("mean", 3), ("std", 3), ("value_range", 2)):
        v = getattr(spec, key)
        _need(len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                  for x in v), f"{where}.{key}", f"{n} numbers", list(v))
    _need(min(spec.std) > 0, f"{where}.std", "positive numbers", list(spec.std))
    # The graph always scales uint8 to [0, 1] before `mean`/`std`; no other range is implemented.
    _need(tuple(spec.value_range) == (0.0, 1.0), f"{where}.value_range", "[0.0, 1.0]", list(spec.value_range))
    _need(isinstance(spec.size, int) and isinstance(spec.resolution, int), where,
          "integer size and resolution", [spec.size, spec.resolution])
    return spec


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output as bundle.json records it."""

    name: str
    dtype: str = "float32"
    shape: tuple = ()


KNOWN_KEYS = ("schema_version", "task", "labels", "input", "preprocessing", "output", "embedding_dim",
              "embedding_space", "provenance", "metrics", "parity", "variants", "calibration", "routes", "files")


@dataclass(frozen=True)
class BundleMeta:
    """bundle.json, validated: ``from_dict`` raises BundleError naming the first bad field."""

    task: str
    labels: tuple[str, ...]
    input: TensorSpec
    preprocessing: InputSpec
    output: TensorSpec
    embedding_dim: int
    files: dict[str, FileEntry]
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    embedding_space: str | None = None
    calibration: Calibration | None = None
    extra: dict = field(default_factory=dict)  # keys a later lowres_sdk added; kept, not interpreted
    routes: tuple[Route, ...] = ()  # a routed bundle's models (schema version 2); () for one model
    schema_version: int = SCHEMA_VERSION

    @property
    def output_width(self) -> int:
        return len(self.labels) if self.task == "classify" else self.embedding_dim

    @classmethod
    def from_dict(cls, d) -> "BundleMeta":
        w = META_FILE
        _need(isinstance(d, dict), w, "a JSON object", type(d).__name__)
        version = d.get("schema_version")
        if version not in SCHEMA_VERSIONS or isinstance(version, bool):
            raise BundleError(f"bundle schema_version {version!r}; this lowres_sdk reads versions "
                              f"{', '.join(map(str, SCHEMA_VERSIONS))} (a newer lowres_sdk may read it)")
        if (version == ROUTED_SCHEMA_VERSION) != ("routes" in d):
            raise BundleError(f"{w}: schema_version {version} " + ("needs 'routes' (a routed bundle's models)" if
                              version == ROUTED_SCHEMA_VERSION else f"has no 'routes' (routed bundles are version "
                                                                    f"{ROUTED_SCHEMA_VERSION})"))
        for key in ("task", "labels", "input", "preprocessing", "files"):
            if key not in d:
                raise BundleError(f"{w} lacks '{key}'")
        task = d["task"]
        _need(task in TASKS, f"{w}.task", f"one of {TASKS}", task)
        labels = d["labels"]
        _need(isinstance(labels, list) and all(isinstance(x, str) and x for x in labels),
              f"{w}.labels", "a list of non-empty strings", labels)
        _need(len(set(labels)) == len(labels), f"{w}.labels", "distinct names", labels)
        _need(task != "classify" or len(labels) >= 1, f"{w}.labels", "at least one class", labels)

        inp = _dict(d, "input", w)
        name = _str(inp, "name", f"{w}.input")
        for key, want in (("dtype", "uint8"), ("layout", "NHWC"), ("channel_order", "BGR")):
            _need(inp.get(key) == want, f"{w}.input.{key}", repr(want), inp.get(key))
        spec = _spec(d["preprocessing"], f"{w}.preprocessing")

        dim = _int(d, "embedding_dim", w, lo=1)
        width = len(labels) if task == "classify" else dim
        out = _dict(d, "output", w, {"name": OUTPUT_NAMES[task], "shape": ["N", width]})
        out_name = _str(out, "name", f"{w}.output")
        shape = out.get("shape", ["N", width])
        _need(isinstance(shape, list) and len(shape) == 2 and shape[1] == width, f"{w}.output.shape",
              f"['N', {width}] ({'one column per label' if task == 'classify' else 'embedding_dim'})", shape)

        files_raw = _dict(d, "files", w)
        files = {}
        for fname, info in files_raw.items():
            _need(safe_relative(fname) and fname != META_FILE, f"{w}.files",
                  "names relative to the bundle folder (no '..', no absolute paths)", fname)
            files[fname] = FileEntry.from_dict(info, f"{w}.files[{fname!r}]")
        if "model.onnx" not in files:
            raise BundleError(f"{w} lists no model.onnx")
        variants = _dict(d, "variants", w, {})
        for key, fname in variants.items():
            _need(isinstance(fname, str) and fname in files and key != "fp32", f"{w}.variants[{key!r}]",
                  "a file listed in 'files' (and a name other than fp32)", fname)
        routes = _routes(d["routes"], spec, f"{w}.routes", "int8" in variants) if "routes" in d else ()
        _need(not routes or task == "classify", f"{w}.routes", "a classify bundle (embedders of different nets "
              "do not share a space)", task)
        space = d.get("embedding_space")
        _need(space is None or (isinstance(space, str) and space), f"{w}.embedding_space", "a string", space)
        calibration = d.get("calibration")
        if calibration is not None:
            if task != "classify":
                raise BundleError(f"{w}.calibration: only a classify bundle can be calibrated")
            calibration = Calibration.from_dict(calibration)
            calibration.check_labels(labels, w + ".calibration")
        return cls(task=task, labels=tuple(labels), input=TensorSpec(name, "uint8", ("N", "H", "W", 3)),
                   preprocessing=spec, output=TensorSpec(out_name, "float32", ("N", width)), embedding_dim=dim,
                   files=files, provenance=_dict(d, "provenance", w, {}), metrics=_dict(d, "metrics", w, {}),
                   parity=_dict(d, "parity", w, {}), variants=dict(variants), embedding_space=space,
                   calibration=calibration, extra={k: v for k, v in d.items() if k not in KNOWN_KEYS}, routes=routes,
                   schema_version=version)

    def to_dict(self) -> dict:
        d = {"schema_version": self.schema_version, "task": self.task, "labels": list(self.labels),
             "input": {**INPUT_CONTRACT, "name": self.input.name}, "preprocessing": self.preprocessing.to_dict(),
             "output": {"name": self.output.name, "shape": list(self.output.shape)},
             "embedding_dim": self.embedding_dim, "provenance": self.provenance, "metrics": self.metrics,
             "parity": self.parity, "variants": self.variants}
        if self.embedding_space is not None:
            d["embedding_space"] = self.embedding_space
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_dict()
        if self.routes:
            d["routes"] = [r.to_dict() for r in self.routes]
        return {**d, **self.extra, "files": {n: f.to_dict() for n, f in self.files.items()}}


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk: ``meta`` is bundle.json as read, ``description`` its typed form."""

    path: Path
    meta: dict
    description: BundleMeta = None  # type: ignore[assignment]  # derived from meta when not given

    def __post_init__(self):
        if self.description is None:
            object.__setattr__(self, "description", BundleMeta.from_dict(self.meta))

    @property
    def task(self) -> str:
        return self.description.task

    @property
    def labels(self) -> list[str]:
        return list(self.description.labels)

    @property
    def spec(self) -> InputSpec:
        """The model's pre-processing; a routed bundle's first (smallest crops') route's, see `routes`."""
        return self.description.preprocessing

    @property
    def routes(self) -> tuple[Route, ...]:
        """A routed bundle's models, smallest crops first; () for a bundle of one model."""
        return self.description.routes

    def fixed_input_spec(self, purpose: str) -> InputSpec:
        """The pre-processing of a bundle of one model, for ``purpose`` (an engine or pipeline of one
        fixed input size); BundleError for a routed bundle, whose crops take several."""
        if self.routes:
            sides = ", ".join(f">= {r.min_side} px: {r.preprocessing.resolution} px" for r in self.routes)
            raise BundleError(f"{self.path} is a routed bundle ({len(self.routes)} models by crop size: {sides}); "
                              f"{purpose} takes one fixed-size model: write route K as a bundle of its own with "
                              f"`lowres export {self.path} --split-route K --out DIR`, or use the onnxruntime runtime, "
                              f"whose graph routes each crop itself")
        return self.description.preprocessing

    @property
    def calibration(self) -> Calibration | None:
        return self.description.calibration

    @property
    def fingerprint(self) -> str:
        """sha256 of the FP32 model: identifies the weights a gallery or an engine was made with."""
        return self.description.files["model.onnx"].sha256

    @property
    def embedding_space(self) -> str:
        """Identifies the space an embedder's vectors live in: the sha256 of the trained weights
        (the extractor's for an FSR embedder, whose generator maps into it). Older bundles: the
        model's fingerprint."""
        return self.description.embedding_space or self.fingerprint

    def file(self, name: str = "model.onnx") -> Path:
        if name not in self.description.files:
            raise BundleError(f"{self.path} has no {name} (it has {', '.join(self.description.files)})")
        return self.path / name

    @property
    def variants(self) -> dict[str, str]:
        return {"fp32": "model.onnx", **self.description.variants}


def describe(task: str, labels: list[str], spec: InputSpec, *, embedding_dim: int, provenance: dict,
             metrics: dict | None = None, parity: dict | None = None, variants: dict | None = None,
             calibration: dict | None = None, routes: list[dict] | None = None) -> dict:
    """The bundle description (everything but the file hashes). ``calibration`` (classify only):
    the temperature already applied in the graph and the ``unknown_below`` score, see `Calibration`.
    ``routes``: a routed bundle's models as `Route.to_dict` gives them (schema version 2)."""
    if task not in TASKS:
        raise BundleError(f"task must be one of {TASKS}, got {task!r}")
    d = {"schema_version": SCHEMA_VERSION, "task": task, "labels": list(labels), "input": dict(INPUT_CONTRACT),
         "preprocessing": spec.to_dict(),
         "output": {"name": OUTPUT_NAMES[task], "shape": ["N", len(labels) if task == "classify" else embedding_dim]},
         "embedding_dim": embedding_dim, "provenance": provenance, "metrics": metrics or {},
         "parity": parity or {}, "variants": variants or {}}
    if calibration is not None:
        if task != "classify":
            raise BundleError("only a classify bundle can carry a calibration")
        calibration = Calibration.from_dict(dict(calibration))
        calibration.check_labels(labels, "calibration")
        d["calibration"] = calibration.to_dict()
    if routes:
        d["schema_version"] = ROUTED_SCHEMA_VERSION
        d["routes"] = [r.to_dict() for r in _routes(list(routes), spec, "routes", "int8" in (variants or {}))]
    return d


def read_json(f: Path, what: str):
    """The JSON file ``f`` parsed, or BundleError naming it (``what`` it should be, for a document
    nested too deeply); FileNotFoundError passes through for the caller to word."""
    try:
        return json.loads(f.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{f} is not valid JSON: {e}") from e
    except RecursionError:
        raise BundleError(f"{f} is nested too deeply to be {what}") from None
    except FileNotFoundError:
        raise
    except OSError as e:
        raise BundleError(f"cannot read {f}: {e.strerror or e}") from e


def _read_meta(folder: Path):
    """bundle.json of ``folder`` parsed, or BundleError."""
    f = folder / META_FILE
    try:
        if f.is_symlink():
            raise BundleError(f"{f} is a symbolic link; a bundle's files must lie inside its folder")
        if not f.is_file():
            if os.path.lexists(f):
                raise BundleError(f"{f} is not a file")
            hint = (f"; it is a training run: export it first: lowres export {folder} --out BUNDLE"
                    if (folder / "checkpoint.json").is_file() else "")
            raise BundleError(f"{folder} is not a bundle: no {META_FILE}{hint}")
        if f.stat().st_size > MAX_META_BYTES:
            raise BundleError(f"{f} is {f.stat().st_size} bytes; a bundle.json is at most {MAX_META_BYTES}")
        return read_json(f, "a bundle description")
    except OSError as e:  # the checks above, or the file vanishing under them
        raise BundleError(f"cannot read {f}: {e.strerror or e}") from e


def _recognise_bundle(folder: Path) -> list[str] | None:
    """For `replace_dir`: None unless ``folder`` is a bundle; else its entries bundle.json does not list."""
    try:
        meta = _read_meta(folder)
    except BundleError:
        return None
    if not isinstance(meta, dict) or "schema_version" not in meta or not isinstance(meta.get("files"), dict):
        return None
    ours = {META_FILE} | {str(n).split("/")[0] for n in meta["files"]}
    return sorted(set(os.listdir(folder)) - ours)


def check_bundle_target(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """OutputError unless a bundle may be written to ``out_dir`` (call before a long export)."""
    check_replaceable(out_dir, "bundle", _recognise_bundle, overwrite)
    check_writable(out_dir)


def write_bundle(out_dir: str | os.PathLike, description: dict, files: dict[str, str | os.PathLike],
                 overwrite: bool = False) -> Bundle:
    """Assemble a bundle from finished files (``name -> source path``) in a temp folder, then swap
    it into place: a crash leaves no half bundle that looks valid. ``out_dir`` may be new, empty or
    a bundle; anything else is refused with OutputError (``overwrite``: also a bundle holding
    files it does not list)."""
    out_dir = Path(out_dir)
    if "model.onnx" not in files:
        raise BundleError("a bundle needs a model.onnx")
    for name in files:
        if not safe_relative(name) or "/" in name or name == META_FILE:
            raise BundleError(f"bundle file names are plain names other than {META_FILE}, got {name!r}")
    with replace_dir(out_dir, "bundle", _recognise_bundle, overwrite) as tmp:
        for name, src in files.items():
            shutil.copyfile(src, tmp / name)
        meta = {**description, "files": {n: {"sha256": sha256_file(tmp / n), "bytes": (tmp / n).stat().st_size}
                                         for n in sorted(files)}}
        BundleMeta.from_dict(meta)  # refuse to write what load_bundle would refuse
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return load_bundle(out_dir)


def _confined(folder: Path, name: str) -> Path:
    """``folder/name`` if it is a regular file inside ``folder`` reached without symbolic links."""
    f = folder / name
    here = folder
    for part in PurePosixPath(name).parts:
        here = here / part
        if here.is_symlink():
            raise BundleError(f"{f} is (or lies under) a symbolic link; a bundle's files must lie inside its folder")
    try:
        inside = f.resolve().is_relative_to(folder.resolve())
    except OSError as e:
        raise BundleError(f"cannot read {f}: {e.strerror or e}") from e
    if not inside:
        raise BundleError(f"{f} lies outside the bundle folder")
    if not f.is_file():
        raise BundleError(f"{folder} is missing {name}, which {META_FILE} lists" if not os.path.lexists(f)
                          else f"{f} is not a regular file")
    return f


def _as_path(path) -> Path:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"bundle must be a folder path (str or Path) or a Bundle, got {type(path).__name__}")
    return Path(path)


def load_bundle(path: str | os.PathLike | None = None) -> Bundle:
    """Open and verify a bundle (``None``: the default one shipped in the package)."""
    path = _as_path(path) if path is not None else DEFAULT_BUNDLE
    if path.is_file() and path.name == META_FILE:
        path = path.parent
    if not path.is_dir():
        if path == DEFAULT_BUNDLE:
            raise BundleError(f"no default bundle is shipped in this installation ({path}); pass a bundle path")
        raise BundleError(f"bundle not found: {path} (expected a directory with model.onnx and {META_FILE})")
    meta = _read_meta(path)
    try:
        description = BundleMeta.from_dict(meta)
    except BundleError as e:
        raise BundleError(f"{path}: {e}") from None
    for name, info in description.files.items():
        f = _confined(path, name)
        if f.stat().st_size != info.bytes or sha256_file(f) != info.sha256:
            raise BundleError(f"{f} does not match the sha256 in {META_FILE}: the file was changed or damaged")
    return Bundle(path, meta, description)


def description_of(meta: dict) -> dict:
    """The part of bundle.json that is also embedded in the ONNX metadata."""
    return {k: v for k, v in meta.items() if k != "files"}
