"""`lowres serve` throughput and latency over loopback: batched (--max-batch 32) vs unbatched
(--max-batch 1) at 1, 8 and 32 concurrent clients, in ONE run with both servers up and the
measurements interleaved (batched, unbatched, batched, ...), since the machine is shared.

Each client is a closed loop (send, wait for the answer, send again) on a keep-alive connection,
posting one JPEG crop per request (--crops-per-request to change); the clients are asyncio tasks
speaking plain HTTP/1.1 so the load generator costs little CPU next to the server.
Writes benchmarks/results/serve.json and its table in docs/serving.md.

    python benchmarks/serve.py [--bundle DIR] [--requests 600] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from docs_table import write_block

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "serve.json"
DOC = HERE.parent / "docs" / "serving.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle, max_batch: int, max_wait_ms: float, threads: int | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    exe = Path(sys.executable).with_name("lowres")
    cmd = [str(exe), "serve", *([bundle] if bundle else []), "--port", str(port), "--max-batch", str(max_batch),
           "--max-wait-ms", str(max_wait_ms), "--max-queue", "1024",
           *(["--threads", str(threads)] if threads else [])]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server {' '.join(cmd)} did not become ready")


def request_bytes(body: bytes, content_type: str) -> bytes:
    return (f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def client(port: int, payload: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            t = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"server answered {status.decode()}")
            latencies.append(time.perf_counter() - t)
    finally:
        writer.close()


async def load(port: int, payload: bytes, clients: int, requests: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per = [requests // clients + (i < requests % clients) for i in range(clients)]
    t = time.perf_counter()
    await asyncio.gather(*(client(port, payload, n, latencies) for n in per if n))
    return time.perf_counter() - t, latencies


def model_rate(model, crops, batch: int, seconds: float) -> float:
    """Crops/s of the model alone (the in-process Classifier) at this batch size."""
    model.batch_size = batch
    model(crops)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        model(crops)
        n += len(crops)
    return n / (time.perf_counter() - t)


def multipart(crops: list[np.ndarray]) -> tuple[bytes, str]:
    boundary = "lowresbench"
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{i}.jpg\"\r\n"
             f"Content-Type: image/jpeg\r\n\r\n".encode() + cv2.imencode(".jpg", c)[1].tobytes() + b"\r\n"
             for i, c in enumerate(crops)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def docs_table(result: dict) -> list[str]:
    rows = ["| clients | server | requests | crops/s | p50 ms | p99 ms | batched / unbatched |", "|---|---|---|---|---|---|---|"]
    for r in sorted(result["rows"], key=lambda r: (r["clients"], not r["batched"])):
        ratio = f"**{result['speedup_batched_vs_unbatched'][str(r['clients'])]}x**" if r["batched"] else ""
        rows.append(f"| {r['clients']} | {'batched (--max-batch ' + str(r['max_batch']) + ')' if r['batched'] else 'unbatched (--max-batch 1)'} "
                    f"| {r['requests']} | {r['crops_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {ratio} |")
    m = result["model_only_crops_per_s"]
    rows.append("")
    rows.append(f"Model alone in the same rounds (in-process `Classifier`, no HTTP): {' vs '.join(f'{v} crops/s at {k.replace(chr(95), chr(32))}' for k, v in m.items())}, "
                f"ratio **{result['model_only_speedup']}x**: the ceiling of what batching can buy here. "
                f"Machine: {result['machine']['cpu_count']} cores, load average {result['machine']['load_average_at_end']} at the end; "
                f"command `{result['command']}`.")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="bundle to serve (default: the shipped model)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--requests", type=int, default=300, help="requests per measurement")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved repetitions of every measurement")
    ap.add_argument("--crops-per-request", type=int, default=1)
    ap.add_argument("--size", type=int, default=32, help="side of the square JPEG crops (px)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads of the servers (default: all cores)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--docs-only", action="store_true", help="only rewrite the table in docs/serving.md from --out")
    args = ap.parse_args()
    if args.docs_only:
        write_block("serve", docs_table(json.loads(Path(args.out).read_text())), DOC)
        return

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.crops_per_request)]
    payload = request_bytes(*multipart(crops))
    modes = {"batched": (args.max_batch, args.max_wait_ms), "unbatched": (1, 0.0)}
    servers = {name: start_server(args.bundle, mb, wait, args.threads) for name, (mb, wait) in modes.items()}
    clients = [int(c) for c in args.clients.split(",")]
    acc = {(c, m): [[], []] for c in clients for m in modes}  # per-round crops/s, all latencies
    # The ceiling batching can reach: the model alone (no HTTP) at batch 1 vs max_batch, interleaved too.
    from lowres_sdk import Classifier

    model = Classifier(args.bundle, threads=args.threads)
    ceiling = {1: [], args.max_batch: []}
    try:
        for _, port in servers.values():  # warm-up: connections, first batches
            asyncio.run(load(port, payload, 8, 64))
        for r in range(args.rounds):
            for c in clients:
                for m in modes:
                    seconds, lat = asyncio.run(load(servers[m][1], payload, c, args.requests))
                    acc[(c, m)][0].append(args.requests * len(crops) / seconds)
                    acc[(c, m)][1] += lat
                    print(f"round {r} clients {c:>2} {m:<9} {args.requests * len(crops) / seconds:8.1f} crops/s", flush=True)
            ceiling[1].append(model_rate(model, crops[:1] * 1, 1, 0.5))
            ceiling[args.max_batch].append(model_rate(model, crops[:1] * args.max_batch, args.max_batch, 0.5))
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    rows = []
    for (c, m), (rates, lat) in acc.items():
        ms = np.array(lat) * 1e3
        rows.append({"clients": c, "max_batch": modes[m][0], "batched": m == "batched", "requests": len(lat),
                     "crops_per_request": len(crops), "crops_per_s": round(float(np.median(rates)), 1),
                     "crops_per_s_rounds": [round(v, 1) for v in rates],
                     "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)})
    # Median over rounds of the ratio of neighbouring measurements: robust to the load of other jobs.
    speedup = {c: round(float(np.median(np.array(acc[(c, "batched")][0]) / np.array(acc[(c, "unbatched")][0]))), 2)
               for c in clients}
    result = {"command": "python " + " ".join(sys.argv),
              "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                          "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
              "setup": {"bundle": args.bundle or "default", "crop": f"{args.size}x{args.size} JPEG, multipart",
                        "requests_per_measurement": args.requests, "threads": args.threads or "all cores",
                        "max_wait_ms": args.max_wait_ms, "rounds": args.rounds, "interleaved": True},
              "speedup_batched_vs_unbatched": speedup,
              "model_only_crops_per_s": {f"batch_{b}": round(float(np.median(v)), 1) for b, v in ceiling.items()},
              "model_only_speedup": round(float(np.median(np.array(ceiling[args.max_batch]) / np.array(ceiling[1]))), 2),
              "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    if out == RESULTS:
        write_block("serve", docs_table(json.loads(out.read_text())), DOC)
    for r in rows:
        print(r)
    print("batched / unbatched crops/s:", speedup, "; model alone, batch", args.max_batch, "/ batch 1:",
          result["model_only_speedup"])


if __name__ == "__main__":
    main()
