"""What every benchmark script shares: has a run finished, training a run that continues from its
committed checkpoint, which weights a cached bundle holds, and writing its JSON, PNG and docs table atomically."""
from __future__ import annotations

import json
from pathlib import Path


def finished(run: Path, epochs: int) -> bool:
    """True when ``run`` holds a checkpoint of at least ``epochs`` epochs (a missing or broken run is
    not finished; its error surfaces when the script trains it)."""
    from lowres_sdk.errors import LowresError
    from lowres_sdk.training.checkpoint import load_checkpoint

    try:
        return load_checkpoint(run)[1]["epoch"] >= epochs
    except LowresError:
        return False


def restore(run: Path, saved: Path) -> None:
    """Start a new ``run`` from its committed checkpoint ``saved`` (a later session on a fresh machine
    continues instead of retraining); an existing ``run`` or a missing ``saved`` is left alone."""
    import shutil

    if not run.exists() and (saved / "checkpoint.json").exists():
        shutil.copytree(saved, run)


def train_and_commit(recipe, run: Path, saved: Path, data, log=None) -> dict:
    """Train ``recipe`` into ``run`` (resumed; a finished run is not touched) and commit its finished copy
    to ``saved`` when this call trained it or nothing is committed there yet: a committed copy that was
    only restored stays byte for byte what it was (re-saving a copy drops its live weights and changes
    the file). ``log``: called with a line before and after training. Returns the run's metadata."""
    import sys
    import time

    from lowres_sdk.training.checkpoint import load_checkpoint, save_finished_copy
    from lowres_sdk.training.loop import train

    trained = not finished(run, recipe.epochs)
    if trained:
        t = time.time()
        if log:
            log(f"== {run.name}")
        meta = train(recipe, run, resume=True, data=data, progress=sys.stderr.isatty())
        if log:
            log(f"== {run.name} done in {time.time() - t:.0f}s")
    else:
        meta = load_checkpoint(run)[1]
    if trained or not (saved / "checkpoint.json").exists():
        save_finished_copy(run, saved)
    return meta


def write_json(path: Path, data) -> None:
    from lowres_sdk._io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2))


def publish_report(name: str, path: Path, report, plot, summary) -> list[str]:
    """A benchmark's results, published: ``report`` as the JSON ``path``, ``plot(report, png)`` beside it,
    and the lines of ``summary(report)`` as the block ``name`` of docs/benchmarks.md. Returns those lines."""
    from docs_table import write_block

    write_json(path, report)
    plot(report, path.with_suffix(".png"))
    lines = summary(report)
    write_block(name, lines)
    return lines


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Lay out a matplotlib figure, write it as ``path`` (PNG) atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    from lowres_sdk._io import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def bundle_weights(bundle: Path) -> str | None:
    """The sha256 of the checkpoint weights a bundle was exported from (None: no bundle there), so
    a script re-exports a cached bundle whose run has changed."""
    try:
        return json.loads((bundle / "bundle.json").read_text())["provenance"]["checkpoint_sha256"]
    except (OSError, ValueError, KeyError):
        return None


def init_chain(run: Path) -> list[Path]:
    """``run`` and the runs it started from (``init``), recursively."""
    from lowres_sdk.training.checkpoint import load_checkpoint

    init = load_checkpoint(run)[1]["recipe"].get("init")
    return [run, *(init_chain(Path(init)) if init else [])]


def train_seconds(*runs: Path) -> float:
    """Seconds of the training of ``runs`` and of the runs each started from (``init``), recursively; a
    run that several of them started from (a shared start) counted once."""
    from lowres_sdk.training.checkpoint import load_checkpoint

    unique = {p.resolve(): p for r in runs for p in init_chain(r)}
    return sum(h["seconds"] for p in unique.values() for h in load_checkpoint(p)[1]["history"])


def bundle_of(name: str, run: Path, meta: dict, test, bundles: Path) -> Path:
    """The run's exported FP32 bundle, ``bundles / name``; (re-)exported when missing or of other weights
    than the run's (``meta``: its checkpoint metadata). ``test``: every tenth image checks the export."""
    import numpy as np

    from lowres_sdk.export.exporter import export_run

    bundle = bundles / name
    if bundle_weights(bundle) != meta["weights_sha256"]:
        export_run(run, bundle, test_set=test.subset(np.arange(0, len(test), 10)), log=lambda *a: None, overwrite=True)
    return bundle


def nets_arguments(p, nets: tuple[str, ...] | None) -> None:
    """--data, --runs-dir and (unless ``nets`` is None) --nets: the options of a script that measures nets
    that experiments/cifar10_robust.toml trained."""
    here = Path(__file__).resolve().parent
    p.add_argument("--data", type=Path, default=here.parent.parent / "shared" / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--runs-dir", type=Path, default=here / "runs" / "cifar10_robust",
                   help="where the runs of experiments/cifar10_robust.toml are (their bundles under bundles/)")
    if nets is not None:
        p.add_argument("--nets", default=",".join(nets),
                       help="comma-separated runs of cifar10_robust (default: %(default)s)")
