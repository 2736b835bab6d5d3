"""The streams of a many-camera run: a `StreamSpec` per source, from the command line or a sources
file (one source a line, an optional name and ``key=value`` options), checked before any stream starts."""
from __future__ import annotations

import math
import os
import shlex
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InputError
from .frames import STREAM_PREFIXES
from .regions import check_crops


@dataclass(frozen=True)
class StreamSpec:
    """One stream: where it comes from, what its outputs are called, and its own options."""

    source: str                     # a file path, a camera index or an rtsp:// / http:// URL
    name: str                       # its output folder under the run's
    fps: float | None = None        # frames a second processed (in the source's time); None: every frame
    max_frames: int | None = None   # processed frames, then the stream stops
    crops: str = "motion"           # a region stage (regions.CROPS_HELP; regions.parse_crops builds it)
    min_size: int = 12              # smallest object side worth classifying (px)
    realtime: bool = False          # a file played at its own speed, as a camera would be (drops when behind)
    loop: bool = False              # a realtime file starts again at its end (benchmarks: runs longer than the clip)
    seconds: float | None = None    # stop after this long (wall clock)

    def __post_init__(self):
        for key in ("fps", "max_frames", "min_size", "seconds"):
            value = getattr(self, key)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise InputError(f"{key} must be a finite number > 0, got {value!r}")

    @property
    def is_file(self) -> bool:
        return not (self.source.isdigit() or self.source.lower().startswith(STREAM_PREFIXES))

    @property
    def live(self) -> bool:
        """Whether frames arrive in real time: such a stream drops the frames it cannot keep up with."""
        return self.realtime or not self.is_file


OPTIONS = {f.name: f.type for f in fields(StreamSpec) if f.name not in ("source", "name")}


def _value(key: str, text: str):
    """A sources-file option's value, typed as the `StreamSpec` field says."""
    kind = OPTIONS[key]
    if "bool" in kind:
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"{key} must be true or false")
        return text.lower() in ("1", "true", "yes")
    if "float" in kind or "int" in kind:
        return (float if "float" in kind else int)(text)  # the spec checks its range
    return text


def check_source(source: str, base: Path | None = None) -> str:
    """``source`` as a stream will open it: a URL with a known scheme and a host, a camera index, or a
    file that exists (relative paths from ``base``); raises ValueError saying what is wrong."""
    if "://" in source:
        parts = urlsplit(source)
        if not source.lower().startswith(STREAM_PREFIXES):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} (expected one of "
                             f"{', '.join(p[:-3] for p in STREAM_PREFIXES)})")
        try:
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        if not parts.hostname or not port_ok:
            raise ValueError(f"bad URL {source!r}: no host, or a bad port")
        return source
    if source.isdigit():
        return source
    path = Path(source)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise ValueError(f"video not found: {path}")
    return str(path)


def default_name(source: str) -> str:
    """A stream's folder name when none is given: the file's stem, the URL's last path part, or cam<N>."""
    if source.isdigit():
        return f"cam{source}"
    if "://" in source:
        parts = urlsplit(source)
        return (parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.hostname or "stream").replace(":", "_")
    return Path(source).stem


def parse_line(line: str, base: Path | None = None) -> StreamSpec:
    """``SOURCE [NAME] [key=value ...]`` -> a `StreamSpec`; raises ValueError saying what is wrong."""
    words = shlex.split(line, comments=True)
    source, rest = words[0], words[1:]
    name = None
    if rest and "=" not in rest[0]:
        name, rest = rest[0], rest[1:]
    options = {}
    for word in rest:
        key, eq, text = word.partition("=")
        if not eq or key not in OPTIONS:
            raise ValueError(f"unknown option {word!r} (expected key=value with key one of {', '.join(OPTIONS)})")
        try:
            options[key] = _value(key, text)
        except ValueError as e:
            raise ValueError(f"bad value in {word!r}: {e}") from None
    crops = options.get("crops", "motion")
    try:
        check_crops(crops)
    except InputError as e:
        raise ValueError(str(e).replace("--crops", "crops")) from None
    source = check_source(source, base)
    name = name or default_name(source)
    if not name or name.startswith(".") or os.sep in name or "/" in name:
        raise ValueError(f"bad stream name {name!r} (a folder name: no '/', not starting with '.')")
    return StreamSpec(source, name, **options)


def _unique(specs: list[StreamSpec], where: list[str]) -> None:
    seen: dict[str, str] = {}
    for spec, at in zip(specs, where):
        if spec.name in seen:
            raise InputError(f"{at}: duplicate stream name {spec.name!r} (also {seen[spec.name]}); "
                             "give each stream a name of its own")
        seen[spec.name] = at


def read_sources(path: str | os.PathLike, **defaults) -> list[StreamSpec]:
    """The streams of a sources file: one ``SOURCE [NAME] [key=value ...]`` a line, ``#`` comments and
    blank lines skipped, relative paths from the file's folder; ``defaults`` fill the options a line
    leaves out. A bad line raises `InputError` naming it, before any stream starts."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sources file not found: {path}")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text file of sources (one URL or path a line)") from None
    specs, where = [], []
    for n, line in enumerate(lines, 1):
        try:
            if not shlex.split(line, comments=True):
                continue
            spec = parse_line(line, path.parent)
        except ValueError as e:  # shlex's unbalanced quotes too
            raise InputError(f"{path}:{n}: {e}: {line.strip()[:80]!r}") from None
        specs.append(_with_defaults(spec, line, defaults))
        where.append(f"{path}:{n}")
    if not specs:
        raise InputError(f"{path} names no sources (one URL or path a line)")
    _unique(specs, where)
    return specs


def _with_defaults(spec: StreamSpec, line: str, defaults: dict) -> StreamSpec:
    """``spec`` with ``defaults`` for the options its line does not set."""
    given = {word.partition("=")[0] for word in shlex.split(line, comments=True)[1:] if "=" in word}
    return replace(spec, **{k: v for k, v in defaults.items() if v is not None and k not in given})


def specs_from(sources, **defaults) -> list[StreamSpec]:
    """`StreamSpec` s from paths / URLs / specs as given (a sources-file line each); ``defaults`` as in
    `read_sources`."""
    specs, where = [], []
    for n, source in enumerate(sources, 1):
        if isinstance(source, StreamSpec):
            specs.append(source)
        else:
            try:
                spec = parse_line(shlex.quote(str(source)))
            except ValueError as e:
                raise InputError(f"source {n} ({source}): {e}") from None
            specs.append(_with_defaults(spec, "", defaults))
        where.append(f"source {n} ({specs[-1].source})")
    if not specs:
        raise InputError("no sources given")
    _unique(specs, where)
    return specs
