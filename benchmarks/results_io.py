"""What every benchmark script shares: has a run finished, which weights a cached bundle holds, and
writing its JSON atomically."""
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


def write_json(path: Path, data) -> None:
    from lowres_sdk._io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2))


def bundle_weights(bundle: Path) -> str | None:
    """The sha256 of the checkpoint weights a bundle was exported from (None: no bundle there), so
    a script re-exports a cached bundle whose run has changed."""
    try:
        return json.loads((bundle / "bundle.json").read_text())["provenance"]["checkpoint_sha256"]
    except (OSError, ValueError, KeyError):
        return None
