"""A gallery of embeddings for retrieval: ids + metadata + unit vectors, exact cosine top-k in numpy
(batched, memory-bounded) or faiss (extra `faiss`) behind the same API, saved without pickle
(``vectors.npy`` + ``gallery.json``) and refused by an embedder it was not built with."""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import replace_dir
from .bundle import read_json, sha256_file
from .errors import BundleError, InputError

FORMAT = "lowres_sdk.gallery/1"
FILES = ("gallery.json", "vectors.npy")
UNIT_TOLERANCE = 1e-3  # |norm - 1| a saved vector may have (float32 round-off is ~1e-7)


class UnverifiedGalleryWarning(UserWarning):
    """A gallery without a model fingerprint was searched anyway."""


@dataclass
class SearchResults:
    """Per query, the ``k`` best gallery items, best first."""

    ids: list[list[str]]
    scores: np.ndarray    # float32 [Q, k] cosine similarities
    indices: np.ndarray   # int64 [Q, k] rows of the gallery


class Gallery:
    def __init__(self, dim: int, fingerprint: str | None = None, backend: str = "numpy",
                 source_bundle: str | None = None):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise InputError(f"dim must be an integer >= 1, got {dim!r}")
        dim = int(dim)
        if backend not in ("numpy", "faiss"):
            raise InputError(f"backend must be 'numpy' or 'faiss', got {backend!r}")
        self.dim, self.fingerprint, self.backend = dim, fingerprint, backend
        self.source_bundle = source_bundle  # where the embedder came from, so `lowres search` can find it
        self.vectors = np.zeros((0, dim), np.float32)
        self.ids: list[str] = []
        self.metadata: list[dict] = []
        self._faiss = None

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def for_embedder(cls, embedder, backend: str = "numpy") -> "Gallery":
        return cls(embedder.dim, embedder.bundle.embedding_space, backend, str(Path(embedder.bundle.path).resolve()))

    def check_embedder(self, embedder, unverified_ok: bool = False) -> None:
        """BundleError unless ``embedder`` makes vectors this gallery can be searched with. A gallery
        that records no model fingerprint cannot show that, and is refused unless ``unverified_ok``
        (then a `UnverifiedGalleryWarning` says so)."""
        if embedder.dim != self.dim:
            raise BundleError(f"the gallery holds {self.dim}-d embeddings; this embedder makes {embedder.dim}-d ones")
        if not self.fingerprint:
            message = (f"the gallery records no model fingerprint, so nothing shows its vectors come from "
                       f"{embedder.bundle.path}'s model")
            if not unverified_ok:
                raise BundleError(f"{message}; re-index it with `lowres index --bundle {embedder.bundle.path}` "
                                  f"(or accept the risk: unverified_ok=True, `lowres search --unverified-ok`)")
            warnings.warn(f"{message}: scores are meaningless if it was another model", UnverifiedGalleryWarning,
                          stacklevel=2)
        # An embedder of the same feature space is fine (e.g. an FSR embedder for low-res queries
        # against a gallery indexed by its HR extractor); any other model's vectors are not comparable.
        if self.fingerprint and self.fingerprint not in (embedder.bundle.embedding_space, embedder.bundle.fingerprint):
            raise BundleError(f"the gallery was built with model {self.fingerprint[:12]}, not with "
                              f"{embedder.bundle.embedding_space[:12]} ({embedder.bundle.path}); re-index it with "
                              f"this bundle")

    def add(self, vectors: np.ndarray, ids: list[str], metadata: list[dict] | None = None) -> None:
        vectors = self._as_vectors(vectors)
        ids = [str(i) for i in ids]
        if len(ids) != len(vectors):
            raise InputError(f"{len(vectors)} vectors but {len(ids)} ids")
        metadata = metadata if metadata is not None else [{} for _ in ids]
        if len(metadata) != len(ids):
            raise InputError(f"{len(ids)} ids but {len(metadata)} metadata entries")
        clash = (set(ids) & set(self.ids)) | {i for i, n in Counter(ids).items() if n > 1}
        if clash:
            raise InputError(f"ids already in the gallery or repeated: {sorted(clash)[:5]}")
        self.vectors = np.concatenate([self.vectors, vectors])
        self.ids += ids
        self.metadata += [dict(m) for m in metadata]
        self._faiss = None

    def remove(self, ids: list[str]) -> None:
        ids = set(map(str, ids))
        missing = ids - set(self.ids)
        if missing:
            raise InputError(f"not in the gallery: {sorted(missing)[:5]}")
        keep = [i for i, x in enumerate(self.ids) if x not in ids]
        self.vectors = self.vectors[keep]
        self.ids = [self.ids[i] for i in keep]
        self.metadata = [self.metadata[i] for i in keep]
        self._faiss = None

    def search(self, queries: np.ndarray, top_k: int = 10, query_batch: int = 256,
               gallery_batch: int = 65536) -> SearchResults:
        """Exact cosine top-k; memory stays within query_batch x gallery_batch scores at a time."""
        queries = self._as_vectors(queries)
        if len(self) == 0:
            raise InputError("the gallery is empty")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise InputError(f"top_k must be an integer, got {top_k!r}")
        k = min(int(top_k), len(self))
        if k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        if self.backend == "faiss":
            scores, idx = self._faiss_index().search(queries, k)
        else:
            scores = np.empty((len(queries), k), np.float32)
            idx = np.empty((len(queries), k), np.int64)
            for q0 in range(0, len(queries), query_batch):
                q = queries[q0:q0 + query_batch]
                best_s = np.full((len(q), 0), -np.inf, np.float32)
                best_i = np.zeros((len(q), 0), np.int64)
                for g0 in range(0, len(self), gallery_batch):
                    s = q @ self.vectors[g0:g0 + gallery_batch].T
                    cand_s = np.concatenate([best_s, s], 1)
                    cand_i = np.concatenate([best_i, np.arange(g0, g0 + s.shape[1])[None].repeat(len(q), 0)], 1)
                    if cand_s.shape[1] > k:
                        keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
                    else:
                        keep = np.argsort(-cand_s, 1)
                    best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
                order = np.argsort(-best_s, axis=1, kind="stable")
                scores[q0:q0 + len(q)] = np.take_along_axis(best_s, order, 1)
                idx[q0:q0 + len(q)] = np.take_along_axis(best_i, order, 1)
        ids = [[self.ids[j] for j in row] for row in idx]
        return SearchResults(ids, scores.astype(np.float32), idx.astype(np.int64))

    def _faiss_index(self):
        if self._faiss is None:
            try:
                import faiss
            except ImportError:
                raise InputError("backend='faiss' needs faiss: pip install 'lowres_sdk[faiss]'") from None
            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(self.vectors)
        return self._faiss

    def _as_vectors(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputError(f"expected [N, {self.dim}] embeddings, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise InputError("embeddings contain NaN or infinite values")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InputError("an embedding is all zeros")
        return np.ascontiguousarray(x / norms)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write ``path``/vectors.npy + gallery.json (no pickle), atomically. ``path`` may be new,
        empty or a gallery; anything else is refused with OutputError (``overwrite``: also a
        gallery folder holding other files, which are then deleted)."""
        with replace_dir(path, "gallery", _recognise_gallery, overwrite) as tmp:
            np.save(tmp / "vectors.npy", self.vectors, allow_pickle=False)
            meta = {"format": FORMAT, "dim": self.dim, "fingerprint": self.fingerprint, "bundle": self.source_bundle,
                    "count": len(self),
                    "ids": self.ids, "metadata": self.metadata, "vectors_sha256": sha256_file(tmp / "vectors.npy")}
            (tmp / "gallery.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | os.PathLike, embedder=None, backend: str = "numpy",
             unverified_ok: bool = False) -> "Gallery":
        """Read a saved gallery; BundleError (naming the fault) unless every part verifies, and, given
        ``embedder``, unless it fits (`check_embedder`)."""
        path = Path(path)
        meta = _read_gallery_json(path)
        where = path / "gallery.json"

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise BundleError(f"{where}: {what}")

        need(meta.get("format") == FORMAT, f"format {meta.get('format')!r}, expected {FORMAT!r}")
        dim, count, ids, metadata = (meta.get(k) for k in ("dim", "count", "ids", "metadata"))
        need(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 1,
             f"'dim' must be an integer >= 1, got {dim!r}")
        need(isinstance(count, int) and not isinstance(count, bool) and count >= 0,
             f"'count' must be an integer >= 0, got {count!r}")
        need(isinstance(ids, list) and all(isinstance(i, str) for i in ids), "'ids' must be a list of strings")
        need(len(ids) == count and len(set(ids)) == count,
             f"{len(ids)} ids ({len(set(ids))} distinct) for count {count}")
        need(isinstance(metadata, list) and len(metadata) == count and all(isinstance(m, dict) for m in metadata),
             f"'metadata' must be a list of {count} objects, one per id")
        for key in ("fingerprint", "bundle"):
            need(meta.get(key) is None or isinstance(meta[key], str), f"'{key}' must be a string or null")
        need(isinstance(meta.get("vectors_sha256"), str), "'vectors_sha256' is missing")
        vec_file = path / "vectors.npy"
        try:
            if sha256_file(vec_file) != meta["vectors_sha256"]:
                raise BundleError(f"{vec_file} does not match gallery.json (changed or damaged)")
            vectors = np.load(vec_file, allow_pickle=False)
        except OSError as e:
            raise BundleError(f"cannot read {vec_file}: {e.strerror or e}") from e
        except ValueError as e:  # object arrays (need pickle), malformed headers
            raise BundleError(f"{vec_file} is not a plain numeric array: {e}") from e
        if not isinstance(vectors, np.ndarray) or vectors.dtype.kind != "f" or vectors.shape != (count, dim):
            raise BundleError(f"{vec_file}: expected float [{count}, {dim}] vectors, got "
                              f"{getattr(vectors, 'dtype', type(vectors).__name__)} {getattr(vectors, 'shape', '')}")
        vectors = vectors.astype(np.float32)
        if not np.isfinite(vectors).all():
            raise BundleError(f"{vec_file} contains NaN or infinite values")
        norms = np.linalg.norm(vectors, axis=1)
        if count and not np.all(np.abs(norms - 1) <= UNIT_TOLERANCE):
            bad = int(np.argmax(np.abs(norms - 1)))
            raise BundleError(f"{vec_file}: vectors must have unit length, row {bad} has norm {norms[bad]:.4g}")
        g = cls(dim, meta["fingerprint"], backend, meta.get("bundle"))
        g.vectors, g.ids, g.metadata = np.ascontiguousarray(vectors), list(ids), [dict(m) for m in metadata]
        if embedder is not None:
            g.check_embedder(embedder, unverified_ok)
        return g


def _read_gallery_json(path: Path) -> dict:
    f = path / "gallery.json"
    try:
        meta = read_json(f, "a gallery description")
    except FileNotFoundError:
        raise BundleError(f"not a gallery: {path} (no gallery.json)") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{f}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _recognise_gallery(folder: Path) -> list[str] | None:
    """For `replace_dir`: None unless ``folder`` is a gallery; else its entries that are not."""
    try:
        meta = _read_gallery_json(folder)
    except BundleError:
        return None
    if meta.get("format") != FORMAT:
        return None
    return sorted(set(os.listdir(folder)) - set(FILES))
