"""`lowres export` and `lowres check` (need torch; attached to the `lowres` group lazily)."""
from __future__ import annotations

import click


@click.command("export")
@click.argument("run", type=click.Path())
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Bundle directory to write (replaced atomically).")
@click.option("--task", type=click.Choice(["classify", "embed"]), default="classify", show_default=True,
              help="classify: softmax probabilities; embed: L2-normalised pooled features.")
@click.option("--int8", is_flag=True, help="Also write an INT8 (QDQ) model calibrated on training crops; refused if "
                                           "top-1 drops more than 1 point unless --force.")
@click.option("--force", is_flag=True, help="Keep the INT8 model even if it loses more than 1 point.")
@click.option("--data", default=None, help="Dataset for metrics and calibration (default: the run's own).")
@click.option("--eval-per-class", type=int, default=100, show_default=True, help="Held-out test images per class for the metrics.")
@click.option("--tensorrt", is_flag=True, help="Also build a TensorRT engine (needs an NVIDIA GPU and the tensorrt extra).")
@click.option("--triton", "triton_repo", default=None, type=click.Path(file_okay=False),
              help="Also write a Triton Inference Server model repository here (RUN may then be a bundle; no torch needed).")
@click.option("--triton-kind", type=click.Choice(["auto", "gpu", "cpu"]), default="auto", show_default=True,
              help="instance_group kind of the Triton onnxruntime model.")
def export_command(run, out, task, int8, force, data, eval_per_class, tensorrt, triton_repo, triton_kind):
    """Compile training RUN into a bundle: ONNX graph with the pre-processing fused in (raw uint8 BGR
    crops of any size in), parity-checked against torch, with metrics and provenance.
    `lowres export BUNDLE --triton REPO` writes only the Triton repository of an existing bundle."""
    from pathlib import Path

    if (Path(run) / "bundle.json").is_file():
        if not triton_repo or out:
            raise click.UsageError(f"{run} is a bundle already: pass --triton REPO (and no --out) to write its Triton repository")
        from .triton import write_triton_repo

        click.echo(f"wrote Triton repository {write_triton_repo(run, triton_repo, kind=triton_kind)} (see its README.md)")
        return
    if not out:
        raise click.UsageError("Missing option '--out' (the bundle directory to write)")
    from .exporter import export_run

    if tensorrt:
        from .tensorrt_engine import require_tensorrt

        require_tensorrt()
    bundle = export_run(run, out, task=task, int8=int8, force=force, data=data, eval_per_class=eval_per_class, log=click.echo)
    if triton_repo:
        from .triton import write_triton_repo

        click.echo(f"wrote Triton repository {write_triton_repo(bundle, triton_repo, kind=triton_kind)} (see its README.md)")


@click.command("check")
@click.argument("bundle", type=click.Path())
@click.option("--against", "run", required=True, type=click.Path(), help="The training run the bundle was exported from.")
@click.option("--images", multiple=True, type=click.Path(exists=True, dir_okay=False), help="Real crops to compare on (repeatable).")
@click.option("--tolerance", type=float, default=1e-4, show_default=True)
def check_command(bundle, run, images, tolerance):
    """Re-run the torch-vs-runtime parity of BUNDLE against RUN on random and given crops, and name
    the first diverging output."""
    from lowres_sdk.bundle import load_bundle
    from lowres_sdk.cli import _read_images
    from lowres_sdk.training.checkpoint import load_model

    from .graph import FusedModel
    from .onnx_export import parity, random_crops

    b = load_bundle(bundle)
    backbone, spec, _ = load_model(run)
    batches = random_crops(seed=1) + [img[None] for img in _read_images(images)]
    report = parity(FusedModel(backbone, spec, b.task), b.file("model.onnx"), batches, tolerance)
    click.echo(f"parity OK: max |onnxruntime - torch| = {report['max_abs_diff']:.2e} over {report['crops']} crops "
               f"(tolerance {tolerance:g})")
