"""`lowres export` and `lowres check` (need torch; attached to the `lowres` group lazily)."""
from __future__ import annotations

import click


@click.command("export")
@click.argument("run", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Bundle folder to write: new, empty, or a bundle (replaced atomically).")
@click.option("--overwrite", is_flag=True, help="Also replace a bundle folder that holds files it does not list (deleting them).")
@click.option("--task", type=click.Choice(["classify", "embed"]), default="classify", show_default=True,
              help="classify: softmax probabilities; embed: L2-normalised pooled features.")
@click.option("--int8", is_flag=True, help="Also write an INT8 (QDQ) model calibrated on training crops; refused if "
                                           "top-1 drops more than 1 point unless --force.")
@click.option("--force", is_flag=True, help="Keep the INT8 model even if it loses more than 1 point.")
@click.option("--data", default=None, help="Dataset for metrics and calibration (default: the run's own).")
@click.option("--eval-per-class", type=click.IntRange(min=1), default=100, show_default=True, help="Held-out test images per class for the metrics.")
@click.option("--tensorrt", is_flag=True, help="Also build a TensorRT engine (needs an NVIDIA GPU and the tensorrt extra).")
def export_command(run, out, overwrite, task, int8, force, data, eval_per_class, tensorrt):
    """Compile training RUN into a bundle: ONNX graph with the pre-processing fused in (raw uint8 BGR
    crops of any size in), parity-checked against torch, with metrics and provenance."""
    from lowres_sdk.bundle import check_bundle_target

    check_bundle_target(out, overwrite)  # before importing torch and minutes of work
    from .exporter import export_run

    if tensorrt:
        from .tensorrt_engine import require_tensorrt

        require_tensorrt()
    export_run(run, out, task=task, int8=int8, force=force, data=data, eval_per_class=eval_per_class,
               overwrite=overwrite, log=click.echo)


@click.command("check")
@click.argument("bundle", type=click.Path())
@click.option("--against", "run", required=True, type=click.Path(), help="The training run the bundle was exported from.")
@click.option("--images", multiple=True, type=click.Path(exists=True, dir_okay=False), help="Real crops to compare on (repeatable).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-4, show_default=True)
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
