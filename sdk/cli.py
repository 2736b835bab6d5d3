"""The `lowres` command. Runtime commands import numpy/onnxruntime only; the training commands live
in lowres_sdk.training and are imported when invoked (click's lazy-loading pattern), so
`lowres --help` is instant and works on a runtime-only install without torch."""
from __future__ import annotations

import importlib
import json
import os
import sys

import click

from ._version import __version__
from .errors import LowresError

# command name -> (module, attribute, one-line help shown in `lowres --help`, extra it needs)
LAZY_COMMANDS = {
    "train": ("lowres_sdk.training.cli", "train_command",
              "Train a low-res model, HR teacher or retrieval embedder.", "train"),
    "eval": ("lowres_sdk.export.cli", "eval_command",
             "Accuracy of a run or bundle by resolution and resize kernel (JSON + PNG).", "export"),
    "viz": ("lowres_sdk.training.cli", "viz_group",
            "Pictures: t-SNE, occlusion heat maps, accuracy by resolution.", "train"),
    "eval-retrieval": ("lowres_sdk.training.cli", "eval_retrieval_command",
                       "Retrieval mAP/P@k/R@k of a run by query resolution (JSON + PNG).", "train"),
    "kd-targets": ("lowres_sdk.training.cli", "kd_targets_command",
                   "Precompute a teacher ensemble's logits for `train --method kd --kd-targets`.", "train"),
    "export": ("lowres_sdk.export.cli", "export_command", "Compile a run into a bundle (ONNX + metadata).", "export"),
    "check": ("lowres_sdk.export.cli", "check_command",
              "Re-check a bundle's parity against its training run.", "export"),
    "sources": ("lowres_sdk.training.sources.cli", "sources_group",
                "Public data sources, pinned by sha256, rebuilt as labelled crops.", "train"),
    "train-detector": ("lowres_sdk.training.detector_build", "train_detector_command",
                       "Train the region detector of `video --regions detector` on annotated sequences.", "train"),
    "build-default": ("lowres_sdk.training.pipelines.cli", "build_default_command",
                      "Build the shipped default bundle: route, calibration, export, model card.", "train"),
    "serve": ("lowres_sdk.serve", "serve_command",
              "HTTP server for a bundle, micro-batched (/v1/classify, /v1/embed).", "serve"),
}


# Optional dependencies a command may import only once it runs -> the extra that installs them.
OPTIONAL_MODULES = {"torch": "export", "onnx": "export", "onnxscript": "export", "safetensors": "train",
                    "matplotlib": "train", "sklearn": "train", "threadpoolctl": "train", "faiss": "faiss",
                    "tensorrt": "tensorrt", "pycuda": "tensorrt", "skimage": "demo", "ray": "ray"}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx, name):
        if name not in LAZY_COMMANDS:
            return super().get_command(ctx, name)
        module, attr, _, extra = LAZY_COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            raise click.ClickException(
                f"`lowres {name}` needs {e.name}, which is not installed: pip install 'lowres_sdk[{extra}]'")

    def format_commands(self, ctx, formatter):
        rows = [(n, LAZY_COMMANDS[n][2]) if n in LAZY_COMMANDS
                else (n, click.Group.get_command(self, ctx, n).get_short_help_str(limit=60))
                for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lowres")
def cli():
    """lowres_sdk: train, export and run recognisers for 8-48 px crops."""


def read_images(paths) -> list:
    """Every image in ``paths``, or InputError on the first that cannot be read (index, search)."""
    from .crops import read_image

    return [read_image(p) for p in paths]


PRECISION_HELP = ("auto: the bundle's INT8 model when it ships one (the export ships INT8 only within 1 point of "
                  "FP32 top-1 and faster), else FP32.")


def quiet_option(f):
    return click.option("--quiet", "-q", is_flag=True,
                        help="No progress output (errors and results still print).")(f)


@cli.command("classify")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--bundle", default=None, type=click.Path(),
              help="Bundle directory (default: the shipped default model).")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Show the k most probable classes.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8"]), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--unknown-below", type=click.FloatRange(0, 1), default=None,
              help="Report 'unknown' when the best probability is below this, whatever the label "
                   "(default: the bundle's calibrated threshold of each label; 0 disables).")
