"""More street-level people for the shipped default: its 32 px net (the route of every crop >= 12 px, so of
every person crop the scorecard cuts) fine-tuned on the fixed-camera set plus people, person-free windows and
parts of people cut from public MOT sequences (training/sources/people.py; MOT17-11 held out whole), then
built like the default (its 16 px net unchanged, route, calibration, export) and scored on every source by
benchmarks/sources.py. Penn-Fudan and TUD-Campus stay unseen. Resumable: rerun to continue.

From the repository root, C being where the MOT sources are built (not the scorecard's cache), the candidates
A, B (shipped), C and D of docs/sources.md:

    python benchmarks/sources_people.py --cache C --name sources_people32 --cifar-fraction 0.4
    python benchmarks/sources_people.py --cache C --name sources_people32kd --kd-alpha 0.5
    python benchmarks/sources_people.py --cache C --name sources_people32kd3 --kd-alpha 0.3 --repeat 3 --bg-repeat 2
    python benchmarks/sources_people.py --cache C --name sources_people32kd5r3 --kd-alpha 0.5 --repeat 3 \
        --bg-repeat 2 --cifar-fraction 1 --no-windows-from adl-rundle-6
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKPOINTS = Path("benchmarks/checkpoints")  # relative: the recipes saved name no machine folder
LOWER = "airnet16_cont_bg_w0.625_hr8"   # the default's 16 px net (crops < 12 px), kept as it is
UPPER = "airnet32pp1_kd_w0.5_hr8"       # the default's 32 px net, the one fine-tuned here


def recipe(args) -> dict:
    """The fine-tuning recipe: the 32 px net's own settings, a short cosine from ``args.lr``; with ``args.kd_alpha``
    distilled from the shipped net itself (its soft labels keep the other classes), teacher and student on the
    same camera crop."""
    kd = dict(method="kd", teacher=f"stage:{UPPER}", kd_same_view=True, kd_alpha=args.kd_alpha, kd_tau=4.0)
    return dict(**(kd if args.kd_alpha else {"method": "lr"}), arch="airnet-prepool1", width=0.5, resolution=32,
                input_mode="native", fit="letterbox", batch_size=128, lr=args.lr, warmup_epochs=0, seed=0,
                degradation="camera", camera_min=12, camera_max=32, label_smoothing=0.1, ema_decay=args.ema,
                epochs=args.epochs, init=f"stage:{UPPER}")


def write_manifest(path: Path, name: str, weights: list[str], info: dict, plan) -> None:
    base = json.loads((HERE / "manifests" / "default.json").read_text())
    seen = dict(base["seen"])
    for source in info["mot_sources"]:
        seen[source] = {"trained": f"people x{plan.person_repeat}, person-free windows"
                                   + (" and parts of people" if plan.parts else "") + " of every sequence but the "
                                   "held-out ones", "held_out_groups": list(plan.held_out)}
    manifest = {**base, "model": f"benchmarks/runs/{name}/bundle", "route_checkpoints_sha256": weights,
                "trained_on": ["fixedcam+clipbg+mot-people:../shared/data"], "seen": dict(sorted(seen.items()))}
    manifest["about"] = base["about"].replace("shipped default", f"{name} model")
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--cache", required=True, help="where the MOT sources are built (not the scorecard's cache)")
    ap.add_argument("--name", default="sources_people32")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--kd-alpha", type=float, default=0.0, help="> 0: distil from the shipped 32 px net")
    ap.add_argument("--route-at", type=int, default=None, help="fix the route (default: measured, as the default's)")
    ap.add_argument("--repeat", type=int, default=2, help="of each MOT person crop")
    ap.add_argument("--bg-repeat", type=int, default=1, help="of each MOT background crop")
    ap.add_argument("--no-windows-from", default="", help="comma-separated sequences whose windows are left out")
    ap.add_argument("--no-parts", action="store_true", help="leave parts of people out of the background")
    ap.add_argument("--cifar-fraction", type=float, default=0.6)
    ap.add_argument("--score-only", action="store_true")
    args = ap.parse_args(argv)

    from lowres_sdk.training.checkpoint import load_checkpoint
    from lowres_sdk.training.loop import train
    from lowres_sdk.training.pipelines import default_model
    from lowres_sdk.training.sources import people

    import sources as scorecard

    plan = people.PeopleData(person_repeat=args.repeat, background_repeat=args.bg_repeat, parts=not args.no_parts,
                             cifar_fraction=args.cifar_fraction,
                             no_windows_from=tuple(filter(None, args.no_windows_from.split(","))))
    run_root = Path("benchmarks/runs") / args.name
    stage = default_model.Stage(f"{args.name}_w0.5_hr8", recipe(args), "fixedcam+clipbg+mot-people")
    ckpts = run_root / "checkpoints"   # the default's layout: default_<stage>/
    bundle, manifest = run_root / "bundle", HERE / "manifests" / f"{args.name}.json"
    if not args.score_only:
        train_set, test_set, info = people.load(args.data, args.cache, plan)
        print("training set", len(train_set), json.dumps(info["mot_sources"]), flush=True)
        ckpts.mkdir(parents=True, exist_ok=True)
        for name in (LOWER, UPPER):
            if not (ckpts / f"default_{name}").exists():
                shutil.copytree(CHECKPOINTS / f"default_{name}", ckpts / f"default_{name}")
        run = run_root / "train"
        rec = default_model.stage_recipe(stage, args.data, CHECKPOINTS)  # init: the committed net
        train(rec, run, resume=(run / "checkpoint.json").exists(), data=(train_set, test_set), progress=False)
        from lowres_sdk.training.checkpoint import save_finished_copy

        save_finished_copy(run, default_model.committed(ckpts, stage.name))
        built = replace(default_model.Plan(), stages=(stage,), routes=(LOWER, stage.name), route_at=args.route_at)
        default_model.build(bundle, args.data, ckpts, plan=built, overwrite=True)
        weights = [load_checkpoint(default_model.committed(ckpts, n))[1]["weights_sha256"] for n in built.routes]
        write_manifest(manifest, args.name, weights, info, plan)
    return scorecard.main(["--bundle", str(bundle), "--manifest", str(manifest), "--block", args.name.replace("_", "-"),
                           "--out", str(HERE / "results" / f"{args.name}.json")])


if __name__ == "__main__":
    sys.exit(main())
