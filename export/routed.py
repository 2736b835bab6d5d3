"""A routed bundle: classifiers of one label set, each trained for a range of crop sizes, in one
graph that sends every batch to the model its crops' size calls for.

`route_graph` composes the exported graphs under nested ONNX ``If`` nodes on the crops' longer side
(the rule `lowres_sdk.bundle.route_index` states: the last route whose ``min_side`` <= it), so
everything that runs model.onnx -- `Classifier`, `lowres video`, the servers, Triton's onnxruntime
backend -- routes without knowing it; the runtime already groups crops by size, so each batch is
one route. `export_routed` exports each route with `export_run` (its own parity check and INT8
gates), composes the FP32 graphs (and an INT8 model of each route's INT8 graph where it passed its
gates, its FP32 graph where they refused it), checks the
composed graph against each route's own on crops of every route's sizes, and writes one bundle of
schema version 2 whose ``routes`` keep each model's pre-processing, provenance, metrics and parity.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from lowres_sdk.bundle import INPUT_NAME, Bundle, check_bundle_target, describe, route_index, write_bundle
from lowres_sdk.errors import ExportError

from .tolerances import PARITY_TOLERANCE

if TYPE_CHECKING:  # the exporter needs torch; splitting a routed bundle does not
    from .exporter import ExportOptions

SIDE = "routed/longer_side"  # the outer graph's int64 scalar every If compares


def _prefixed(graph: onnx.GraphProto, prefix: str) -> onnx.GraphProto:
    """A copy of ``graph`` as an If branch: every name prefixed except the graph input, which the
    branch reads from the outer scope; no inputs of its own."""
    g = onnx.GraphProto()
    g.CopyFrom(graph)
    keep = {i.name for i in g.input}
    name = (lambda n: n if (n in keep or not n) else prefix + n)
    for node in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ExportError(f"cannot route a graph that has subgraphs of its own (node {node.name!r}, "
                              f"{node.op_type})")
        node.name = prefix + node.name
        node.input[:] = [name(n) for n in node.input]
        node.output[:] = [name(n) for n in node.output]
    for t in g.initializer:
        t.name = name(t.name)
    for v in (*g.value_info, *g.output):
        v.name = name(v.name)
    del g.input[:]
    g.name = prefix.rstrip("/")
    return g


def route_graph(models: list[onnx.ModelProto], min_sides: list[int]) -> onnx.ModelProto:
    """One model: uint8 [N, H, W, 3] -> models[i]'s output, where i = `route_index`(min_sides, H, W)."""
    if len(models) != len(min_sides) or len(models) < 2:
        raise ExportError(f"a routed graph needs >= 2 models and one min_side each, got {len(models)} and "
                          f"{len(min_sides)}")
    if min_sides[0] != 0 or any(a >= b for a, b in zip(min_sides, min_sides[1:])):
        raise ExportError(f"min_side must be 0 for the first route, then strictly ascending; got {min_sides}")
    for m in models:
        if [i.name for i in m.graph.input] != [INPUT_NAME] or len(m.graph.output) != 1 or m.functions:
            raise ExportError(f"each routed model needs one input {INPUT_NAME!r}, one output and no local functions")
    out = models[0].graph.output[0]
    if any(m.graph.output[0].name != out.name for m in models):
        raise ExportError(f"routed models must share one output name, got {[m.graph.output[0].name for m in models]}")
    branches = [_prefixed(m.graph, f"route{i}/") for i, m in enumerate(models)]
    nodes = [helper.make_node("Shape", [INPUT_NAME], ["routed/shape"], start=1, end=3, name="routed/shape"),
             helper.make_node("ReduceMax", ["routed/shape"], [SIDE], keepdims=0, name="routed/side")]
    inits = []
    chosen = branches[0]
    for i in range(1, len(models)):  # route i, else the routes below it
        at, cond, result = f"routed/min_side{i}", f"routed/cond{i}", f"routed/out{i}"
        inits.append(numpy_helper.from_array(np.array(min_sides[i], np.int64), at))
        step = [helper.make_node("GreaterOrEqual", [SIDE, at], [cond], name=f"routed/ge{i}"),
                helper.make_node("If", [cond], [result], name=f"routed/if{i}", then_branch=branches[i],
                                 else_branch=chosen)]
        if i == len(models) - 1:
            nodes += step
            break
        chosen = helper.make_graph(step, f"routes0-{i}", [], [helper.make_value_info(result, out.type)])
    nodes[-1].output[:] = [out.name]
    graph = helper.make_graph(nodes, "routed", [models[0].graph.input[0]], [out], initializer=inits)
    opsets = {}
    for m in models:
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="lowres_sdk")
    model.ir_version = max(m.ir_version for m in models)
    onnx.checker.check_model(model, full_check=True)
    return model


