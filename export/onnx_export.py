"""torch -> ONNX for a `FusedModel`, with dynamic batch/height/width, and the parity check every
export must pass (onnxruntime vs torch on the same raw crops)."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

from lowres_sdk.bundle import INPUT_NAME
from lowres_sdk.errors import ExportError

from .tolerances import PARITY_TOLERANCE

OPSET = 18  # Resize with antialias needs opset >= 18

# Crop sizes the parity check always covers: square, tall (pedestrians), wide, tiny, large.
PARITY_SHAPES = [(32, 32), (8, 8), (16, 16), (128, 48), (48, 128), (7, 5), (96, 96)]


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, opset: int = OPSET,
                output_name: str = "output") -> None:
    """Export ``model`` (uint8 [N, H, W, 3] -> [N, K]) with dynamic N, H, W and check the graph.
    ``output_name``: the graph's output, as bundle.json names it (`lowres_sdk.bundle.OUTPUT_NAMES`)."""
    example = torch.randint(0, 256, (2, 37, 29, 3), dtype=torch.uint8)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("height"), 2: torch.export.Dim("width")}
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (example,), str(path), input_names=[INPUT_NAME], output_names=[output_name],
                              opset_version=opset, dynamo=True, dynamic_shapes={INPUT_NAME: dims}, optimize=True,
                              verbose=False, external_data=False)
    except Exception as e:  # the exporter raises many types; name the failing step instead
        raise ExportError(f"ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    finally:
        quiet.setLevel(level)
    onnx.checker.check_model(str(path), full_check=True)


def random_crops(seed: int = 0, per_shape: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (per_shape, h, w, 3), dtype=np.uint8) for h, w in PARITY_SHAPES]


def parity(model: torch.nn.Module, onnx_path: str | os.PathLike, batches: list[np.ndarray],
           tolerance: float = PARITY_TOLERANCE) -> dict:
    """Max |onnxruntime - torch| over ``batches`` (uint8 NHWC BGR arrays); ExportError above ``tolerance``.

    The error names the first batch (its shape) and output index that diverge most."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst, where = 0.0, None
    with torch.no_grad():
        for i, batch in enumerate(batches):
            expected = model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
            got = session.run(None, {INPUT_NAME: batch})[0]
            if got.shape != expected.shape:
                raise ExportError(f"parity: output shape {got.shape} != torch {expected.shape} for input {batch.shape}")
            diff = np.abs(got - expected)
            if diff.max() > worst:
                worst, where = float(diff.max()), (tuple(batch.shape), np.unravel_index(diff.argmax(), diff.shape))
    report = {"max_abs_diff": worst, "tolerance": tolerance, "batches": len(batches),
              "crops": int(sum(len(b) for b in batches)), "shapes": sorted({tuple(b.shape[1:3]) for b in batches})}
    if not worst <= tolerance:
        shape, index = where
        raise ExportError(f"parity check failed: onnxruntime differs from torch by {worst:.3g} (> {tolerance:g}) "
                          f"on input {shape}, output {tuple(int(i) for i in index)}")
    return report
