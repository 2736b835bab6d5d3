"""`lowres build-default`: the shipped default bundle, rebuilt from the committed checkpoints (or trained
first with --train), calibrated, exported and given its model card."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("build-default")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder of the new bundle.")
@click.option("--data", default="../shared/data", show_default=True,
              help="The shared data folder, as the stages' recipes name it (relative to the working directory).")
@click.option("--checkpoints", default="benchmarks/checkpoints", show_default=True,
              help="Where the stages' finished runs are committed (default_<stage>/).")
@click.option("--train", is_flag=True, help="Train the stages that are not committed and finished first (hours).")
@click.option("--runs", default="benchmarks/runs/default_model", show_default=True,
              help="With --train: where the stages train and resume.")
@click.option("--route-at", type=int, default=None, help="Route crops of >= N px to the 32 px net (default: measured).")
@click.option("--scorecard", type=click.Path(dir_okay=False), default=None,
              help="A sources scorecard JSON (benchmarks/results/sources.json) whose unseen-source figures go "
                   "into the model card.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
def build_default_command(out, data, checkpoints, train, runs, route_at, scorecard, overwrite):
    """Build the default bundle into --out (run from the repository root: the recipes name data and
    checkpoints relative to it); it writes nothing but --out."""
    from dataclasses import replace

    from .default_model import Plan, build

    card_figures = json.loads(Path(scorecard).read_text()) if scorecard else None
    result = build(out, data, checkpoints, plan=replace(Plan(), route_at=route_at), train=train, runs=runs,
                   scorecard=card_figures, overwrite=overwrite, log=lambda m: click.echo(m, err=True))
    cal = result["calibration"]
    click.echo(f"wrote {out}: temperature {cal.get('route_temperatures', cal['temperature'])}, ECE "
               f"{cal['ece_before']} -> {cal['ece_after']}, unknown below {cal['unknown_below']}")
