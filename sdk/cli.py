"""The `lowres` command. Runtime commands import numpy/onnxruntime only; the training commands live
in lowres_sdk.training and are imported when invoked (click's lazy-loading pattern), so
`lowres --help` is instant and works on a runtime-only install without torch."""
from __future__ import annotations

import importlib
import sys

import click

from ._version import __version__
from .errors import LowresError

# command name -> (module, attribute, one-line help shown in `lowres --help`, extra it needs)
LAZY_COMMANDS = {
    "train": ("lowres_sdk.training.cli", "train_command", "Train a low-res model, HR teacher or DFD student.", "train"),
    "eval": ("lowres_sdk.training.cli", "eval_command", "Accuracy of a run by input resolution (JSON + PNG).", "train"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx, name):
        if name not in LAZY_COMMANDS:
            return super().get_command(ctx, name)
        module, attr, _, extra = LAZY_COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            raise click.ClickException(
                f"`lowres {name}` needs {e.name}, which is not installed: pip install 'lowres_sdk[{extra}]'")

    def format_commands(self, ctx, formatter):
        rows = [(n, LAZY_COMMANDS[n][2]) if n in LAZY_COMMANDS else (n, super().get_command(ctx, n).get_short_help_str())
                for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lowres")
def cli():
    """lowres_sdk: train, export and run recognisers for 8-48 px crops."""


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="lowres", standalone_mode=False)
    except LowresError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: the last finished epoch is saved; continue with --resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
