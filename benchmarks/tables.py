"""The docs tables of the experiments, rendered from their results (benchmarks/results/FAMILY.json) alone:
`regenerate` rewrites a block of docs/benchmarks.md, and tests/test_benchmark_tables.py checks none drifted."""
from __future__ import annotations

import json
from pathlib import Path

from docs_table import kernel_table, write_block

RESULTS = Path(__file__).resolve().parent / "results"
# the recipe fields a cifar10_robust row carries besides the evaluation's, for its table
TEACHER = ("hr", "highres")  # the HR teacher's method, under its old and its current name
SHOWN_FIELDS = ("width", "camera_min", "camera_max", "camera_aspect", "camera_box_jitter", "camera_realism",
                "camera_kernels", "batch_size", "lr", "momentum", "weight_decay", "schedule", "norm_lr_scale", "cutout")


def _degradation(r: dict) -> str:
    """A robust row's training degradation, in words."""
    if r["degradation"] != "camera":
        return f"fixed ({r['resolution']} px)"
    deg = f"camera {r['camera_min']}-{r['camera_max']} px"
    if r.get("camera_aspect", 2.5) != 2.5:
        deg += f", aspect x/÷ {r['camera_aspect']:g}, box jitter {r['camera_box_jitter']:g}"
    if r.get("camera_realism", 1.0) != 1.0:
        deg += f", realism {r['camera_realism']:g}"
    drawn = [k for k in r.get("camera_kernels", "").split(",") if k]
    if drawn:  # a kernel named n times is drawn n times as often
        deg += ", kernels " + " ".join(k if drawn.count(k) == 1 else f"{k} x{drawn.count(k)}"
                                       for k in dict.fromkeys(drawn))
    return deg + (f", Cutout {r['cutout']} px" if r.get("cutout") else "")


def _optimizer(r: dict) -> str:
    if not all(k in r for k in SHOWN_FIELDS):  # a row without these fields
        return ""
    return (f"batch {r['batch_size']}, lr {r['lr']:g} {r['schedule']}, momentum {r['momentum']:g}, "
            f"wd {r['weight_decay']:g}" + (f", BN x{r['norm_lr_scale']:g}" if r["norm_lr_scale"] != 1.0 else ""))


def robust(rows: list[dict]) -> list[str]:
    """cifar10_robust: one line per run, top-1 at area and the worst kernel by test size."""
    lines = ["Full CIFAR-10 test split (10k), shrunk (square) with the real OpenCV / Pillow kernel, through each "
             "run's exported bundle (which resizes every crop to its net's input); seed 0. `net`: architecture, "
             "width, the input size it is fed natively, MFLOPs per crop; `area` = OpenCV INTER_AREA; `min` = the "
             "worst of the six kernels (area, linear, cubic, nearest, lanczos, pil-bicubic); `train s` adds the "
             "seconds of the run each started from (`init`), not those of a teacher it only distilled from; epoch "
             "times differ between sessions' VMs.", "",
             "| run | net | method | training degradation | optimizer | LS / EMA | epochs | train s | 8 px area | "
             "8 px min | 12 px area | 16 px area | 16 px min | 32 px area | 32 px min |", "|---" * 15 + "|"]
    for name in dict.fromkeys(r["run"] for r in rows):
        rr = [r for r in rows if r["run"] == name]

        def get(res, kernel=None):  # top-1 at that size with that kernel, or the worst kernel's
            at = [r for r in rr if r["test_resolution"] == res]
            return next(r["top1"] for r in at if r["kernel"] == kernel) if kernel else min(r["top1"] for r in at)
        r0 = rr[0]
        net = (f"{r0['arch']}" + (f" x{r0['width']:g}" if r0.get("width", 1.0) != 1.0 else "")
               + f", {r0['resolution']} px, {r0['mflops']:.0f} MFLOPs")
        lines.append(f"| {name} | {net} | {r0['method']} | {_degradation(r0)} | {_optimizer(r0)} | "
                     f"{r0['label_smoothing']:g} / {r0['ema_decay']:g} | {r0['epochs']} | {r0['train_seconds']} | "
                     f"{get(8, 'area'):.1f} | {get(8):.1f} | {get(12, 'area'):.1f} | {get(16, 'area'):.1f} | "
                     f"{get(16):.1f} | {get(32, 'area'):.1f} | {get(32):.1f} |")
    return lines


# cifar10_dfd's columns: header, and the row's value as a format string over its fields
DFD_COLUMNS = (("method", "{method}"), ("resolution", "{resolution}"), ("input", "{input_mode}"), ("arch", "{arch}"),
               ("params", "{params:,}"), ("MFLOPs", "{mflops}"), ("epochs", "{epochs}"), ("seed", "{seed}"),
               ("top-1 %", "{top1:.2f}"), ("train s", "{train_seconds:.0f}"))


def dfd(rows: list[dict]) -> list[str]:
    """cifar10_dfd: one line per (run, test resolution)."""
    head = "| " + " | ".join(h for h, _ in DFD_COLUMNS) + " |"
    return [head, "|---" * len(DFD_COLUMNS) + "|",
            *("| " + " | ".join(f.format(**r) for _, f in DFD_COLUMNS) + " |" for r in rows)]