def routing_parity(routed: str | os.PathLike, route_paths: list[str | os.PathLike], min_sides: list[int],
                   sides: list[int], seed: int = 0) -> dict:
    """Max |routed - the route's own graph| over random crops of each of ``sides`` (square, tall and
    wide); ExportError above `PARITY_TOLERANCE` (the composition must not change a number)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(routed), opts, providers=["CPUExecutionProvider"])
    own = [ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in route_paths]
    rng, worst, shapes = np.random.default_rng(seed), 0.0, []
    for s in sides:
        for h, w in ((s, s), (s, max(1, s // 2)), (max(1, s // 2), s)):
            batch = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
            want = own[route_index(min_sides, h, w)].run(None, {INPUT_NAME: batch})[0]
            got = session.run(None, {INPUT_NAME: batch})[0]
            worst = max(worst, float(np.abs(got - want).max()))
            shapes.append([h, w])
    if not worst <= PARITY_TOLERANCE:
        raise ExportError(f"the routed graph differs from its routes' own graphs by {worst:.3g} (> "
                          f"{PARITY_TOLERANCE:g})")
    return {"max_abs_diff": worst, "tolerance": PARITY_TOLERANCE, "shapes": shapes}


def _check_routes_agree(bundles: list[Bundle]) -> None:
    first = bundles[0].description
    for b in bundles[1:]:
        d = b.description
        if (d.task, d.labels, d.output.name) != (first.task, first.labels, first.output.name):
            raise ExportError(f"routed models must share task, labels and output: {b.path} has {d.task} "
                              f"{list(d.labels)}, the first route {first.task} {list(first.labels)}")


def export_routed(routes: list[tuple[int, str | os.PathLike]], out_dir: str | os.PathLike,
                  options: ExportOptions | None = None, *, heads: list[dict | None] | None = None,
                  max_mb: float | None = None, log=print, **settings) -> Bundle:
    """Export the training runs of ``routes`` [(min_side, run), ...] (min_side 0 first, ascending) to
    one routed classify bundle ``out_dir``, as ``options`` say (``settings``: its fields set on top).
    Each run is exported by `export_run` (its parity check, metrics, and with ``int8`` its INT8 gates:
    model.int8.onnx holds the INT8 graph of each route that passed them, the FP32 graph of each that
    did not -- ``routes[i].int8`` says which -- and is left out when none passed, or when ``max_mb`` is
    given and the bundle with it would weigh more than that many MB; each route's metrics keep its
    gates' figures either way); ``heads[i]``: route i's head (temperature / merge / drop: each net is
    calibrated on its own); ``options.calibration``: the bundle's (thresholds over the routed outputs)."""
    from .exporter import ExportOptions, export_run, run_name

    o = replace(options or ExportOptions(), **settings)
    check_bundle_target(out_dir, o.overwrite)
    if len(routes) < 2:
        raise ExportError(f"a routed bundle needs >= 2 routes, got {len(routes)}")
    if o.task != "classify":
        raise ExportError("only classifiers are routed (embedders of different nets do not share a space)")
    min_sides = [int(m) for m, _ in routes]
    heads = heads or [None] * len(routes)
    if len(heads) != len(routes):
        raise ExportError(f"heads: one per route ({len(routes)}), got {len(heads)}")
    calibration, overwrite = o.calibration, o.overwrite
    each = replace(o, int8_optional=True, calibration=None, overwrite=False)  # each route into a new folder
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        parts: list[Bundle] = []
        for i, ((side, run), head) in enumerate(zip(routes, heads)):
            log(f"route {i} (crops >= {side} px): {run}")
            parts.append(export_run(run, tmp / f"route{i}", replace(each, head=head), log=log))
        _check_routes_agree(parts)
        int8_routes = ["int8" in p.variants for p in parts]
        if o.int8 and not all(int8_routes):
            log(f"INT8 refused for route(s) {[i for i, q in enumerate(int8_routes) if not q]}: "
                + ("model.int8.onnx runs them in FP32" if any(int8_routes) else "the routed bundle ships FP32 only"))
        files, routing = _compose(parts, min_sides, int8_routes, tmp / "composed", log)
        runs = [run_name(run) for _, run in routes]
        bundle = _write(parts, runs, min_sides, int8_routes, calibration, files, routing, out_dir, overwrite)
        if max_mb is not None and "model.int8.onnx" in files:
            mb = sum(f.stat().st_size for f in Path(out_dir).iterdir()) / 1e6
            if mb > max_mb:
                log(f"with its INT8 model the bundle is {mb:.2f} MB (> {max_mb:g}); shipping FP32 only")
                bundle = _write(parts, runs, min_sides, [False] * len(parts), calibration,
                                {"model.onnx": files["model.onnx"]}, {"fp32": routing["fp32"]}, out_dir, True)
    log(f"wrote routed bundle {out_dir} ({len(routes)} models, routes at {min_sides[1:]} px): "
        + ", ".join(f"{n} ({i['bytes'] / 1e6:.2f} MB)" for n, i in bundle.meta["files"].items()))
    return bundle


def _compose(parts: list[Bundle], min_sides: list[int], int8_routes: list[bool], tmp: Path, log) -> tuple[dict, dict]:
    """The exported ``parts``' FP32 graphs composed into model.onnx, and where any of ``int8_routes``
    holds, model.int8.onnx (each such route's INT8 graph, the others' FP32 one), in ``tmp``; each checked
    against its routes' own graphs. Returns ({file name: path}, {variant: routing parity})."""
    tmp.mkdir()
    variants = {"fp32": "model.onnx", **({"int8": "model.int8.onnx"} if any(int8_routes) else {})}
    # each route's graph in a variant: its own, or its FP32 one where its INT8 was refused
    graphs = {k: [p.file(p.variants["int8"] if k == "int8" and q else "model.onnx") for p, q in zip(parts, int8_routes)]
              for k in variants}
    files = {}
    for key, name in variants.items():
        files[name] = tmp / name
        onnx.save(route_graph([onnx.load(str(g)) for g in graphs[key]], min_sides), str(files[name]))
    sides = sorted({*min_sides[1:], *(m - 1 for m in min_sides[1:]), 8, 2 * min_sides[-1]})
    routing = {k: routing_parity(files[n], graphs[k], min_sides, sides) for k, n in variants.items()}
    log(f"routing parity: max |routed - route's own graph| = "
        f"{max(r['max_abs_diff'] for r in routing.values()):.2e} over crops of {sides} px")
    return files, routing


def _write(parts: list[Bundle], runs: list[str], min_sides: list[int], int8_routes: list[bool],
           calibration: dict | None, files: dict, routing: dict, out_dir: str | os.PathLike, overwrite: bool) -> Bundle:
    """The routed bundle of the composed ``files`` (`_compose`'s, or the FP32 one alone with ``int8_routes``
    all False), its description embedded in each, written to ``out_dir``."""
    from .exporter import _embed_metadata

    first = parts[0].description
    report = {"routing": routing, "max_abs_diff": max(p.description.parity["max_abs_diff"] for p in parts),
              "tolerance": PARITY_TOLERANCE}
    description = describe(
        "classify", list(first.labels), first.preprocessing, embedding_dim=first.embedding_dim,
        provenance={**first.provenance, "routed_from": runs}, metrics={}, parity=report,
        variants={"int8": "model.int8.onnx"} if "model.int8.onnx" in files else {}, calibration=calibration,
        routes=[{"min_side": side, "preprocessing": p.description.preprocessing.to_dict(),
                 "provenance": p.description.provenance, "metrics": p.description.metrics,
                 "parity": p.description.parity, "int8": q} for side, p, q in zip(min_sides, parts, int8_routes)])
    for path in files.values():
        _embed_metadata(path, description)
    return write_bundle(out_dir, description, files, overwrite=overwrite)


def _branch(graph: onnx.GraphProto, name: str) -> onnx.GraphProto | None:
    """The If branch called ``name`` anywhere under ``graph``."""
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                if a.g.name == name:
                    return a.g
                found = _branch(a.g, name)
                if found is not None:
                    return found
    return None


def route_model(model: onnx.ModelProto, index: int) -> onnx.ModelProto:
    """Route ``index`` of a routed graph as a model of its own (the inverse of `route_graph` for one
    route): its branch with the names it had, the routed graph's input and output."""
    prefix = f"route{index}/"
    branch = _branch(model.graph, prefix.rstrip("/"))
    if branch is None:
        raise ExportError(f"the graph has no route {index}")
    g = onnx.GraphProto()
    g.CopyFrom(branch)
    strip = (lambda n: n[len(prefix):] if n.startswith(prefix) else n)
    for node in g.node:
        node.name = strip(node.name)
        node.input[:] = [strip(n) for n in node.input]
        node.output[:] = [strip(n) for n in node.output]
    for t in g.initializer:
        t.name = strip(t.name)
    for v in g.value_info:
        v.name = strip(v.name)
    out = model.graph.output[0]
    for node in g.node:  # the branch's output becomes the model's
        node.output[:] = [out.name if n == strip(g.output[0].name) else n for n in node.output]
    del g.output[:]
    g.output.append(out)
    g.input.append(model.graph.input[0])
    g.name = f"route{index}"
    m = helper.make_model(g, opset_imports=list(model.opset_import), producer_name="lowres_sdk")
    m.ir_version = model.ir_version
    onnx.checker.check_model(m, full_check=True)
    return m


def _route_calibration(calibration, route) -> dict | None:
    """The bundle's calibration, with the temperature inside the route's own graph."""
    if calibration is None:
        return None
    head = route.provenance.get("head") or {}
    return {**calibration.to_dict(), "temperature": head.get("temperature", calibration.temperature)}


def split_route(bundle: Bundle, index: int, out_dir: str | os.PathLike, *, overwrite: bool = False,
                log=print) -> Bundle:
    """Route ``index`` of the routed ``bundle`` as a verified bundle of one model (schema version 1):
    for engines and pipelines of one input size (TensorRT, DeepStream), which take no routed graph.
    Its graphs are cut out of the routed ones and checked equal to them on crops of the route's sizes."""
    from .exporter import _embed_metadata

    routes = bundle.routes
    if not routes:
        raise ExportError(f"{bundle.path} is not a routed bundle (it holds one model)")
    if not 0 <= index < len(routes):
        raise ExportError(f"{bundle.path} has routes 0..{len(routes) - 1}, not {index}")
    check_bundle_target(out_dir, overwrite)
    route, d = routes[index], bundle.description
    hi = routes[index + 1].min_side - 1 if index + 1 < len(routes) else 2 * route.min_side + 32
    sides = sorted({max(1, route.min_side), hi, (max(1, route.min_side) + hi) // 2})
    # model.int8.onnx runs a route whose INT8 was refused in FP32: its split bundle has no INT8 model
    variants = {k: v for k, v in bundle.variants.items() if k != "int8" or route.int8}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for key, name in variants.items():
            path = Path(tmp) / name
            onnx.save(route_model(onnx.load(str(bundle.file(name))), index), str(path))
            files[name] = path
            one = [path if i == index else bundle.file(name) for i in range(len(routes))]
            # Raises if the cut changed a number.
            routing_parity(bundle.file(name), one, [r.min_side for r in routes], sides)
        split_from = {"bundle": str(bundle.path), "route": index, "fingerprint": bundle.fingerprint}
        description = describe(d.task, list(d.labels), route.preprocessing, embedding_dim=d.embedding_dim,
                               provenance={**route.provenance, "split_from": split_from},
                               metrics=route.metrics, parity=route.parity,
                               variants={k: v for k, v in variants.items() if k != "fp32"},
                               calibration=_route_calibration(d.calibration, route))
        for path in files.values():
            _embed_metadata(path, description)
        out = write_bundle(out_dir, description, files, overwrite=overwrite)
    log(f"wrote {out_dir}: route {index} of {bundle.path} (crops >= {route.min_side} px, "
        f"{route.preprocessing.resolution} px model)")
    return out
