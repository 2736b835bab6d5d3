"""Corrupt galleries are refused with BundleError at load; saving never replaces a folder that is
not a gallery."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lowres_sdk import BundleError, OutputError
from lowres_sdk.bundle import sha256_file
from lowres_sdk.gallery import Gallery


def saved(path, n=4, dim=3):
    g = Gallery(dim, "f" * 64)
    g.add(np.random.default_rng(0).normal(size=(n, dim)), [f"id{i}" for i in range(n)], [{"k": i} for i in range(n)])
    g.save(path)
    return path


def _edit(edit):
    def apply(p):
        meta = json.loads((p / "gallery.json").read_text())
        edit(meta)
        (p / "gallery.json").write_text(json.dumps(meta))
    return apply


def _vectors(make):  # vectors.npy replaced, hash and count fixed so only the content is wrong
    def apply(p):
        arr = make()
        np.save(p / "vectors.npy", arr, allow_pickle=arr.dtype == object)
        _edit(lambda m: m.update(vectors_sha256=sha256_file(p / "vectors.npy")))(p)
    return apply


def _set(key, value):
    return _edit(lambda m: m.__setitem__(key, value))


CORRUPTIONS = {
    "gallery.json missing": lambda p: (p / "gallery.json").unlink(),
    "gallery.json random bytes": lambda p: (p / "gallery.json").write_bytes(np.random.default_rng(0).bytes(200)),
    "gallery.json a list": lambda p: (p / "gallery.json").write_text("[]"),
    "gallery.json deep nesting": lambda p: (p / "gallery.json").write_text("[" * 100_000 + "]" * 100_000),
    "format missing": _edit(lambda m: m.pop("format")),
    "dim missing": _edit(lambda m: m.pop("dim")),
    "dim a string": _set("dim", "3"),
    "count missing": _edit(lambda m: m.pop("count")),
    "ids missing": _edit(lambda m: m.pop("ids")),
    "ids numeric": _set("ids", [0, 1, 2, 3]),
    "ids repeated": _set("ids", ["a", "a", "b", "c"]),
    "metadata shorter than ids": _edit(lambda m: m["metadata"].pop()),
    "metadata not objects": _set("metadata", [1, 2, 3, 4]),
    "vectors_sha256 missing": _edit(lambda m: m.pop("vectors_sha256")),
    "fingerprint a number": _set("fingerprint", 5),
    "vectors.npy missing": lambda p: (p / "vectors.npy").unlink(),
    "vectors.npy changed": lambda p: (p / "vectors.npy").write_bytes((p / "vectors.npy").read_bytes()[:-4] + b"\0\0\0\0"),
    "vectors object array": _vectors(lambda: np.array([[1, 2, 3]] * 4, dtype=object)),
    "vectors NaN": _vectors(lambda: np.full((4, 3), np.nan, np.float32)),
    "vectors not unit": _vectors(lambda: np.full((4, 3), 10, np.float32)),
    "vectors integer": _vectors(lambda: np.ones((4, 3), np.int64)),
    "vectors wrong shape": _vectors(lambda: np.ones((4, 5), np.float32) / np.sqrt(5)),
    "vectors not an npy": lambda p: ((p / "vectors.npy").write_text("hello"),
                                     _edit(lambda m: m.update(vectors_sha256=sha256_file(p / "vectors.npy")))(p)),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_gallery_is_refused(kind, tmp_path):
    path = saved(tmp_path / "g")
    CORRUPTIONS[kind](path)
    with pytest.raises(BundleError):
        Gallery.load(path)


def test_valid_gallery_round_trips(tmp_path):
    g = Gallery.load(saved(tmp_path / "g"))
    assert len(g) == 4 and g.metadata[2] == {"k": 2}
    assert g.search(g.vectors[1], top_k=1).ids == [["id1"]]
    with pytest.raises(Exception) as e:
        g.search(g.vectors[1], top_k=1.5)
    assert e.type.__name__ == "InputError"


def test_save_replaces_a_gallery_but_never_a_user_folder(tmp_path):
    saved(tmp_path / "g")
    saved(tmp_path / "g", n=2)  # gallery over gallery
    assert len(Gallery.load(tmp_path / "g")) == 2
    user = tmp_path / "photos"
    user.mkdir()
    (user / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(OutputError, match="not a gallery"):
        saved(user)
    assert (user / "holiday.jpg").read_bytes() == b"jpeg"
    (tmp_path / "g" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="overwrite"):
        saved(tmp_path / "g")
    g = Gallery.load(tmp_path / "g")
    g.save(tmp_path / "g", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["gallery.json", "vectors.npy"]
