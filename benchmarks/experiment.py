"""An experiment file (TOML under benchmarks/experiments/) read into its runs: each run's recipe is the
file's defaults, then its presets, then its own fields; "run:NAME" and "repo:PATH" values are references."""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "benchmarks" / "runs"  # the local cache of runs (ignored by git), one folder per family
RESULTS = ROOT / "benchmarks" / "results"
TOP_KEYS = {"family", "data", "image_size", "committed", "evaluate", "table", "defaults", "presets", "runs"}
RUN_KEYS = {"name", "use", "from"}  # a run's keys that are not recipe fields


def _error(msg: str):
    from lowres_sdk.errors import InputError

    return InputError(msg)


@dataclass(frozen=True)
class Run:
    """One run of an experiment: ``fields`` is its recipe as written (references unresolved), ``family``
    the experiment whose run cache holds it (another family's run is evaluated here, not trained)."""
    name: str
    family: str
    fields: dict

    @property
    def recipe_sha256(self) -> str:
        """The hash of the recipe as written: the same on every machine (no resolved path in it)."""
        return hashlib.sha256(json.dumps(self.fields, sort_keys=True).encode()).hexdigest()

    def folder(self, runs_root: Path = RUNS) -> Path:
        return runs_root / self.family / self.name

    def references(self) -> list[str]:
        """The runs this one starts from or learns from ("run:" values), as FAMILY/NAME."""
        return [ref_run(v, self.family) for v in _values(self.fields) if v.startswith("run:")]


@dataclass(frozen=True)
class Experiment:
    path: Path
    family: str
    data: str  # relative to the repository, optionally "SOURCE:PATH"
    image_size: int
    committed: str | None  # where finished runs are committed, relative to the repository
    evaluate: dict
    table: dict
    runs: tuple[Run, ...]

    @property
    def results(self) -> Path:
        return RESULTS / f"{self.family}.json"

    def trained_here(self) -> list[Run]:
        return [r for r in self.runs if r.family == self.family]

    def recipe(self, run: Run, runs_root: Path = RUNS):
        """The run's `Recipe`, its references resolved under ``runs_root`` and the repository."""
        from lowres_sdk.training.recipe import Recipe

        fields = {k: _resolve(v, self.family, runs_root) for k, v in run.fields.items()}
        fields["data"] = _resolve_data(self.data)
        fields.setdefault("image_size", self.image_size)
        recipe = Recipe.from_dict(fields)
        unknown = set(fields) - set(flat_recipe(recipe))
        if unknown:
            raise _error(f"{self.path.name}: run {run.name}: unknown recipe fields {sorted(unknown)}")
        return recipe


def ref_run(value: str, family: str) -> str:
    """``run:NAME`` (this family's run) or ``run:FAMILY/NAME`` -> FAMILY/NAME."""
    name = value[len("run:"):]
    return name if "/" in name else f"{family}/{name}"


def _values(fields: dict) -> list[str]:
    return [part for v in fields.values() if isinstance(v, str) for part in v.split(",")]


def _resolve(value, family: str, runs_root: Path):
    if not isinstance(value, str) or not value.startswith(("run:", "repo:")):
        return value
    parts = [str(runs_root / ref_run(p, family)) if p.startswith("run:") else str(ROOT / p[len("repo:"):])
             for p in value.split(",")]  # kd_teachers and camera_kernels are comma-separated lists
    return ",".join(parts)


def _resolve_data(data: str) -> str:
    source = re.match(r"^([a-z][a-z0-9+_-]*):(?!//)", data)  # "fixedcam+clipbg:../shared/data"
    prefix, path = (source.group(0), data[source.end():]) if source else ("", data)
    return prefix + str((ROOT / path).resolve())


def flat_recipe(recipe) -> dict:
    """A recipe's settings, one key each (the flat form checkpoints of earlier versions saved)."""
    return recipe.flat() if hasattr(recipe, "flat") else recipe.to_dict()


def canonical_method(name: str) -> str:
    """The method's current name (older names stay accepted as aliases)."""
    from lowres_sdk.training import methods

    return methods.canonical(name) if hasattr(methods, "canonical") else name


def _expand(name: str, preset: str, presets: dict, seen: tuple = ()) -> dict:
    if preset not in presets:
        raise _error(f"run {name}: no preset {preset!r} (the file's presets: {sorted(presets)})")
    if preset in seen:
        raise _error(f"presets use each other in a cycle: {' -> '.join((*seen, preset))}")
    out = {}
    for parent in presets[preset].get("use", []):
        out.update(_expand(name, parent, presets, (*seen, preset)))
    return {**out, **{k: v for k, v in presets[preset].items() if k != "use"}}


def load(path: str | Path) -> Experiment:
    """Read and check an experiment file; InputError names the file and what is wrong."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise _error(f"{path}: not a readable experiment file ({e})") from None
    unknown = set(doc) - TOP_KEYS
    missing = {"family", "data", "runs", "evaluate"} - set(doc)
    if unknown or missing:
        raise _error(f"{path.name}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    family, presets, runs = doc["family"], doc.get("presets", {}), []
    for raw in doc["runs"]:
        if "name" not in raw:
            raise _error(f"{path.name}: a run without a name: {raw}")
        fields = dict(doc.get("defaults", {}))
        for preset in raw.get("use", []):
            fields.update(_expand(raw["name"], preset, presets))
        fields.update({k: v for k, v in raw.items() if k not in RUN_KEYS})
        runs.append(Run(raw["name"], raw.get("from", family), fields))
    names = [f"{r.family}/{r.name}" for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _error(f"{path.name}: runs named twice: {dup}")
    return Experiment(path, family, doc["data"], int(doc.get("image_size", 32)), doc.get("committed"),
                      doc["evaluate"], doc.get("table", {}), tuple(runs))
