"""The runtime under fuzzed crops and arguments: every call returns valid Predictions or raises
InputError -- no other exception, no crash, no silently accepted garbage (the documented rules in
sdk/crops.py decide what is accepted). 2,000 examples by default (~18 s);
`LOWRES_FUZZ_EXAMPLES=10000 pytest tests/test_runtime_fuzz.py` is the acceptance run (~1 min)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lowres_sdk import BundleError, Classifier, Embedder, InputError
from lowres_sdk.crops import MAX_SIDE, FloatRangeWarning, as_crops
from lowres_sdk.runtime import MAX_BATCH_PIXELS, Predictions

from tiny_bundles import make_bundle

EXAMPLES = int(os.environ.get("LOWRES_FUZZ_EXAMPLES", "2000"))
DTYPES = [np.uint8, np.float32, np.float64, np.float16, np.int16, np.int64, np.uint16, np.bool_, np.complex64]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("fuzz") / "bundle",
                       calibration={"temperature": 1.0, "unknown_below": 0.5})


@pytest.fixture(scope="module")
def clf(bundle):
    return Classifier(bundle, batch_size=4)


def _values(dtype):
    if np.dtype(dtype).kind == "f":
        return st.one_of(st.floats(0, 1, width=16), st.floats(0, 255, width=16), st.floats(-1e3, 1e3, width=16),
                         st.sampled_from([np.nan, np.inf, -np.inf, 256.0, -0.5]))
    return None


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    rank = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.one_of(st.integers(0, 9), st.sampled_from([1, 3, 4, 33])), min_size=rank,
                                max_size=rank)))
    if np.prod(shape, dtype=np.int64) > 1500:  # element-wise drawing is slow; big arrays come below
        shape = shape[:2]
    if draw(st.integers(0, 30)) == 0:  # now and then a long strip past MAX_SIDE, filled at random
        shape = (1, draw(st.integers(MAX_SIDE + 1, 20_000)), 3)
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        arr = (rng.integers(0, 256, shape) if np.dtype(dtype).kind != "f" else rng.uniform(0, 1, shape)).astype(dtype)
    else:
        kw = {} if _values(dtype) is None else {"elements": _values(dtype)}
        arr = draw(hnp.arrays(dtype, shape, **kw))
    layout = draw(st.sampled_from(["plain", "plain", "view", "matrix", "masked"]))
    if layout == "view" and arr.ndim >= 2:
        arr = arr[:, ::-1]
    elif layout == "matrix" and arr.ndim == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            arr = np.asmatrix(arr)
    elif layout == "masked":
        arr = np.ma.masked_array(arr)
    return arr


OTHERS = st.sampled_from([None, "crop.png", b"crop.png", 3, 2.5, {"a": 1}, set(), object(), np.float32(1)])
CROPS = st.one_of(arrays(), OTHERS, st.lists(st.one_of(arrays(), OTHERS), max_size=4),
                  st.tuples(arrays(), arrays()))


def documented_accept(x) -> bool:
    """Whether sdk/crops.py's documented rules accept ``x`` (an independent statement of them)."""
    if isinstance(x, np.ndarray) and x.ndim == 4:
        items = list(x)
    elif isinstance(x, (list, tuple)):
        items = list(x)
    else:
        items = [x]
    for c in items:  # no items: an empty result
        if not isinstance(c, np.ndarray) or c.ndim not in (2, 3) or 0 in c.shape:
            return False
        if c.ndim == 3 and c.shape[2] not in (1, 3, 4):
            return False
        if c.dtype != np.uint8:
            if c.dtype.kind != "f":
                return False
            v = np.asarray(c, dtype=np.float64)
            if not np.isfinite(v).all() or v.min() < 0 or v.max() > 255:
                return False
    return True


