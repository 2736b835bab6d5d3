"""`lowres export`: a training run -> a verified bundle (FP32 ONNX, parity, metrics, optional INT8)."""
from __future__ import annotations

import datetime
import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from lowres_sdk import __version__
from lowres_sdk.bundle import (INPUT_NAME, ONNX_METADATA_KEY, OUTPUT_NAMES, Bundle, check_bundle_target, describe,
                               write_bundle)
from lowres_sdk.errors import ExportError
from lowres_sdk.training.checkpoint import load_model
from lowres_sdk.training.data import ImageSet, read_image_folder, resolve_data_root, to_float
from lowres_sdk.training.degrade import Degrade

from .graph import fused_from_head
from .int8_speed import Int8Refused, gate_int8_speed
from .fp16_weights import store_weights_fp16
from .onnx_export import OPSET, export_onnx, parity, random_crops
from .tolerances import FP16_WEIGHTS_TOLERANCE, PARITY_TOLERANCE
from .quantize import quantize_int8

MAX_INT8_DROP = 1.0  # top-1 points


def camera_crops(images_rgb: np.ndarray, resolution: int | None) -> np.ndarray:
    """uint8 BGR crops as a camera at ``resolution`` px would deliver them (None: as they are)."""
    if resolution is not None and resolution != images_rgb.shape[1]:
        x = Degrade(resolution)(to_float(images_rgb))
        images_rgb = (x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return np.ascontiguousarray(images_rgb[..., ::-1])


def onnx_top1(path: str | os.PathLike, crops: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pred = np.concatenate([session.run(None, {INPUT_NAME: crops[i:i + batch]})[0].argmax(1)
                           for i in range(0, len(crops), batch)])
    return float(100 * (pred == labels).mean())


def _drop_stack_traces(graph) -> None:
    """Remove the exporter's per-node Python stack traces: they name this machine's source paths."""
    for node in graph.node:
        kept = [(p.key, p.value) for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)
        for attr in node.attribute:
            for sub in [attr.g] * (attr.type == onnx.AttributeProto.GRAPH) + list(attr.graphs):
                _drop_stack_traces(sub)


def run_name(run_dir: str | os.PathLike) -> str:
    """A run as provenance records it: relative to the working directory when under it, else its folder name."""
    path = Path(run_dir).resolve()
    return path.relative_to(Path.cwd()).as_posix() if path.is_relative_to(Path.cwd()) else path.name


def _embed_metadata(path: Path, description: dict) -> None:
    model = onnx.load(str(path))
    _drop_stack_traces(model.graph)
    del model.metadata_props[:]
    entries = {ONNX_METADATA_KEY: json.dumps(description, sort_keys=True), "lowres_sdk.version": __version__}
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


@dataclass(frozen=True)
class ExportOptions:
    """How `export_run` exports a run, validated once.

    ``overwrite``: also replace a bundle folder holding other files. ``calibration`` (classify only): the
    block `lowres_sdk.bundle.Calibration` describes -- temperature (already applied inside the model given),
    unknown_below, method, fitted_on, ece_before, ece_after -- written into bundle.json and the ONNX
    metadata, so hashes and the metadata check cover it. ``test_set`` / ``calib_set`` (images at the run's
    image size) replace the run's own data folder (``data``). ``head`` = {"temperature": T, "merge": {label:
    [fine classes]}, "drop": [fine classes]} calibrates, merges and drops the classifier's output inside
    the graph (`graph.FusedModel`; the test metrics then leave out the images of dropped classes).
    ``fp16_weights``: model.onnx stores its weights as FP16 (half the file, FP32 arithmetic;
    `fp16_weights.py`), checked against torch within FP16_WEIGHTS_TOLERANCE and measured as shipped; INT8
    is still quantized from the FP32 weights. ``int8_optional``: an INT8 model the gates refuse is left
    out (the reason in ``metrics["int8_refused"]``) instead of failing the export."""

    task: str = "classify"
    int8: bool = False
    force: bool = False
    int8_optional: bool = False
    fp16_weights: bool = False
    data: str | None = None
    eval_per_class: int = 100
    calib_per_class: int = 20
    opset: int = OPSET
    calibration: dict | None = None
    head: dict | None = None
    overwrite: bool = False
    test_set: ImageSet | None = None
    calib_set: ImageSet | None = None

    def __post_init__(self):
        if self.task not in OUTPUT_NAMES:
            raise ExportError(f"task must be one of {', '.join(OUTPUT_NAMES)}, got {self.task!r}")
        if self.calibration is not None and self.task != "classify":
            raise ExportError("calibration applies to classify bundles only")
        if self.int8 and self.task != "classify":
            raise ExportError("--int8 is gated on classification accuracy; export an embedder in FP32")
        if self.eval_per_class < 1 or self.calib_per_class < 1:
            raise ExportError(f"eval_per_class and calib_per_class must be >= 1, got {self.eval_per_class}, "
                              f"{self.calib_per_class}")


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, options: ExportOptions | None = None, *,
               log=print, **settings) -> Bundle:
    """Export ``run_dir`` to the bundle ``out_dir`` as ``options`` say (``settings``: fields of
    `ExportOptions` set on top of them); ExportError if parity or the INT8 gate fails.

    ``out_dir`` may be new, empty or a bundle (replaced atomically); anything else is refused with
    OutputError before any work."""
    o = replace(options or ExportOptions(), **settings)
    check_bundle_target(out_dir, o.overwrite)
    run_dir = Path(run_dir)
    backbone, spec, meta = load_model(run_dir)
    classes = list(meta["classes"])
    try:
        fused = fused_from_head(backbone, spec, o.task, classes, o.head or {})
    except ValueError as e:
        raise ExportError(f"head: {e} (the run's classes, in order: {classes})") from None
    test, classes = _test_images(o, meta, spec, classes)
    recipe = meta["recipe"]
    with tempfile.TemporaryDirectory() as tmp:
        log(f"exporting {run_dir} ({recipe['arch']}, {o.task}, input {spec.resolution} px -> {spec.size} px) to "
            f"ONNX opset {o.opset}")
        fp32, shipped, report = _onnx_models(fused, spec, o, test, Path(tmp), log)
        files, variants = {"model.onnx": shipped}, {}
        metrics = {"test_images": len(test), "data": str(o.data or recipe["data"])}
        if o.task == "classify":
            metrics.update(_top1(shipped, test, spec.resolution, log))
        if o.int8 and _int8(fp32, Path(tmp) / "model.int8.onnx", o, meta, spec, test, metrics, log):
            files["model.int8.onnx"] = Path(tmp) / "model.int8.onnx"
            variants["int8"] = "model.int8.onnx"
        provenance = _provenance(run_dir, meta, o, fused)
        description = describe(o.task, classes, spec, embedding_dim=backbone.num_features,
                               provenance=provenance, metrics=metrics, parity=report, variants=variants,
                               calibration=o.calibration)
        if o.task == "embed":  # which vectors are comparable: those of the same weights, or of the space G maps into
            description["embedding_space"] = meta.get("embedding_space", provenance["checkpoint_sha256"])
        for path in files.values():
            _embed_metadata(path, description)
        bundle = write_bundle(out_dir, description, files, overwrite=o.overwrite)
    log(f"wrote {out_dir}: " + ", ".join(f"{n} ({i['bytes'] / 1e6:.2f} MB)" for n, i in bundle.meta["files"].items()))
    return bundle


def _data_root(o: ExportOptions, meta: dict) -> Path:
    return resolve_data_root(o.data or meta["recipe"]["data"])


def _test_images(o: ExportOptions, meta: dict, spec, classes: list[str]) -> tuple[ImageSet, list[str]]:
    """The held-out images the metrics are measured on, and the labels the bundle outputs: with a head
    that merges, the merged labels, and only the images of the classes kept."""
    test = o.test_set
    if test is None:
        test = read_image_folder(_data_root(o, meta) / "test", meta["recipe"]["image_size"], o.eval_per_class,
                                 classes=classes, fit=spec.fit)
    merge = (o.head or {}).get("merge")
    if not merge:
        return test, classes
    to_coarse = np.full(len(classes), -1, np.int64)
    for j, members in enumerate(merge.values()):
        to_coarse[[classes.index(c) for c in members]] = j
    test = test.subset(np.flatnonzero(to_coarse[test.labels] >= 0))
    return ImageSet(test.images, to_coarse[test.labels], list(merge), test.aspects), list(merge)


def _onnx_models(fused, spec, o: ExportOptions, test: ImageSet, tmp: Path, log) -> tuple[Path, Path, dict]:
    """The FP32 ONNX model and the one shipped (FP16-stored weights when asked), each parity-checked
    against torch on random crops and on real ones; returns (fp32, shipped, parity report)."""
    fp32 = tmp / "model.onnx"
    export_onnx(fused, fp32, o.opset, output_name=OUTPUT_NAMES[o.task])
    real = [camera_crops(test.images[i:i + 64], r) for i in range(0, min(len(test), 128), 64)
            for r in (None, spec.resolution)]
    report = parity(fused, fp32, random_crops() + real)
    log(f"parity: max |onnxruntime - torch| = {report['max_abs_diff']:.2e} over {report['crops']} crops "
        f"(tolerance {PARITY_TOLERANCE:g})")
    if not o.fp16_weights:
        return fp32, fp32, report
    shipped = tmp / "model.fp16w.onnx"
    n = store_weights_fp16(fp32, shipped)
    report["fp16_weights"] = parity(fused, shipped, random_crops() + real, FP16_WEIGHTS_TOLERANCE)
    log(f"FP16-stored weights ({n} tensors): max |onnxruntime - torch| = "
        f"{report['fp16_weights']['max_abs_diff']:.2e} (tolerance {FP16_WEIGHTS_TOLERANCE:g})")
    return fp32, shipped, report


def _top1(model: Path, test: ImageSet, resolution: int, log) -> dict:
    """Top-1 of ``model`` on the test images as they are and shrunk to ``resolution`` px."""
    metrics = {name: round(onnx_top1(model, camera_crops(test.images, r), test.labels), 2)
               for name, r in (("top1_native", None), (f"top1_at_{resolution}px", resolution))}
    log(f"top-1 on {len(test)} held-out images: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics


def _int8(fp32: Path, int8_path: Path, o: ExportOptions, meta: dict, spec, test: ImageSet, metrics: dict,
          log) -> bool:
    """Quantize ``fp32`` into ``int8_path`` and gate it on accuracy and speed; its figures go into
    ``metrics``. True when it ships; Int8Refused unless ``o.int8_optional`` (then False)."""
    train = o.calib_set if o.calib_set is not None else read_image_folder(
        _data_root(o, meta) / "train", meta["recipe"]["image_size"], o.calib_per_class, classes=meta["classes"],
        fit=spec.fit)
    calib = [camera_crops(train.images[i:i + 32], spec.resolution) for i in range(0, len(train), 32)]
    log(f"INT8: calibrating on {len(train)} training crops (QDQ, per-channel S8 weights, U8 activations)")
    quantize_int8(fp32, int8_path, calib)
    key = f"top1_at_{spec.resolution}px"
    at_resolution = camera_crops(test.images, spec.resolution)
    metrics[f"int8_{key}"] = round(onnx_top1(int8_path, at_resolution, test.labels), 2)
    drop = metrics[key] - metrics[f"int8_{key}"]
    metrics["int8_top1_drop"] = round(drop, 2)
    log(f"INT8 top-1 {metrics[f'int8_{key}']} vs FP32 {metrics[key]} (drop {drop:.2f} points)")
    try:
        if drop > MAX_INT8_DROP and not o.force:
            raise Int8Refused(f"INT8 loses {drop:.2f} top-1 points (> {MAX_INT8_DROP})")
        metrics.update(gate_int8_speed(fp32, int8_path, at_resolution[:64], force=o.force, log=log))
    except Int8Refused as e:
        if not o.int8_optional:
            raise
        metrics["int8_refused"] = e.reason
        log(f"INT8 left out: {metrics['int8_refused']}")
        return False
    return True


def _provenance(run_dir: Path, meta: dict, o: ExportOptions, fused) -> dict:
    provenance = {"lowres_sdk_version": __version__, "torch_version": torch.__version__, "opset": o.opset,
                  "onnxruntime_version": ort.__version__, "source_run": run_name(run_dir),
                  "checkpoint_sha256": meta["weights_sha256"], "recipe": meta["recipe"],
                  "trained_epochs": meta["epoch"], "params": meta.get("params"), "mflops": meta.get("mflops"),
                  "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "weights_storage": "fp16" if o.fp16_weights else "fp32"}
    if o.head:
        head = o.head
        provenance["head"] = {"temperature": fused.temperature, "merge": head.get("merge"),
                              "drop": list(head.get("drop") or ())}
    return provenance
