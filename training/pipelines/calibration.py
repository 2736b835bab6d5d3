"""Calibrating a fine-label classifier for its shipped head: the head's probabilities (fine classes
dropped and merged), a temperature per route fitted on camera views, the `unknown` thresholds, the ECE."""
from __future__ import annotations

import numpy as np

THRESHOLDS = np.round(np.arange(0.30, 1.0, 0.01), 2)  # the "unknown" thresholds tried
TEMPERATURES = np.round(np.arange(0.5, 3.01, 0.05), 3)  # the temperatures tried


def softmax_t(log_p: np.ndarray, t) -> np.ndarray:
    z = log_p / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


class Head:
    """The shipped head on fine probabilities: ``dropped`` classes removed and the rest renormalised, then
    summed into the ``merge`` labels (as `export.graph.FusedModel` does on the logits)."""

    def __init__(self, fine: list[str], merge: dict[str, tuple[str, ...]], dropped: tuple[str, ...]):
        self.fine, self.labels, self.dropped = list(fine), list(merge), tuple(dropped)
        self.members = [[self.fine.index(c) for c in group] for group in merge.values()]
        self._drop = [self.fine.index(c) for c in dropped]
        self.to_coarse = np.full(len(fine), -1)  # a dropped class has no shipped label
        for j, idx in enumerate(self.members):
            self.to_coarse[idx] = j

    def __call__(self, p: np.ndarray) -> np.ndarray:
        kept = p.copy()
        kept[:, self._drop] = 0
        kept /= kept.sum(1, keepdims=True)
        return np.stack([kept[:, idx].sum(1) for idx in self.members], 1)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[float, list]:
    """Expected calibration error over ``bins`` equal-width confidence bins, and the bins' rows."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total, rows = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            acc, c = float((pred[m] == labels[m]).mean()), float(conf[m].mean())
            total += m.mean() * abs(acc - c)
            rows.append({"lo": round(lo, 3), "hi": round(hi, 3), "n": int(m.sum()), "accuracy": acc, "confidence": c})
    return float(total), rows


def smallest_threshold(conf: np.ndarray, right: np.ndarray, precision: float) -> float | None:
    """The smallest of `THRESHOLDS` whose kept predictions (conf >= it) are >= ``precision`` right, or None."""
    for thr in THRESHOLDS:
        kept = conf >= thr
        if kept.any() and right[kept].mean() >= precision:
            return float(thr)
    return None


def camera_views(images: np.ndarray, aspects: np.ndarray, seed: int) -> list[np.ndarray]:
    """One random camera crop (uint8 BGR) of each stored test object: random kernel, size 6-32 px."""
    from lowres_sdk.training.degrade import Camera

    cam, rng = Camera(), np.random.default_rng(seed)
    aspects = np.ones(len(images)) if aspects is None else aspects  # stored square objects
    return [np.ascontiguousarray(cam(img, float(a), rng)[..., ::-1]) for img, a in zip(images, aspects)]


def fit_temperatures(log_p: np.ndarray, labels: np.ndarray, route: np.ndarray, routes: int, head: Head) -> list[float]:
    """Per route, the temperature of `TEMPERATURES` minimising the NLL of the head's probabilities."""
    temps = []
    for k in range(routes):
        f = route == k
        nll = [float(-np.log(head(softmax_t(log_p[f], t))[np.arange(f.sum()), labels[f]] + 1e-12).mean())
               for t in TEMPERATURES]
        temps.append(float(TEMPERATURES[int(np.argmin(nll))]))
    return temps


def unknown_thresholds(p: np.ndarray, labels: np.ndarray, head: Head, precision: float) -> tuple[float, dict]:
    """The smallest threshold whose kept predictions are >= ``precision`` right, over all predictions and
    per label (the strictest tried where none reaches it): a label seldom wrong needs a lower score."""
    conf, pred = p.max(1), p.argmax(1)
    right = pred == labels
    overall = smallest_threshold(conf, right, precision) or float(THRESHOLDS[-1])
    by_label = {label: (smallest_threshold(conf[pred == j], right[pred == j], precision) or float(THRESHOLDS[-1]))
                if (pred == j).any() else overall for j, label in enumerate(head.labels)}
    return overall, by_label


