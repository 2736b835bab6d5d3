"""The one result schema: a classifier's answer for one crop (`Prediction`) and for N (`Predictions`).

`record` builds the dict that `lowres classify --json`, the server's ``results`` and the video
JSONL's objects all print, so the three surfaces cannot drift apart:

- ``label``: the answer, a class name, or ``"unknown"`` when the best class's probability is below
  its threshold (``known`` is then False);
- ``best`` / ``index`` / ``score``: the model's best class, its column in ``classes`` and its
  probability -- always the best class, also when ``label`` is ``"unknown"``;
- ``top_k`` (classify, serve): the k most probable classes, best first, as ``{label, score}``;
- ``probs`` (on request): every class's probability, in ``classes`` order.
"""
from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from typing import ClassVar, Iterator, NamedTuple, Sequence, overload

import numpy as np

from .errors import InputError

UNKNOWN = "unknown"
# The keys every surface's record has (classify and serve add top_k; the video JSONL adds box, xyxy, track).
RECORD_KEYS = ("label", "known", "best", "index", "score")
SCORE_DIGITS = 5  # rounding of printed probabilities: enough to rank, short enough to read


class Scored(NamedTuple):
    """A class and its probability."""

    label: str
    score: float


class TopK(NamedTuple):
    """The k most probable classes of N crops, best first (class names, never "unknown")."""

    indices: np.ndarray      # int64 [N, k]
    labels: list[list[str]]  # [N][k]
    scores: np.ndarray       # float32 [N, k]


def record(label: str, known: bool, best: str, index: int, score: float, top_k: Sequence[Scored] | None = None,
           probs: Sequence[float] | None = None) -> dict:
    """The schema's dict for one answer (module docstring); ``top_k`` / ``probs`` only when given."""
    out = {"label": label, "known": bool(known), "best": best, "index": int(index),
           "score": round(float(score), SCORE_DIGITS)}
    if top_k is not None:
        out["top_k"] = [{"label": n, "score": round(float(s), SCORE_DIGITS)} for n, s in top_k]
    if probs is not None:
        out["probs"] = [float(v) for v in probs]
    return out


@dataclass(frozen=True)
class Prediction:
    """One crop's answer: ``label`` ("unknown" below the threshold, then ``known`` is False), and the
    model's best class (``index`` into the classifier's labels, ``score``) whatever the label."""

    label: str
    known: bool
    index: int
    score: float
    top_k: tuple[Scored, ...]           # the most probable classes, best first (length set by the caller)
    probs: np.ndarray | None = field(default=None, repr=False, compare=False)  # [C], every class

    @property
    def best(self) -> str:
        """The best class's name (``label`` unless it is "unknown")."""
        return self.top_k[0].label

    def to_dict(self, probs: bool = False) -> dict:
        return record(self.label, self.known, self.best, self.index, self.score, self.top_k,
                      self.probs if probs and self.probs is not None else None)

    def to_json(self, probs: bool = False) -> str:
        return json.dumps(self.to_dict(probs))


@dataclass
class Predictions:
    """Classifier output for N crops: a sequence of `Prediction` (``p[0]``, ``for x in p``, ``p[2:5]``)
    backed by parallel arrays.

    ``labels[i]`` is ``"unknown"`` where ``scores[i]`` is below the threshold of its best class
    (``unknown_below``: one number for every label, or label -> threshold; then ``known[i]`` is
    False); ``indices``, ``scores`` and ``probs`` always describe the model's best class."""

    indices: np.ndarray   # int64 [N], best class
    labels: list[str]     # [N], its name, or "unknown" below the threshold
    scores: np.ndarray    # float32 [N], its probability
    probs: np.ndarray     # float32 [N, C]
    classes: list[str]    # the C class names, in probs' column order
    known: np.ndarray = field(default=None)  # bool [N]: scores >= their class's threshold (all True without one)
    unknown_below: float | dict[str, float] | None = None
    PER_MODEL: ClassVar[tuple[str, ...]] = ("classes", "unknown_below")  # the fields that are not one entry per crop
    TOP_K: ClassVar[int] = 3  # classes a `Prediction` lists unless `top_k` is asked for more

    def __post_init__(self):
        if self.known is None:
            self.known = np.ones(len(self.indices), dtype=bool)

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, i: int) -> Prediction: ...

    @overload
    def __getitem__(self, i: slice) -> Predictions: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Predictions(self.indices[i], self.labels[i], self.scores[i], self.probs[i], self.classes,
                               self.known[i], self.unknown_below)
        try:
            i = operator.index(i)
        except TypeError:
            raise InputError(f"Predictions are indexed by an int or a slice, got {type(i).__name__}") from None
        if not -len(self) <= i < len(self):
            raise IndexError(f"prediction {i} out of range for {len(self)} crops")
        return self._one(i % len(self), min(self.TOP_K, len(self.classes)))

    def _one(self, i: int, k: int) -> Prediction:
        order = np.argsort(-self.probs[i], kind="stable")[:k]
        return Prediction(self.labels[i], bool(self.known[i]), int(self.indices[i]), float(self.scores[i]),
                          tuple(Scored(self.classes[j], float(self.probs[i, j])) for j in order), self.probs[i])

    def __iter__(self) -> Iterator[Prediction]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        shown = ", ".join(f"{p.label} {p.score:.2f}" for p in self[:4])
        more = f", ... {len(self) - 4} more" if len(self) > 4 else ""
        return f"Predictions({len(self)} crops: [{shown}{more}], {len(self.classes)} classes)"

    def top_k(self, k: int) -> TopK:
        """(indices [N, k], labels, scores [N, k]) of the k most probable classes, best first
        (class names, never "unknown"); a `TopK` named tuple."""
        k = _int_arg(k, "k")
        if not 1 <= k <= self.probs.shape[1]:
            raise InputError(f"k must be in 1..{self.probs.shape[1]}, got {k}")
        idx = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return TopK(idx, [[self.classes[j] for j in row] for row in idx], np.take_along_axis(self.probs, idx, 1))

    def to_dict(self, top_k: int = 1, probs: bool = False) -> list[dict]:
        """One schema record (module docstring) per crop, with the ``top_k`` best classes."""
        k = min(_int_arg(top_k, "top_k"), len(self.classes))
        return [self._one(i, k).to_dict(probs) for i in range(len(self))]

    def to_json(self, top_k: int = 1, probs: bool = False) -> str:
        """``{"classes": [...], "results": [record, ...]}``, the server's answer."""
        return json.dumps({"classes": self.classes, "results": self.to_dict(top_k, probs)})

    def to_pandas(self):
        """A DataFrame, one row per crop: label, known, best, index, score and one column per class."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise ModuleNotFoundError("Predictions.to_pandas needs pandas: pip install pandas", name="pandas") from None
        frame = pd.DataFrame({"label": self.labels, "known": np.asarray(self.known, bool),
                              "best": [self.classes[i] for i in self.indices], "index": self.indices,
                              "score": self.scores})
        return frame.join(pd.DataFrame(self.probs, columns=[f"p_{c}" for c in self.classes]))


def _int_arg(value, name: str) -> int:
    """``value`` as an int (Python or numpy integer; not bool, float or str), else InputError."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(f"{name} must be an integer, got {type(value).__name__} {value!r}"[:200]) from None
