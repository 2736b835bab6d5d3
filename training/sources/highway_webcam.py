"""Cars and trucks cropped from a public highway web camera (the `cropped_data.zip` of a HOG + SVM
vehicle-classification project): a second fixed-camera vehicle source, small but unseen."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import Crop, Source

ARCHIVE = "cropped_data.zip"


def crops(snapshot: Path) -> Iterator[Crop]:
    import zipfile

    import cv2
    import numpy as np

    with zipfile.ZipFile(snapshot / ARCHIVE) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != "cropped_data" or parts[1] not in ("car", "truck") \
                    or not parts[2].lower().endswith(".jpg"):
                continue  # the archive also holds macOS metadata (__MACOSX/, .DS_Store)
            img = cv2.imdecode(np.frombuffer(zf.read(name), np.uint8), cv2.IMREAD_COLOR)
            if img is not None:
                yield parts[1], Path(parts[2]).stem, img


HIGHWAY_WEBCAM = Source(
    "highway-webcam", "github:jyz5257/Moving-Vehicle-Classification-HOG", "34833b85d0d350e4dc5b3c85eb29060be858056b",
    "no licence stated by the repository (research use)", ("car", "truck"),
    "cars and trucks cut by background subtraction from a highway web camera; group = crop",
    {ARCHIVE: "19e4b0f4ff07b1efb17d459f92f7957001defc18bfd454f6ab500b0716c47c1f"}, crops)