def calibrate(clf, test, head: Head, precision: float, seed: int = 1, about: str = "") -> tuple[dict, dict]:
    """Temperatures (one per route of ``clf``, a fine-label `Classifier`) fitted on the even-index half
    of ``test``'s objects of kept classes, each seen through one random camera; ECE before / after and
    the `unknown` thresholds' coverage on the odd half. Returns (the calibration block, reliability rows)."""
    from lowres_sdk.bundle import route_index

    test = test.subset(np.flatnonzero(head.to_coarse[test.labels] >= 0))
    labels = head.to_coarse[test.labels]
    views = camera_views(test.images, test.aspects, seed)
    log_p = np.log(np.clip(clf(views).probs, 1e-12, 1))
    sides = [r.min_side for r in clf.bundle.routes] or [0]
    route = np.array([route_index(sides, *v.shape[:2]) for v in views])
    fit, held = np.arange(len(views)) % 2 == 0, np.arange(len(views)) % 2 == 1
    temps = fit_temperatures(log_p[fit], labels[fit], route[fit], len(sides), head)
    t_view = np.array(temps)[route][:, None]  # each view's route's temperature
    out = {"temperature": temps[0], "method": "temperature scaling (grid search on the NLL of the shipped labels' "
                                              "probabilities)",
           "fitted_on": _fitted_on(int(fit.sum()), about, sides, temps)}
    if len(sides) > 1:
        out["route_temperatures"] = temps
        out["route_fit_objects"] = [int((fit & (route == k)).sum()) for k in range(len(sides))]
    after = head(softmax_t(log_p[held], t_view[held]))
    out["ece_before"], rows_before = ece(head(softmax_t(log_p[held], 1.0)), labels[held])
    out["ece_after"], rows_after = ece(after, labels[held])
    out["unknown_below"], out["unknown_below_by_label"] = unknown_thresholds(
        head(softmax_t(log_p[fit], t_view[fit])), labels[fit], head, precision)
    out["target_precision"] = precision
    out["held_out"] = _coverage(after, labels[held], out)
    out["ece_before"], out["ece_after"] = round(out["ece_before"], 4), round(out["ece_after"], 4)
    return out, {"before": rows_before, "after": rows_after}


def _fitted_on(objects: int, about: str, sides: list[int], temps: list[float]) -> str:
    routes = ", ".join(f">= {a} px: {b:g}" for a, b in zip(sides, temps))
    return (f"{objects} held-out objects (even indices of the test split{': ' + about if about else ''}), each through "
            "one random camera (6-32 px)" + (f"; one temperature per route ({routes}), each in its own graph"
                                             if len(sides) > 1 else ""))


def _coverage(p: np.ndarray, labels: np.ndarray, cal: dict) -> dict:
    """On held-out views: accuracy of all predictions, and share kept / accuracy of those kept by the
    one threshold and by the per-label ones."""
    conf, pred = p.max(1), p.argmax(1)
    right = pred == labels
    out = {"objects": len(labels), "accuracy_all": round(float(right.mean()), 4)}
    per_label = np.array(list(cal["unknown_below_by_label"].values()))
    for name, kept in (("", conf >= cal["unknown_below"]), ("_by_label", conf >= per_label[pred])):
        out["coverage" + name] = round(float(kept.mean()), 4)
        out["accuracy_kept" + name] = round(float(right[kept].mean()), 4) if kept.any() else None
    return out


ROUTE_CANDIDATES = (12, 16, 20, 24, 28, 32)  # crop sizes (longer side) the larger net may take over from
ROUTE_MARGIN = 1.0  # top-1 points the larger net must gain where it takes over: it costs more FLOPs a crop


def choose_route(small, large, images: np.ndarray, labels: np.ndarray, head: Head) -> tuple[int | None, dict]:
    """The smallest of `ROUTE_CANDIDATES` from which ``large`` (a fine-label `Classifier`) beats ``small``
    by >= `ROUTE_MARGIN` points of the head's top-1 at that size and every larger one, on ``images``
    shrunk with OpenCV area (``labels``: their shipped-label indices). None: never."""
    from lowres_sdk.export.kernel_eval import shrink

    table = {}
    for r in ROUTE_CANDIDATES:
        views = [shrink(i, r, "area") for i in images]
        table[str(r)] = [round(100 * float((head(m(views).probs).argmax(1) == labels).mean()), 2)
                         for m in (small, large)]
    at = None
    for r in reversed(ROUTE_CANDIDATES):
        if table[str(r)][1] < table[str(r)][0] + ROUTE_MARGIN:
            break
        at = r
    return at, {"images": len(images), "kernel": "area", "top1_small_vs_large": table, "margin": ROUTE_MARGIN,
                "route_at": at}
