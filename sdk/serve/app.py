"""`lowres serve`: an HTTP server (FastAPI + uvicorn) answering /v1/classify or /v1/embed for one
bundle, with micro-batching across concurrent requests, a bounded queue and request limits.

Request bodies (any of): ``multipart/form-data`` with one JPEG/PNG per part; one JPEG/PNG as the
whole body (``image/jpeg``, ``image/png``, ``application/octet-stream``); or ``application/json``
``{"images": [base64 JPEG/PNG, ...], "crops": [{"shape": [H, W, C], "data": base64 uint8}, ...]}``
(raw crops in BGR, as OpenCV holds them; see serve_input.py). Every error is JSON
``{"error": {"type", "message", ...}}`` with a 4xx status; docs/serving.md has the table.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import socket
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import click
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from ..cli import PRECISION_HELP
from .batcher import MicroBatcher, QueueFull
from ..errors import InputError
from ..runtime import Predictions
from .input import Limits, LimitError, base64_bytes, check_count, decode_image, decode_raw
from .metrics import Metrics
from .schema import ERRORS, ClassifyResponse, EmbedResponse

ENCODED_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
INLINE_DECODE_BYTES = 64 << 10  # larger bodies are parsed and decoded in a worker thread
ROUTES = ("/v1/classify", "/v1/embed", "/healthz", "/readyz", "/metrics")


@dataclass(frozen=True)
class ServeConfig:
    max_batch: int = 32          # crops per model call; 1 = no batching
    max_wait_ms: float = 0.0     # extra wait for company; 0 = batch whatever queued while the model ran
    max_queue: int = 256         # requests waiting for the model before 503
    timeout_s: float = 10.0      # per request, from arrival in the queue to its answer (504 after)
    top_k: int = 5               # default k of the answer's top-k (clipped to the number of classes)
    retry_after_s: int = 1
    limits: Limits = field(default_factory=Limits)


class HTTPError(Exception):
    """An answer other than 200, as JSON."""

    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.kind, self.headers, self.extra = status, kind, headers or {}, extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"type": self.kind, "message": str(self), **self.extra}}, self.status,
                            headers=self.headers)


def split_output(out, start: int, stop: int):
    """Rows start:stop of a batch's output: an array, or a `Predictions` whose per-crop fields
    (arrays and lists with one entry per crop) are sliced and the rest (`Predictions.PER_MODEL`:
    ``classes``, ``unknown_below``) kept, so fields the runtime may add later travel without this
    server knowing them."""
    if not isinstance(out, Predictions):
        return out[start:stop]
    n = len(out)
    return dataclasses.replace(out, **{f.name: v[start:stop] for f in dataclasses.fields(out)
                                       if f.name not in Predictions.PER_MODEL
                                       and isinstance(v := getattr(out, f.name), (np.ndarray, list)) and len(v) == n})


# ---- reading a request ----------------------------------------------------------------------

async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, "malformed", f"Content-Length is not a number: {declared[:40]!r}")
        if int(declared) > limit:
            raise LimitError("max_body_bytes", limit,
                             f"the body has {declared} bytes; the limit (max_body_bytes) is {limit}")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise LimitError("max_body_bytes", limit, f"the body exceeds the limit (max_body_bytes) of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_multipart(body: bytes, content_type: str, max_parts: int) -> list[bytes]:
    """The data of every part, in order; each part is one image (field names are not looked at)."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPError(400, "malformed", "multipart/form-data without a boundary parameter")
    parts: list[bytes] = []
    current = bytearray()

    def on_part_begin():
        current.clear()

    def on_part_data(data, start, end):
        current.extend(data[start:end])

    def on_part_end():
        parts.append(bytes(current))
        if len(parts) > max_parts:
            raise LimitError("max_images", max_parts,
                             f"more than {max_parts} images in one request; the limit (max_images) is {max_parts}")

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_part_data": on_part_data,
                                        "on_part_end": on_part_end})
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as e:
        raise HTTPError(400, "malformed", f"invalid multipart body: {e}") from None
    return parts


async def read_crops(request: Request, limits: Limits) -> list[np.ndarray]:
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/json", *ENCODED_TYPES):
        raise HTTPError(415, "unsupported_media_type", f"Content-Type {content_type[:80]!r} is not accepted; send "
                        f"multipart/form-data, application/json or one of {', '.join(ENCODED_TYPES)}")
    body = await read_body(request, limits.max_body_bytes)
    if len(body) > INLINE_DECODE_BYTES:  # decoding megabytes would stall every other request on the event loop
        return await asyncio.to_thread(parse_crops, body, kind, content_type, limits)
    return parse_crops(body, kind, content_type, limits)


