"""Routed bundles: two classifiers of one label set in one graph, each crop sent by its size to the
model trained for it (export/routed.py, schema version 2 in sdk/bundle.py)."""
import copy
import json

import numpy as np
import onnx
import pytest

from lowres_sdk import BundleError, Classifier, ExportError
from lowres_sdk.bundle import BundleMeta, load_bundle, route_index
from lowres_sdk.export.exporter import export_run
from lowres_sdk.export.routed import export_routed, route_graph

from conftest import tiny_recipe

QUIET = dict(eval_per_class=12, log=lambda *a: None)
AT = 12  # crops whose longer side is >= 12 px go to the second route


@pytest.fixture(scope="module")
def run16(tiny_data, tmp_path_factory):
    """A second tiny model of the same classes, fed 16 px natively (the first is fed 8 px)."""
    from lowres_sdk.training.loop import train

    path = tmp_path_factory.mktemp("run16") / "run"
    train(tiny_recipe(tiny_data, epochs=2, resolution=16, seed=5), path, progress=False)
    return path


@pytest.fixture(scope="module")
def routed(tiny_run, run16, tmp_path_factory):
    root = tmp_path_factory.mktemp("routed")
    own = [export_run(r, root / f"own{i}", **QUIET) for i, r in enumerate((tiny_run, run16))]
    return export_routed([(0, tiny_run), (AT, run16)], root / "routed", **QUIET), own


def test_route_index_is_the_last_route_at_or_below_the_longer_side():
    sides = [0, 12, 24]
    assert [route_index(sides, h, w) for h, w in [(1, 1), (11, 11), (12, 3), (3, 12), (23, 23), (24, 1), (500, 9)]] == \
        [0, 0, 1, 1, 1, 2, 2]


def test_each_crop_runs_through_the_model_its_size_routes_it_to(routed):
    bundle, own = routed
    rng = np.random.default_rng(0)
    shapes = [(8, 8), (11, 5), (5, 11), (12, 12), (12, 4), (4, 12), (30, 20), (64, 64)]
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes for _ in range(2)]
    got = Classifier(bundle, unknown_below=None)(crops).probs
    mine = [Classifier(b, unknown_below=None)(crops).probs for b in own]
    want = np.stack([mine[route_index([0, AT], *c.shape[:2])][i] for i, c in enumerate(crops)])
    assert np.abs(got - want).max() < 1e-6
    # the two models disagree, so sending a crop to the wrong one would show
    assert np.abs(mine[0] - mine[1]).max() > 1e-3


def test_the_routed_bundle_describes_each_model(routed):
    bundle, own = routed
    meta = bundle.meta
    assert meta["schema_version"] == 2
    assert [r.min_side for r in bundle.routes] == [0, AT]
    assert [r.preprocessing.resolution for r in bundle.routes] == [8, 16]
    assert bundle.spec == bundle.routes[0].preprocessing
    for route, b in zip(bundle.routes, own):
        assert route.preprocessing == b.spec and route.metrics["top1_native"] == b.meta["metrics"]["top1_native"]
        assert route.parity["max_abs_diff"] <= route.parity["tolerance"]
    assert meta["parity"]["routing"]["fp32"]["max_abs_diff"] <= 1e-4
    assert {AT - 1, AT} <= {s for h, w in meta["parity"]["routing"]["fp32"]["shapes"] for s in (h, w)}
    # the description embedded in the graph is the bundle's (load_bundle + the session check it)
    embedded = {p.key: p.value for p in onnx.load(str(bundle.file())).metadata_props}["lowres_sdk.bundle"]
    assert json.loads(embedded)["routes"][1]["min_side"] == AT


def _broken(meta, **changes):
    d = copy.deepcopy(meta)
    for key, value in changes.items():
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
    return d


def test_schema_versions_and_routes_are_validated(routed, tiny_bundle):
    meta = routed[0].meta
    routes = meta["routes"]
    cases = [
        (_broken(meta, routes=None), "needs 'routes'"),
        (_broken(tiny_bundle.meta, routes=routes), "has no 'routes'"),
        (_broken(meta, schema_version=3), "reads versions 1, 2"),
        (_broken(meta, routes=routes[:1]), "at least 2 routes"),
        (_broken(meta, routes=[routes[1], routes[0]]), "0 for the first route"),
        (_broken(meta, routes=[routes[0], {**routes[1], "min_side": 0}]), "strictly ascending"),
        (_broken(meta, routes=[routes[1] | {"min_side": 0}, routes[1]]), "the bundle's preprocessing"),
        (_broken(meta, routes=[routes[0], {**routes[1], "preprocessing": {"size": "x"}}]), r"routes\[1\]\.preprocessing"),
        (_broken(meta, routes=[routes[0], {**routes[1], "model": "x.onnx"}]), "only min_side"),
    ]
    for d, match in cases:
        with pytest.raises(BundleError, match=match):
            BundleMeta.from_dict(d)
    assert json.loads(json.dumps(BundleMeta.from_dict(meta).to_dict())) == meta  # and the real one round-trips


