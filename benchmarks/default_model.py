"""Train, measure and export the default bundle shipped in the package (sdk/models/default):
11 classes = CIFAR-10's ten + `person` (pedestrian re-ID crops, split by identity), a ResNet-20
fed 16x16 natively, trained with DFD from an HR teacher.

Steps (each a resumable run under benchmarks/runs/default_model/):
  1. assemble the 11-class ImageFolder in the cache (symlinks; persons split by identity, every
     5th identity held out; training persons repeated 6x so the class is not 6x rarer than others),
  2. fit comparison for non-square crops: the same short training with `stretch` and `letterbox`,
  3. HR teacher (32 px) on the chosen fit, started from the CIFAR-10 teacher of cifar10_dfd.py,
  4. DFD student, native 16x16, started from the teacher,
  5. export (FP32 + INT8 if within 1 point) into sdk/models/default, per-class accuracy at 8/16/32 px.
Writes benchmarks/results/default_model.json and docs/default_model.md.

    python benchmarks/default_model.py
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from lowres_sdk.training.checkpoint import load_checkpoint
from lowres_sdk.training.data import default_cache_dir, extract_archive, read_image_folder
from lowres_sdk.training.evaluate import evaluate
from lowres_sdk.training.loop import Recipe, train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "default_model.json"
DOC = ROOT / "docs" / "default_model.md"
BUNDLE = ROOT / "sdk" / "models" / "default"
PERSON_REPEAT = 6


def assemble(cifar_archive: Path, person_archive: Path) -> Path:
    cifar = extract_archive(cifar_archive)
    person = extract_archive(person_archive)
    out = default_cache_dir() / "datasets" / f"surveillance11-{cifar.name[-12:]}-{person.name[-12:]}"
    if (out / ".complete").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for split in ("train", "test"):
        for cls in sorted(p.name for p in (cifar / split).iterdir()):
            (tmp / split / cls).mkdir(parents=True)
            for f in (cifar / split / cls).iterdir():
                os.symlink(f, tmp / split / cls / f.name)
    ids = sorted(p.name for p in person.iterdir() if p.is_dir())
    held_out = set(ids[::5])
    for split in ("train", "test"):
        (tmp / split / "person").mkdir(parents=True)
    for pid in ids:
        split = "test" if pid in held_out else "train"
        for f in sorted((person / pid).glob("*.jpg")):
            for r in range(1 if split == "test" else PERSON_REPEAT):
                os.symlink(f, tmp / split / "person" / f"{pid}_{f.stem}_{r}.jpg")
    (tmp / ".complete").write_text(json.dumps({"held_out_ids": sorted(held_out), "train_ids": len(ids) - len(held_out),
                                               "person_repeat": PERSON_REPEAT}))
    os.replace(tmp, out)
    return out


def run(name: str, recipe: Recipe, runs: Path, data) -> Path:
    path = runs / name
    try:
        done = load_checkpoint(path)[1]["epoch"] >= recipe.epochs
    except Exception:
        done = False
    if not done:
        t = time.time()
        print(f"== {name}", flush=True)
        train(recipe, path, resume=True, data=data, progress=sys.stderr.isatty())
        print(f"== {name} done in {time.time() - t:.0f}s", flush=True)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cifar", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--person", type=Path, default=ROOT.parent / "shared" / "data" / "person-reid-48x128.tar.gz")
    p.add_argument("--init", type=Path, default=HERE / "runs" / "cifar10_dfd" / "hr32", help="CIFAR-10 HR teacher run")
    p.add_argument("--runs", type=Path, default=HERE / "runs" / "default_model")
    p.add_argument("--fit-epochs", type=int, default=3)
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--student-epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = assemble(args.cifar, args.person)
    base = dict(data=str(root), arch="resnet20", seed=0, batch_size=128, lr=0.05, warmup_epochs=0.3, init=str(args.init))
    results = {"dataset": json.loads((root / ".complete").read_text()), "fit_epochs": args.fit_epochs, "fit_comparison": {}}

    # 2. stretch vs letterbox, same short recipe (native 16 px, LR baseline) -> per-class accuracy.
    for fit in ("stretch", "letterbox"):
        data = tuple(read_image_folder(root / s, 32, fit=fit) for s in ("train", "test"))
        recipe = Recipe(method="lr", resolution=16, input_mode="native", fit=fit, epochs=args.fit_epochs, **base)
        path = run(f"fit_{fit}", recipe, args.runs, data)
        rep = evaluate(path, [8, 16, 32])
        results["fit_comparison"][fit] = {r: {"top1": round(100 * v["top1"], 2),
                                              "person": round(100 * v["per_class"]["person"], 2),
                                              "mean_per_class": round(100 * sum(v["per_class"].values()) / 11, 2)}
                                          for r, v in rep["resolutions"].items()}
    cmp = results["fit_comparison"]
    fit = max(cmp, key=lambda f: cmp[f]["16"]["mean_per_class"])
    results["fit"] = fit
    print(f"fit comparison at 16 px: {json.dumps(cmp)} -> {fit}", flush=True)

    # 3-4. teacher and DFD student with the chosen fit.
    data = tuple(read_image_folder(root / s, 32, fit=fit) for s in ("train", "test"))
    teacher = run("teacher_hr32", Recipe(method="hr", fit=fit, epochs=args.teacher_epochs, **base), args.runs, data)
    student_base = {**base, "init": None}
    student = run("student_dfd16", Recipe(method="dfd", resolution=16, input_mode="native", fit=fit,
                                          epochs=args.student_epochs, teacher=str(teacher), **student_base), args.runs, data)
    for name, path in (("teacher", teacher), ("student", student)):
        rep = evaluate(path, [8, 12, 16, 24, 32])
        meta = load_checkpoint(path)[1]
        results[name] = {"run": path.name, "params": meta["params"], "mflops": meta["mflops"],
                         "epochs": meta["recipe"]["epochs"], "train_seconds": round(sum(h["seconds"] for h in meta["history"])),
                         "top1": {r: round(100 * v["top1"], 2) for r, v in rep["resolutions"].items()},
                         "per_class": {r: {c: round(100 * a, 1) for c, a in v["per_class"].items()}
                                       for r, v in rep["resolutions"].items()}}

    # 5. export into the package.
    from lowres_sdk.errors import ExportError
    from lowres_sdk.export.exporter import export_run

    try:
        bundle = export_run(student, BUNDLE, int8=True, eval_per_class=1000)
    except ExportError as e:
        print(f"INT8 refused ({e}); exporting FP32 only", flush=True)
        bundle = export_run(student, BUNDLE, int8=False, eval_per_class=1000)
    results["bundle"] = {"metrics": bundle.meta["metrics"], "parity": bundle.meta["parity"]["max_abs_diff"],
                         "files": {n: i["bytes"] for n, i in bundle.meta["files"].items()}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    write_doc(results)
    print(json.dumps(results["bundle"]), flush=True)


def write_doc(r: dict) -> None:
    classes = list(r["student"]["per_class"]["16"])
    lines = ["# The shipped default model", "",
             "Written by `python benchmarks/default_model.py` (numbers below are from its last run; JSON in "
             "`benchmarks/results/default_model.json`).", "",
             f"- 11 classes: CIFAR-10's ten + `person` ({r['dataset']['train_ids']} training identities, "
             f"{len(r['dataset']['held_out_ids'])} held-out identities for every `person` figure below).",
             f"- ResNet-20 fed **16x16 natively** ({r['student']['mflops']} MFLOPs, {r['student']['params']:,} params), "
             f"DFD from a 32 px ResNet-20 teacher, non-square crops handled by **{r['fit']}**.",
             f"- Bundle files: " + ", ".join(f"{n} {b / 1e6:.2f} MB" for n, b in r["bundle"]["files"].items()) +
             f"; parity (onnxruntime vs torch) {r['bundle']['parity']:.1e}.", "",
             "## Stretch or letterbox for non-square crops", "",
             f"Same short recipe (LR baseline, native 16 px, {r['fit_epochs']} epochs from the CIFAR-10 teacher) with both fits; "
             "the one with the higher mean per-class accuracy at 16 px is used.", "",
             "| fit | input px | top-1 % | person % | mean per-class % |", "|---|---|---|---|---|"]
    for fit, by_res in r["fit_comparison"].items():
        for res, v in by_res.items():
            lines.append(f"| {fit} | {res} | {v['top1']} | {v['person']} | {v['mean_per_class']} |")
    lines += ["", "## Per-class accuracy (%) of the shipped student by input resolution", "",
              "| class | " + " | ".join(f"{res} px" for res in r["student"]["per_class"]) + " |",
              "|---|" + "---|" * len(r["student"]["per_class"])]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(str(r["student"]["per_class"][res][c]) for res in r["student"]["per_class"]) + " |")
    lines.append("| **top-1** | " + " | ".join(f"**{v}**" for v in r["student"]["top1"].values()) + " |")
    lines += ["", f"Teacher (32 px input) top-1 by input resolution: " +
              ", ".join(f"{res} px {v} %" for res, v in r["teacher"]["top1"].items()) + ".", "",
              "Bundle metrics at export: " + ", ".join(f"{k} {v}" for k, v in r["bundle"]["metrics"].items()) + "."]
    DOC.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
