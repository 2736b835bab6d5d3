"""How an experiment measures a finished run (its file's [evaluate] `kind`): rows of top-1 on the test
split, through the exported bundle by real kernel and size, or through the torch net at its input size."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np


def top1(pred: np.ndarray, labels: np.ndarray) -> float:
    return round(100 * float((np.asarray(pred) == np.asarray(labels)).mean()), 2)


def bundle_kernels(name: str, run: Path, meta: dict, test, spec: dict, bundles: Path) -> list[dict]:
    """Top-1 of the run's FP32 bundle on ``test`` shrunk with each of ``spec["kernels"]`` to each of
    ``spec["sizes"]``: one row per (kernel, size)."""
    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import accuracy_by_kernel
    from results_io import bundle_of, train_seconds

    r = meta["recipe"]
    bundle = bundle_of(name, run, meta, test, bundles)
    rep = accuracy_by_kernel(Classifier(str(bundle)), list(test.images), test.labels, spec["kernels"], spec["sizes"],
                             progress=False)
    common = {"run": name, "method": r["method"], "resolution": r["resolution"], "input_mode": r["input_mode"],
              "degradation": r.get("degradation", "fixed"), "label_smoothing": r.get("label_smoothing", 0.0),
              "ema_decay": r.get("ema_decay", 0.0), "arch": r["arch"], "params": meta["params"],
              "mflops": meta["mflops"],
              "epochs": r["epochs"], "train_seconds": round(train_seconds(run))}
    return [{**common, "kernel": k, "test_resolution": int(res), "top1": rep["top1"][k][res]}
            for k in rep["kernels"] for res in rep["top1"][k]]


def torch_top1(name: str, run: Path, meta: dict, test, spec: dict, bundles: Path) -> list[dict]:
    """Top-1 of the torch net on ``test`` at its own input resolution (an HR teacher: also at 16 and 8 px,
    the gap a low-resolution method closes); with ``spec["hr_input"]`` also the same net fed the HR image
    (its pre-processing bypassed), the other column of paper 001."""
    from experiment import canonical_method

    from lowres_sdk.training.checkpoint import load_model
    from lowres_sdk.training.evaluate import predict

    model, net_spec, meta = load_model(run)
    r = meta["recipe"]
    common = {"arch": r["arch"], "params": meta["params"], "mflops": meta["mflops"], "epochs": r["epochs"],
              "seed": r["seed"], **({k: r[k] for k in spec.get("recipe_columns", [])}),
              "train_seconds": round(sum(h.get("seconds", 0) for h in meta["history"]), 1), "run": name,
              **meta.get("metrics", {})}
    if "data_fraction" in spec.get("columns", []):
        common["data_fraction"] = r.get("train_fraction", 1.0)
    if canonical_method(r["method"]) == "transfer":
        common["transfer_labels"] = r.get("transfer_labels", "nearest")
    teacher = canonical_method(r["method"]) == canonical_method("hr")
    rows = []
    for res in ([32, 16, 8] if teacher else [r["resolution"]]):
        row = {"method": r["method"], "resolution": res, "input_mode": r["input_mode"], **common,
               "top1": top1(predict(model, net_spec, test.images, resolution=res).argmax(1), test.labels)}
        if spec.get("hr_input") and not teacher and net_spec.resolution < net_spec.size:
            hr = predict(model, replace(net_spec, resolution=net_spec.size), test.images)
            row["top1_hr_input"] = top1(hr.argmax(1), test.labels)
        rows.append(row)
    return rows


def _sensor_view(crop: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """A condition's sensor noise and / or JPEG on a uint8 crop, through the functions `Camera` draws them with."""
    from lowres_sdk.training.degrade import jpeg_roundtrip, sensor_noise

    if "noise" in condition:
        crop = sensor_noise(crop, 8.0, 0.3, rng)
    if "jpeg40" in condition:
        crop = jpeg_roundtrip(crop, 40)
    return crop


def sensor(name: str, run: Path, meta: dict, test, spec: dict, bundles: Path) -> list[dict]:
    """Top-1 of the run's bundle on ``test`` shrunk with OpenCV area to each of ``spec["sizes"]``, then given
    each of ``spec["conditions"]`` (clean, noise, jpeg40, noise+jpeg40: fixed, not drawn; the same seeded
    noise for every run): one row per run."""
    from lowres_sdk import Classifier
    from lowres_sdk.export.kernel_eval import shrink
    from results_io import bundle_of

    clf = Classifier(str(bundle_of(name, run, meta, test, bundles)))
    scores = {}
    for res in spec["sizes"]:
        crops = [shrink(img, res, "area") for img in test.images]
        for cond in spec["conditions"]:
            rng = np.random.default_rng(res)
            scores[f"{cond}@{res}"] = top1(clf([_sensor_view(c, cond, rng) for c in crops]).indices, test.labels)
    r = meta["recipe"]
    return [{"run": name, "arch": r["arch"], "epochs": r["epochs"], "camera_realism": r.get("camera_realism", 1.0),
             "top1": scores}]


KINDS = {"bundle_kernels": bundle_kernels, "torch_top1": torch_top1, "sensor": sensor}
