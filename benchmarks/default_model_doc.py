"""docs/default_model.md, rendered from the default model's measured results alone
(benchmarks/results/default_model.json and default_model_variants.json); a test checks it matches."""
from __future__ import annotations

import json
from pathlib import Path

from docs_table import kernel_table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "default_model.json"
VARIANTS = HERE / "results" / "default_model_variants.json"
DOC = HERE.parent / "docs" / "default_model.md"
SPEED_FLOOR = 5000  # FP32 crops/s on 32x32 crops the default must reach (in the reference machine's terms)


def _pct(x) -> str:
    return f"{100 * x:.1f} %" if x is not None else "-"


def _labels(r: dict) -> str:
    merged, kept = r["merged_head"]["top1"], r["cifar_kept_by_kernel"]["top1"]["area"]
    labels = list(r["calibration"]["unknown_below_by_label"])  # the bundle's labels, in its order
    return (f"- Labels: **{', '.join(labels)}** -- what a street or building camera sees; `other` = no object of "
            "interest (street background). The 12-class network also learns CIFAR's "
            f"{', '.join(r['bundle']['head_drop'])}, "
            "which such a camera does not see; their logits are removed inside the graph before the softmax. "
            f"Merging them into `other` instead scores {merged['16']:.1f} % on the kept CIFAR classes at 16 px (area), "
            f"the shipped head {kept['16']:.1f} % (8 px: {merged['8']:.1f} -> {kept['8']:.1f}; `merged_head`).")


def _network(r: dict) -> str:
    text = (f"- Network: {r['recipe']['arch']} x{r['recipe']['width']:g} fed **16x16 natively** ({r['mflops']} MFLOPs, "
            f"{r['params']:,} params), trained on 12 fine classes (CIFAR-10 + person + background): {r['schedule']} "
            f"({r['train_seconds'] / 60:.0f} min of training on a shared 2-core CPU), label smoothing 0.1, EMA 0.999.")
    route, up = r.get("route") or {}, r.get("upper")
    if route.get("route_at") and up:
        table = route.get("top1_16px_net_vs_32px_net") or route.get("top1_small_vs_large") or {}
        text += (f" **Routed**: crops whose longer side is >= {route['route_at']} px go to a second net in the same "
                 f"graph, {up['recipe']['arch']} x{up['recipe']['width']:g} fed **32x32 natively** ({up['mflops']} "
                 f"MFLOPs, {up['params']:,} params): {up['schedule']} ({up['train_seconds'] / 60:.0f} min). The route "
                 f"is where the 32 px net beats the 16 px one by >= {route.get('margin', 0):g} point, on the even half "
                 "of the kept CIFAR test classes (area; top-1 % of the 16 px / 32 px net: "
                 + ", ".join(f"{k} px {a:.1f} / {b:.1f}" for k, (a, b) in table.items()) + ").")
    return text


def _data(r: dict) -> str:
    d = r["data"]
    clips = d.get("clips", {})
    return (f"- Data: CIFAR-10 train; people: {d['person_train']} crops (re-ID identities except every 5th, held out: "
            f"{len(d['reid_held_out_ids'])} ids; MIT crops except every 5th), repeated x{d['person_repeat']}; "
            f"background: {d['background_train_crops']} street windows and sub-windows of them from "
            f"{d['background_scenes'] - len(d['background_held_out_scenes'])} scenes "
            f"({len(d['background_held_out_scenes'])} held out); the moving objects of the first half of each given "
            "clip ("
            + ", ".join(f"{k} -> {v['label']}: {v['crops']} crops from {v['tracks']} tracks, x{v['repeat']}"
                        for k, v in clips.items())
            + ") and motion-free crops of the same frames as background; their second half is held out. Every "
            "training sample goes through a random camera (`Camera` in training/degrade.py): box jitter, aspect "
            f"stretch, blur, a random real downscale kernel to a long side of {r['recipe']['camera_min']}-"
            f"{r['recipe']['camera_max']} px, noise, JPEG.")


def _calibration(r: dict) -> str:
    c = r["calibration"]
    h = c["held_out"]
    return (f"- Calibration: {c['method']}, T = {c.get('route_temperatures', c['temperature'])}, fitted on "
            f"{c['fitted_on']}. Expected calibration error on the other half: **{c['ece_before']:.3f} -> "
            f"{c['ece_after']:.3f}** (15 bins). `unknown` below a per-label threshold: the smallest whose kept "
            f"predictions of that label are >= {100 * c['target_precision']:.0f} % right on the fitting half: "
            + ", ".join(f"{k} **{v:g}**" for k, v in c["unknown_below_by_label"].items())
            + f". On the other half they keep {_pct(h['coverage_by_label'])} of the objects at "
            f"{_pct(h['accuracy_kept_by_label'])} accuracy (all: {_pct(h['accuracy_all'])}); one threshold for "
            f"every label ({c['unknown_below']:g}) keeps {_pct(h['coverage'])} at {_pct(h['accuracy_kept'])}.")