def test_fixed_size_deployments_refuse_a_routed_bundle_before_any_work(routed, tmp_path):
    from lowres_sdk.export.deepstream import export_deepstream
    from lowres_sdk.tensorrt.engine import build_engine
    from lowres_sdk.tensorrt.graph import write_trt_onnx

    bundle = routed[0]
    for call in (lambda: write_trt_onnx(bundle, tmp_path / "trt.onnx"),
                 lambda: export_deepstream(bundle, tmp_path / "ds", log=lambda *a: None),
                 lambda: build_engine(bundle, "fp16", engine_dir=tmp_path / "engines", log=lambda *a: None)):
        with pytest.raises(BundleError, match="routed bundle .*2 models by crop size"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_int8_is_routed_too_and_each_route_keeps_its_gate(tiny_run, run16, tmp_path):
    bundle = export_routed([(0, tiny_run), (AT, run16)], tmp_path / "b", int8=True, force=True, **QUIET)
    assert bundle.variants["int8"] == "model.int8.onnx"
    for route in bundle.routes:
        assert "int8_top1_drop" in route.metrics and "int8_speedup_batch64" in route.metrics
    # the composed INT8 graph was checked against each route's own INT8 graph on crops of every route
    routing = bundle.meta["parity"]["routing"]
    assert set(routing) == {"fp32", "int8"} and routing["int8"]["max_abs_diff"] <= 1e-4
    crops = [np.random.default_rng(1).integers(0, 256, (h, h, 3), dtype=np.uint8) for h in (8, 20)]
    p8 = Classifier(bundle, precision="int8", unknown_below=None)(crops).probs
    p32 = Classifier(bundle, unknown_below=None)(crops).probs
    assert np.allclose(p8.sum(1), 1, atol=1e-3) and 0 < np.abs(p8 - p32).max() < 0.3  # quantized, not another model


def test_int8_is_left_out_when_the_bundle_would_exceed_max_mb(tiny_run, run16, tmp_path):
    from click.testing import CliRunner

    from lowres_sdk.cli import cli

    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["export", str(tiny_run), "--route", f"{AT}:{run16}", "--max-mb", "0.001", "--out", str(out)])
    assert r.exit_code == 2 and "--max-mb caps a routed INT8 export" in r.output and not out.exists()
    r = CliRunner().invoke(cli, ["export", str(tiny_run), "--route", f"{AT}:{run16}", "--int8", "--force", "--max-mb", "0.001",
                                 "--eval-per-class", "12", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "shipping FP32 only" in r.output
    bundle = load_bundle(out)
    assert "int8" not in bundle.variants and not (out / "model.int8.onnx").exists()
    assert [q.int8 for q in bundle.routes] == [False, False]
    assert all("int8_top1_drop" in q.metrics for q in bundle.routes)  # the gates' figures are kept
    assert set(bundle.meta["parity"]["routing"]) == {"fp32"}
    crops = [np.random.default_rng(1).integers(0, 256, (h, h, 3), dtype=np.uint8) for h in (8, 20)]
    assert np.allclose(Classifier(bundle, unknown_below=None)(crops).probs.sum(1), 1, atol=1e-5)


def test_route_graph_refuses_what_it_cannot_route(tiny_bundle, tiny_run, tmp_path):
    m = onnx.load(str(tiny_bundle.file()))
    with pytest.raises(ExportError, match=">= 2 models"):
        route_graph([m], [0])
    with pytest.raises(ExportError, match="strictly ascending"):
        route_graph([m, m], [0, 0])
    with pytest.raises(ExportError, match=">= 2 routes"):
        export_routed([(0, tiny_run)], tmp_path / "b", **QUIET)
    with pytest.raises(ExportError, match="only classifiers"):
        export_routed([(0, tiny_run), (AT, tiny_run)], tmp_path / "b", task="embed", **QUIET)
    assert not (tmp_path / "b").exists()


def test_a_routed_bundle_loads_and_verifies_each_model(routed):
    bundle = load_bundle(routed[0].path)
    clf = Classifier(bundle)  # the session check runs an 8 px crop and one of each route's smallest size
    assert clf.labels == routed[1][0].labels


def test_lowres_export_route_writes_a_routed_bundle_and_refuses_bad_routes(tiny_run, run16, tmp_path):
    from click.testing import CliRunner

    from lowres_sdk.cli import cli

    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["export", str(tiny_run), "--out", str(out), "--eval-per-class", "4",
                                 "--route", f"{AT}:{run16}"])
    assert r.exit_code == 0, r.output
    assert "routes at [12] px" in r.output and [x.min_side for x in load_bundle(out).routes] == [0, AT]
    r = CliRunner().invoke(cli, ["inspect", str(out)])
    assert r.exit_code == 0 and f"crops whose longer side is >= {AT} px" in r.output, r.output
    for run in (tiny_run, run16):  # `lowres check` finds the route a run was exported to
        r = CliRunner().invoke(cli, ["check", str(out), "--against", str(run)])
        assert r.exit_code == 0 and f"parity OK (route {[tiny_run, run16].index(run)})" in r.output, r.output
    r = CliRunner().invoke(cli, ["export", str(out), "--split-route", "0", "--out", str(tmp_path / "r0")])
    assert r.exit_code == 0 and load_bundle(tmp_path / "r0").spec.resolution == 8, r.output
    r = CliRunner().invoke(cli, ["export", str(out), "--trt-onnx", str(tmp_path / "t.onnx")])
    # (`lowres` prints a LowresError as one line; the click group itself raises it)
    assert isinstance(r.exception, BundleError) and "--split-route K" in str(r.exception)
    assert not (tmp_path / "t.onnx").exists()
    for bad in ("x:run", f"0:{run16}", "12", f"{AT}:{run16} --route {AT}:{run16}"):
        args = ["export", str(tiny_run), "--out", str(tmp_path / "c")] + [a for b in bad.split(" --route ")
                                                                         for a in ("--route", b)]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and "--route" in r.output, (bad, r.output)
    assert not (tmp_path / "c").exists()


def test_a_route_split_out_is_a_bundle_of_one_model_equal_to_the_route(routed, tmp_path):
    from lowres_sdk.export.routed import split_route
    from lowres_sdk.tensorrt.graph import write_trt_onnx

    bundle, own = routed
    one = split_route(bundle, 1, tmp_path / "one", log=lambda *a: None)
    assert one.meta["schema_version"] == 1 and not one.routes and one.spec == own[1].spec
    assert one.meta["provenance"]["split_from"]["route"] == 1
    crops = [np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(8, 8), (12, 12), (40, 17)]]
    assert np.abs(Classifier(one, unknown_below=None)(crops).probs - Classifier(own[1], unknown_below=None)(crops).probs).max() < 1e-6
    write_trt_onnx(one, tmp_path / "trt.onnx")  # what the routed bundle refuses, its route takes
    with pytest.raises(ExportError, match="not a routed bundle"):
        split_route(own[0], 0, tmp_path / "x")
    with pytest.raises(ExportError, match="routes 0..1"):
        split_route(bundle, 2, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_int8_refused_for_one_route_runs_that_route_in_fp32(tiny_run, run16, tmp_path, monkeypatch):
    """A route whose INT8 the gates refuse runs in FP32 inside model.int8.onnx; the others keep INT8."""
    from lowres_sdk.export import exporter
    from lowres_sdk.export.int8_speed import Int8Refused
    from lowres_sdk.export.routed import split_route

    calls = []

    def gate(fp32, int8_path, crops, force=False, log=print):  # route 0's INT8 "not faster", route 1's faster
        calls.append(int8_path)
        if len(calls) == 1:
            raise Int8Refused("INT8 runs at only 0.90x FP32 at batch 64 here (< 1.1x)")
        return {"int8_speedup_batch1": 1.5, "int8_speedup_batch64": 1.5}

    monkeypatch.setattr(exporter, "gate_int8_speed", gate)
    monkeypatch.setattr(exporter, "MAX_INT8_DROP", 100.0)  # the tiny nets' accuracy gate is not what is tested
    bundle = export_routed([(0, tiny_run), (AT, run16)], tmp_path / "b", int8=True, **QUIET)
    assert len(calls) == 2 and bundle.variants["int8"] == "model.int8.onnx"
    assert [r.int8 for r in bundle.routes] == [False, True]
    assert bundle.routes[0].metrics["int8_refused"].startswith("INT8 runs at only 0.90x")
    assert "int8_refused" not in bundle.routes[1].metrics
    rng = np.random.default_rng(3)
    small = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)]
    large = [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in range(4)]
    int8, fp32 = (Classifier(bundle, precision=p, unknown_below=None) for p in ("int8", "fp32"))
    assert np.abs(int8(small).probs - fp32(small).probs).max() < 1e-6  # route 0: the FP32 graph
    assert 0 < np.abs(int8(large).probs - fp32(large).probs).max() < 0.3  # route 1: quantized
    assert "int8" not in split_route(bundle, 0, tmp_path / "r0", log=lambda *a: None).variants
    assert split_route(bundle, 1, tmp_path / "r1", log=lambda *a: None).variants["int8"] == "model.int8.onnx"
    from click.testing import CliRunner

    from lowres_sdk.cli import cli

    r = CliRunner().invoke(cli, ["inspect", str(bundle.path)])
    assert r.exit_code == 0 and "FP32 in model.int8.onnx (its INT8 refused: INT8 runs at only 0.90x" in r.output, r.output
    assert "int8     INT8 in model.int8.onnx" in r.output


def test_route_int8_flags_must_match_the_bundles_int8_model(routed):
    meta = copy.deepcopy(routed[0].meta)  # FP32 only
    meta["routes"][1]["int8"] = True
    with pytest.raises(BundleError, match=r"routes\[\*\]\.int8"):
        BundleMeta.from_dict(meta)
    meta["routes"][1]["int8"] = "yes"
    with pytest.raises(BundleError, match=r"routes\[1\]\.int8"):
        BundleMeta.from_dict(meta)
    del meta["routes"][1]["int8"]
    meta["routes"][0].pop("int8", None)
    assert [r.int8 for r in BundleMeta.from_dict(meta).routes] == [False, False]  # written before the flag