def parse_crops(body: bytes, kind: str, content_type: str, limits: Limits) -> list[np.ndarray]:
    if kind == "multipart/form-data":
        blobs = parse_multipart(body, content_type, limits.max_images)
        check_count(len(blobs), limits)
        return [decode_image(b, limits, f"part {i}") for i, b in enumerate(blobs)]
    if kind != "application/json":
        return [decode_image(body, limits, "the body")]
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise HTTPError(400, "malformed", f"the body is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not set(doc) <= {"images", "crops"} or not doc:
        raise HTTPError(422, "invalid_input", "expected a JSON object with 'images' (base64 JPEG/PNG) and/or "
                        "'crops' ({'shape', 'data'}) lists")
    images, crops = doc.get("images", []), doc.get("crops", [])
    if not isinstance(images, list) or not isinstance(crops, list):
        raise HTTPError(422, "invalid_input", "'images' and 'crops' must be lists")
    check_count(len(images) + len(crops), limits)
    out = []
    for i, b64 in enumerate(images):
        out.append(decode_image(base64_bytes(b64, f"images[{i}]"), limits, f"images[{i}]"))
    out += [decode_raw(c, limits, f"crops[{i}]") for i, c in enumerate(crops)]
    return out


def parse_top_k(request: Request, default: int, classes: int) -> int:
    raw = request.query_params.get("top_k")
    if raw is None:
        return min(default, classes)
    if not raw.isdigit() or not 1 <= int(raw) <= classes:
        raise HTTPError(422, "invalid_input", f"top_k must be an integer in 1..{classes}, got {raw[:20]!r}")
    return int(raw)


# ---- the app --------------------------------------------------------------------------------

class ObserveRequests:
    """ASGI middleware: count every answer by path and status, and time it (unknown paths pooled
    as "other", so a scanner cannot grow the metrics without bound)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.observe_request(path, status, time.perf_counter() - start)


_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {"images": {
        "type": "array", "items": {"type": "string", "format": "binary"}}}},
        "description": "one JPEG or PNG per part (any field name)"},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object", "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "byte"}, "description": "base64 JPEG/PNG"},
        "crops": {"type": "array", "items": {"type": "object", "required": ["shape", "data"], "properties": {
            "shape": {"type": "array", "items": {"type": "integer"},
                      "description": "[H, W] or [H, W, C], C in 1, 3, 4"},
            "data": {"type": "string", "format": "byte",
                     "description": "base64 of H*W*C uint8, row-major, BGR(A)"}}}}}}}}},
    "parameters": [{"name": "top_k", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
                    "description": "classes listed per image (classify only)"}]}


def create_app(model, config: ServeConfig = ServeConfig()) -> FastAPI:
    """The app for one loaded `Classifier` or `Embedder`; its batcher thread starts with the app's lifespan."""
    task = model.bundle.task
    model.batch_size = config.max_batch
    metrics = Metrics(config.max_batch, lambda: batcher.depth)
    batcher = MicroBatcher(model, split_output, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
                           max_queue=config.max_queue, on_batch=metrics.observe_batch)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(model, [np.zeros((8, 8, 3), np.uint8)])  # first call allocates; not on a client's clock
        batcher.start()
        state["ready"] = True
        yield
        # uvicorn calls this after the in-flight requests have been answered (SIGTERM included)
        state["ready"] = False
        await asyncio.to_thread(batcher.close, config.timeout_s)
        answered = sum(n for (_, status), n in metrics.requests.items() if status < 500)
        logging.getLogger("uvicorn.error").info("lowres serve stopped: %d requests answered", answered)

    app = FastAPI(title="lowres_sdk", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"Serving {model.bundle.path} ({task}). See docs/serving.md.")
    add_offline_docs(app)
    app.add_middleware(ObserveRequests, metrics=metrics)
    app.state.batcher, app.state.metrics, app.state.config = batcher, metrics, config

    add_error_handlers(app)

    async def infer(request: Request, wanted: str):
        if task != wanted:
            raise HTTPError(404, "wrong_task", f"this server runs a '{task}' bundle; /v1/{wanted} needs a bundle of "
                            f"task '{wanted}' (use /v1/{task})")
        k = parse_top_k(request, config.top_k, len(model.bundle.labels)) if task == "classify" else 0
        crops = await read_crops(request, config.limits)
        try:
            out = await asyncio.wait_for(batcher.submit(crops), config.timeout_s)
        except QueueFull as e:
            raise HTTPError(503, "overloaded", str(e), headers={"Retry-After": str(config.retry_after_s)}) from None
        except asyncio.TimeoutError:
            raise HTTPError(504, "timeout",
                            f"no answer within the server's timeout of {config.timeout_s:g} s") from None
        # Serialised here rather than by FastAPI's encoder: it walks every float and costs more than the model.
        if task == "classify":
            return JSONResponse({"classes": out.classes, "results": out.to_dict(k, probs=True)})
        return JSONResponse({"dim": int(out.shape[1]), "embeddings": out.tolist()})

    @app.post("/v1/classify", openapi_extra=_BODY_DOC, summary="Classify one or more images or crops",
              responses={200: {"model": ClassifyResponse}, **ERRORS})
    async def classify(request: Request):
        return await infer(request, "classify")

    @app.post("/v1/embed", openapi_extra=_BODY_DOC, summary="Embed one or more images or crops (unit vectors)",
              responses={200: {"model": EmbedResponse}, **ERRORS})
    async def embed(request: Request):
        return await infer(request, "embed")

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the model is loaded and the batcher runs")
    async def readyz():
        if not (state["ready"] and batcher.alive):
            raise HTTPError(503, "not_ready", "the model is loading or the server is shutting down")
        return {"status": "ready", "bundle": str(model.bundle.path), "task": task, "queue_depth": batcher.depth}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every failure answered as JSON ``{"error": {"type", "message", ...}}`` (docs/serving.md's table)."""
    @app.exception_handler(HTTPError)
    async def _http_error(request, e: HTTPError):
        return e.response()

    @app.exception_handler(LimitError)
    async def _limit(request, e: LimitError):
        return HTTPError(413, "limit_exceeded", str(e), limit=e.limit, max=e.value).response()

    @app.exception_handler(InputError)
    async def _input(request, e: InputError):
        return HTTPError(422, "invalid_input", str(e)).response()

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(request, e: StarletteHTTPException):
        return HTTPError(e.status_code, "http", str(e.detail), headers=getattr(e, "headers", None)).response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request, e: RequestValidationError):
        return HTTPError(422, "invalid_input", str(e.errors())[:500]).response()

    @app.exception_handler(Exception)
    async def _bug(request, e: Exception):
        return HTTPError(500, "internal", f"{type(e).__name__}: {e}"[:500]).response()


def add_offline_docs(app: FastAPI) -> None:
    """/docs from Swagger UI files installed with the serve extra (swagger-ui-bundle), never a CDN,
    so the page works offline (FastAPI's self-hosted docs recipe)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ModuleNotFoundError:
        swagger_ui_path = None

    if swagger_ui_path is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if swagger_ui_path is None:
            return HTMLResponse("<p>The API description is <a href='/openapi.json'>/openapi.json</a>; pip install "
                                "swagger-ui-bundle (lowres_sdk[serve]) for this page.</p>")
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")


def check_port_free(host: str, port: int) -> None:
    """click.ClickException when ``port`` on ``host`` cannot be listened on (in use, or not ours to take),
    said before the server claims to serve there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT port is free
        try:
            sock.bind((host, port))
        except OSError as e:
            why = "is in use (another server?); pick another with --port" if e.errno == errno.EADDRINUSE else \
                f"cannot be listened on: {e.strerror or e}"
            raise click.ClickException(f"port {port} on {host} {why}") from None


@click.command("serve")
@click.argument("bundle", required=False, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Crops per model call, across concurrent requests; 1 switches batching off.")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="How long a request may wait for others to fill a batch; 0: a batch is whatever queued up "
                   "while the model ran the previous one (measured best on CPU, docs/serving.md).")
@click.option("--max-queue", type=click.IntRange(min=1), default=256, show_default=True,
              help="Requests waiting for the model before new ones get 503 + Retry-After.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.001), default=10.0, show_default=True,
              help="Seconds per request before 504.")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=8.0, show_default=True,
              help="Largest request body (MiB); larger ones get 413.")
