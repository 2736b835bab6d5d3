"""`lowres export`: a training run -> a verified bundle (FP32 ONNX, parity, metrics, optional INT8)."""
from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from lowres_sdk import __version__
from lowres_sdk.bundle import INPUT_NAME, ONNX_METADATA_KEY, OUTPUT_NAMES, Bundle, check_bundle_target, describe, write_bundle
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
    for key, value in {ONNX_METADATA_KEY: json.dumps(description, sort_keys=True), "lowres_sdk.version": __version__}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, task: str = "classify",
               int8: bool = False, force: bool = False, data: str | None = None, eval_per_class: int = 100,
               calib_per_class: int = 20, opset: int = OPSET, calibration: dict | None = None,
               overwrite: bool = False, log=print, test_set: ImageSet | None = None,
               calib_set: ImageSet | None = None, head: dict | None = None, fp16_weights: bool = False,
               int8_optional: bool = False) -> Bundle:
    """Export ``run_dir`` to the bundle ``out_dir``; ExportError if parity or the INT8 gate fails.

    ``out_dir`` may be new, empty or a bundle (replaced atomically); anything else is refused with
    OutputError before any work (``overwrite``: also a bundle folder holding other files).
    ``calibration`` (classify only): the block `lowres_sdk.bundle.Calibration` describes --
    temperature (already applied inside the model given), unknown_below, method, fitted_on,
    ece_before, ece_after -- written into bundle.json and the ONNX metadata, so hashes and the
    metadata check cover it. ``test_set`` / ``calib_set`` (images at the run's image size) replace
    the run's own data folder; ``head`` = {"temperature": T, "merge": {label: [fine classes]},
    "drop": [fine classes]} calibrates, merges and drops the classifier's output inside the graph
    (`graph.FusedModel`; the test metrics then leave out the images of dropped classes). ``fp16_weights``: model.onnx stores
    its weights as FP16 (half the file, FP32 arithmetic; `fp16_weights.py`), checked against torch within
    FP16_WEIGHTS_TOLERANCE and measured as shipped; INT8 is still quantized from the FP32 weights.
    ``int8_optional``: an INT8 model the gates refuse is left out (the reason in
    ``metrics["int8_refused"]``) instead of failing the export."""
    check_bundle_target(out_dir, overwrite)
    if calibration is not None and task != "classify":
        raise ExportError("calibration applies to classify bundles only")
    run_dir = Path(run_dir)
    backbone, spec, meta = load_model(run_dir)
    recipe = meta["recipe"]
    head = head or {}
    classes = list(meta["classes"])
    try:
        fused = fused_from_head(backbone, spec, task, classes, head)
    except ValueError as e:
        raise ExportError(f"head: {e} (the run's classes, in order: {classes})") from None
    if test_set is None or (int8 and calib_set is None):
        root = resolve_data_root(data or recipe["data"])
    if test_set is None:
        test = read_image_folder(root / "test", recipe["image_size"], eval_per_class, classes=classes, fit=spec.fit)
    else:
        test = test_set
    if head.get("merge"):  # metrics in the output labels, on the test images of the classes kept
        to_coarse = np.full(len(classes), -1, np.int64)
        for j, members in enumerate(head["merge"].values()):
            to_coarse[[classes.index(c) for c in members]] = j
        test = test.subset(np.flatnonzero(to_coarse[test.labels] >= 0))
        test = ImageSet(test.images, to_coarse[test.labels], list(head["merge"]), test.aspects)
        classes = list(head["merge"])
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        log(f"exporting {run_dir} ({recipe['arch']}, {task}, input {spec.resolution} px -> {spec.size} px) to ONNX opset {opset}")
        export_onnx(fused, fp32, opset, output_name=OUTPUT_NAMES[task])
        real = [camera_crops(test.images[i:i + 64], r) for i in range(0, min(len(test), 128), 64)
                for r in (None, spec.resolution)]
        report = parity(fused, fp32, random_crops() + real)
        log(f"parity: max |onnxruntime - torch| = {report['max_abs_diff']:.2e} over {report['crops']} crops "
            f"(tolerance {PARITY_TOLERANCE:g})")
        shipped = fp32
        if fp16_weights:
            shipped = Path(tmp) / "model.fp16w.onnx"
            n = store_weights_fp16(fp32, shipped)
            report["fp16_weights"] = parity(fused, shipped, random_crops() + real, FP16_WEIGHTS_TOLERANCE)
            log(f"FP16-stored weights ({n} tensors): max |onnxruntime - torch| = "
                f"{report['fp16_weights']['max_abs_diff']:.2e} (tolerance {FP16_WEIGHTS_TOLERANCE:g})")
        files = {"model.onnx": shipped}
        metrics, variants = {"test_images": len(test), "data": str(data or recipe["data"])}, {}
        at_resolution = camera_crops(test.images, spec.resolution)
        if task == "classify":
            for name, crops in (("top1_native", camera_crops(test.images, None)), (f"top1_at_{spec.resolution}px", at_resolution)):
                metrics[name] = round(onnx_top1(shipped, crops, test.labels), 2)
            log(f"top-1 on {len(test)} held-out images: " + ", ".join(f"{k} {v}" for k, v in metrics.items() if k.startswith("top1")))
        if int8:
            if task != "classify":
                raise ExportError("--int8 is gated on classification accuracy; export an embedder in FP32")
            train = calib_set if calib_set is not None else read_image_folder(
                root / "train", recipe["image_size"], calib_per_class, classes=meta["classes"], fit=spec.fit)
            calib = [camera_crops(train.images[i:i + 32], spec.resolution) for i in range(0, len(train), 32)]
            int8_path = Path(tmp) / "model.int8.onnx"
            log(f"INT8: calibrating on {len(train)} training crops (QDQ, per-channel S8 weights, U8 activations)")
            quantize_int8(fp32, int8_path, calib)
            key = f"top1_at_{spec.resolution}px"
            metrics[f"int8_{key}"] = round(onnx_top1(int8_path, at_resolution, test.labels), 2)
            drop = metrics[key] - metrics[f"int8_{key}"]
            metrics["int8_top1_drop"] = round(drop, 2)
            log(f"INT8 top-1 {metrics[f'int8_{key}']} vs FP32 {metrics[key]} (drop {drop:.2f} points)")
            try:
                if drop > MAX_INT8_DROP and not force:
                    raise Int8Refused(f"INT8 loses {drop:.2f} top-1 points (> {MAX_INT8_DROP})")
                metrics.update(gate_int8_speed(fp32, int8_path, at_resolution[:64], force=force, log=log))
            except Int8Refused as e:
                if not int8_optional:
                    raise
                metrics["int8_refused"] = e.reason
                log(f"INT8 left out: {metrics['int8_refused']}")
            else:
                files["model.int8.onnx"] = int8_path
                variants["int8"] = "model.int8.onnx"
        provenance = {"lowres_sdk_version": __version__, "torch_version": torch.__version__, "opset": opset,
                      "onnxruntime_version": ort.__version__, "source_run": run_name(run_dir),
                      "checkpoint_sha256": meta["weights_sha256"], "recipe": recipe,
                      "trained_epochs": meta["epoch"], "params": meta.get("params"), "mflops": meta.get("mflops"),
                      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "weights_storage": "fp16" if fp16_weights else "fp32"}
        if head:
            provenance["head"] = {"temperature": fused.temperature, "merge": head.get("merge"), "drop": list(head.get("drop") or ())}
        description = describe(task, classes, spec, embedding_dim=backbone.num_features,
                               provenance=provenance, metrics=metrics, parity=report, variants=variants,
                               calibration=calibration)
        if task == "embed":  # which vectors are comparable: those of the same weights, or of the space G maps into
            description["embedding_space"] = meta.get("embedding_space", provenance["checkpoint_sha256"])
        for path in files.values():
            _embed_metadata(path, description)
        bundle = write_bundle(out_dir, description, files, overwrite=overwrite)
    log(f"wrote {out_dir}: " + ", ".join(f"{n} ({i['bytes'] / 1e6:.2f} MB)" for n, i in bundle.meta["files"].items()))
    return bundle
