"""`lowres export` and `lowres check` (need torch; attached to the `lowres` group lazily)."""
from __future__ import annotations

import click


@click.command("export")
@click.argument("run", metavar="RUN_OR_BUNDLE", type=click.Path())
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Bundle directory to write from a training RUN (replaced atomically); not used with a BUNDLE.")
@click.option("--task", type=click.Choice(["classify", "embed"]), default="classify", show_default=True,
              help="classify: softmax probabilities; embed: L2-normalised pooled features.")
@click.option("--int8", is_flag=True, help="Also write an INT8 (QDQ) model calibrated on training crops; refused if "
                                           "top-1 drops more than 1 point, or if it runs below 1.1x FP32 at batch 64 "
                                           "on this machine (stored as int8_speedup_batch64), unless --force.")
@click.option("--force", is_flag=True, help="Keep the INT8 model even if it loses more than 1 point or is not faster.")
@click.option("--data", default=None, help="Dataset for metrics and calibration (default: the run's own).")
@click.option("--eval-per-class", type=int, default=100, show_default=True, help="Held-out test images per class for the metrics.")
@click.option("--deepstream", type=click.Path(file_okay=False), default=None,
              help="Also write a DeepStream nvinfer secondary-classifier folder (ONNX, labels, config).")
@click.option("--trt-onnx", type=click.Path(dir_okay=False), default=None,
              help="Also write the TensorRT-ready ONNX (no antialiased Resize; float pixels at the model's resolution).")
@click.option("--tensorrt", is_flag=True, help="Also build a TensorRT engine (needs an NVIDIA GPU and the tensorrt extra).")
@click.option("--precision", type=click.Choice(["fp16", "int8", "fp32"]), multiple=True,
              help="TensorRT engine precision(s) (repeatable; default fp16, plus int8 when the bundle has model.int8.onnx).")
@click.option("--engine-dir", type=click.Path(file_okay=False), default=None,
              help="TensorRT engine cache (default ~/.cache/lowres_sdk/engines).")
@click.option("--max-batch", type=int, default=64, show_default=True, help="TensorRT profile: batch 1 / max/4 / max.")
def export_command(run, out, task, int8, force, data, eval_per_class, deepstream, trt_onnx, tensorrt, precision,
                   engine_dir, max_batch):
    """Compile training RUN into a bundle: ONNX graph with the pre-processing fused in (raw uint8 BGR
    crops of any size in), parity-checked against torch, with metrics and provenance. Given a BUNDLE
    instead, write its DeepStream / TensorRT forms (--deepstream, --trt-onnx, --tensorrt)."""
    from pathlib import Path

    from lowres_sdk.bundle import META_FILE, load_bundle

    is_bundle = (Path(run) / META_FILE).is_file()
    if tensorrt:
        from .tensorrt_engine import require_tensorrt

        require_tensorrt()  # before a long export, not after
    if is_bundle:
        if out or int8 or data:
            raise click.UsageError(f"{run} is a bundle: --out, --int8 and --data apply to a training run")
        if not (deepstream or trt_onnx or tensorrt):
            raise click.UsageError(f"{run} is a bundle: say what to write (--deepstream DIR, --trt-onnx FILE, --tensorrt)")
        bundle = load_bundle(run)
    else:
        if not out:
            raise click.UsageError("--out is required when exporting a training run")
        from .exporter import export_run

        bundle = export_run(run, out, task=task, int8=int8, force=force, data=data, eval_per_class=eval_per_class,
                            log=click.echo)
    if deepstream:
        from .deepstream import export_deepstream

        export_deepstream(bundle, deepstream, log=click.echo)
    if trt_onnx:
        from .trt_graph import write_trt_onnx

        click.echo(f"wrote {write_trt_onnx(bundle, trt_onnx)} (TensorRT-ready: input 'pixels' float32 "
                   f"[N, 3, {bundle.spec.resolution}, {bundle.spec.resolution}])")
    if tensorrt:
        from .tensorrt_engine import build_engine

        if max_batch < 1:
            raise click.UsageError(f"--max-batch must be >= 1, got {max_batch}")
        for p in precision or ["fp16", *(["int8"] if "int8" in bundle.variants else [])]:
            build_engine(bundle, p, engine_dir=engine_dir, profile=(1, max(1, max_batch // 4), max_batch), log=click.echo)


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