@click.option("--max-images", type=click.IntRange(min=1), default=256, show_default=True, help="Images per request.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=1 << 20, show_default=True, help="Pixels per image.")
@click.option("--max-side", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Pixels per image side (memory in the model grows with its square).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8"]), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="onnxruntime intra-op threads (default: all cores).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One line per request on stderr (uvicorn's access log).")
def serve_command(bundle, host, port, max_batch, max_wait_ms, max_queue, timeout_s, max_body_mb, max_images,
                  max_pixels, max_side, precision, threads, access_log):
    """Serve BUNDLE (default: the shipped model) over HTTP: POST /v1/classify or /v1/embed, GET /healthz,
    /readyz, /metrics, /docs. SIGTERM or Ctrl-C stops it after the requests in flight are answered."""
    import uvicorn

    from ..bundle import load_bundle
    from ..runtime import Classifier, Embedder

    b = load_bundle(bundle)
    model = (Classifier if b.task == "classify" else Embedder)(b, precision=precision, threads=threads)
    limits = Limits(max_body_bytes=int(max_body_mb * (1 << 20)), max_images=max_images, max_pixels=max_pixels,
                    max_side=max_side)
    config = ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, timeout_s=timeout_s,
                         limits=limits)
    check_port_free(host, port)
    click.echo(f"serving {b.path} ({b.task}, {model.precision}, {', '.join(model.providers)}) on http://{host}:{port}; "
               f"max batch {max_batch}, max wait {max_wait_ms:g} ms; API docs at /docs", err=True)
    uvicorn.run(create_app(model, config), host=host, port=port, log_level="info", access_log=access_log,
                timeout_graceful_shutdown=int(timeout_s) + 5)
