"""Penn-Fudan pedestrians (Wang, Shi, Song, Shen, ACCV 2007): 345 labelled people in 170 colour photos
of campus and city streets, cut out by their annotated boxes. Snapshot: a public GitHub copy."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from .base import Crop, Source

ROOT = "data/PennFudanPed"
BOX = re.compile(r"Bounding box for object \d+ .*?:\s*\((\d+),\s*(\d+)\)\s*-\s*\((\d+),\s*(\d+)\)")


def boxes(annotation: str) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each annotated person, 0-based and end-exclusive (the files count from 1)."""
    return [(int(a) - 1, int(b) - 1, int(c), int(d)) for a, b, c, d in BOX.findall(annotation)]


def crops(snapshot: Path) -> Iterator[Crop]:
    import cv2

    from lowres_sdk.errors import DataError

    for note in sorted((snapshot / ROOT / "Annotation").glob("*.txt")):
        image = snapshot / ROOT / "PNGImages" / f"{note.stem}.png"
        img = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"cannot read image {image}")
        for x0, y0, x1, y1 in boxes(note.read_text(errors="replace")):
            crop = img[max(0, y0):y1, max(0, x0):x1]
            if crop.size:
                yield "person", note.stem, crop.copy()


PENN_FUDAN = Source(
    "penn-fudan", "github:gmguarino/PennFudan", "4d34ade817620786f55ef379ac51534d4d6ea218",
    "no licence file; the authors' notice: copyright retained, copies must respect it (research use)",
    ("person",),
    "every annotated person (345 + those labelled later) cut by its box from 170 street photos; group = photo",
    json.loads((Path(__file__).parent / "pins" / "penn-fudan.json").read_text()), crops)