@click.option("--recursive", "-r", is_flag=True, help="Read folders' subfolders too (and ** in patterns).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON record per image on stdout (the schema of sdk/results.py; 'error' for a bad file).")
@click.option("--probs", is_flag=True, help="With --json: every class's probability too.")
@click.option("--save", "save_dir", default=None, type=click.Path(file_okay=False),
              help="Write a labelled copy of each image into this folder (new or empty).")
@quiet_option
def classify_command(images, bundle, top_k, precision, unknown_below, recursive, as_json, probs, save_dir, quiet):
    """Classify IMAGES: files, folders or glob patterns (any size; each is resized inside the model's
    graph). A best probability under the bundle's calibrated threshold prints as `unknown` followed
    by the classes. A file that cannot be read gets one error line and the rest go on; exit 0 when
    all were read, 2 when some were not, 1 when none were."""
    from .image_inputs import expand, read_batches
    from .progress import Progress
    from .runtime import Classifier

    inputs = expand(images, recursive)
    if save_dir is not None:
        _check_save_dir(save_dir)
    kw = {} if unknown_below is None else {"unknown_below": unknown_below}
    clf = Classifier(bundle, precision=precision, **kw)
    k, done, saved = min(top_k, len(clf.labels)), 0, set()
    with Progress(len(inputs), "classify", "images", quiet=quiet or len(inputs) < 256) as bar:
        for batch in read_batches(inputs, 256):
            good = [(item, image) for item, image in batch if image is not None]
            records = iter(clf([image for _, image in good]).to_dict(k, probs))
            for item, image in batch:
                if image is None:
                    click.echo(f"error: {item.error}", err=True)
                    if as_json:
                        click.echo(json.dumps({"image": item.name, "error": item.error}))
                    continue
                rec = next(records)
                done += 1
                click.echo(json.dumps({"image": item.name, **rec}) if as_json else _classify_line(item.name, rec))
                if save_dir is not None:
                    _save_labelled(image, rec, item.name, save_dir, saved)
            bar.update(len(batch))
    if done < len(inputs):
        sys.exit(2 if done else 1)


def _classify_line(name: str, rec: dict) -> str:
    top = ", ".join(f"{t['label']} {t['score']:.3f}" for t in rec["top_k"])
    return f"{name}: {top}" if rec["known"] else f"{name}: {rec['label']} ({top})"


def _check_save_dir(path) -> None:
    from .errors import OutputError

    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise OutputError(f"--save {path}: expected a new or empty folder (its files are never replaced)")


