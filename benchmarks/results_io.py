"""What every benchmark script shares: has a run finished, and writing its JSON atomically."""
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
