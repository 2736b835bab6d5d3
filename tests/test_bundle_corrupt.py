"""Corrupt bundles: every kind is refused with BundleError when the model opens, before inference.
Includes the 28 kinds an adversarial probe found escaping untyped or loading (docs/reliability.md)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data

from lowres_sdk import BundleError, Classifier, Embedder, load_bundle
from lowres_sdk.bundle import BundleMeta, Calibration, describe
from lowres_sdk.spec import InputSpec

from tiny_bundles import embed_metadata, make_bundle, rehash, rewrite_meta, tiny_graph

RED = np.zeros((1, 8, 8, 3), np.uint8)
RED[..., 2] = 255


def _json(text):
    return lambda b: (b / "bundle.json").write_text(text)


def _meta(edit):  # bundle.json and the embedded metadata edited alike, hashes fixed
    return lambda b: rewrite_meta(b, edit)


def _raw_meta(edit):  # bundle.json edited, hashes fixed, embedded metadata left as it was
    def apply(b):
        meta = json.loads((b / "bundle.json").read_text())
        edit(meta)
        rehash(b, meta)
    return apply


def _files_edit(edit):  # bundle.json's files section edited as is (no rehash)
    def apply(b):
        meta = json.loads((b / "bundle.json").read_text())
        edit(meta)
        (b / "bundle.json").write_text(json.dumps(meta))
    return apply


def _model_bytes(make):  # model.onnx replaced, its hash in bundle.json updated to match
    def apply(b):
        data = (b / "model.onnx").read_bytes()
        (b / "model.onnx").write_bytes(make(data))
        rehash(b)
    return apply


def _graph(**kw):  # a different graph with honest metadata and hashes
    def apply(b):
        meta = json.loads((b / "bundle.json").read_text())
        from lowres_sdk.bundle import description_of
        onnx.save(embed_metadata(tiny_graph(**kw), description_of(meta)), str(b / "model.onnx"))
        rehash(b, meta)
    return apply


def _symlink_model(b):
    outside = b.parent / "outside.onnx"
    shutil.copyfile(b / "model.onnx", outside)
    (b / "model.onnx").unlink()
    os.symlink(outside, b / "model.onnx")


def _symlinked_folder(b):
    outside = b.parent / "elsewhere"
    outside.mkdir()
    shutil.copyfile(b / "model.onnx", outside / "model.onnx")
    os.symlink(outside, b / "sub")

    def edit(meta):
        meta["files"]["sub/model.onnx"] = meta["files"].pop("model.onnx")
        meta["files"]["model.onnx"] = dict(meta["files"]["sub/model.onnx"])
    _raw_meta(edit)(b)


def _outside_file(name_of):
    def apply(b):
        outside = b.parent / "outside.onnx"
        shutil.copyfile(b / "model.onnx", outside)
        meta = json.loads((b / "bundle.json").read_text())
        meta["files"][name_of(outside)] = dict(meta["files"]["model.onnx"])
        rehash(b, meta)
    return apply


def _variant_outside(b):
    outside = b.parent / "other.onnx"
    shutil.copyfile(b / "model.onnx", outside)

    def edit(meta):
        meta["variants"] = {"int8": "../other.onnx"}
        meta["files"]["../other.onnx"] = dict(meta["files"]["model.onnx"])
    rewrite_meta(b, edit)


def _external_data(b):
    meta = json.loads((b / "bundle.json").read_text())
    from lowres_sdk.bundle import description_of
    model = embed_metadata(tiny_graph(), description_of(meta))
    w = model.graph.initializer[0]
    (b.parent / "secret.bin").write_bytes(numpy_helper.to_array(w).tobytes())
    set_external_data(w, location="../secret.bin")
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    (b / "model.onnx").write_bytes(model.SerializeToString())
    rehash(b, meta)


def _metadata_not_json(b):
    model = onnx.load(str(b / "model.onnx"))
    model.metadata_props[0].value = "{not json"
    onnx.save(model, str(b / "model.onnx"))
    rehash(b)


def _no_metadata(b):
    model = onnx.load(str(b / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(b / "model.onnx"))
    rehash(b)


def _flip_byte(b):
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))


def _set(path, value):
    def edit(meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


def _drop(key):
    return lambda meta: meta.pop(key)


CAL = {"temperature": 1.5, "unknown_below": 0.5, "method": "temperature scaling", "fitted_on": "val",
       "ece_before": 0.1, "ece_after": 0.02}

# name -> (task, corruption applied to a fresh valid bundle)
CORRUPTIONS = {
    "no bundle.json": ("classify", lambda b: (b / "bundle.json").unlink()),
    "bundle.json random bytes": ("classify", lambda b: (b / "bundle.json").write_bytes(np.random.default_rng(0).bytes(300))),
    "bundle.json a list": ("classify", _json("[1, 2]")),
    "bundle.json null": ("classify", _json("null")),
    "bundle.json empty": ("classify", _json("")),
    "bundle.json 200k-deep nesting": ("classify", _json("[" * 200_000 + "]" * 200_000)),
    "bundle.json a directory": ("classify", lambda b: ((b / "bundle.json").unlink(), (b / "bundle.json").mkdir())),
    "schema_version 2": ("classify", _meta(_set(["schema_version"], 2))),
    "schema_version a string": ("classify", _meta(_set(["schema_version"], "1"))),
    "no task": ("classify", _meta(_drop("task"))),
    "task unknown": ("classify", _meta(_set(["task"], "detect"))),
    "labels a string": ("classify", _meta(_set(["labels"], "blue,green,red"))),
    "labels not strings": ("classify", _meta(_set(["labels"], ["blue", 2, "red"]))),
    "labels repeated": ("classify", _meta(_set(["labels"], ["blue", "blue", "red"]))),
    "preprocessing a list": ("classify", _meta(_set(["preprocessing"], [16, 16]))),
    "preprocessing negative size": ("classify", _meta(_set(["preprocessing", "size"], -1))),
    "preprocessing unknown key": ("classify", _meta(_set(["preprocessing", "gamma"], 2.2))),
    "preprocessing mean of 2": ("classify", _meta(_set(["preprocessing", "mean"], [0.5, 0.5]))),
    "preprocessing value_range 0-255": ("classify", _meta(_set(["preprocessing", "value_range"], [0, 255]))),
    "input dtype float32": ("classify", _meta(_set(["input", "dtype"], "float32"))),
    "files a list": ("classify", _files_edit(_set(["files"], ["model.onnx"]))),
    "files entry a list": ("classify", _files_edit(_set(["files", "model.onnx"], ["abc", 1]))),
    "files entry a string": ("classify", _files_edit(_set(["files", "model.onnx"], "abc"))),
    "files entry without bytes": ("classify", _files_edit(lambda m: m["files"]["model.onnx"].pop("bytes"))),
    "files sha256 not hex": ("classify", _files_edit(_set(["files", "model.onnx", "sha256"], "z" * 64))),
    "files lists no model.onnx": ("classify", _raw_meta(lambda m: m["files"].pop("model.onnx"))),
    "files with ../": ("classify", _outside_file(lambda p: "../outside.onnx")),
    "files with an absolute path": ("classify", _outside_file(lambda p: str(p))),
    "files lists bundle.json": ("classify", _raw_meta(lambda m: m["files"].__setitem__("bundle.json", m["files"]["model.onnx"]))),
    "variants outside the bundle": ("classify", _variant_outside),
    "variants unlisted file": ("classify", _meta(_set(["variants"], {"int8": "model.int8.onnx"}))),
    "model.onnx missing": ("classify", lambda b: (b / "model.onnx").unlink()),
    "model.onnx a directory": ("classify", lambda b: ((b / "model.onnx").unlink(), (b / "model.onnx").mkdir())),
    "model.onnx symlink to outside": ("classify", _symlink_model),
    "file under a symlinked folder": ("classify", _symlinked_folder),
    "model.onnx one byte changed": ("classify", _flip_byte),
    "model.onnx truncated, hash matching": ("classify", _model_bytes(lambda d: d[: len(d) // 2])),
    "model.onnx random, hash matching": ("classify", _model_bytes(lambda d: np.random.default_rng(1).bytes(len(d)))),
    "model.onnx empty, hash matching": ("classify", _model_bytes(lambda d: b"")),
    "bundle.json edited, metadata not": ("classify", _raw_meta(_set(["labels"], ["blue", "green", "crimson"]))),
    "embedded metadata not JSON": ("classify", _metadata_not_json),
    "embedded metadata missing": ("classify", _no_metadata),
    "ONNX external data outside the bundle": ("classify", _external_data),
    "5 labels for 3 outputs": ("classify", _meta(lambda m: (m.__setitem__("labels", list("abcde")),
                                                            m["output"].__setitem__("shape", ["N", 5])))),
    "2 labels for 3 outputs": ("classify", _meta(lambda m: (m.__setitem__("labels", ["a", "b"]),
                                                            m["output"].__setitem__("shape", ["N", 2])))),
    "output.shape not the label count": ("classify", _meta(_set(["output", "shape"], ["N", 7]))),
    "output of rank 1": ("classify", _graph(out_rank=1)),
    "graph input not named images": ("classify", _graph(input_name="pixels")),
    "graph input float": ("classify", _graph(input_dtype=onnx.TensorProto.FLOAT)),
    "graph output named otherwise": ("classify", _graph(output_name="scores")),
    "embedding_dim not the graph's": ("embed", _meta(lambda m: (m.__setitem__("embedding_dim", 9),
                                                               m["output"].__setitem__("shape", ["N", 9])))),
    "calibration temperature 0": ("classify", _meta(_set(["calibration"], {**CAL, "temperature": 0}))),
    "calibration unknown_below 1.5": ("classify", _meta(_set(["calibration"], {**CAL, "unknown_below": 1.5}))),
    "calibration threshold of a label it lacks": ("classify", _meta(_set(["calibration"], {**CAL, "unknown_below_by_label": {"cat": 0.3}}))),
    "calibration label threshold 1.5": ("classify", _meta(_set(["calibration"], {**CAL, "unknown_below_by_label": {"red": 1.5}}))),
    "calibration label thresholds a list": ("classify", _meta(_set(["calibration"], {**CAL, "unknown_below_by_label": [0.3]}))),
    "calibration a list": ("classify", _meta(_set(["calibration"], [1.5, 0.5]))),
    "calibration on an embedder": ("embed", _meta(_set(["calibration"], CAL))),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_bundle_is_refused_before_inference(kind, tmp_path):
    task, corrupt = CORRUPTIONS[kind]
    path = make_bundle(tmp_path / "bundle", task=task)
    corrupt(path)
    with pytest.raises(BundleError):
        (Classifier if task == "classify" else Embedder)(path)


def test_at_least_40_kinds():
    assert len(CORRUPTIONS) >= 40


def test_valid_bundles_load_and_run(tmp_path):
    clf = Classifier(make_bundle(tmp_path / "c", int8=True), precision="int8")
    assert clf.input_name == "images" and clf.output_name == "probs"
    assert clf(RED).labels == ["red"]
    emb = Embedder(make_bundle(tmp_path / "e", task="embed"))
    assert emb.dim == 4 and np.allclose(np.linalg.norm(emb(RED), axis=1), 1)


def test_auto_precision_takes_int8_only_where_the_bundle_ships_it(tmp_path):
    assert Classifier(make_bundle(tmp_path / "q", int8=True), precision="auto").precision == "int8"
    assert Classifier(make_bundle(tmp_path / "f"), precision="auto").precision == "fp32"
    with pytest.raises(BundleError, match="no 'int8' model"):
        Classifier(make_bundle(tmp_path / "g"), precision="int8")


def test_legacy_bundles_whose_graph_output_is_named_output_still_load(tmp_path):
    clf = Classifier(make_bundle(tmp_path / "legacy", output_name="output"))
    assert clf.output_name == "output" and clf(RED).labels == ["red"]


def test_bundle_meta_round_trip_and_typed_fields(tmp_path):
    path = make_bundle(tmp_path / "b", calibration=CAL)
    b = load_bundle(path)
    d = b.description
    assert isinstance(d, BundleMeta) and d.labels == ("blue", "green", "red") and d.output_width == 3
    assert d.calibration == Calibration(**CAL) and b.calibration.unknown_below == 0.5
    assert BundleMeta.from_dict(d.to_dict()) == d
    assert json.loads(json.dumps(d.to_dict()))["calibration"] == CAL
    # a key a later version adds is kept, not refused
    rewrite_meta(path, lambda m: m.__setitem__("merge", {"vehicle": ["car", "truck"]}))
    assert load_bundle(path).description.extra == {"merge": {"vehicle": ["car", "truck"]}}


def test_per_label_thresholds_round_trip(tmp_path):
    cal = {**CAL, "unknown_below_by_label": {"red": 0.3}}
    d = load_bundle(make_bundle(tmp_path / "b", calibration=cal)).description
    assert d.calibration.unknown_below_by_label == {"red": 0.3} and d.to_dict()["calibration"] == cal
    # a bundle without them writes no such key: its embedded metadata (which lacks it) still matches
    assert "unknown_below_by_label" not in load_bundle(make_bundle(tmp_path / "c", calibration=CAL)).description.to_dict()["calibration"]


def test_describe_refuses_bad_calibration():
    spec = InputSpec()
    with pytest.raises(BundleError, match="temperature"):
        describe("classify", ["a"], spec, embedding_dim=4, provenance={}, calibration={**CAL, "temperature": -1})
    with pytest.raises(BundleError, match="classify"):
        describe("embed", ["a"], spec, embedding_dim=4, provenance={}, calibration=CAL)
    with pytest.raises(BundleError, match="unknown_below"):
        describe("classify", ["a"], spec, embedding_dim=4, provenance={}, calibration={"temperature": 2.0})
    with pytest.raises(BundleError, match="unknown_below_by_label.*'b'"):
        describe("classify", ["a"], spec, embedding_dim=4, provenance={}, calibration={**CAL, "unknown_below_by_label": {"b": 0.2}})
