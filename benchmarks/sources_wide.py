"""A first model trained on the wider data: the shipped default's 16 px net continued on the fixed-camera set
plus NGSIM's cars and TUD-Campus's people (one camera and a quarter of the tracks held out), exported with the
default's head and scored on every source by benchmarks/sources.py. Resumable: rerun to continue.

    nice -n 15 python benchmarks/sources_wide.py [--epochs 8] > wide.log 2>&1 &   # from the repository root
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INIT = HERE / "checkpoints" / "default_airnet16_cont_bg_w0.625_hr8"  # the default's 16 px route
MANIFEST = HERE / "manifests" / "sources_wide.json"
NAME = "sources_wide16"


def extras(cache):
    """NGSIM without its camera 4, TUD-Campus without every 4th track: those stay as in-source held-out parts."""
    from lowres_sdk.training.sources.base import cache_root, read_crops
    from lowres_sdk.training.sources.wide import Extra

    tracks = sorted({g for _, g, _ in read_crops(cache_root(cache) / "tud-campus")})
    return [Extra("ngsim-us101", 1, ("ngsim-us101-cam4-640x480",)), Extra("tud-campus", 4, tuple(tracks[::4]))]


def write_manifest(base: dict, extra_list, checkpoint: str, data: str) -> None:
    seen = dict(base["seen"])
    for e in extra_list:
        seen[e.name] = {"trained": f"crops of every group but the held-out ones, x{e.repeat}",
                        "held_out_groups": list(e.held_out)}
    manifest = {**base, "model": f"benchmarks/runs/{NAME}/bundle", "route_checkpoints_sha256": [checkpoint],
                "trained_on": [data],
                "seen": dict(sorted(seen.items()))}
    manifest["about"] = base["about"].replace("shipped default", f"{NAME} model")
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--cache", default=None, help="built sources [default: ~/.cache/lowres_sdk/sources]")
    ap.add_argument("--runs", default=str(HERE / "runs"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--fraction", type=float, default=1.0, help="of each class's training crops (a shorter epoch)")
    args = ap.parse_args(argv)

    from lowres_sdk.export.exporter import export_run
    from lowres_sdk.training import fixedcam
    from lowres_sdk.training.checkpoint import load_checkpoint
    from lowres_sdk.training.loop import train
    from lowres_sdk.training.recipe import Recipe
    from lowres_sdk.training.sources import wide

    import sources as scorecard

    extra_list = extras(args.cache)
    train_set, test_set, info = wide.load(args.data, extra_list, args.cache)
    print("training set", len(train_set), json.dumps(info["sources"]), flush=True)
    start = json.loads((INIT / "checkpoint.json").read_text())["recipe"]
    data = "fixedcam+clipbg+sources:" + ",".join(e.name for e in extra_list)
    recipe = Recipe.from_dict({**start, "init": str(INIT.relative_to(HERE.parent)), "epochs": args.epochs,
                               "lr": args.lr, "warmup_epochs": 0, "data": data,
                               "train_fraction": args.fraction})
    run = Path(args.runs) / NAME
    train(recipe, run, resume=(run / "checkpoint.json").exists(), data=(train_set, test_set))
    meta = load_checkpoint(run)[1]
    head = {"temperature": 0.85, "merge": {k: list(v) for k, v in fixedcam.COARSE.items()},
            "drop": list(fixedcam.DROPPED)}
    bundle = run / "bundle"
    export_run(run, bundle, head=head, test_set=test_set, int8=False, overwrite=True)
    write_manifest(json.loads((HERE / "manifests" / "default.json").read_text()), extra_list, meta["weights_sha256"],
                   data)
    cache = ["--cache", args.cache] if args.cache else []
    return scorecard.main(["--bundle", str(bundle), "--manifest", str(MANIFEST), "--block", "sources-wide16",
                           "--out", str(HERE / "results" / "sources_wide.json"), *cache])


if __name__ == "__main__":
    sys.exit(main())