def _save_labelled(image, rec: dict, name: str, folder, taken: set) -> None:
    """``image`` scaled up (nearest) to >= 160 px on its short side (at most 1024 on its long one), its
    label drawn on it, as folder/<stem>.png."""
    from pathlib import Path

    import cv2

    from ._io import atomic_write_bytes
    from .video.outputs import draw_label

    stem, n = Path(name).stem, 1
    while (out := f"{stem}{f'-{n}' if n > 1 else ''}.png") in taken:  # same name from two folders
        n += 1
    taken.add(out)
    h, w = image.shape[:2]
    f = max(1, min(-(-160 // min(h, w)), 1024 // max(h, w)))
    big = cv2.resize(image, (w * f, h * f), interpolation=cv2.INTER_NEAREST) if f > 1 else image.copy()
    color = (60, 180, 60) if rec["known"] else (0, 165, 255)
    draw_label(big, f"{rec['label']} {rec['score']:.2f}", (0, 0, big.shape[1], big.shape[0]), color)
    atomic_write_bytes(Path(folder) / out, cv2.imencode(".png", big)[1].tobytes())


def _trained_at(b) -> str:
    """The resolution a bundle's model was trained at; a routed bundle's, by crop size."""
    if not b.routes:
        return f"{b.spec.resolution} px"
    return ", ".join(f"{r.preprocessing.resolution} px for crops >= {r.min_side} px" for r in b.routes)


@cli.command("inspect")
@click.argument("bundle", required=False, type=click.Path())
@click.option("--json", "as_json", is_flag=True,
              help="Print bundle.json (verified), its models and the providers here as one JSON object.")
def inspect_command(bundle, as_json):
    """Print a bundle's contract, labels, metrics, parity and the providers available here."""
    from .bundle import load_bundle
    from .runtime import available_providers, open_session

    b = load_bundle(bundle)
    d = b.description
    for precision in b.variants:  # the graphs' signatures and embedded metadata, not only the hashes
        open_session(b, precision, ["CPUExecutionProvider"])
    if as_json:
        click.echo(json.dumps({"bundle": str(b.path), "verified": True, "models": b.variants,
                               "providers": available_providers(), "description": b.meta}))
        return
    click.echo(f"bundle   {b.path}  (schema {d.schema_version}, verified: sha256 of {len(d.files)} files, "
               f"graph signatures)")
    click.echo(f"task     {d.task} -> {d.output.name} {list(d.output.shape)}")
    click.echo(f"input    {d.input.name}: uint8 NHWC BGR, any height/width, dynamic batch")
    click.echo(f"labels   {', '.join(d.labels)}")
    for route in d.routes or [None]:  # a routed bundle: each model, with the crop sizes it takes
        spec, prov, metrics, parity = (d.preprocessing, d.provenance, d.metrics, d.parity) if route is None else \
            (route.preprocessing, route.provenance, route.metrics, route.parity)
        if route is not None:
            click.echo(f"route    crops whose longer side is >= {route.min_side} px:")
        # native: one resize
        upsampled = f", then to {spec.size} px ({spec.up})" if spec.size != spec.resolution else ""
        click.echo(f"model    {'letterbox (aspect kept, gray pad), ' if spec.fit == 'letterbox' else ''}"
                   f"resize to {spec.resolution} px ({spec.down}){upsampled}, "
                   f"{spec.channel_order}, mean {list(spec.mean)} std {list(spec.std)}")
        if prov:
            r = prov.get("recipe") if isinstance(prov.get("recipe"), dict) else {}
            params = prov.get("params")
            click.echo(f"trained  {r.get('method')} {r.get('arch')} x{r.get('width')} "
                       f"for {prov.get('trained_epochs')} epochs "
                       f"({f'{params:,}' if isinstance(params, int) else params} params, {prov.get('mflops')} MFLOPs); "
                       f"lowres_sdk {prov.get('lowres_sdk_version')}, opset {prov.get('opset')}")
        if metrics:
            click.echo("metrics  " + ", ".join(f"{k} {v}" for k, v in metrics.items() if k != "int8_refused"))
        if route is not None and "int8" in b.variants:
            click.echo("int8     " + ("INT8 in model.int8.onnx" if route.int8 else
                                      f"FP32 in model.int8.onnx "
                                      f"(its INT8 refused: {metrics.get('int8_refused', '?')})"))
        elif metrics.get("int8_refused"):
            click.echo(f"int8     refused: {metrics['int8_refused']}")
        if isinstance(parity.get("max_abs_diff"), (int, float)) and parity.get("crops"):
            line = f"parity   max |onnxruntime - torch| {parity['max_abs_diff']:.2e} over {parity.get('crops')} crops"
            fp16 = parity.get("fp16_weights")
            if isinstance(fp16, dict) and isinstance(fp16.get("max_abs_diff"), (int, float)):
                line += f"; model.onnx stores its weights as FP16: {fp16['max_abs_diff']:.2e}"
            click.echo(line)
    routing = d.parity.get("routing")
    if d.routes and isinstance(routing, dict):
        click.echo("routing  the routed graph vs each route's own graph: " + ", ".join(
            f"{k} {v.get('max_abs_diff'):.2e}" for k, v in routing.items() if isinstance(v, dict)
            and isinstance(v.get("max_abs_diff"), (int, float))))
    if d.calibration:
        c = d.calibration
        click.echo(f"calibrated {c.method} (T = {c.temperature:g}, in the graph) on {c.fitted_on or '?'}; "
                   f"ECE {c.ece_before} -> {c.ece_after}; 'unknown' below {c.unknown_below:g}"
                   + "".join(f", {label} below {v:g}" for label, v in (c.unknown_below_by_label or {}).items()
                             if v != c.unknown_below))
    click.echo(f"models   {', '.join(f'{k}: {v}' for k, v in b.variants.items())}")
    click.echo(f"providers here: {', '.join(available_providers())}")


@cli.command("bench")
@click.argument("bundle", required=False, type=click.Path())
@click.option("--batch-sizes", default="1,8,64", show_default=True, help="Comma-separated batch sizes (1..4096).")
@click.option("--size", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="Side of the synthetic square crops (px).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True, max=3600), default=3.0, show_default=True,
              help="Time per batch size.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8"]), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="onnxruntime intra-op threads (default: all cores).")
def bench_command(bundle, batch_sizes, size, seconds, precision, threads):
    """Crops/s and latency percentiles of BUNDLE at several batch sizes."""
    import time

    import numpy as np

    from .runtime import Classifier, Embedder
    from .bundle import load_bundle

    try:
        sizes = [int(v) for v in batch_sizes.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {batch_sizes!r}",
                                 param_hint="--batch-sizes") from None
    if not all(1 <= v <= 4096 for v in sizes):
        raise click.BadParameter(f"batch sizes must be in 1..4096, got {batch_sizes!r}", param_hint="--batch-sizes")
    b = load_bundle(bundle)
    model = (Classifier if b.task == "classify" else Embedder)(b, precision=precision, threads=threads)
    rng = np.random.default_rng(0)
    click.echo(f"{b.path} [{model.precision}] on {', '.join(model.providers)}, {size}x{size} crops")
    for bs in sizes:
        crops = rng.integers(0, 256, (bs, size, size, 3), dtype=np.uint8)
        model.batch_size = bs
        model(crops)  # warm-up
        times, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 5:
            t = time.perf_counter()
            model(crops)
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1e3
        click.echo(f"batch {bs:>3}: {bs * len(times) / sum(times):9.1f} crops/s   "
                   f"p50 {np.percentile(ms, 50):7.2f} ms   "
                   f"p99 {np.percentile(ms, 99):7.2f} ms")


@cli.command("video")
@click.argument("sources", nargs=-1)
@click.option("--sources", "sources_file", type=click.Path(dir_okay=False), default=None,
              help="A file of streams, one a line: URL or path, an optional name, options as key=value "
                   "(fps, max_frames, crops, min_size, realtime, loop, seconds); '#' comments.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Process at most N frames a second of each stream's time (the rest are grabbed, not decoded).")
@click.option("--realtime", is_flag=True,
              help="Play files at their own speed, as cameras would (frames dropped and counted when behind).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run the streams on a Ray cluster (ADDRESS, or a local one): a reader actor per stream, "
                   "a pool of classifier actors (a word after --ray is its ADDRESS: give SOURCES first). "
                   "Needs pip install 'lowres_sdk[ray]'.")
@click.option("--classifiers", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --ray: classifier actors in the pool.")
@click.option("--bundle", default=None, type=click.Path(),
              help="Bundle directory (default: the shipped default model).")
@click.option("--crops", "crops_spec", default="street", show_default=True,
              help="Where the objects are: street[:DETECTOR.onnx] (people and vehicles from a COCO-trained detector, "
                   "YOLOX-Nano, plus vehicles seen from high above from the shipped detector: whole objects on a "
                   "camera nothing was tuned on, parked cars too), coco[:MODEL.onnx] (the COCO part alone: about "
                   "twice as fast, no top-down cars), detector[:MODEL.onnx] (the shipped low-res detector over frame "
                   "and motion alone), motion (MOG2 background subtraction alone: 3-5x faster than detector, "
                   "fragments and pairs on a new camera), face (OpenCV Haar cascade), full (whole frame), or "
                   "boxes:FILE (MOT-style 'frame,id,x,y,w,h,...' from your own detector).")
@click.option("--out", default="lowres-video-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for annotated.mkv, detections.jsonl and summary.json.")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Process every N-th frame (the others are skipped without decoding into images).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N processed frames.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Crops per inference call.")
@click.option("--min-size", type=click.IntRange(min=1), default=12, show_default=True,
              help="Smallest object side (px) worth classifying; --crops motion finds motion at the scale this allows.")
@click.option("--min-hits", type=click.IntRange(min=1), default=None,
              help="Report a track as an object once seen on N processed frames "
                   "(shorter ones are 'tentative' in the JSONL). Default: the region stage's (detector 2, motion 3).")
@click.option("--min-travel", type=click.FloatRange(min=0), default=None,
              help="... and once its centre has moved N box sides from where it was first seen: motion that never "
                   "travels (leaves, flicker on a verge) is not an object on a fixed camera; the detector's parked "
                   "vehicles need none. 0: off. Default: the region stage's (0.1).")
@click.option("--ignore-labels", default="other,background", show_default=True,
              help="Comma-separated labels never reported as objects (a background class); '' reports all.")
@click.option("--no-track", is_flag=True, help="No tracking: classify every box on every frame, each its own label.")
@click.option("--no-video", is_flag=True, help="Skip writing annotated.mkv.")
@click.option("--video-scale", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True,
              help="Write the annotated video at this fraction of the source resolution (cheaper to encode).")
@click.option("--show", is_flag=True,
              help="Show the annotated frames in a window (needs a GUI build of OpenCV; q quits).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8"]), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an earlier run in --out (else refused).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json's content instead of the one-line summary.")
@quiet_option
def video_command(sources, sources_file, fps, realtime, ray_address, classifiers, bundle, crops_spec, out, stride,
                  max_frames, batch_size, min_size, min_hits, min_travel, ignore_labels, no_track, no_video,
                  video_scale, show, precision, overwrite, as_json, quiet):
    """Classify every low-res object in SOURCES: video files, camera indices (0, 1, ...) or
    rtsp:// / http:// streams. Writes an annotated video, one JSON line per frame and a summary.
    Exits 130 when interrupted. A file that ends before its announced frame count is finished
    with a warning (summary.json says so).

    Several sources (or --sources FILE, --fps, --ray) run as streams of one process sharing one
    model: OUT/NAME/ per stream and OUT/summary.json over all; exit 1 when a stream failed."""
    tracker_overrides = {k: v for k, v in (("min_hits", min_hits), ("min_travel", min_travel)) if v is not None}
    if len(sources) != 1 or sources_file or fps or realtime or ray_address:
        _video_many(sources, sources_file, ray_address, classifiers, bundle, out, precision, batch_size,
                    stride=stride, show=show,
                    tracker_options=(tracker_overrides, no_track, ignore_labels),
                    defaults=dict(fps=fps, realtime=realtime or None, max_frames=max_frames, crops=crops_spec,
                                  min_size=min_size), video=(not no_video, video_scale), overwrite=overwrite,
                    as_json=as_json)
        return
    summary = _video_one(sources[0], out, overwrite=overwrite, bundle=bundle, batch_size=batch_size,
                         precision=precision, crops=(crops_spec, min_size), tracker=tracker_overrides,
                         track=not no_track, ignore_labels=ignore_labels, stride=stride, max_frames=max_frames,
                         video=(not no_video, video_scale), show=show, quiet=quiet)
    _report_video(sources[0], out, summary, as_json)


def _video_one(source, out, *, overwrite, bundle, batch_size, precision, crops, tracker, track, ignore_labels,
               stride, max_frames, video, show, quiet) -> dict:
    """One source through `process`, after refusing an --out that holds an earlier run's outputs.
    ``tracker``: the tracker settings given on the command line, over the region stage's own."""
    from .errors import OutputError
    from .runtime import Classifier
    from .video import process
    from .video.outputs import stale_outputs
    from .video.regions import parse_crops
    from .video.tracking import tracker_for

    if not overwrite and (stale := stale_outputs(out)):  # two runs' files in one folder would not belong together
        raise OutputError(f"{out} holds an earlier run's {', '.join(stale)}; pass --overwrite to replace them, "
                          f"or choose another --out")
    # One onnxruntime thread and one OpenCV thread per stage: decode, motion and encoding run in
    # threads of their own beside it (OpenCV's own workers only contended with them: ~7 % slower).
    import cv2

    cv2.setNumThreads(1)
    clf = Classifier(bundle, batch_size=batch_size, threads=1, precision=precision)
    ignored = tuple(x.strip() for x in ignore_labels.split(",") if x.strip())
    provider = parse_crops(crops[0], min_size=crops[1])
    return process(source, clf, out, provider, stride=stride, max_frames=max_frames, batch_size=batch_size,
                   track=track, tracker=tracker_for(provider, **tracker), ignore_labels=ignored, write_video=video[0],
                   video_scale=video[1], show=show, progress=not quiet, log=lambda msg: click.echo(msg, err=True))


def _report_video(source, out, summary: dict, as_json: bool) -> None:
    """The run's summary line (or JSON), and its exit status: 130 when interrupted."""
    from .video.outputs import summary_line

    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(summary_line(summary))
        click.echo(f"outputs in {out}/: " + ", ".join(v for v in summary["outputs"].values() if isinstance(v, str))
                   + ", summary.json")
    # sys.exit, not click's Exit: under main()'s standalone_mode=False an Exit is returned, and the process exited 0
    if summary["interrupted"]:
        click.echo("interrupted: the outputs cover the frames processed so far", err=True)
        sys.exit(130)
    if summary["truncated"]:
        # a file that decodes to its end is finished: headers overstate frame counts (a real 720p50 AVI
        # announced 682 and held 341), and a cut file looks the same from here
        click.echo(f"warning: {source} ended after {summary['frames_read'] + summary['frames_skipped']} frames, "
                   f"{summary['frames_unread']} fewer than its header announces ({summary['frame_count']}): a wrong "
                   "frame count or a truncated file; the outputs cover every frame that could be read", err=True)


def _video_many(sources, sources_file, ray_address, classifiers, bundle, out, precision, batch_size, *, stride, show,
                tracker_options, defaults, video, overwrite, as_json) -> None:
    """`lowres video` with several streams: one process (`process_many`), or Ray actors (``ray_address``)."""
    from .errors import OutputError
    from .video.many import ManyOptions, process_many
    from .video.outputs import stale_outputs
    from .video.sources import read_sources, specs_from

    if stride != 1 or show:
        raise click.UsageError("--stride and --show take one source; several streams are rated with --fps")
    if not sources and not sources_file:
        raise click.UsageError("give SOURCES, or --sources FILE")
    specs = specs_from([*(read_sources(sources_file, **defaults) if sources_file else []),
                        *specs_from(sources, **defaults)]) if sources else read_sources(sources_file, **defaults)
    stale = [f"{spec.name}/{name}" for spec in specs for name in stale_outputs(os.path.join(out, spec.name))]
    if not overwrite and (stale or os.path.exists(os.path.join(out, "summary.json"))):
        raise OutputError(f"{out} holds an earlier run's {', '.join(stale[:3] or ['summary.json'])}"
                          f"{' ...' if len(stale) > 3 else ''}; pass --overwrite to replace them, "
                          "or choose another --out")
    tracker_overrides, no_track, ignore_labels = tracker_options
    ignored = tuple(x.strip() for x in ignore_labels.split(",") if x.strip())
    options = ManyOptions(batch_size=batch_size, tracker_overrides=tracker_overrides, track=not no_track,
                          ignore_labels=ignored, write_video=video[0], video_scale=video[1])
    log = lambda msg: click.echo(msg, err=True)  # noqa: E731
    if ray_address:
        from .video.ray_streams import process_many_ray

        summary = process_many_ray(specs, bundle, out, address=None if ray_address == "local" else ray_address,
                                   classifiers=classifiers, options=options, precision=precision, log=log)
    else:
        import cv2

        from .runtime import Classifier

        cv2.setNumThreads(1)  # one OpenCV thread per stream's thread: they are the parallelism
        clf = Classifier(bundle, batch_size=batch_size, threads=1, precision=precision)
        summary = process_many(specs, clf, out, options=options, log=log)
    if as_json:
        click.echo(json.dumps(summary))
    for name, s in ({} if as_json else summary["streams"]).items():
        latency = s["latency_ms"]["p95"]
        click.echo(f"{name}: {s['frames_processed']} frames at {s['fps']} frames/s"
                   + (f", {s['frames_dropped']} dropped" if s["live"] else "")
                   + (f", p95 latency {latency:.0f} ms" if latency is not None else "")
                   + f", {s['objects']} objects in {s['tracks']} tracks {s['track_labels']}"
                   + (f"; FAILED: {s['error']}" if s["error"] else ""))
    if not as_json:
        click.echo(f"{summary['n_streams']} streams, {summary['model_calls']} model calls of {summary['mean_batch']} "
                   f"crops on average; outputs in {out}/NAME/ and {out}/summary.json")
    if summary.get("interrupted"):
        click.echo("interrupted: the outputs cover the frames processed so far", err=True)
        sys.exit(130)
    if summary["errors"]:
        click.echo(f"error: {len(summary['errors'])} of {summary['n_streams']} streams failed: "
                   + ", ".join(summary["errors"]), err=True)
        sys.exit(1)


@cli.command("index")
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--bundle", required=True, type=click.Path(), help="An embed bundle (lowres export --task embed).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Gallery folder to write: new, empty, or a gallery (replaced atomically).")
@click.option("--overwrite", is_flag=True, help="Also replace a gallery folder that holds other files (deleting them).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Images per inference call.")
@quiet_option
def index_command(images_dir, bundle, out, overwrite, batch_size, quiet):
    """Embed every image under IMAGES_DIR into a gallery (id = path relative to IMAGES_DIR,
    metadata = path and parent folder as 'class')."""
    from pathlib import Path

    from ._io import check_replaceable, check_writable
    from .crops import IMAGE_SUFFIXES
    from .gallery import Gallery, _recognise_gallery
    from .progress import progress
    from .runtime import Embedder

    check_replaceable(out, "gallery", _recognise_gallery, overwrite)  # before minutes of embedding
    check_writable(out)
    emb = Embedder(bundle, batch_size=batch_size)
    root = Path(images_dir)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise click.ClickException(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    gallery = Gallery.for_embedder(emb)
    for i in progress(range(0, len(paths), batch_size), desc="indexing", unit="batches", quiet=quiet):
        part = paths[i:i + batch_size]
        gallery.add(emb(read_images(part)), [str(p.relative_to(root)) for p in part],
                    [{"path": str(p), "class": p.parent.name} for p in part])
    gallery.save(out, overwrite=overwrite)
    click.echo(f"{out}: {len(gallery)} images, {gallery.dim}-d embeddings from {emb.bundle.path}")


@cli.command("search")
@click.argument("queries", nargs=-1, required=True, type=click.Path())
@click.option("--gallery", required=True, type=click.Path(), help="A folder written by `lowres index`.")
@click.option("--bundle", default=None, type=click.Path(),
              help="Embed bundle (default: the one the gallery was built with).")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Show the k most similar gallery images.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per query on stdout.")
@click.option("--unverified-ok", is_flag=True,
              help="Search a gallery that records no model fingerprint anyway (its scores mean nothing if another "
                   "model made its vectors).")
def search_command(queries, gallery, bundle, top_k, as_json, unverified_ok):
    """Find the gallery images most similar to each QUERY image (cosine similarity)."""
    from .gallery import Gallery
    from .runtime import Embedder

    g = Gallery.load(gallery)
    bundle = bundle or g.source_bundle
    if not bundle:
        raise click.ClickException(f"{gallery} does not record its bundle; pass --bundle")
    emb = Embedder(bundle)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g.check_embedder(emb, unverified_ok)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    res = g.search(emb(read_images(queries)), top_k=top_k)
    for q, ids, scores, idx in zip(queries, res.ids, res.scores, res.indices):
        if as_json:
            click.echo(json.dumps({"query": str(q),
                                   "hits": [{"id": i, "score": round(float(s), 5), "metadata": g.metadata[j]}
                                            for i, s, j in zip(ids, scores, idx)]}))
        else:
            click.echo(f"{q}:")
            for rank, (i, s) in enumerate(zip(ids, scores), 1):
                click.echo(f"  {rank:>3}. {s:.4f}  {i}")


@cli.command("demo")
@click.option("--bundle", default=None, type=click.Path(),
              help="Bundle directory (default: the shipped default model).")
@click.option("--out", default="lowres-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the video pipeline's outputs (replaced on each run).")
def demo_command(bundle, out):
    """The product at its job on nothing but an install: classify street-camera crops of people, vehicles
    and background cut at annotated boxes, then run a fixed-camera clip through the video pipeline
    (`lowres video`'s default --crops stage, tracking, annotated video, JSONL) and check its tracks
    against the clip's annotated people and vehicles. Footage: MEVA (CC BY 4.0), cameras no model of
    this project trained on (lowres_sdk/demo_assets/README.md)."""
    from collections import Counter
    from pathlib import Path

    from .demo import assets, asset_path, classify_crops, clip_lines, clip_truth, demo_crops, follow, still_lines
    from .runtime import Classifier
    from .video import process
    from .video.outputs import summary_line
    from .video.regions import parse_crops

    clf = Classifier(bundle)
    click.echo(f"model: {clf.bundle.path} ({len(clf.labels)} classes, trained at {_trained_at(clf.bundle)}; "
               f"{', '.join(clf.providers)})")
    click.echo("data: MEVA (Kitware, IARPA; CC BY 4.0), two fixed outdoor cameras no model here trained on; "
               "lowres_sdk/demo_assets/README.md")
    crops = demo_crops()
    counts = Counter(c.category for c in crops)
    click.echo(f"\n1. still crops: {len(crops)} cut at annotated boxes ({counts['person']} people, "
               f"{counts['vehicle']} vehicles, {counts['background']} background windows), classified as stored "
               "and shrunk (INTER_AREA); ok = right, ?? = unknown (below the calibrated score), else the wrong label:")
    for line in still_lines(crops, classify_crops(clf, crops)):
        click.echo(line)
    clip = assets()["clip"]
    crops_spec = next(p.default for p in video_command.params if p.name == "crops_spec")  # `lowres video`'s own
    widths = [box[2] for boxes in clip_truth().values() for _, category, box in boxes if category == "person"]
    click.echo(f"\n2. video: {clip['frames'] / clip['fps']:.0f} s of camera {clip['camera']} ({clip['width']}x"
               f"{clip['height']}, {clip['fps']} fps; people {min(widths):.0f}-{max(widths):.0f} px wide) through "
               f"the video pipeline, --crops {crops_spec}:")
    provider = parse_crops(crops_spec)
    summary = process(asset_path(clip["file"]), clf, out, provider, progress=False)
    click.echo(f"   {summary_line(summary)}")
    for line in clip_lines(follow(Path(out) / "detections.jsonl")):
        click.echo(line)
    click.echo(f"   outputs: {out}/annotated.mkv, {out}/detections.jsonl, {out}/summary.json")


def _interrupted_message(args: list[str]) -> str:
    command = next((a for a in args if not a.startswith("-")), "")
    if command == "train":
        return "interrupted: the last finished epoch is saved; continue with the same command and --resume"
    return f"interrupted{f' ({command})' if command else ''}"


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="lowres", standalone_mode=False)
    except LowresError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except ModuleNotFoundError as e:
        # A command reached an optional dependency (torch for export/check, ...) at run time.
        extra = OPTIONAL_MODULES.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        click.echo(f"error: this command needs {e.name}, which is not installed: "
                   f"pip install 'lowres_sdk[{extra}]'", err=True)
        sys.exit(1)
    except OSError as e:  # the file system refused (permissions, disk full): the user's environment, not a bug
        click.echo(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", err=True)
        sys.exit(1)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort in most commands
        click.echo(_interrupted_message(sys.argv[1:] if argv is None else argv), err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
