"""sdk/_io.py: atomic files, and folder swaps that never delete what is not ours."""
from __future__ import annotations

import os

import pytest

from lowres_sdk import OutputError
from lowres_sdk._io import atomic_write_text, check_replaceable, replace_dir


def ours(folder):  # a toy kind: a folder with a MARK file is ours; other entries are "extra"
    return sorted(set(os.listdir(folder)) - {"MARK", "data"}) if (folder / "MARK").exists() else None


def fill(tmp):
    (tmp / "MARK").write_text("")
    (tmp / "data").write_text("new")


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    f = tmp_path / "sub" / "a.json"
    atomic_write_text(f, "one")
    os.chmod(f, 0o640)
    atomic_write_text(f, "two")
    assert f.read_text() == "two" and f.stat().st_mode & 0o777 == 0o640
    assert os.listdir(f.parent) == ["a.json"]


def test_new_empty_and_own_folders_are_replaced(tmp_path):
    for target in (tmp_path / "new", tmp_path / "empty"):
        if target.name == "empty":
            target.mkdir()
        with replace_dir(target, "thing", ours) as tmp:
            fill(tmp)
        assert (target / "data").read_text() == "new"
    with replace_dir(tmp_path / "new", "thing", ours) as tmp:  # ours over ours
        (tmp / "MARK").write_text("")
        (tmp / "data").write_text("newer")
    assert (tmp_path / "new" / "data").read_text() == "newer"
    assert sorted(os.listdir(tmp_path)) == ["empty", "new"]  # no temp or .old folders left


@pytest.mark.parametrize("setup, match", [
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "is not a thing"),
    (lambda p: p.write_text("a file"), "not a folder"),
    (lambda p: ((p.parent / "real").mkdir(), os.symlink(p.parent / "real", p)), "symbolic link"),
    (lambda p: (p.mkdir(), (p / "MARK").write_text(""), (p / "notes.txt").write_text("mine")), "--overwrite"),
])
def test_anything_else_is_refused_and_left_alone(tmp_path, setup, match):
    target = tmp_path / "out"
    setup(target)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(OutputError, match=match):
        with replace_dir(target, "thing", ours) as tmp:
            fill(tmp)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_overwrite_replaces_our_folder_with_extra_files(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "MARK").write_text("")
    (target / "engine.plan").write_text("x")
    with replace_dir(target, "thing", ours, overwrite=True) as tmp:
        fill(tmp)
    assert sorted(os.listdir(target)) == ["MARK", "data"]


def test_working_directory_is_never_replaced(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "MARK").write_text("")
    monkeypatch.chdir(work)
    for target in (".", str(tmp_path)):
        with pytest.raises(OutputError):
            check_replaceable(target, "thing", ours)
    assert os.listdir(work) == ["MARK"]


def test_failure_while_filling_keeps_the_old_folder_and_leftovers_do_not_block(tmp_path):
    target = tmp_path / "out"
    with replace_dir(target, "thing", ours) as tmp:
        fill(tmp)
    (tmp_path / ".out.old").mkdir()  # what an older version left after a crash
    with pytest.raises(RuntimeError):
        with replace_dir(target, "thing", ours) as tmp:
            raise RuntimeError("export failed")
    assert (target / "data").read_text() == "new"
    with replace_dir(target, "thing", ours) as tmp:
        (tmp / "MARK").write_text("")
    assert os.listdir(target) == ["MARK"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_parent_is_an_output_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="cannot write"):
        with replace_dir(locked / "out", "thing", ours) as tmp:
            fill(tmp)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_unwritable_location_is_an_output_error_even_for_root():
    with pytest.raises(OutputError, match="cannot write"):
        with replace_dir("/proc/self/lowres-out", "thing", ours) as tmp:
            fill(tmp)
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text("/proc/self/lowres-out.json", "x")
