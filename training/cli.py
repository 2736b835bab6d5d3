"""The training commands of `lowres`: train, viz, eval-retrieval and kd-targets (attached to the `lowres`
group lazily, so `lowres --help` and the runtime commands never import torch)."""
from __future__ import annotations

import json
import os

import click



def _resolutions(ctx, param, value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 8,16,32, got {value!r}")
    if not out:
        raise click.BadParameter("give at least one resolution")
    return out


def _recipe_options(command):
    """One click option per recipe setting: the core fields of `Recipe`, the camera's and every method's
    option group; its name, type, default and help come from the field, so a setting has one name
    (``--ema-decay`` sets ``ema_decay``, ``--kd-alpha`` the kd group's ``alpha``) and is written in one place."""
    for name, (f, kind, owners) in reversed(list(_settings().items())):
        meta = f.metadata
        extra = {"default": None}
        if kind is bool:
            decl = [f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}"]
        else:
            decl = [f"--{name.replace('_', '-')}"]
            extra["type"] = click.Choice(meta["choices"]) if meta.get("choices") else kind
        # as click prints defaults elsewhere: the value itself (a flag by its name), nothing for "not set"
        shown = (name if f.default else f"no-{name}").replace("_", "-") if kind is bool else f.default
        tail = " [required]" if name == "data" else "" if f.default in (None, "") else f" [default: {shown}]"
        command = click.option(*decl, name, help=owners + meta.get("help", "") + tail, **extra)(command)
    return command


def _settings() -> dict:
    """Flat name -> (field, its type, 'owner: ' for a group's setting), core settings first."""
    import typing

    from .methods import METHODS
    from .options import CameraOptions
    from .recipe import Recipe, core_fields

    def kind(cls, f):
        hint = typing.get_type_hints(cls)[f.name]
        return typing.get_args(hint)[0] if typing.get_args(hint) else hint

    out = {f.name: (f, kind(Recipe, f), "") for f in core_fields() if f.name != "method"}
    groups = [("camera", CameraOptions)] + [(name, m.options) for name, m in METHODS.items()]
    for owner, group in groups:
        for name, f in group.flat_fields().items():
            if name in out:  # a group several methods share (query sizes): one option, each owner named
                first, k, owners = out[name]
                out[name] = (first, k, owners[:-2] + f"/{owner}: ")
            else:
                out[name] = (f, kind(group, f), f"{owner}: ")
    return out


def _method_help() -> str:
    from .methods import ALIASES, METHODS

    old = ", ".join(f"{alias} for {name}" for alias, name in ALIASES.items())
    return "; ".join(f"{name}: {m.help}" for name, m in METHODS.items()) + f" (old names accepted: {old})."


class _TrainCommand(click.Command):
    def format_help_text(self, ctx, formatter):  # the method list comes from the one table
        super().format_help_text(ctx, formatter)
        with formatter.indentation():
            formatter.write_paragraph()
            formatter.write_text("Methods: " + _method_help())


@click.command("train", cls=_TrainCommand)
@click.option("--method", default=None, help="Training method (listed above); required unless --recipe gives it.")
@click.option("--recipe", "recipe_file", type=click.Path(dir_okay=True), default=None,
              help="Start from a saved recipe: a JSON file of one, or a run folder (its checkpoint.json); "
                   "options given on the command line override its fields.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run folder (checkpoint written every epoch).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@_recipe_options
def train_command(method, recipe_file, out, resume, **fields):
    """Train a low-resolution model (or its HR teacher). Works unchanged under
    `torchrun --nproc_per_node N -m lowres_sdk.cli train ...`."""
    from lowres_sdk.errors import InputError

    from .loop import train
    from .methods import METHODS
    from .recipe import Recipe

    given = {k: v for k, v in fields.items() if v is not None}
    if method is not None:
        given["method"] = method
    base = _read_recipe(recipe_file) if recipe_file else {}
    name = given.get("method", base.get("method"))
    if name is None:
        raise InputError(f"--method is required (one of {', '.join(METHODS)}), or a --recipe that names one")
    if not given.get("data", base.get("data")):
        raise InputError("--data is required (a dataset folder or .tar.gz), or a --recipe that names one")
    if base:  # the file's settings for the method chosen (a file may hold another method's)
        base = Recipe.from_dict({**base, "method": name}).to_dict()
    recipe = Recipe(**{**base, **given})  # a setting of another method given here is an error
    meta = train(recipe, out, resume=resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only rank 0 reports
    last = meta["history"][-1]
    click.echo(f"{out}: {meta['epoch']} epochs, test top-1 {100 * last['test_top1']:.2f} % at "
               f"{last.get('test_resolution', recipe.resolution)} px "
               f"({meta['params']:,} params, {meta['mflops']} MFLOPs)")
    click.echo(f"next: lowres eval {out} (accuracy by resolution), lowres export {out} --out BUNDLE (to run it)")


def _read_recipe(path: str) -> dict:
    from pathlib import Path

    from lowres_sdk.errors import InputError

    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.json"
    try:
        d = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"--recipe {path}: cannot read a recipe ({type(e).__name__}: {e})") from e
    if isinstance(d, dict) and isinstance(d.get("recipe"), dict):  # a checkpoint.json
        d = d["recipe"]
    if not isinstance(d, dict):
        raise InputError(f"--recipe {path}: expected a JSON object of recipe fields, got {type(d).__name__}")
    return d


@click.group("viz")
def viz_group():
    """Pictures of what a run learned, as PNG: t-SNE of features, occlusion heat maps, accuracy by
    input resolution."""


@viz_group.command("tsne")
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG to write (default RUN/tsne.png).")
@click.option("--resolution", type=int, default=None, help="LR input resolution (default: the run's own).")
@click.option("--limit-per-class", "--per-class", "per_class", type=click.IntRange(2), default=100, show_default=True,
              help="Use at most N test images per class (t-SNE's time grows with their square).")
@click.option("--data", default=None, help="Dataset to draw from (default: the run's own).")
def viz_tsne(run, out, resolution, per_class, data):
    """t-SNE (scikit-learn) of the test images' pooled features, coloured by class: the HR model on
    HR and on LR input, then RUN itself on LR input (paper 000's figure; for a transfer or DFD run
    the last panel shows the transferred / distilled features)."""
    from .viz import tsne_figure

    path = tsne_figure(run, out or os.path.join(run, "tsne.png"), data, per_class, resolution)
    click.echo(f"wrote {path}")


@viz_group.command("occlusion")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
@click.option("--images", type=click.IntRange(1, 32), default=4, show_default=True, help="Test images (rows).")
@click.option("--resolution", type=int, default=None,
              help="Input resolution for every run (default: each run's own, e.g. HR for a highres run).")
@click.option("--patch", type=click.FloatRange(0, 1, min_open=True), default=0.25, show_default=True,
              help="Gray patch side as a fraction of the model's input side.")
@click.option("--data", default=None, help="Dataset to draw from (default: the first run's own).")
def viz_occlusion(runs, out, images, resolution, patch, data):
    """Occlusion heat maps (paper 001): a gray (128) patch slides over the input image I and each
    pixel gets ||Psi(I) - Psi(I')||^2 (Psi = logits); RUNS side by side, e.g. an HR and an LR model."""
    from .viz import occlusion_figure

    click.echo(f"wrote {occlusion_figure(list(runs), out, data, images, resolution, patch)}")


@viz_group.command("resolution")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
@click.option("--resolutions", callback=_resolutions, default="8,12,16,24,32", show_default=True,
              help="Comma-separated input resolutions (px) to measure at.")
@click.option("--data", default=None, help="Dataset to test on (default: each run's own).")
@click.option("--limit-per-class", type=int, default=None, help="Use at most N test images per class.")
def viz_resolution(runs, out, resolutions, data, limit_per_class):
    """Top-1 accuracy vs input resolution, one curve per run (each run's eval.json is left as it is:
    `lowres eval RUN` writes that)."""
    from .viz import resolution_figure

    click.echo(f"wrote {resolution_figure(list(runs), out, resolutions, data, limit_per_class)}")


def _numbers(kind):
    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            return [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"expected comma-separated numbers like 8,12,16, got {value!r}")
    return parse


@click.command("eval-retrieval")
@click.argument("run", type=click.Path())
@click.option("--dataset", type=click.Choice(["reid", "orl", "classes"]), default="classes", show_default=True,
              help="reid: person-reid-48x128 (camera 01 queries vs camera 02 gallery, the last 31 of 62 ids); "
                   "orl: ORL faces (the last 15 of 30 ids, images 1-5 queries vs 6-10 gallery); classes: any "
                   "train/+test/ ImageFolder set such as CIFAR-10 (test split halves, same class = relevant).")
@click.option("--data", default=None, help="Dataset folder or .tar.gz (default: the run's own).")
@click.option("--resolutions", callback=_numbers(int), default=None,
              help="Query resolutions in px (shortest side, aspect kept) [default: 8,12,16,24,32 below the "
                   "native size]. The native (HR) query is always added.")
@click.option("--factors", callback=_numbers(float), default=None,
              help="Downscale factors instead (paper 004's protocol), e.g. 2,4,8: query side = native side / factor.")
@click.option("--k", "ks", callback=_numbers(int), default="1,5,10", show_default=True,
              help="Cut-offs for precision@k and recall@k.")
@click.option("--per-class", type=click.IntRange(min=1), default=100, show_default=True,
              help="classes: at most N queries and N gallery images per class.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Where retrieval.json/.png go (default: RUN).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def eval_retrieval_command(run, dataset, data, resolutions, factors, ks, per_class, out, as_json):
    """Cross-resolution retrieval of RUN: low-res queries against a full-resolution gallery, mAP,
    precision@k and recall@k per query resolution (papers 003/004). Embedding = the pooled features;
    for an fsrgan run, queries with (fsr) and without (raw) the generator. Writes retrieval.json + .png."""
    from .retrieval_eval import evaluate_retrieval

    report = evaluate_retrieval(run, dataset, data, resolutions, factors, tuple(ks), per_class, out)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    k = max(ks)
    click.echo(f"{run} ({report['method']}) on {report['dataset']}: {report['queries']} queries vs "
               f"{report['gallery']} gallery images")
    for r in report["rows"]:
        click.echo(f"  {r['variant']:>5} {r['query_resolution']:>3} px (/{r['downscale_factor']:g})  mAP "
                   f"{r['map']:.4f}  P@{k} {r[f'p_at_{k}']:.4f}  R@{k} {r[f'r_at_{k}']:.4f}")
    click.echo(f"wrote {out or run}/retrieval.json and retrieval.png")


@click.command("kd-targets")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The targets file to write (.safetensors).")
@click.option("--data", default=None, help="Dataset folder or .tar.gz whose train/ split the student trains on "
                                           "(default: the first run's).")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="px the training images are shrunk to before the teachers see them: the student's resolution "
                   "[default: the first run's input size].")
@click.option("--kernels", default="area", show_default=True,
              help="Comma-separated real resize kernels (OpenCV area/linear/cubic/nearest/lanczos, pil-bicubic, ...); "
                   "the logits are averaged over them.")
@click.option("--no-flip", is_flag=True, help="Do not average each crop with its mirror.")
@click.option("--test-top1", is_flag=True, help="Also measure the ensemble's top-1 on the test split shrunk the same "
                                               "way (the teacher's accuracy; +20 % time).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def kd_targets_command(runs, out, data, size, kernels, no_flip, test_top1, overwrite):
    """Precompute distillation targets: the mean logits of the trained RUNS (one teacher or an ensemble)
    on every training image, shrunk to --size px with each kernel and mirrored. A student then
    distils from them with `lowres train --method kd --kd-targets OUT` at no teacher cost per step
    (its training split must be the whole one these were made on; a mismatch is an error)."""
    from .kd_targets import make_targets

    about = make_targets(runs, out, data, size, [k.strip() for k in kernels.split(",") if k.strip()],
                         flip=not no_flip, overwrite=overwrite, test_top1=test_top1)
    test = f", on the test split {about['test_top1']:.2f} %" if test_top1 else ""
    click.echo(f"wrote {out}: {len(runs)} teacher(s) at {about['size']} px, {', '.join(about['kernels'])}"
               f"{'' if no_flip else ' + mirror'}; the ensemble's top-1 on the training split "
               f"{about['train_top1']:.2f} %{test} ({about['seconds']} s)")
