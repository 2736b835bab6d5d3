"""The INT8 speed gate of `lowres export --int8`: how the ratio is measured (interleaved rounds,
medians), and the gate's three outcomes on a tiny model with the measurement replaced."""
import numpy as np
import pytest

from lowres_sdk import ExportError
from lowres_sdk.export import int8_speed
from lowres_sdk.export.exporter import export_run


class FakeClock:
    """Time that only moves when the measured functions say so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_ratio_is_of_medians_and_ignores_a_disturbed_round():
    clock, calls = FakeClock(), {"slow": 0, "fast": 0}

    def slow():
        calls["slow"] += 1
        clock.now += 50.0 if calls["slow"] == 5 else 3.0  # round 3 hit by another job: a 17x spike

    def fast():
        calls["fast"] += 1
        clock.now += 1.0

    ratio = int8_speed.interleaved_ratio(slow, fast, rounds=5, seconds=30.0, clock=clock)
    assert ratio == pytest.approx(3.0)
    # calibrated on the warm-up: 30 s / (2 * 5 rounds) / 3 s per call = 1 call per round each
    assert calls == {"slow": 2 + 5, "fast": 1 + 5}


def test_measure_speedup_times_batch_1_and_a_full_batch_64(monkeypatch, tmp_path):
    fed = []

    def fake_ratio(slow, fast, **kw):
        slow()
        return 1.25

    class Session:
        def __init__(self, path, providers):
            self.path = path

        def run(self, _, feed):
            fed.append(feed["images"].shape)

    import onnxruntime

    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    monkeypatch.setattr(int8_speed, "interleaved_ratio", fake_ratio)
    crops = np.zeros((10, 16, 16, 3), np.uint8)  # fewer than 64: repeated to fill the batch
    assert int8_speed.measure_speedup("a.onnx", "b.onnx", crops) == {"batch1": 1.25, "batch64": 1.25}
    assert fed == [(1, 16, 16, 3), (64, 16, 16, 3)]


@pytest.mark.parametrize("speedup, force, kept", [(0.9, False, False), (0.9, True, True), (1.6, False, True)])
def test_gate_refuses_slow_int8_unless_forced_and_stores_the_speedup(tiny_run, tmp_path, monkeypatch, speedup, force, kept):
    seen = []

    def fake(fp32, int8, crops, seconds=3.0):
        seen.append(crops.shape)
        return {"batch1": round(speedup - 0.2, 2), "batch64": speedup}

    monkeypatch.setattr(int8_speed, "measure_speedup", fake)
    lines = []
    out = tmp_path / "bundle"
    if not kept:
        with pytest.raises(ExportError, match=r"only 0\.90x FP32 at batch 64 .*--force"):
            export_run(tiny_run, out, int8=True, force=force, eval_per_class=12, log=lines.append)
        assert not out.exists()
    else:
        b = export_run(tiny_run, out, int8=True, force=force, eval_per_class=12, log=lines.append)
        assert b.meta["metrics"]["int8_speedup_batch64"] == speedup
        assert b.meta["metrics"]["int8_speedup_batch1"] == round(speedup - 0.2, 2)
        assert b.variants["int8"] == "model.int8.onnx"
    assert seen and seen[0][1:] == (8, 8, 3)  # measured on crops at the model's resolution (8 px)
    assert any("INT8 speed on this machine" in line for line in lines)


def test_no_speed_measurement_without_int8(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(int8_speed, "measure_speedup", lambda *a, **k: pytest.fail("measured without --int8"))
    b = export_run(tiny_run, tmp_path / "b", eval_per_class=12, log=lambda *a: None)
    assert "int8_speedup_batch64" not in b.meta["metrics"]