def int8_verdict(r: dict) -> str:
    """What the export's INT8 gates said, per route, and whether INT8 shipped."""
    m = r["bundle"]["metrics"]
    if isinstance(m, dict) and any(k.startswith("route0_") for k in m):  # a routed bundle's, flattened
        m = [{k[len(f"route{i}_"):]: v for k, v in m.items() if k.startswith(f"route{i}_")}
             for i in range(len({k.split("_")[0] for k in m if k.startswith("route")}))]
    routed = isinstance(m, list)
    parts = []
    for i, metrics in enumerate(m if routed else [m]):
        top1 = next((k for k in metrics if k.startswith("int8_top1_at")), None)
        if top1 is None:
            continue
        verdict = f"refused: {metrics['int8_refused']}" if metrics.get("int8_refused") else "passed"
        parts.append(f"{f'route {i}: ' if routed else ''}INT8 top-1 {metrics[top1]} vs FP32 "
                     f"{metrics.get(top1.replace('int8_', ''))} ({verdict})")
    shipped = "model.int8.onnx" in r["bundle"]["files"]
    return ("shipped" if shipped else "not shipped") + (" (" + "; ".join(parts) + ")" if parts else "")


def _bundle(r: dict) -> str:
    b = r["bundle"]
    return ("- Bundle: " + ", ".join(f"{n} {size / 1e6:.2f} MB" for n, size in b["files"].items())
            + (" (weights stored as FP16, computed in FP32)" if b.get("weights_storage") == "fp16" else "")
            + f"; parity (onnxruntime vs torch) {b['parity']:.1e}. INT8 ships when the export's gates pass "
            "(<= 1 point top-1 loss, >= 1.1x FP32 speed at batch 64): " + int8_verdict(r) + ".")


def _people(rep: dict) -> list[str]:
    ws = list(next(iter(rep.values())))
    rows = ["| kernel | " + " | ".join(f"{w} px wide" for w in ws) + " |", "|---|" + "---|" * len(ws)]
    return rows + [f"| {k} | " + " | ".join(f"{v[w]:.1f}" for w in ws) + " |" for k, v in rep.items()]


def _tables(r: dict) -> list[str]:
    kept = r["cifar_kept_by_kernel"]
    return ["## CIFAR classes it keeps, CIFAR-10 test (seen source, held-out images), top-1 % (shipped labels)", "",
            f"{kept['images']} test images of car, truck, bird, cat, dog and horse, shrunk (square) to the size by "
            "each kernel; any other label counts as wrong.", "", *kernel_table(kept), "",
            "## Person recall on held-out people (seen sources, held-out identities), %, by crop width", "",
            "Held-out re-ID identities and MIT crops (48x128 / 64x128, aspect kept), shrunk to the width.", "",
            *_people(r["person_recall_by_width"]), "",
            "## Held-out person-free street windows labelled `person` (%), by width", "",
            *_people(r["windows_called_person_by_width"]), "",
            f"Their labels at 16 px wide (area): {r['windows_labels_at_16px_area']}.", "",
            "## The 12-class network on the full CIFAR-10 test split (top-1 %, argmax over 12 classes)", "",
            *kernel_table(r["cifar10_fine_by_kernel"]), ""]


def _video(r: dict) -> list[str]:
    def share(p: dict) -> str:
        return _pct(p["label_purity"])

    lines = ["## Label purity on the given clips", "",
             "`lowres video CLIP` with its defaults; a track's label = the label most of its reported boxes carry. "
             "The model trained on the moving objects of each clip's first half, so **held-out** = the tracks first "
             "seen in the second half (same camera, other people and cars).", "",
             "| clip | reported tracks | labelled right | unknown | held-out tracks | held-out right | held-out, one "
             "threshold | held-out, no threshold | held-out, `--min-travel 0` |", "|---" * 9 + "|"]
    for v in r["video"]:
        h = v["held_out"]
        travel = f"{share(v['travel_off']['held_out'])}" if "travel_off" in v else "-"
        lines.append(f"| {v['clip']} | {v['tracks']} | {share(v)} | {_pct(v['unknown_share'])} | {h['tracks']} | "
                     f"{share(h)} | {share(v['one_threshold']['held_out'])} | "
                     f"{share(v['without_unknown']['held_out'])} | {travel} |")
    return lines + [""]


