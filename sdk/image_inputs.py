"""The image arguments of `lowres classify`: files, folders (recursive with ``-r``) and glob patterns,
expanded into one entry per image, each either readable or carrying the reason it is not, so one
bad file costs its own line and never the batch."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .crops import IMAGE_SUFFIXES, read_image
from .errors import InputError

GLOB_CHARS = "*?["


@dataclass
class ImageInput:
    name: str                     # as the user will recognise it: the path as given or found
    error: str | None = None      # why it has no image (missing, unreadable, a folder without images)


def expand(args: list[str], recursive: bool = False) -> list[ImageInput]:
    """One `ImageInput` per image named by ``args`` (files, folders, globs), in the order given;
    folders and globs sorted. A folder or pattern that yields no image is an entry with an error."""
    out: list[ImageInput] = []
    for arg in args:
        arg = os.fspath(arg)
        if os.path.isdir(arg):
            found = _folder(Path(arg), recursive)
            why = f"{arg}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder" + (
                "" if recursive else " (-r also reads its subfolders)")
        elif not os.path.exists(arg) and any(c in arg for c in GLOB_CHARS):
            found = sorted(p for p in glob.glob(arg, recursive=recursive)
                           if os.path.isfile(p) and p.lower().endswith(IMAGE_SUFFIXES))
            why = f"{arg}: no image file matches this pattern"
        else:
            out.append(ImageInput(arg))
            continue
        out += [ImageInput(p) for p in found] if found else [ImageInput(arg, why)]
    return out


def _folder(root: Path, recursive: bool) -> list[str]:
    files = root.rglob("*") if recursive else root.iterdir()
    return sorted(str(p) for p in files if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_batches(inputs: list[ImageInput], size: int) -> Iterator[list[tuple[ImageInput, np.ndarray | None]]]:
    """``inputs`` read ``size`` at a time as (input, image or None); an unreadable one gets its error."""
    for start in range(0, len(inputs), size):
        batch = []
        for item in inputs[start:start + size]:
            image = None
            if item.error is None:
                try:
                    image = read_image(item.name)
                except InputError as e:
                    item.error = str(e)
            batch.append((item, image))
        yield batch