def check(clf, crops) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FloatRangeWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix
        try:
            pred = clf(crops)
        except InputError:
            assert not documented_accept(crops), "refused although the documented rules accept it"
            return "typed"
    assert documented_accept(crops), "accepted although the documented rules refuse it"
    n = len(crops) if isinstance(crops, (list, tuple)) or (isinstance(crops, np.ndarray) and crops.ndim == 4) else 1
    assert isinstance(pred, Predictions) and len(pred) == n and pred.probs.shape == (n, 3)
    assert np.isfinite(pred.probs).all() and np.allclose(pred.probs.sum(1), 1, atol=1e-5)
    assert all(lab == "unknown" if s < 0.5 else lab == clf.labels[i]
               for lab, s, i in zip(pred.labels, pred.scores, pred.indices))
    return "accepted"


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
@given(crops=CROPS)
def test_fuzzed_crops_give_predictions_or_input_error(clf, crops):
    check(clf, crops)


# ---- documented conversions ------------------------------------------------------------------

def test_float_in_0_1_is_scaled_with_a_warning(clf):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    with pytest.warns(FloatRangeWarning, match=r"\[0, 1\]"):
        as_float = clf(img.astype(np.float32) / 255)
    assert np.allclose(as_float.probs, clf(img).probs, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # [0, 255] floats: no warning
        assert np.allclose(clf(img.astype(np.float64)).probs, clf(img).probs)


def test_channels_first_and_matrix_inputs(clf):
    with pytest.raises(InputError, match="channels-first"):
        clf(np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(InputError, match="channels-first"):
        clf(np.zeros((2, 3, 16, 16), np.uint8))
    gray = np.full((5, 6), 200, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        assert np.allclose(clf(np.asmatrix(gray)).probs, clf(gray).probs)


def test_large_crops_are_shrunk_on_the_host_and_small_ones_untouched():
    small = np.random.default_rng(0).integers(0, 256, (MAX_SIDE, 40, 3), dtype=np.uint8)
    assert np.array_equal(as_crops(small)[0], small)
    strip = np.zeros((1, 40_000, 3), np.uint8)
    assert as_crops(strip)[0].shape == (1, MAX_SIDE, 3)
    assert as_crops(np.zeros((3000, 1500, 3), np.uint8))[0].shape == (MAX_SIDE, MAX_SIDE // 2, 3)


def test_peak_memory_of_huge_crops_stays_under_500_mb(bundle):
    """Crops that took 3.3 GB (1x16384) or failed inside onnxruntime (1x40000); one process for all."""
    code = textwrap.dedent(f"""
        import numpy as np
        from lowres_sdk import Classifier
        clf = Classifier({str(bundle)!r})
        for shape, n in [((1, 40000, 3), 1), ((1, 16384, 3), 1), ((1, 4096, 3), 8), ((8192, 1, 3), 1),
                         ((3000, 3000, 3), 1), ((512, 512, 3), 64)]:
            assert len(clf([np.full(shape, 100, np.uint8)] * n)) == n
        # VmHWM: this process's own peak RSS (ru_maxrss would also count the forking parent's,
        # which Linux folds in at exec: ~900 MB when the whole suite runs)
        print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 500


def test_batches_are_bounded_in_pixels(clf, monkeypatch):
    calls = []
    run = clf.session.run
    monkeypatch.setattr(clf, "session", type("S", (), {"run": lambda self, o, feed: calls.append(
        next(iter(feed.values())).shape) or run(o, feed), "get_providers": lambda self: []})())
    clf.batch_size = 64
    clf([np.zeros((MAX_SIDE, MAX_SIDE, 3), np.uint8)] * 20)
    assert max(s[0] for s in calls) == MAX_BATCH_PIXELS // MAX_SIDE ** 2 and sum(s[0] for s in calls) == 20


# ---- calibrated "unknown" --------------------------------------------------------------------

def test_unknown_below_from_bundle_override_and_off(bundle):
    red, gray = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 128, np.uint8)
    red[..., 2] = 255
    pred = Classifier(bundle)([red, gray])
    assert pred.labels == ["red", "unknown"] and pred.known.tolist() == [True, False]
    assert pred.indices.tolist()[0] == 2 and pred.unknown_below == 0.5 and abs(pred.scores[1] - 1 / 3) < 1e-5
    assert Classifier(bundle, unknown_below=0.3)([gray]).labels[0] in ("blue", "green", "red")
    off = Classifier(bundle, unknown_below=None)
    assert off.unknown_below is None and off([gray]).known.all()
    clf = Classifier(bundle)
    clf.unknown_below = 0.2
    assert clf([gray]).known.all()
    with pytest.raises(InputError):
        clf.unknown_below = 1.5


def test_per_label_thresholds_from_bundle_and_dict(tmp_path):
    # gray scores 1/3 for each class (its best: blue, index 0); red scores high for red
    red, gray = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 128, np.uint8)
    red[..., 2] = 255
    b = make_bundle(tmp_path / "b", calibration={"temperature": 1.0, "unknown_below": 0.5,
                                                 "unknown_below_by_label": {"blue": 0.3, "green": 0.3}})
    clf = Classifier(b)
    assert clf.unknown_below == {"blue": 0.3, "green": 0.3, "red": 0.5}
    assert clf.thresholds.tolist() == [0.3, 0.3, 0.5]
    pred = clf([red, gray])
    assert pred.known.all() and pred.labels[0] == "red" and pred.labels[1] in ("blue", "green")
    clf.unknown_below = {"blue": 0.4, "green": 0.4}  # the labels it leaves out keep the bundle's
    assert clf([gray]).labels == ["unknown"] and clf.thresholds.tolist() == [0.4, 0.4, 0.5]
    clf.unknown_below = 0.2  # one number: every label
    assert clf.unknown_below == 0.2 and clf.thresholds.tolist() == [0.2] * 3
    for bad in ({"cat": 0.2}, {"red": 1.5}, {"red": "0.2"}):
        with pytest.raises(InputError, match="dict"):
            clf.unknown_below = bad


def test_uncalibrated_bundle_has_no_unknown(tmp_path):
    clf = Classifier(make_bundle(tmp_path / "plain"))
    assert clf.unknown_below is None and clf(np.full((8, 8, 3), 128, np.uint8)).known.all()


# ---- arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"batch_size": None}, {"batch_size": "8"}, {"batch_size": 2.5}, {"batch_size": 0},
                                {"batch_size": True}, {"threads": 2.5}, {"threads": "2"}, {"threads": 0},
                                {"threads": -1}, {"threads": 100_000}, {"providers": ["NopeExecutionProvider"]},
                                {"providers": [1]}, {"providers": []}, {"unknown_below": 1.5},
                                {"unknown_below": "0.5"}, {"unknown_below": True}])
def test_bad_arguments_raise_input_error(bundle, kw):
    with pytest.raises(InputError):
        Classifier(bundle, **kw)


@pytest.mark.parametrize("bad", [123, ["x"], 1.5, {"a": 1}])
def test_bad_bundle_argument_is_typed(bad):
    with pytest.raises(InputError, match="bundle must be"):
        Classifier(bad)


def test_accepted_argument_forms(bundle):
    clf = Classifier(os.fsencode(str(bundle)), providers="CPUExecutionProvider", batch_size=np.int64(3),
                     threads=np.int32(1))
    assert clf.providers == ["CPUExecutionProvider"] and clf.batch_size == 3
    for bad in (1.5, "2", None, 0, 4):
        with pytest.raises(InputError):
            clf(np.zeros((4, 4, 3), np.uint8)).top_k(bad)
    for precision in ("fp16", 3, None):
        with pytest.raises(BundleError):
            Classifier(bundle, precision=precision)
    with pytest.raises(BundleError, match="'classify' bundle"):
        Embedder(bundle)
