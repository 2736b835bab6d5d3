"""`lowres export` and `lowres check` (need torch; attached to the `lowres` group lazily)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from .tolerances import FP16_WEIGHTS_TOLERANCE, PARITY_TOLERANCE


def _parse_routes(routes) -> list[tuple[int, str]]:
    """``MIN_SIDE:RUN`` options as [(min_side, run)], ascending; UsageError when malformed."""
    parsed = []
    for r in routes:
        side, sep, path = r.partition(":")
        if not sep or not side.strip().isdigit() or int(side) < 1 or not path:
            raise click.UsageError(f"--route takes MIN_SIDE:RUN with MIN_SIDE a whole number of px >= 1, got {r!r}")
        parsed.append((int(side), path))
    sides = sorted(s for s, _ in parsed)
    if len(set(sides)) != len(sides):
        raise click.UsageError(f"--route: each MIN_SIDE once, got {sides}")
    return sorted(parsed)


@click.command("export")
@click.argument("run", metavar="RUN_OR_BUNDLE", type=click.Path())
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Bundle folder to write from a training RUN: new, empty, or a bundle (replaced atomically); "
                   "not used with a BUNDLE.")
@click.option("--overwrite", is_flag=True, help="Also replace a bundle folder that holds files it does not list "
                                                "(deleting them).")
@click.option("--task", type=click.Choice(["classify", "embed"]), default="classify", show_default=True,
              help="classify: softmax probabilities; embed: L2-normalised pooled features.")
@click.option("--int8", is_flag=True, help="Also write an INT8 (QDQ) model calibrated on training crops; refused if "
                                           "top-1 drops more than 1 point, or if it runs below 1.1x FP32 at batch 64 "
                                           "on this machine (stored as int8_speedup_batch64), unless --force.")
@click.option("--force", is_flag=True, help="Keep the INT8 model even if it loses more than 1 point or is not faster.")
@click.option("--fp16-weights", is_flag=True, help="Store model.onnx's weights as FP16: half the file, FP32 arithmetic "
                                                   f"and speed (parity against torch within {FP16_WEIGHTS_TOLERANCE:g} "
                                                   f"instead of {PARITY_TOLERANCE:g}).")
@click.option("--data", default=None, help="Dataset for metrics and calibration (default: the run's own).")
@click.option("--eval-per-class", type=click.IntRange(min=1), default=100, show_default=True,
              help="Held-out test images per class for the metrics.")
@click.option("--deepstream", type=click.Path(file_okay=False), default=None,
              help="Also write a DeepStream nvinfer secondary-classifier folder (ONNX, labels, config).")
@click.option("--trt-onnx", type=click.Path(dir_okay=False), default=None,
              help="Also write the TensorRT-ready ONNX (no antialiased Resize; float pixels at the "
                   "model's resolution).")
@click.option("--tensorrt", is_flag=True,
              help="Also build a TensorRT engine (needs an NVIDIA GPU and the tensorrt extra).")
@click.option("--precision", type=click.Choice(["fp16", "int8", "fp32"]), multiple=True,
              help="TensorRT engine precision(s) (repeatable; default fp16, plus int8 when the bundle has "
                   "model.int8.onnx).")
@click.option("--engine-dir", type=click.Path(file_okay=False), default=None,
              help="TensorRT engine cache (default ~/.cache/lowres_sdk/engines).")
@click.option("--max-batch", type=int, default=64, show_default=True, help="TensorRT profile: batch 1 / max/4 / max.")
@click.option("--triton", "triton_repo", default=None, type=click.Path(file_okay=False),
              help="Also write a Triton Inference Server model repository here.")
@click.option("--route", "routes", multiple=True, metavar="MIN_SIDE:RUN",
              help="Route crops whose longer side is >= MIN_SIDE px to training run RUN (repeatable): one routed "
                   "bundle whose graph sends each crop to the model trained for its size; RUN_OR_BUNDLE takes the "
                   "smallest crops. Classifiers of the same labels only; each route gets its own parity check and "
                   "INT8 gates.")
@click.option("--max-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --route and --int8: leave the INT8 model out when the bundle with it would weigh more than "
                   "this many MB (an edge box's budget); each route's INT8 figures stay in its metrics.")
@click.option("--split-route", type=click.IntRange(min=0), default=None, metavar="K",
              help="With a routed BUNDLE and --out: write its route K (0 = the smallest crops') as a bundle of one "
                   "model, for TensorRT / DeepStream, which take one input size.")
@click.option("--triton-kind", type=click.Choice(["auto", "gpu", "cpu"]), default="auto", show_default=True,
              help="instance_group kind of the Triton onnxruntime model.")
def export_command(run, out, routes, max_mb, split_route, **options):
    """Compile training RUN into a bundle: ONNX graph with the pre-processing fused in (raw uint8 BGR
    crops of any size in), parity-checked against torch, with metrics and provenance. Given a BUNDLE
    instead, write its deployment forms (--deepstream, --trt-onnx, --tensorrt, --triton)."""
    from lowres_sdk.bundle import META_FILE

    export = {name: options.pop(name) for name in EXPORT_SETTINGS}  # ExportOptions' fields; the rest: Deploy's
    deploy = Deploy(**options)
    if deploy.tensorrt:
        from lowres_sdk.tensorrt.engine import require_tensorrt

        require_tensorrt()  # before a long export, not after
    if (Path(run) / META_FILE).is_file():
        bundle = _bundle_to_deploy(run, out, export, deploy, routes, split_route)
    else:
        bundle = _export_training_run(run, out, export, routes, max_mb, split_route)
    deploy.write(bundle)


EXPORT_SETTINGS = ("overwrite", "task", "int8", "force", "fp16_weights", "data", "eval_per_class")


def _bundle_to_deploy(run, out, export: dict, deploy: "Deploy", routes, split_route):
    """The bundle ``run`` (or, with ``split_route``, its route written to ``out``) that ``deploy`` writes from."""
    from lowres_sdk.bundle import load_bundle

    if export["int8"] or export["data"] or export["fp16_weights"] or routes or (out and split_route is None):
        raise click.UsageError(f"{run} is a bundle: --out (except with --split-route), --int8, --fp16-weights, --data "
                               f"and --route apply to a training run")
    if not (deploy.wanted or split_route is not None):
        raise click.UsageError(f"{run} is a bundle: say what to write (--deepstream DIR, --trt-onnx FILE, "
                               f"--tensorrt, --triton REPO, --split-route K --out DIR)")
    bundle = load_bundle(run)
    if split_route is None:
        return bundle
    if not out:
        raise click.UsageError("--split-route needs --out (the bundle of one model to write)")
    from .routed import split_route as split

    return split(bundle, split_route, out, overwrite=export["overwrite"], log=click.echo)  # the rest applies to it


def _export_training_run(run, out, export: dict, routes, max_mb, split_route):
    from lowres_sdk.bundle import check_bundle_target

    if not out:
        raise click.UsageError("--out is required when exporting a training run")
    if split_route is not None:
        raise click.UsageError("--split-route takes a routed BUNDLE, not a training run")
    if max_mb is not None and not (routes and export["int8"]):
        raise click.UsageError("--max-mb caps a routed INT8 export: it needs --route and --int8")
    check_bundle_target(out, export["overwrite"])  # before importing torch and minutes of work
    from .exporter import ExportOptions, export_run

    options = ExportOptions(**export)
    if routes:
        from .routed import export_routed

        return export_routed([(0, run), *_parse_routes(routes)], out, options, max_mb=max_mb, log=click.echo)
    return export_run(run, out, options, log=click.echo)


@dataclass(frozen=True)
class Deploy:
    """The deployment forms `lowres export` writes from a bundle (each optional)."""

    deepstream: str | None = None
    trt_onnx: str | None = None
    tensorrt: bool = False
    precision: tuple[str, ...] = ()
    engine_dir: str | None = None
    max_batch: int = 64
    triton_repo: str | None = None
    triton_kind: str = "auto"

    @property
    def wanted(self) -> bool:
        return bool(self.deepstream or self.trt_onnx or self.tensorrt or self.triton_repo)

    def write(self, bundle) -> None:
        if self.deepstream:
            from .deepstream import export_deepstream

            export_deepstream(bundle, self.deepstream, log=click.echo)
        if self.trt_onnx:
            from lowres_sdk.tensorrt.graph import write_trt_onnx

            click.echo(f"wrote {write_trt_onnx(bundle, self.trt_onnx)} (TensorRT-ready: input 'pixels' float32 "
                       f"[N, 3, {bundle.spec.resolution}, {bundle.spec.resolution}])")
        if self.tensorrt:
            from lowres_sdk.tensorrt.engine import build_engine

            if self.max_batch < 1:
                raise click.UsageError(f"--max-batch must be >= 1, got {self.max_batch}")
            profile = (1, max(1, self.max_batch // 4), self.max_batch)
            for p in self.precision or ["fp16", *(["int8"] if "int8" in bundle.variants else [])]:
                build_engine(bundle, p, engine_dir=self.engine_dir, profile=profile, log=click.echo)
        if self.triton_repo:
            from .triton import write_triton_repo

            repo = write_triton_repo(bundle, self.triton_repo, kind=self.triton_kind)
            click.echo(f"wrote Triton repository {repo} (see its README.md)")


@click.command("check")
@click.argument("bundle", type=click.Path())
@click.option("--against", "run", required=True, type=click.Path(),
              help="The training run the bundle was exported from.")
@click.option("--images", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Real crops to compare on (repeatable).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=None,
              help=f"Largest allowed difference (default: {PARITY_TOLERANCE:g}, or {FP16_WEIGHTS_TOLERANCE:g} for a "
                   "bundle whose weights are stored as FP16).")
def check_command(bundle, run, images, tolerance):
    """Re-run the torch-vs-runtime parity of BUNDLE against RUN on random and given crops, and name
    the first diverging output."""
    import tempfile

    import onnx

    from lowres_sdk.bundle import load_bundle
    from lowres_sdk.cli import read_images
    from lowres_sdk.training.checkpoint import load_model

    from .graph import fused_from_head
    from .onnx_export import parity, random_crops

    b = load_bundle(bundle)
    provenance = b.meta.get("provenance") or {}
    backbone, spec, run_meta = load_model(run)
    batches = random_crops(seed=1) + [img[None] for img in read_images(images)]
    with tempfile.TemporaryDirectory() as tmp:
        graph, what = b.file("model.onnx"), ""
        # A routed bundle: the route RUN was exported to, cut out of the graph (the export checked them equal).
        if b.routes:
            from .routed import route_model

            sha = run_meta["weights_sha256"]
            k = next((i for i, r in enumerate(b.routes) if r.provenance.get("checkpoint_sha256") == sha), None)
            if k is None:
                raise click.UsageError(f"{run} is none of the routes of {bundle} (their runs: "
                                       f"{', '.join(str(r.provenance.get('source_run')) for r in b.routes)})")
            provenance, graph, what = b.routes[k].provenance, Path(tmp) / "route.onnx", f" (route {k})"
            onnx.save(route_model(onnx.load(str(b.file("model.onnx"))), k), str(graph))
        if tolerance is None:
            tolerance = FP16_WEIGHTS_TOLERANCE if provenance.get("weights_storage") == "fp16" else PARITY_TOLERANCE
        # the bundle's labels may merge / drop the run's fine classes (see export_run's head)
        fused = fused_from_head(backbone, spec, b.task, run_meta["classes"], provenance.get("head"))
        report = parity(fused, graph, batches, tolerance)
    click.echo(f"parity OK{what}: max |onnxruntime - torch| = {report['max_abs_diff']:.2e} over {report['crops']} "
               f"crops (tolerance {tolerance:g})")


def _ints(ctx, param, value):
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 8,16,32, got {value!r}")
    if not out or min(out) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return out


@click.command("eval")
@click.argument("target", type=click.Path())
@click.option("--resolutions", callback=_ints, default="8,12,16,24,32", show_default=True,
              help="Input resolutions (px, long side) to test at.")
@click.option("--kernels", default=None,
              help="Comma-separated resize kernels (area, linear, cubic, nearest, lanczos: OpenCV; pil-bicubic, "
                   "pil-bilinear: Pillow; aa-bilinear: ours). With it (always for a bundle), test images are "
                   "shrunk with the real functions and run through the exported bundle. Without it, a run is "
                   "evaluated in torch with its own training kernel (the papers' setting). "
                   "[default for a bundle: area,linear,cubic,nearest,lanczos,pil-bicubic]")
@click.option("--data", default=None, help="Dataset to test on (its test/ split; default: the run's own).")
@click.option("--limit-per-class", type=click.IntRange(min=1), default=None,
              help="Use at most N test images per class.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where kernels.json/.png go (default: the run folder, or ./eval-NAME for a bundle).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def eval_command(target, resolutions, kernels, data, limit_per_class, out, as_json):
    """Accuracy of TARGET (a training run or a bundle) by input resolution, and by resize kernel:
    JSON + PNG (a heat map for kernels)."""
    import json

    target_path = Path(target)
    is_bundle = (target_path / "bundle.json").is_file()
    if kernels is None and not is_bundle:
        from lowres_sdk.training.evaluate import evaluate

        report = evaluate(target, resolutions, data, limit_per_class)
        if as_json:
            click.echo(json.dumps(report, indent=2))
            return
        click.echo(f"{target} ({report['method']}, {report['arch']}, trained @{report['trained_resolution']} px, "
                   f"{report['test_images']} test images, its own training kernel)")
        for r, rep in report["resolutions"].items():
            click.echo(f"  {r:>3} px  top-1 {100 * rep['top1']:6.2f} %")
        click.echo(f"wrote {target}/eval.json and {target}/eval_resolution.png")
        return

    report, js, png = _kernel_report(target_path, is_bundle, kernels, data, limit_per_class, resolutions, out)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{target}: top-1 % on {report['images']} test images by kernel (rows) and resolution (columns)")
    click.echo("  " + "kernel".ljust(12) + "".join(f"{r:>8}" for r in report["resolutions"]))
    for k in report["kernels"]:
        click.echo("  " + k.ljust(12) + "".join(f"{report['top1'][k][str(r)]:8.1f}" for r in report["resolutions"]))
    low = report["min_over_kernels"]
    click.echo("  " + "min".ljust(12) + "".join(f"{low[str(r)]:8.1f}" for r in report["resolutions"]))
    click.echo(f"wrote {js} and {png}")


def _kernel_report(target: Path, is_bundle: bool, kernels: str | None, data, limit_per_class, resolutions,
                   out) -> tuple[dict, Path, Path]:
    """`lowres eval --kernels`: TARGET's bundle (a run is exported to a temporary one first) on the test
    images shrunk by each real resize kernel; the report and the JSON and PNG written."""
    import json
    import tempfile

    from lowres_sdk import Classifier
    from lowres_sdk.errors import InputError
    from lowres_sdk.training.data import resolve_data_root

    from .kernel_eval import DEFAULT_KERNELS, accuracy_by_kernel, write_report

    names = tuple(k.strip() for k in kernels.split(",") if k.strip()) if kernels else DEFAULT_KERNELS
    with tempfile.TemporaryDirectory() as tmp:
        if is_bundle:
            bundle_dir = target  # without --data: the dataset its provenance records (below)
        else:
            from .exporter import export_run

            # To stderr: with --json, stdout is the JSON alone.
            click.echo(f"exporting {target} to a temporary bundle (FP32) to evaluate what users run", err=True)
            bundle_dir = Path(tmp) / "bundle"
            export_run(target, bundle_dir, data=data, eval_per_class=limit_per_class or 100, log=lambda *a: None)
        classifier = Classifier(str(bundle_dir))
        recipe = (json.loads((bundle_dir / "bundle.json").read_text()).get("provenance") or {}).get("recipe") or {}
        if not (data or recipe.get("data")):
            raise InputError(f"{target} records no dataset; pass --data (a dataset folder or archive with "
                             f"test/<class>/)")
        root = resolve_data_root(data or recipe["data"])
        folder = root / "test" if (root / "test").is_dir() else root
        images, labels = _labelled_images(folder, classifier.labels, limit_per_class)
        if not images:
            raise InputError(f"no test images under {folder}")
        report = accuracy_by_kernel(classifier, images, labels, names, resolutions)
        report["target"] = str(target)
        dest = Path(out) if out else (target if not is_bundle else Path(f"eval-{target.name}"))
        js, png = write_report(report, dest)
    return report, js, png


def _labelled_images(folder: Path, labels: list[str], limit_per_class: int | None) -> tuple[list, list[int]]:
    """The images of ``folder``/<class>/ as they are (any size) and their indices in ``labels``;
    InputError for a class the model does not output."""
    from lowres_sdk.crops import IMAGE_SUFFIXES
    from lowres_sdk.errors import InputError
    from lowres_sdk.training.data import read_image

    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    missing = sorted(set(names) - set(labels))
    if missing:
        raise InputError(f"{folder} has classes the model does not output: {missing}")
    images, out = [], []
    for name in names:
        files = sorted(f for f in (folder / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:limit_per_class]
        images += [read_image(f) for f in files]  # as they are: any size, each shrunk by the kernel
        out += [labels.index(name)] * len(files)
    return images, out
