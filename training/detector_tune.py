"""Per-category score thresholds of a region detector, chosen on the sequences it trained on (never on
one it is scored on) and written into its ONNX metadata, where `DetectorRegions` reads them.

Each category's threshold is the one of ``GRID`` that maximises the mean F1 of the pipeline's named boxes
(IoU >= 0.5, ground truth >= 16 px wide, the benchmark's scoring) over that category's training sequences.

    python -m training.detector_tune MODEL.onnx FOLDER... [--work DIR]
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from lowres_sdk.errors import InputError
from lowres_sdk.video.detector import META_KEY, DEFAULT_THRESHOLD, DetectorRegions, read_meta

GRID = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


class _Replay:
    """A detector whose candidates (every peak at the grid's lowest threshold) were found once per
    video; each threshold of the grid only selects among them, as a detector built with it would."""

    def __init__(self, detector: DetectorRegions, candidates: list):
        self.detector, self.candidates = detector, candidates
        self.categories, self.tracker_defaults = detector.categories, detector.tracker_defaults
        self.last_categories = detector.last_categories

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        boxes = self.detector.select(*self.candidates[index])
        self.last_categories = self.detector.last_categories
        return boxes


def candidates(model: Path, video: Path, threshold: float) -> list:
    from lowres_sdk.video import frames

    detector = DetectorRegions(model, threshold=threshold)
    return [detector.candidates(f.image) for f in frames(video, decode_threads=1)]


def f1_by_threshold(model: Path, video: Path, classifier, grid=GRID, work: Path | None = None) -> dict:
    """F1 (and recall, precision) of the pipeline's named boxes on ``video`` at each threshold of ``grid``."""
    import tempfile

    from lowres_sdk.video import process
    from lowres_sdk.video.scoring import score
    from lowres_sdk.video.tracking import TrackerConfig

    found, out = candidates(model, video, min(grid)), {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for t in grid:
            replay = _Replay(DetectorRegions(model, threshold=t), found)
            process(video, classifier, tmp, replay, tracker=TrackerConfig(**replay.tracker_defaults),
                    write_video=False, progress=False)
            s = score(video.with_suffix(".gt.txt"), Path(tmp) / "detections.jsonl")
            r, p = s["recall"] or 0.0, s["precision"] or 0.0
            out[t] = {"f1": round(2 * r * p / (r + p), 4) if r + p else 0.0, "recall": r, "precision": p}
    return out


def choose(model: str | Path, folders, classifier=None, grid=GRID, log=print) -> dict:
    """Thresholds per category from the training sequences of ``model`` found in ``folders``."""
    from lowres_sdk import Classifier
    from lowres_sdk.video.scoring import read_mot

    model, meta = Path(model), read_meta(model)
    videos = {p.stem: p for folder in map(Path, folders) for p in folder.glob("*.mp4")
              if p.with_suffix(".gt.txt").is_file()}
    missing = sorted(set(meta["trained_on"]) - set(videos))
    if missing:
        raise InputError(f"training sequences of {model.name} not found in {', '.join(map(str, folders))}: "
                         f"{', '.join(missing)}")
    classifier = classifier or Classifier()
    by_category: dict[str, list[dict]] = {c: [] for c in meta["categories"]}
    table = {}
    for name in meta["trained_on"]:
        category = read_mot(videos[name].with_suffix(".gt.txt"))[1]
        table[name] = f1_by_threshold(model, videos[name], classifier, grid)
        by_category[category].append(table[name])
        log(f"{name}: " + " ".join(f"{t}:{v['f1']:.3f}" for t, v in table[name].items()))
    chosen = {c: max(grid, key=lambda t: (float(np.mean([r[t]["f1"] for r in rows])), -t)) if rows
              else DEFAULT_THRESHOLD for c, rows in by_category.items()}
    return {"thresholds": chosen, "thresholds_chosen_on": sorted(table), "threshold_f1": table}


def write_meta(model: str | Path, updates: dict) -> None:
    """Merge ``updates`` into the detector metadata of the ONNX file ``model`` (in place)."""
    import onnx

    proto = onnx.load(str(model))
    entry = next(p for p in proto.metadata_props if p.key == META_KEY)
    entry.value = json.dumps({**json.loads(entry.value), **updates})
    onnx.save(proto, str(model))


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, exists=True))
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
def main(model, folders):
    """Choose MODEL's per-category thresholds on its training sequences (found in FOLDERS) and store them."""
    found = choose(model, folders, log=lambda m: click.echo(m, err=True))
    write_meta(model, {k: found[k] for k in ("thresholds", "thresholds_chosen_on")})
    click.echo(json.dumps(found["thresholds"]))


if __name__ == "__main__":
    main()
