"""Long steps say what they do: a dataset archive's extraction prints progress lines on stderr."""
from __future__ import annotations

import io
import tarfile

import pytest

pytest.importorskip("torch", reason="training's data module needs torch")


def test_extraction_prints_progress(tmp_path, capsys):
    from lowres_sdk.training.data import extract_archive

    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(7):
            info = tarfile.TarInfo(f"train/a/{i}.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    folder = extract_archive(archive, tmp_path / "cache")
    assert sorted(p.name for p in (folder / "train" / "a").iterdir()) == [f"{i}.txt" for i in range(7)]
    err = capsys.readouterr().err
    assert err.startswith("extracting tiny.tar.gz: 7 files, ") and "\r" not in err
    extract_archive(archive, tmp_path / "cache")  # already extracted: nothing to say
    assert capsys.readouterr().err == ""
