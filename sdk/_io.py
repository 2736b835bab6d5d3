"""Atomic writes for everything lowres_sdk saves, and the rule for replacing a folder.

A file is written under a temp name beside its target and renamed over it; a folder (bundle,
gallery) is built beside its target and swapped in, and only an empty folder or one that is
recognisably ours is ever replaced -- never a user's folder. Torch-free: training imports it too.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import OutputError

# recognise(folder) -> None when the folder is not ours, else the entries in it that are not
# (they would be deleted by a replacement, so they need overwrite=True).
Recognise = Callable[[Path], "list[str] | None"]


def _fail(target: Path, e: OSError) -> OutputError:
    return OutputError(f"cannot write {target}: {e.strerror or e}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _fail(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600; keep the mode of the file we replace, else what open() would give
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _fail(path, e) from e
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _holds_cwd(target: Path) -> bool:
    try:
        cwd, real = Path.cwd().resolve(), target.resolve()
    except OSError:
        return False
    return cwd == real or real in cwd.parents


def check_replaceable(target: str | os.PathLike, what: str, recognise: Recognise, overwrite: bool = False) -> None:
    """OutputError unless writing the folder ``target`` loses nothing the user did not ask to replace.

    Fine: a missing path, an empty folder, or a ``what`` (``recognise`` says so) holding nothing
    else. A ``what`` with other files in it needs ``overwrite``. Anything else is refused, as are
    files, symbolic links and the working directory or a folder above it."""
    target = Path(target)
    if not os.path.lexists(target):
        return
    if target.is_symlink():
        raise OutputError(f"{target} is a symbolic link; give the folder it points to, or a new path")
    if not target.is_dir():
        raise OutputError(f"{target} exists and is not a folder; choose a new path for the {what}")
    if _holds_cwd(target):
        raise OutputError(f"{target} is the working directory or holds it; write the {what} to a new folder")
    try:
        entries = sorted(os.listdir(target))
    except OSError as e:
        raise _fail(target, e) from e
    if not entries:
        return
    extra = recognise(target)
    if extra is None:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise OutputError(f"{target} is not a {what} (it holds {shown}); lowres_sdk replaces only a {what}: "
                          f"choose a new or empty folder")
    if extra and not overwrite:
        raise OutputError(f"{target} is a {what} but also holds {', '.join(extra[:5])}, which replacing it would "
                          f"delete; pass overwrite (--overwrite) to replace it anyway")


def check_writable(target: str | os.PathLike) -> None:
    """OutputError unless a folder can be created beside ``target`` (call before long work; creates
    the missing parent folders, as the write would)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{target.name}.probe-", dir=target.parent))
    except OSError as e:
        raise _fail(target, e) from e


@contextlib.contextmanager
def replace_dir(target: str | os.PathLike, what: str, recognise: Recognise, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to fill; on success swap it in for ``target``.

    ``check_replaceable`` runs before and again just before the swap. The old folder is renamed to
    a unique hidden name first, so a crash mid-swap leaves it (never a half-written one) on disk,
    and a leftover from an earlier crash never blocks a later write."""
    target = Path(target)
    check_replaceable(target, what, recognise, overwrite)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the result should read like any folder
    except OSError as e:
        raise _fail(target, e) from e
    try:
        yield tmp
        check_replaceable(target, what, recognise, overwrite)
        try:
            if os.path.lexists(target):
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, old)  # a folder may replace an empty folder (POSIX rename)
                try:
                    os.replace(tmp, target)
                except BaseException:
                    os.replace(old, target)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except OSError as e:
            raise _fail(target, e) from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
