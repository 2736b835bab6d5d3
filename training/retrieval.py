"""Retrieval metrics (papers 003/004): mAP, precision@k and recall@k of queries against a
gallery, relevance = same label. AP comes from scikit-learn; the ranking is exact cosine."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from lowres_sdk.errors import InputError


def retrieval_metrics(queries: np.ndarray, query_labels, gallery: np.ndarray, gallery_labels,
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    """Mean over queries of AP, P@k and R@k; queries with no relevant gallery item are skipped
    (and counted in ``queries_without_match``). Embeddings need not be normalised."""
    q = np.asarray(queries, np.float64)
    g = np.asarray(gallery, np.float64)
    ql, gl = np.asarray(query_labels), np.asarray(gallery_labels)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise InputError(f"queries {q.shape} and gallery {g.shape} must be [N, D] with the same D")
    if len(ql) != len(q) or len(gl) != len(g):
        raise InputError("one label per query and per gallery item is needed")
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    scores = q @ g.T
    relevant = ql[:, None] == gl[None, :]
    has = relevant.any(1)
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, 1)[has]
    n_rel = relevant[has].sum(1)
    out = {"queries": int(has.sum()), "queries_without_match": int((~has).sum()),
           "map": float(np.mean([average_precision_score(r, s) for r, s in zip(relevant[has], scores[has])]))
           if has.any() else float("nan")}
    for k in ks:
        out[f"p_at_{k}"] = float((hits[:, :k].sum(1) / k).mean())
        out[f"r_at_{k}"] = float((hits[:, :k].sum(1) / n_rel).mean())
    return out
