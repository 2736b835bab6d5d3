"""The shipped default model, built by the package: data -> training stages (recipes) -> route choice ->
calibration -> export -> the bundle's model card. `lowres build-default --out DIR` runs it; without
--train it rebuilds from the committed checkpoints of the routes' stages (calibrate + export only)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lowres_sdk.training import fixedcam

from .calibration import Head, calibrate, choose_route


@dataclass(frozen=True)
class Stage:
    """One training run: ``recipe`` holds its fields, where "stage:NAME" names the committed checkpoint of
    another stage; ``source`` is the fixed-camera data it trains on (with the clips' background or not, with
    the MOT sequences' people and hard negatives or not: `Data.sets`)."""
    name: str
    recipe: dict
    source: str = "fixedcam+clipbg"


CAMERA = dict(method="lr", arch="airnet", resolution=16, input_mode="native", fit="letterbox", batch_size=128,
              lr=0.1, warmup_epochs=1, seed=0, degradation="camera", camera_min=6, camera_max=32,
              label_smoothing=0.1, ema_decay=0.999)
HR = dict(method="hr", arch="airnet", batch_size=128, lr=0.1, warmup_epochs=1, seed=0, label_smoothing=0.1)
UPPER = dict(CAMERA, width=0.5, resolution=32)  # the 32 px net of the larger crops' route
KD_ALPHA = 0.5  # the people stage's weight on its own earlier soft labels (0.3 / 0.5 tried: docs/sources.md)
# The shipped nets' chains: an HR start on the clean 32x32 objects (paper 001's staged fine-tuning), then
# cosine cycles through random cameras; the 32 px net's last stage is a pool-first copy distilled from it
# (40 instead of 54 MFLOPs), teacher and student on the same camera crop.
STAGES = (
    Stage("airnet32_hr8_w0.625", dict(HR, width=0.625, epochs=8), "fixedcam"),
    Stage("airnet16_w0.625_hr8", dict(CAMERA, width=0.625, epochs=50, init="stage:airnet32_hr8_w0.625"), "fixedcam"),
    Stage("airnet16_cont_bg_w0.625_hr8", dict(CAMERA, width=0.625, epochs=30, lr=0.05,
                                              init="stage:airnet16_w0.625_hr8")),
    Stage("airnet32_hr8_w0.5", dict(HR, width=0.5, epochs=8), "fixedcam"),
    Stage("airnet32_w0.5_hr8", dict(UPPER, epochs=20, camera_min=12, init="stage:airnet32_hr8_w0.5")),
    Stage("airnet32_cont_w0.5_hr8", dict(UPPER, epochs=20, camera_min=14, lr=0.05, init="stage:airnet32_w0.5_hr8")),
    Stage("airnet32_cont2_w0.5_hr8", dict(UPPER, epochs=12, camera_min=14, lr=0.025,
                                          init="stage:airnet32_cont_w0.5_hr8")),
    Stage("airnet32_cont3_w0.5_hr8", dict(UPPER, epochs=12, camera_min=14, lr=0.0125,
                                          init="stage:airnet32_cont2_w0.5_hr8")),
    Stage("airnet32pp1_kd_w0.5_hr8", dict(UPPER, method="kd", arch="airnet-prepool1", epochs=16, camera_min=12,
                                          lr=0.05, kd_same_view=True, init="stage:airnet32_cont3_w0.5_hr8",
                                          teacher="stage:airnet32_cont3_w0.5_hr8")),
    # street-level people from MOT sequences (training/sources/people.py): +7-14 points of person recall on
    # two pedestrian sources it never saw; distilled from itself so the other classes stay (docs/sources.md)
    Stage("airnet32pp1_people_w0.5_hr8", dict(UPPER, method="kd", arch="airnet-prepool1", epochs=4, camera_min=12,
                                              lr=0.02, warmup_epochs=0, ema_decay=0.998, kd_same_view=True,
                                              kd_alpha=KD_ALPHA, kd_tau=4.0, init="stage:airnet32pp1_kd_w0.5_hr8",
                                              teacher="stage:airnet32pp1_kd_w0.5_hr8"), "fixedcam+clipbg+mot-people"),
)


@dataclass(frozen=True)
class Plan:
    """What the default model is: its stages, the stage of each route (smallest crops first), where the
    second route starts (None: measured by `choose_route`), its head and how it is exported."""
    stages: tuple[Stage, ...] = STAGES
    routes: tuple[str, ...] = ("airnet16_cont_bg_w0.625_hr8", "airnet32pp1_people_w0.5_hr8")
    route_at: int | None = None
    merge: dict = field(default_factory=lambda: dict(fixedcam.COARSE))
    dropped: tuple[str, ...] = fixedcam.DROPPED
    unknown_precision: float = 0.8  # `unknown` below the score whose kept predictions are this often right
    max_mb: float = 2.0  # the shipped bundle's size limit: INT8 is left out above it
    fp16_weights: bool = True
    int8: bool = True  # tried; shipped only where the export's accuracy and speed gates pass
    calib_images: int = 600  # training images INT8 is calibrated on
    test_about: str = "CIFAR-10 test of the classes the shipped head keeps, held-out people and street windows"


def committed(checkpoints: Path, name: str) -> Path:
    """Where the finished run of stage ``name`` is committed."""
    return Path(checkpoints) / f"default_{name}"


def stage_recipe(stage: Stage, data: str, checkpoints: Path):
    """The stage's `Recipe`; "stage:NAME" values become the committed checkpoints' paths as given (relative
    to the working directory, as the committed runs record them)."""
    from lowres_sdk.training.recipe import Recipe

    fields = {k: str(committed(checkpoints, v[len("stage:"):])) if isinstance(v, str) and v.startswith("stage:") else v
              for k, v in stage.recipe.items()}
    return Recipe.from_dict({**fields, "data": f"{stage.source}:{data}"})


def recipe_sha256(recipe) -> str:
    flat = recipe.flat() if hasattr(recipe, "flat") else recipe.to_dict()
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()


def data_manifest(data: Path) -> dict:
    """sha256 and size of every file of ``data`` the default model is trained and calibrated on, by name."""
    names = ["cifar10-jpg.tar.gz", "person-reid-48x128.tar.gz", "pedestrians-mit-64x128.tar.gz",
             "street-background-64x128.tar.gz", *(f"video/{c}" for c in fixedcam.CLIPS)]
    out = {}
    for name in names:
        h = hashlib.sha256()
        with open(Path(data) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[name] = {"sha256": h.hexdigest(), "bytes": (Path(data) / name).stat().st_size}
    return out


def sources_manifest(plan: Plan) -> dict:
    """The pinned public sources (not in the shared data folder) a stage of ``plan`` trained on, by name."""
    from lowres_sdk.training.sources import people
    from lowres_sdk.training.sources.registry import SOURCES

    if not any(s.source.endswith("+mot-people") for s in plan.stages):
        return {}
    return {n: {"origin": SOURCES[n].origin, "commit": SOURCES[n].commit, "pins_sha256": SOURCES[n].pins_digest}
            for n in people.SOURCES}


class Data:
    """The fixed-camera data, loaded once per source (the route stages' test split and INT8 calibration
    images come from the plain source); ``given``: (train, test) sets used for every source instead."""

    def __init__(self, root: str, given=None):
        self.root, self.given, self._sets = root, given, {}

    def sets(self, source: str = "fixedcam"):
        if self.given is not None:
            return self.given
        if source not in self._sets and source.endswith("+mot-people"):
            from lowres_sdk.training.sources import people
            from lowres_sdk.training.sources.base import cache_root

            self._sets[source] = people.load(self.root, cache_root())[:2]
        if source not in self._sets:
            train, test, _ = fixedcam.load(self.root, clip_background=source == "fixedcam+clipbg")
            self._sets[source] = (train, test)
        return self._sets[source]


def train_stages(plan: Plan, data: Data, checkpoints: Path, runs: Path, log=print) -> None:
    """Train every stage not finished (resumed in ``runs``, started from its committed copy when there is
    one) and commit its finished copy; a committed stage that is finished is left byte for byte alone."""
    from lowres_sdk.training.checkpoint import load_checkpoint, save_finished_copy
    from lowres_sdk.training.loop import train

    for stage in plan.stages:
        recipe, saved = stage_recipe(stage, data.root, checkpoints), committed(checkpoints, stage.name)
        run = runs / stage.name
        if (saved / "checkpoint.json").exists() and load_checkpoint(saved)[1]["epoch"] >= recipe.epochs:
            continue
        if not run.exists() and (saved / "checkpoint.json").exists():
            shutil.copytree(saved, run)
        log(f"training stage {stage.name}")
        train(recipe, run, resume=True, data=data.sets(stage.source), progress=False)
        save_finished_copy(run, saved)


def _route_checkpoints(plan: Plan, checkpoints: Path) -> list[Path]:
    from lowres_sdk.errors import InputError

    paths = [committed(checkpoints, name) for name in plan.routes]
    missing = [str(p) for p in paths if not (p / "checkpoint.json").exists()]
    if missing:
        raise InputError(f"no committed checkpoint at {', '.join(missing)} (train the stages with --train, or run "
                         "from the repository root with --checkpoints benchmarks/checkpoints)")
    return paths


def route_images(test, head: Head, plan: Plan) -> np.ndarray:
    """Every second test image of the CIFAR classes the head keeps: where the route is chosen (the
    calibration's fitting half)."""
    kept = [head.fine.index(c) for c in fixedcam.CIFAR if c in head.fine and c not in plan.dropped]
    return np.flatnonzero(np.isin(test.labels, kept))[::2]


def fine_bundle(plan: Plan, routes: list[Path], sets, head: Head, tmp: Path, log) -> tuple[Path, list, dict | None]:
    """The routes exported without the head, the route measured (unless the plan fixes it), and the
    fine bundle the head is calibrated on. Returns (that bundle, [(min_side, checkpoint)], route choice)."""
    from lowres_sdk import Classifier
    from lowres_sdk.export.exporter import export_run
    from lowres_sdk.export.routed import export_routed

    test, calib = sets
    quiet = (lambda *a: None)
    at, choice = plan.route_at, None
    if len(routes) == 1 or at is None:  # each route on its own: to measure the route, or the one route
        parts = [export_run(r, tmp / f"fine{i}", test_set=test, calib_set=calib, log=quiet)
                 for i, r in enumerate(routes)]
    if len(routes) > 1 and at is None:
        idx = route_images(test, head, plan)
        at, choice = choose_route(Classifier(str(parts[0].path)), Classifier(str(parts[1].path)), test.images[idx],
                                  head.to_coarse[test.labels[idx]], head)
        log(f"route: crops of >= {at} px to {routes[1].name}" if at else "route: one net")
    pairs = [(0, routes[0])] + ([(at, routes[1])] if at and len(routes) > 1 else [])
    if len(pairs) == 1:
        return parts[0].path, pairs, choice
    export_routed(pairs, tmp / "fine_routed", test_set=test, calib_set=calib, log=quiet)
    return tmp / "fine_routed", pairs, choice


def export_shipped(plan: Plan, pairs: list, sets, cal: dict, out: Path, log) -> None:
    """The shipped bundle: each route's temperature, the merge and the dropped classes inside the graph;
    INT8 where the export's gates pass and the size limit allows."""
    from lowres_sdk.bundle import CALIBRATION_KEYS
    from lowres_sdk.export.exporter import export_run
    from lowres_sdk.export.routed import export_routed

    test, calib = sets
    temps = cal.get("route_temperatures", [cal["temperature"]])
    heads = [{"temperature": t, "merge": {k: list(v) for k, v in plan.merge.items()}, "drop": list(plan.dropped)}
             for t in temps]
    args = dict(test_set=test, calib_set=calib, log=log, fp16_weights=plan.fp16_weights,
                calibration={k: cal[k] for k in CALIBRATION_KEYS if k in cal})
    if len(pairs) > 1:
        export_routed(pairs, out, int8=plan.int8, heads=heads, max_mb=plan.max_mb, **args)
    else:
        export_run(pairs[0][1], out, int8=plan.int8, int8_optional=True, head=heads[0], **args)


def stage_provenance(plan: Plan, data: str, checkpoints: Path) -> list[dict]:
    """Every stage by name and recipe hash; the routes' stages (the nets exported) also by their committed
    checkpoint and its weights' hash."""
    from lowres_sdk.training.checkpoint import load_checkpoint

    out = []
    for s in plan.stages:
        row = {"stage": s.name, "recipe_sha256": recipe_sha256(stage_recipe(s, data, checkpoints))}
        if s.name in plan.routes:
            row["checkpoint"] = str(committed(checkpoints, s.name))
            row["weights_sha256"] = load_checkpoint(committed(checkpoints, s.name))[1]["weights_sha256"]
        out.append(row)
    return out


def build(out: str | os.PathLike, data: str | os.PathLike, checkpoints: str | os.PathLike, *, plan: Plan = Plan(),
          train: bool = False, runs: str | os.PathLike | None = None, sets=None, scorecard: dict | None = None,
          overwrite: bool = False, log=print) -> dict:
    """Build the default bundle into ``out``: (``train``) the stages, then route, calibration, export and the
    model card, from the committed checkpoints under ``checkpoints``; ``data``: the shared data folder as
    the recipes name it (``sets``: (train, test) image sets used instead, e.g. tiny ones in tests);
    ``scorecard``: measured figures on unseen sources for the card. Returns what was measured."""
    from lowres_sdk import Classifier
    from lowres_sdk.bundle import check_bundle_target
    from lowres_sdk.training.checkpoint import load_checkpoint

    from .model_card import attach_card, model_card

    check_bundle_target(out, overwrite)  # refused before any work
    checkpoints, source = Path(checkpoints), Data(str(data), sets)
    if train:
        train_stages(plan, source, checkpoints, Path(runs or "runs/default_model"), log)
    routes = _route_checkpoints(plan, checkpoints)
    train_set, test = source.sets("fixedcam")
    n = min(plan.calib_images, len(train_set))
    calib = train_set.subset(np.sort(np.random.default_rng(0).choice(len(train_set), n, replace=False)))
    head = Head(load_checkpoint(routes[0])[1]["classes"], plan.merge, plan.dropped)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fine, pairs, choice = fine_bundle(plan, routes, (test, calib), head, tmp, log)
        cal, reliability = calibrate(Classifier(str(fine)), test, head, plan.unknown_precision, about=plan.test_about)
        log(f"calibration: T = {cal.get('route_temperatures', cal['temperature'])}, ECE {cal['ece_before']} -> "
            f"{cal['ece_after']}, unknown below {cal['unknown_below']}")
        export_shipped(plan, pairs, (test, calib), cal, tmp / "shipped", log)
        stages = stage_provenance(plan, str(data), checkpoints)
        manifest = {**data_manifest(Path(data)), **sources_manifest(plan)} if sets is None else None
        card = model_card(plan, tmp / "shipped", stages=stages, manifest=manifest, route=choice, scorecard=scorecard)
        attach_card(tmp / "shipped", card, out, overwrite)
    return {"calibration": cal, "reliability": reliability, "route": choice, "model_card": card}
