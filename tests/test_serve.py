"""`lowres serve` over loopback: parity with Classifier/Embedder, every bad request a 4xx JSON error
(never a 500, server still serving), queue-full 503, timeouts, metrics, a bounded load test, SIGTERM."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from lowres_sdk import Classifier, Embedder  # noqa: E402
from lowres_sdk.serve import ServeConfig, create_app, split_output  # noqa: E402
from lowres_sdk.serve.input import Limits  # noqa: E402

SMALL = Limits(max_body_bytes=1 << 20, max_images=8, max_pixels=200 * 200, max_side=400)


class LoopbackServer:
    """uvicorn in a thread on 127.0.0.1, port chosen by the OS."""

    def __init__(self, model, config: ServeConfig):
        self.server = uvicorn.Server(uvicorn.Config(create_app(model, config), host="127.0.0.1", port=0,
                                                    log_level="error", timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)
        return self

    def __exit__(self, *exc):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


def wait_until(ready, what: str, poll: float = 0.01, timeout: float = 10.0) -> None:
    """Poll ``ready()`` until true; fail naming ``what`` after ``timeout`` seconds rather than hang."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(poll)


def metric(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in Prometheus text ``text``."""
    return float(next(line for line in text.splitlines() if line.split(" ")[0] == name).split()[-1])


@pytest.fixture(scope="module")
def clf():
    return Classifier(batch_size=64)


@pytest.fixture(scope="module")
def server(clf):
    with LoopbackServer(Classifier(), ServeConfig(max_batch=16, max_wait_ms=2, limits=SMALL)) as s:
        yield s


def crops(seed=0, sizes=((16, 16), (40, 12), (16, 16), (5, 7), (33, 64))):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def png(img) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def raw(img) -> dict:
    return {"shape": list(img.shape), "data": base64.b64encode(img.tobytes()).decode()}


def assert_same_as_classifier(body, expected, k):
    assert body["classes"] == expected.classes
    got = body["results"]
    assert [r["label"] for r in got] == expected.labels
    assert [r["index"] for r in got] == expected.indices.tolist()
    probs = np.array([r["probs"] for r in got], np.float32)
    assert probs.shape == expected.probs.shape and np.abs(probs - expected.probs).max() <= 1e-5
    _, names, scores = expected.top_k(k)
    assert [[t["label"] for t in r["top_k"]] for r in got] == names
    assert np.abs(np.array([[t["score"] for t in r["top_k"]] for r in got]) - scores).max() <= 1e-5


def test_classify_multipart_json_and_raw_body_equal_classifier(server, clf):
    imgs = crops()
    expected = clf(imgs)
    files = [("images", (f"{i}.png", png(c), "image/png")) for i, c in enumerate(imgs)]
    r = server.client.post("/v1/classify", files=files, params={"top_k": 3})
    assert r.status_code == 200, r.text
    assert_same_as_classifier(r.json(), expected, 3)
    r = server.client.post("/v1/classify", json={"crops": [raw(c) for c in imgs]})
    assert r.status_code == 200, r.text
    assert_same_as_classifier(r.json(), expected, min(5, len(clf.labels)))
    r = server.client.post("/v1/classify", json={"images": [base64.b64encode(png(imgs[1])).decode()],
                                                 "crops": [raw(imgs[0])]})
    assert [x["label"] for x in r.json()["results"]] == [expected.labels[1], expected.labels[0]]
    r = server.client.post("/v1/classify", content=png(imgs[4]), headers={"Content-Type": "image/png"})
    assert r.json()["results"][0]["label"] == expected.labels[4]
    # a body large enough to be decoded off the event loop gives the same answers
    noisy = [np.random.default_rng(i).integers(0, 256, (180, 180, 3), dtype=np.uint8) for i in range(3)]
    blobs = [png(c) for c in noisy]
    assert sum(map(len, blobs)) > 64 << 10
    r = server.client.post("/v1/classify", files=[("images", (f"{i}.png", b, "image/png")) for i, b in enumerate(blobs)])
    assert [x["label"] for x in r.json()["results"]] == clf(noisy).labels
    # JPEG: the server decodes as OpenCV does, so it equals Classifier on cv2.imdecode of the same bytes
    jpg = cv2.imencode(".jpg", imgs[4])[1].tobytes()
    r = server.client.post("/v1/classify", content=jpg, headers={"Content-Type": "image/jpeg"})
    exp = clf(cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR))
    assert np.abs(np.array(r.json()["results"][0]["probs"]) - exp.probs[0]).max() <= 1e-5
    # gray and BGRA raw crops are converted as Classifier converts them
    gray, bgra = imgs[0][:, :, 0], np.dstack([imgs[1], np.full(imgs[1].shape[:2], 7, np.uint8)])
    r = server.client.post("/v1/classify", json={"crops": [raw(gray), raw(bgra)]})
    assert [x["label"] for x in r.json()["results"]] == clf([gray, bgra]).labels


def test_embed_endpoint_equals_embedder(tiny_run, tmp_path):
    from lowres_sdk.export.exporter import export_run

    b = export_run(tiny_run, tmp_path / "emb", task="embed", eval_per_class=2, log=lambda *a: None)
    imgs = crops(1)
    expected = Embedder(b.path)(imgs)
    with LoopbackServer(Embedder(b.path), ServeConfig(max_batch=4, limits=SMALL)) as s:
        r = s.client.post("/v1/embed", json={"crops": [raw(c) for c in imgs]})
        assert r.status_code == 200, r.text
        e = np.array(r.json()["embeddings"], np.float32)
        assert r.json()["dim"] == b.meta["embedding_dim"] and e.shape == expected.shape
        assert np.abs(e - expected).max() <= 1e-5
        r = s.client.post("/v1/classify", json={"crops": [raw(imgs[0])]})
        assert r.status_code == 404 and r.json()["error"]["type"] == "wrong_task"


def _png_claiming(w, h) -> bytes:
    """A PNG whose header says w x h (the data is a 1x1 image's): a decompression-bomb stand-in."""
    data = bytearray(png(np.zeros((1, 1, 3), np.uint8)))
    data[16:24] = w.to_bytes(4, "big") + h.to_bytes(4, "big")
    return bytes(data)


def bad_requests():
    img = crops()[0]
    jpg = cv2.imencode(".jpg", np.zeros((40, 40, 3), np.uint8))[1].tobytes()
    mp = lambda *blobs: {"files": [("images", (f"{i}", b, "image/png")) for i, b in enumerate(blobs)]}  # noqa: E731
    ct = lambda t, body: {"content": body, "headers": {"Content-Type": t}}  # noqa: E731
    return {
        "no content type": (415, {"content": b"abc"}),
        "text/plain": (415, ct("text/plain", b"hello")),
        "empty image body": (422, ct("image/png", b"")),
        "not an image": (422, ct("image/jpeg", b"GIF89a this is not a jpeg at all")),
        "bmp (not accepted)": (422, ct("application/octet-stream", cv2.imencode(".bmp", img)[1].tobytes())),
        "truncated jpeg": (422, ct("image/jpeg", jpg[: len(jpg) // 2])),
        "jpeg header only": (422, ct("image/jpeg", jpg[:20])),
        "truncated png": (422, ct("image/png", png(img)[:-20])),
        "png bomb header": (413, ct("image/png", _png_claiming(100_000, 100_000))),
        "png bomb side": (413, ct("image/png", _png_claiming(1, 100_000))),
        "png lies about size": (422, ct("image/png", _png_claiming(30, 30))),
        "too many pixels": (413, ct("image/png", png(np.zeros((300, 300, 3), np.uint8)))),
        "body too large": (413, ct("image/png", b"\x89PNG" + bytes(2 << 20))),
        "too many images": (413, mp(*[png(img)] * 9)),
        "multipart no boundary": (400, ct("multipart/form-data", b"--x\r\n\r\n")),
        "multipart garbage": (400, ct("multipart/form-data; boundary=zz", b"--zz\r\nno headers end")),
        "multipart empty": (422, ct("multipart/form-data; boundary=zz", b"--zz--\r\n")),
        "multipart text part": (422, mp(b"just text")),
        "invalid json": (400, ct("application/json", b"{'crops': ")),
        "json not utf8": (400, ct("application/json", b"\xff\xfe\x00")),
        "json list": (422, {"json": [1, 2]}),
        "json nested 100k deep": (400, ct("application/json", b"[" * 100_000 + b"]" * 100_000)),
        "json unknown key": (422, {"json": {"crops": [], "pics": []}}),
        "json empty": (422, {"json": {"crops": []}}),
        "json crops not list": (422, {"json": {"crops": "abc"}}),
        "crop bad base64": (422, {"json": {"crops": [{"shape": [2, 2, 3], "data": "@@@"}]}}),
        "crop wrong length": (422, {"json": {"crops": [{"shape": [4, 4, 3], "data": base64.b64encode(b"x" * 5).decode()}]}}),
        "crop negative shape": (422, {"json": {"crops": [{"shape": [-4, 4, 3], "data": ""}]}}),
        "crop bool shape": (422, {"json": {"crops": [{"shape": [True, 1, 3], "data": "AAAA"}]}}),
        "crop float shape": (422, {"json": {"crops": [{"shape": [1.5, 1, 3], "data": "AAAA"}]}}),
        "crop 2 channels": (422, {"json": {"crops": [{"shape": [1, 1, 2], "data": "AAA="}]}}),
        "crop 4-d": (422, {"json": {"crops": [{"shape": [1, 1, 1, 3], "data": "AAAA"}]}}),
        "crop huge side": (413, {"json": {"crops": [{"shape": [1, 100_000, 3], "data": ""}]}}),
        "crop extra key": (422, {"json": {"crops": [{"shape": [1, 1, 3], "data": "AAAA", "x": 1}]}}),
        "images not base64": (422, {"json": {"images": ["%%%"]}}),
        "images not string": (422, {"json": {"images": [3]}}),
        "top_k zero": (422, {"json": {"crops": [raw(img)]}, "params": {"top_k": 0}}),
        "top_k word": (422, {"json": {"crops": [raw(img)]}, "params": {"top_k": "many"}}),
        "top_k too big": (422, {"json": {"crops": [raw(img)]}, "params": {"top_k": 10_000}}),
    }


@pytest.mark.parametrize("name", list(bad_requests()))
def test_bad_request_gets_4xx_json_naming_the_problem(server, name):
    status, kwargs = bad_requests()[name]
    r = server.client.post("/v1/classify", **kwargs)
    assert r.status_code == status, (name, r.status_code, r.text)
    err = r.json()["error"]
    assert err["message"] and err["type"]
    if status == 413:
        assert err["limit"] in ("max_body_bytes", "max_images", "max_pixels", "max_side") and err["limit"] in err["message"]


def test_fuzzed_bodies_never_500_and_server_keeps_serving(server, clf):
    rng = np.random.default_rng(0)
    good = png(crops()[0])
    types = ["image/png", "image/jpeg", "application/octet-stream", "application/json",
             "multipart/form-data; boundary=b", "text/html"]
    statuses = []
    for i in range(150):
        body = bytearray(good) if i % 2 else bytearray(rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes())
        if i % 2:  # flip a few bytes of a real PNG, or cut it
            for j in rng.integers(0, len(body), 3):
                body[j] = rng.integers(0, 256)
            body = body[: rng.integers(1, len(body) + 1)]
        r = server.client.post("/v1/classify", content=bytes(body), headers={"Content-Type": types[i % len(types)]})
        statuses.append(r.status_code)
        assert r.status_code < 500 and ("error" in r.json() or r.status_code == 200), r.text
    assert statuses.count(200) < len(statuses)
    # Broken HTTP never reaches the app: uvicorn answers 400 itself and keeps serving.
    host, port = server.url.removeprefix("http://").split(":")
    for raw_request in (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\nab",
                        b"\x00\x01garbage\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(raw_request)
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
    r = server.client.post("/v1/classify", content=good, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["results"][0]["label"] == clf(crops()[0]).labels[0]
    assert server.client.get("/v1/classify").status_code == 405
    assert server.client.get("/nowhere").json()["error"]["type"] == "http"
    metrics = server.client.get("/metrics").text
    assert 'status="500"' not in metrics and 'lowres_requests_total{path="/v1/classify",status="200"}' in metrics


def test_health_readiness_metrics_and_openapi(server):
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["task"] == "classify"
    server.client.post("/v1/classify", json={"crops": [raw(c) for c in crops()]})
    text = server.client.get("/metrics").text
    for needle in ("# TYPE lowres_requests_total counter", 'lowres_request_duration_seconds_bucket{path="/v1/classify",le="+Inf"}',
                   "lowres_batch_size_bucket{le=\"16\"}", "lowres_queue_depth 0"):
        assert needle in text
    spec = server.client.get("/openapi.json").json()
    body = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/jpeg"} <= set(body)


def test_queue_full_is_503_with_retry_after_and_timeout_is_504(clf):
    # The first request waits up to 800 ms for company, longer than its 300 ms timeout; meanwhile it
    # holds the only queue slot, so a second request is turned away.
    config = ServeConfig(max_batch=64, max_wait_ms=800, max_queue=1, timeout_s=0.3, limits=SMALL)
    with LoopbackServer(Classifier(), config) as s:
        body = {"crops": [raw(crops()[0])]}
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(s.client.post, "/v1/classify", json=body)
            wait_until(lambda: s.client.get("/readyz").json()["queue_depth"] >= 1, "the first request to queue", 0.005)
            second = s.client.post("/v1/classify", json=body)
            assert second.status_code == 503 and second.headers["Retry-After"] == "1"
            assert second.json()["error"]["type"] == "overloaded"
            first = first.result()
            assert first.status_code == 504 and first.json()["error"]["type"] == "timeout"
        wait_until(lambda: s.client.get("/readyz").json()["queue_depth"] == 0,
                   "the timed-out request to leave the queue")
        # Its slot is free again (a timeout, not 503), and no batch ever ran: timed-out requests are dropped unrun.
        again = s.client.post("/v1/classify", json=body, params={"top_k": 1}, timeout=5)
        assert again.status_code == 504 and again.json()["error"]["type"] == "timeout"
        assert metric(s.client.get("/metrics").text, "lowres_batch_size_count") == 0


def test_load_2000_requests_32_clients_batches_and_all_answers_right(clf):
    imgs = crops(2, sizes=[(16, 16)] * 8 + [(24, 12)] * 8)
    expected = clf(imgs).labels
    n, clients = 2000, 32
    with LoopbackServer(Classifier(), ServeConfig(max_batch=32, max_wait_ms=5, limits=SMALL)) as s:
        bodies = [json.dumps({"crops": [raw(c)]}).encode() for c in imgs]

        def client(k):
            with httpx.Client(base_url=s.url, timeout=30) as c:
                out = []
                for i in range(k, n, clients):
                    r = c.post("/v1/classify", content=bodies[i % len(imgs)],
                               headers={"Content-Type": "application/json"})
                    out.append((i, r.status_code, r.json()["results"][0]["label"] if r.status_code == 200 else r.text))
                return out

        start = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            results = [x for f in [pool.submit(client, k) for k in range(clients)] for x in f.result(timeout=240)]
        elapsed = time.monotonic() - start
        metrics = s.client.get("/metrics").text
    assert len(results) == n and elapsed < 240
    assert all(status == 200 for _, status, _ in results), [r for r in results if r[1] != 200][:3]
    assert all(label == expected[i % len(imgs)] for i, _, label in results)
    count, total = metric(metrics, "lowres_batch_size_count"), metric(metrics, "lowres_batch_size_sum")
    assert total == n and count < n  # crops of concurrent requests shared model calls


def test_split_output_slices_per_crop_fields_only(clf):
    p = clf(crops(sizes=[(16, 16)] * len(clf.labels)))  # N == C: classes must still not be sliced
    part = split_output(p, 1, 3)
    assert len(part) == 2 and part.classes == p.classes and part.labels == p.labels[1:3]
    assert np.array_equal(part.probs, p.probs[1:3])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serve_finishes_in_flight_request_on_sigterm(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).with_name("lowres")
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "lowres_sdk.cli"]),
           "serve", "--port", str(port), "--max-batch", "64", "--max-wait-ms", "1500"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/classify", json={"crops": [raw(crops()[0])]}, timeout=30)
            wait_until(lambda: pending.done() or httpx.get(f"{url}/readyz", timeout=5).json()["queue_depth"] >= 1,
                       "the request to wait for a batch")
            assert not pending.done(), "the request finished before SIGTERM: max-wait-ms did not hold it"
            proc.send_signal(signal.SIGTERM)
            r = pending.result(timeout=30)
        assert r.status_code == 200 and r.json()["results"][0]["label"] == Classifier()(crops()[0]).labels[0]
        # uvicorn re-raises the signal once it has shut down, so the exit status says "ended by SIGTERM"
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert '"POST /v1/classify HTTP/1.1" 200' in proc.stdout.read().decode()  # uvicorn's access log
        assert "lowres serve stopped: " in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_serve_without_the_extra_is_one_line_naming_it():
    code = "import sys; sys.modules['fastapi'] = None; from lowres_sdk.cli import main; main(['serve', '--help'])"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "pip install 'lowres_sdk[serve]'" in p.stderr and "Traceback" not in p.stderr


def test_port_in_use_is_said_before_claiming_to_serve():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "serve", "--port", str(port)],
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "serving" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"Error: port {port} on 127.0.0.1 is in use (another server?); "
                                             "pick another with --port"]


def test_openapi_response_models_are_the_result_schema_and_docs_are_offline(server):
    from lowres_sdk.results import Scored, record

    spec = server.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    ok = spec["paths"]["/v1/classify"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/ClassifyResponse")
    fields = set(schemas["ClassifyRecord"]["properties"])
    assert fields == set(record("a", True, "a", 0, 1.0, [Scored("a", 1.0)], [1.0]))
    assert "422" in spec["paths"]["/v1/classify"]["post"]["responses"]
    assert set(schemas["EmbedResponse"]["properties"]) == {"dim", "embeddings"}
    page = server.client.get("/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    if "/docs-static/" in page.text:  # swagger-ui-bundle installed: its files are served from here
        assert server.client.get("/docs-static/swagger-ui-bundle.js").status_code == 200
