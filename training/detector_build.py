"""`lowres train-detector`: the region detector trained on a folder of annotated sequences (MOT
``<name>.mp4`` + ``<name>.gt.txt``), optionally leaving some out, with street-level pedestrian crops
pasted in, exported to ONNX whose metadata names every sequence it trained on."""
from __future__ import annotations

import hashlib
from pathlib import Path

import click

from lowres_sdk.errors import DataError, InputError

# where the person lies in each crop archive's images (x, y, w, h as fractions; looked up by eye)
PERSON_ARCHIVES = {"pedestrians-mit-64x128.tar.gz": (0.28, 0.14, 0.44, 0.78),
                   "person-reid-48x128.tar.gz": (0.10, 0.02, 0.80, 0.96)}


def sequences_in(folders, exclude=()) -> list[Path]:
    """The annotated sequences of ``folders`` (videos with a ``.gt.txt`` beside them), less ``exclude``."""
    found = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise InputError(f"sequences folder not found: {folder}")
        found += sorted(p for p in folder.glob("*.mp4") if p.with_suffix(".gt.txt").is_file())
    unknown = set(exclude) - {p.stem for p in found}
    if unknown:
        raise InputError(f"--exclude names no sequence of {', '.join(map(str, folders))}: {', '.join(sorted(unknown))}")
    return [p for p in found if p.stem not in set(exclude)]


def person_bank(archives: str | Path | None):
    """Pasted people from the pedestrian crop archives in ``archives`` (a data folder); None without one."""
    from .data import extract_archive
    from .detector_data import PersonBank

    if archives is None:
        return None
    folders = {extract_archive(Path(archives) / name): box for name, box in PERSON_ARCHIVES.items()
               if (Path(archives) / name).is_file()}
    return PersonBank.from_folders(folders) if folders else None


def build(sequences: list[Path], out: str | Path, *, steps: int = 2500, work: str | Path | None = None,
          archives: str | Path | None = None, seed: int = 0, log=print) -> Path:
    """Train on ``sequences`` (resuming in ``work``) and export ``out``; returns its path."""
    from .detector import export_onnx, train
    from .detector_data import load_sequence

    if not sequences:
        raise DataError("no annotated sequences to train on")
    names = sorted(p.stem for p in sequences)
    key = hashlib.sha256(f"{names}|{steps}|{seed}|{archives is not None}".encode()).hexdigest()[:12]
    work = Path(work) if work else Path.home() / ".cache" / "lowres_sdk" / "detector" / key
    log(f"loading {len(sequences)} sequences; checkpoints in {work}")
    seqs = [load_sequence(p, p.with_suffix(".gt.txt")) for p in sequences]
    model = train(seqs, work, steps=steps, seed=seed, people=person_bank(archives), log=log)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    about = {"trained_on": names, "steps": steps, "seed": seed,
             "pasted_people": sorted(PERSON_ARCHIVES) if archives is not None else []}
    return export_onnx(model, out, about)


@click.command("train-detector")
@click.argument("sequences", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The detector ONNX to write.")
@click.option("--exclude", multiple=True, help="A sequence (file stem) to leave out; repeat for more.")
@click.option("--steps", type=click.IntRange(min=1), default=2500, show_default=True, help="Training steps.")
@click.option("--people", "archives", type=click.Path(file_okay=False), default=None,
              help="A data folder holding pedestrian crop archives to paste into frames (e.g. ../shared/data).")
@click.option("--work", type=click.Path(file_okay=False), default=None,
              help="Checkpoint folder (default: a cache folder named by the training set); a rerun resumes there.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def train_detector_command(sequences, out, exclude, steps, archives, work, overwrite):
    """Train the region detector of `lowres video --crops detector` on the annotated sequences
    (MOT-format NAME.mp4 + NAME.gt.txt) in the SEQUENCES folders, leaving out each --exclude."""
    if Path(out).exists() and not overwrite:
        raise InputError(f"{out} exists: pass --overwrite to replace it")
    path = build(sequences_in(sequences, exclude), out, steps=steps, work=work, archives=archives,
                 log=lambda msg: click.echo(msg, err=True))
    click.echo(f"detector written to {path}")