def _speed(r: dict) -> list[str]:
    cells = "; ".join(f"{shape} px: " + ", ".join(f"{k.upper()} {v:,} crops/s" if isinstance(v, int)
                                                  else f"{k.upper()} not shipped" for k, v in sp.items())
                      for shape, sp in r["speed"].items())
    ref = r.get("speed_reference") or {}
    note = ""
    if isinstance((ref.get("fp32") or {}).get("32x32"), int):
        here, ours = ref["fp32"]["32x32"], r["speed"]["32x32"]["fp32"]
        note = (f" The floor ({SPEED_FLOOR:,} FP32 on 32x32 crops) was set against commit {ref['commit']}'s default "
                f"({ref['model']}) at {ref['floor_set_at']:,.0f} crops/s; measured in the same run it does {here:,}, "
                f"so the shipped bundle runs at {ours / here:.2f}x it (the floor allows "
                f"{SPEED_FLOOR / ref['floor_set_at']:.2f}x).")
    return ["## Speed", "", "`Classifier()` on 64 crops per call, 2 onnxruntime threads, best of 5 x 1.5 s, on a "
            "shared machine: compare ratios within a run, not across runs. " + cells + "." + note, ""]


def _variants(rows: dict) -> list[str]:
    out = ["## The nets tried (one seed each; `benchmarks/results/default_model_variants.json`)", "",
           "Kept CIFAR classes: 6,000 CIFAR-10 test images with OpenCV area (and the worst of six kernels); clip "
           "purity: reported tracks labelled right, whole clip / held-out half.", "",
           "| run | net | MFLOPs | bundle MB | train min | kept 8 / 12 / 16 / 32 px, area | worst kernel | "
           "person recall (min) | windows as person (max) | pedestrians clip | highway clip | shipped |",
           "|---" * 12 + "|"]
    for name, v in rows.items():
        pur = v["clip_purity"]
        clips = " | ".join(f"{100 * a:.1f} / {100 * b:.1f} %" for a, b in
                           (pur.get("pedestrians-480x360.avi", [0, 0]), pur.get("highway-cars-1280x720.mp4", [0, 0])))
        mflops = v["mflops"] if isinstance(v["mflops"], str) else format(v["mflops"], "g")
        out.append(f"| {name} | {v['net']} | {mflops} | {v['bundle_mb']:.2f} | {v['train_seconds'] / 60:.0f} | "
                   + " / ".join(f"{x:.1f}" for x in v["kept_area"].values()) + " | "
                   + " / ".join(f"{x:.1f}" for x in v["kept_min_over_kernels"].values())
                   + f" | {v['person_recall_min']:.1f} | {v['windows_as_person_max']:.1f} | {clips} | "
                   + ("yes" if v["shipped"] else "") + " |")
    return out + [""]


REBUILD = ["## Rebuilding it", "",
           "From the repository root, `lowres build-default --out DIR` rebuilds the bundle from the committed "
           "checkpoints of its two nets (`benchmarks/checkpoints/default_*`; calibration and export, no training: "
           "minutes); `--train` first trains every stage that is not committed (hours). The bundle's `model_card` "
           "(in bundle.json, covered by its hashes) names the data it saw by sha256, the sources it never saw with "
           "their figures (`--scorecard benchmarks/results/sources.json`), its labels, intended use, known failures "
           "and each stage's recipe hash. The shipped bundle is replaced only by a rebuild verified to give the same "
           "labels and probabilities on held-out crops.", ""]


def render(r: dict, variants: dict | None = None) -> str:
    """The whole document from the results ``r`` (and the variants' rows)."""
    lines = ["# The shipped default model", "",
             "Built by `lowres build-default --out DIR` (lowres_sdk.training.pipelines.default_model: stages, route, "
             "calibration, export, model card in bundle.json) and measured by `python benchmarks/default_model.py` "
             "(JSON: `benchmarks/results/default_model.json`); this page is rendered from that JSON. Every figure goes "
             "through the exported bundle with the torch-free runtime, test images shrunk with the real OpenCV / "
             "Pillow functions named in each table. Figures on sources the model never saw: "
             "[sources.md](sources.md).", "", "## What it is", "",
             _labels(r), _network(r), _data(r), _calibration(r), _bundle(r), "", *REBUILD, *_tables(r)]
    if r.get("video"):
        lines += _video(r)
    if r.get("speed"):
        lines += _speed(r)
    if variants:
        lines += _variants(variants)
    return "\n".join(lines)


def write(doc: Path | None = None) -> str:
    """Render the committed results into ``doc`` (default: docs/default_model.md); returns the text."""
    from lowres_sdk._io import atomic_write_text

    variants = json.loads(VARIANTS.read_text()) if VARIANTS.exists() else None
    text = render(json.loads(RESULTS.read_text()), variants)
    atomic_write_text(doc or DOC, text)
    return text
