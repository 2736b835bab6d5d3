"""The CLI reads the same everywhere: every option of every command (lazy ones included) has help,
and options shared by several commands keep one name, one default and one help text."""
from __future__ import annotations

import click
import pytest

from lowres_sdk.cli import cli

pytest.importorskip("torch", reason="the training and export commands need torch")
pytest.importorskip("fastapi", reason="`lowres serve` needs the serve extra")


def _commands():
    ctx = click.Context(cli)

    def walk(cmd, name):
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, sub), f"{name} {sub}")
        else:
            yield name, cmd

    return dict(walk(cli, "lowres"))


def test_every_option_of_every_command_has_help():
    commands = _commands()
    assert {"lowres train", "lowres eval", "lowres export", "lowres serve", "lowres viz tsne"} <= set(commands)
    missing = [f"{name} {p.opts[0]}" for name, cmd in commands.items() for p in cmd.params
               if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert not missing, missing
    assert all((cmd.help or "").strip() for cmd in commands.values())


def test_shared_options_agree():
    commands = _commands()
    precision = {name: cmd for name, cmd in commands.items()
                 if name in ("lowres classify", "lowres bench", "lowres video", "lowres serve")}
    assert len(precision) == 4
    seen = set()
    for name, cmd in precision.items():
        opt = next(p for p in cmd.params if p.name == "precision")
        seen.add((tuple(opt.type.choices), opt.default, opt.help))
    assert len(seen) == 1 and next(iter(seen))[1] == "auto"
    limit = [name for name, cmd in commands.items() if name.startswith("lowres viz")
             for p in cmd.params if "--per-class" in p.opts and "--limit-per-class" not in p.opts]
    assert not limit, limit


def test_train_shows_defaults_as_click_does():
    text = _commands()["lowres train"].get_help(click.Context(cli))
    assert "[default: resnet20]" in text and "[default: 'resnet20']" not in text and "[default: None]" not in text