def methods(rows: list[dict]) -> list[str]:
    """cifar10_methods: by data fraction and resolution, the HR teacher first."""
    table = ["| method | data | resolution | input | MFLOPs | epochs | peak LR | top-1 % | top-1 % on HR input | "
             "note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["data_fraction"], r["resolution"], r["method"] not in TEACHER)):
        note = ""
        if "svm_lr_features_top1" in r:
            note = (f"{r.get('transfer_labels', 'nearest')} pseudo-labels; SVM on raw LR features "
                    f"{r['svm_lr_features_top1']:.2f} %, on HR features (HR test) {r['svm_hr_features_top1']:.2f} %")
        hr_in = f"{r['top1_hr_input']:.2f}" if "top1_hr_input" in r else ""
        table.append(f"| {r['method']} | {100 * r['data_fraction']:.0f} % | {r['resolution']} | {r['input_mode']} | "
                     f"{r['mflops']} | {r['epochs']} | {r['lr']:g} | {r['top1']:.2f} | {hr_in} | {note} |")
    return table


def sensor(rows: list[dict]) -> list[str]:
    """cifar10_sensor: top-1 under each sensor / codec condition at each size."""
    conds = list(dict.fromkeys(k.split("@")[0] for k in rows[0]["top1"]))
    sizes = list(dict.fromkeys(int(k.split("@")[1]) for k in rows[0]["top1"]))
    head = "| run | realism | " + " | ".join(f"{c} {res} px" for res in sizes for c in conds) + " |"
    lines = ["CIFAR-10 test (10k), shrunk with OpenCV INTER_AREA to the size, then sensor noise (Gaussian sigma 8 "
             "+ shot noise) and / or JPEG quality 40 on the small crop; top-1 % through each run's bundle "
             "(`python -m benchmarks.run benchmarks/experiments/cifar10_sensor.toml`).", "", head,
             "|---" * (2 + len(sizes) * len(conds)) + "|"]
    for row in rows:
        lines.append(f"| {row['run']} | {row['camera_realism']:g} | "
                     + " | ".join(f"{row['top1'][f'{c}@{res}']:.1f}" for res in sizes for c in conds) + " |")
    return lines


def ensemble(report: dict) -> list[str]:
    """cifar10_ensemble: the best net, flip-averaged, and the best subset of each size, per test crop."""
    sizes = [str(k) for k in range(2, len(report["nets"]) + 1)]
    nets = ", ".join(f"`{n}`" for n in report["nets"])
    lines = [f"Full CIFAR-10 test split ({report['images']} images), each shrunk with the named OpenCV kernel, "
             "through each run's exported FP32 bundle; softmax outputs averaged. `best net`: the best single net, "
             "`+flip`: the best net's own output averaged with that of the mirrored crop (2x its FLOPs); `best k`: "
             "the best subset of k nets (k x the FLOPs), chosen on the test split itself, so an optimistic bound. "
             f"Nets: {nets}.", "",
             "| test crop | best net | +flip | " + " | ".join(f"best {k}" for k in sizes) + " | nets of best 3 |",
             "|---" * (4 + len(sizes)) + "|"]
    for c in report["conditions"]:
        single = c["single"]
        best_net = max(single, key=lambda n: single[n]["top1"])
        three = c["best_of_size"].get("3", {}).get("nets", [])
        lines.append(f"| {c['resolution']} px {c['kernel']} | {single[best_net]['top1']:.1f} ({best_net}) | "
                     f"{single[best_net]['flip_avg']:.1f} | "
                     + " | ".join(f"{c['best_of_size'][k]['top1']:.1f}" for k in sizes)
                     + " | " + ", ".join(three) + " |")
    return lines


def soup(report: dict) -> list[str]:
    """cifar10_soup: each subset's weight average, BatchNorm statistics averaged and re-estimated."""
    lines = [f"Full CIFAR-10 test split ({report['images']} images) shrunk to {report['resolution']} px with "
             "the named OpenCV kernel, through the torch net (= its bundle's figure). `stats averaged`: BatchNorm "
             "running statistics averaged like the weights; `stats re-estimated`: from 10k training images at 16 px "
             "with a random real kernel. Every net starts from `airbench32_hr`; `_more` and `_kd` continue "
             "`airbench16_kernels16`.", "",
             "| nets | area, stats averaged | nearest, stats averaged | area, stats re-estimated | "
             "nearest, stats re-estimated |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {' + '.join(r['nets'])} | " + " | ".join(f"{r[k]:.1f}" for k in
                     ("area_averaged", "nearest_averaged", "area_reestimated", "nearest_reestimated")) + " |")
    return lines


def routed_pair(report: dict) -> list[str]:
    """cifar10_routed_pair: the routed bundle's top-1 by kernel and size."""
    mflops = " / ".join(f"{m:g}" for m in report["mflops"])
    return [f"One routed bundle: crops under {report['at']} px to `{report['low']}`, the rest to `{report['high']}` "
            f"(`lowres export` with `--route {report['at']}:...`; each crop runs one net: {mflops} MFLOPs); "
            "full CIFAR-10 test split (10k), each image shrunk (square) with the real OpenCV / Pillow kernel, "
            f"through the bundle; top-1 %. Training: {report['train_seconds']:,} s = "
            f"{report['train_seconds'] / 3600:.2f} h of this VM for both nets, their shared start once "
            "(`python benchmarks/cifar10_routed_pair.py`).", "",
            *kernel_table(report["by_kernel"], digits=2)]


# docs block (= results file) -> its renderer
TABLES = {"cifar10_robust": robust, "cifar10_dfd": dfd, "cifar10_methods": methods, "cifar10_sensor": sensor,
          "cifar10_ensemble": ensemble, "cifar10_soup": soup, "cifar10_routed_pair": routed_pair}


def render(block: str) -> list[str]:
    """The block's lines from its committed results."""
    return TABLES[block](json.loads((RESULTS / f"{block}.json").read_text()))


def regenerate(block: str, rows, doc: Path | None = None) -> list[str]:
    """Rewrite the block of docs/benchmarks.md (or ``doc``) from its results ``rows``; returns its lines."""
    lines = TABLES[block](rows)
    write_block(block, lines, *([doc] if doc else []))
    return lines
