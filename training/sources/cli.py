"""`lowres sources`: list the pinned data sources and build one into the crops layout."""
from __future__ import annotations

import click


@click.group("sources")
def sources_group():
    """Public data sources, pinned (repository + commit + sha256s), rebuilt as crops <cache>/<source>/<label>/."""


@sources_group.command("list")
def list_command():
    """Each source: name, labels, origin (and pinned commit), licence."""
    from .registry import SOURCES

    for s in SOURCES.values():
        origin = s.origin + (f"@{s.commit[:12]}" if s.commit else "")
        click.echo(f"{s.name:18} {','.join(s.labels):40} {origin}  [{s.licence}]")


@sources_group.command("build")
@click.argument("name")
@click.option("--from", "snapshot", required=True, type=click.Path(file_okay=False),
              help="The source's snapshot: a checkout of its repository at the pinned commit, "
                   "or the shared data folder for shared: origins.")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="Where the crops go [default: ~/.cache/lowres_sdk/sources].")
@click.option("--overwrite", is_flag=True, help="Replace an earlier build of this source made from other pins.")
def build_command(name, snapshot, cache, overwrite):
    """Check every pinned file's sha256 under --from, then write the crops of source NAME."""
    from lowres_sdk.errors import LowresError

    from .base import build, read_manifest
    from .registry import SOURCES

    if name not in SOURCES:
        raise click.BadParameter(f"unknown source {name!r}; one of: {', '.join(SOURCES)}", param_hint="NAME")
    try:
        out = build(SOURCES[name], snapshot, cache, overwrite=overwrite)
    except LowresError as e:
        raise click.ClickException(str(e))
    crops = read_manifest(out)["crops"]
    click.echo(f"{name}: {sum(crops.values())} crops {crops} in {out}")
