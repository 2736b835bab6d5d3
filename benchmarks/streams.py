"""Capacity of one box for many cameras: N copies of a clip as simultaneous live streams at ``--fps``,
for N = 1, 2, 4, 8, 12, 16, ... until a stream falls behind (achieved < 95 % of --fps, or p95
read-to-JSONL latency > 1 s), in three ways: one process with N streams (`lowres video --sources`),
N processes with one stream each (what a user did before), and Ray on a local cluster (`--ray`).
Each stream is the clip played at its own speed (``realtime``), looping, for ``--seconds``. CPU share
and RSS are sampled from /proc over each run's process tree (Ray's workers included). Then an
8-stream run of the clip as files (no drops) checks that Ray's JSONL equals one process's.
Writes benchmarks/results/streams.json, streams.png and the table in docs/streams.md.

    python benchmarks/streams.py [--seconds 30] [--max-streams 32] [--modes one,procs,ray]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docs_table import write_block
from results_io import save_figure, write_json

HERE = Path(__file__).resolve().parent
VIDEO = HERE.parent.parent / "shared" / "data" / "video"
CLIPS = {"720p": VIDEO / "highway-cars-1280x720.mp4", "480p": VIDEO / "pedestrians-480x360.avi"}
RESULTS = HERE / "results" / "streams.json"
DOC = HERE.parent / "docs" / "streams.md"
LOWRES = [sys.executable, "-m", "lowres_sdk.cli", "video", "--no-video"]
TICK, PAGE = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")


def tree_usage(roots: list[int], seen: dict[int, float]) -> tuple[float, float]:
    """CPU seconds and RSS (MB) of ``roots`` and all their descendants, read from /proc. ``seen`` keeps
    each process's last CPU time, so one that exits (Ray recycles workers) still counts what it used."""
    parents, usage = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parents[int(entry)] = int(fields[1])
        usage[int(entry)] = ((int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE / 2 ** 20)
    tree, grew = set(roots), True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    seen.update({p: usage[p][0] for p in tree if p in usage})
    return sum(seen.values()), sum(usage[p][1] for p in tree if p in usage)


def watch(procs: list[subprocess.Popen], started: Path) -> dict:
    """Wait for ``procs``; CPU share (of all cores) and peak RSS of their trees from the moment a
    stream's first JSONL line exists under ``started`` (Ray's start-up is not the streams' cost)."""
    t0 = cpu0 = None
    peak_rss, last, seen = 0.0, (0.0, 0.0), {}
    while any(p.poll() is None for p in procs):
        cpu, rss = tree_usage([p.pid for p in procs], seen)
        if t0 is None and any(started.glob("**/detections.jsonl")):
            t0, cpu0 = time.monotonic(), cpu
        if t0 is not None:
            peak_rss, last = max(peak_rss, rss), (time.monotonic() - t0, cpu - cpu0)
        time.sleep(0.5)
    if any(p.returncode not in (0, 1) for p in procs):
        raise RuntimeError(f"a run failed: exit {[p.returncode for p in procs]}")
    wall, cpu = last
    return {"cpu_share": round(cpu / wall / os.cpu_count(), 3) if wall > 0 else None, "rss_mb": round(peak_rss, 1)}


def sources_file(path: Path, clip: Path, n: int, options: str, first: int = 0) -> Path:
    path.write_text("".join(f"{clip} s{first + k:02d} {options}\n" for k in range(n)))
    return path


def trial(mode: str, clip: Path, n: int, fps: float, seconds: float, work: Path, crops: str = "motion") -> dict:
    """N live copies of ``clip`` run ``mode``'s way; each stream's summary and the run's CPU and RSS."""
    live = f"fps={fps} realtime=true loop=true seconds={seconds} crops={crops}"
    outs = []
    if mode == "procs":
        procs = []
        for k in range(n):
            out = work / f"p{k}"
            listing = sources_file(work / f"p{k}.txt", clip, 1, live, first=k)
            procs.append(subprocess.Popen([*LOWRES, "--sources", str(listing), "--out", str(out)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            outs.append(out)
    else:
        listing = sources_file(work / "all.txt", clip, n, live)
        ray = ["--ray"] if mode == "ray" else []
        procs = [subprocess.Popen([*LOWRES, *ray, "--sources", str(listing), "--out", str(work / "all")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        outs.append(work / "all")
    usage = watch(procs, work)
    streams = [s for out in outs for s in json.loads((out / "summary.json").read_text())["streams"].values()]
    achieved = [s["fps"] for s in streams]
    p95 = [s["latency_ms"]["p95"] for s in streams]
    return {"mode": mode, "streams": n, "achieved_fps": achieved, "min_fps": min(achieved),
            "p95_latency_ms": p95, "max_p95_ms": max(p95), "dropped": [s["frames_dropped"] for s in streams],
            "errors": [s["error"] for s in streams if s["error"]], **usage,
            "keeps_up": min(achieved) >= 0.95 * fps and max(p95) <= 1000 and not any(s["error"] for s in streams)}


def stream_counts(limit: int):
    n = 1
    while n <= limit:
        yield n
        n = n * 2 if n < 8 else n + 4


def capacity(mode: str, clip: Path, args) -> list[dict]:
    rows = []
    counts = [int(n) for n in args.counts.split(",")] if args.counts else stream_counts(args.max_streams)
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            row = trial(mode, clip, n, args.fps, args.seconds, Path(tmp), args.crops)
        print(json.dumps({k: row[k] for k in ("mode", "streams", "min_fps", "max_p95_ms", "cpu_share", "rss_mb",
                                                 "keeps_up")}), flush=True)
        rows.append(row)
        if not row["keeps_up"]:
            break
    return rows


def ray_matches_one_process(clip: Path, n: int, fps: float) -> dict:
    """``n`` copies of ``clip`` as files (nothing dropped), one process vs Ray: equal JSONL?"""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        listing = sources_file(work / "files.txt", clip, n, f"fps={fps}")
        for mode, ray in (("one", []), ("ray", ["--ray"])):
            subprocess.run([*LOWRES, *ray, "--sources", str(listing), "--out", str(work / mode)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        same = frames = 0
        for k in range(n):
            a, b = ((work / mode / f"s{k:02d}" / "detections.jsonl").read_text() for mode in ("one", "ray"))
            frames += len(a.splitlines())
            same += a == b
    return {"streams": n, "frames": frames, "streams_identical": same, "identical": same == n}


def plot(report: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(report["clips"]), figsize=(5 * len(report["clips"]), 3.6), squeeze=False)
    for ax, (clip, rows) in zip(axes[0], report["clips"].items()):
        for mode in report["modes"]:
            mine = [r for r in rows if r["mode"] == mode]
            ax.plot([r["streams"] for r in mine], [r["min_fps"] for r in mine], "o-", label=LABELS[mode])
        ax.axhline(0.95 * report["fps"], color="grey", ls="--", lw=1, label="95 % of --fps")
        ax.set(title=f"{clip}: slowest stream ({report['machine']} machine)", xlabel="simultaneous streams",
               ylabel="achieved frames/s")
        ax.legend(fontsize=8)
    save_figure(fig, png)


LABELS = {"one": "one process, N streams", "procs": "N processes, 1 stream each", "ray": "Ray, local cluster"}


def most_streams(rows: list[dict], mode: str) -> tuple[int, bool]:
    """The most streams ``mode`` kept up with (0: not even one), and whether it kept up with every N
    tried (then the capacity is at least that: the run stopped at --max-streams)."""
    mine = [r for r in rows if r["mode"] == mode]
    return max([r["streams"] for r in mine if r["keeps_up"]], default=0), all(r["keeps_up"] for r in mine)


def cpu_ms_per_frame(row: dict, cores: int) -> float | None:
    """CPU milliseconds the run spent per processed frame (all its processes): less at the mercy of other
    jobs on a shared machine than frames/s is, though contention inflates it too."""
    frames_per_s = sum(row["achieved_fps"])
    return 1000 * row["cpu_share"] * cores / frames_per_s if row["cpu_share"] and frames_per_s else None


def estimate(rows: list[dict], mode: str, cores: int, fps: float) -> int | None:
    """Streams at ``fps`` that 80 % of ``cores`` would carry at the CPU cost per frame of ``mode``'s
    largest run: arithmetic, not a measurement."""
    costs = [cpu_ms_per_frame(r, cores) for r in rows if r["mode"] == mode]
    if not costs or costs[-1] is None:
        return None
    return int(0.8 * cores * 1000 / (fps * costs[-1]))


def table(report: dict) -> list[str]:
    cores, fps = report["cores"], report["fps"]
    lines = [f"Measured {report['date']} on a {cores}-core {report['machine']} machine, `--fps {fps}`, "
             f"{report['seconds']} s a run, `--no-video`, the shipped default model, "
             f"`crops={report.get('crops', 'motion')}` regions; "
             f"command: `{report['command']}`.", "",
             "| clip | way | streams | slowest stream (frames/s) | worst p95 latency (ms) | CPU share | CPU ms a frame "
             "| RSS (MB) | keeps up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for clip, rows in report["clips"].items():
        lines += [f"| {clip} | {LABELS[r['mode']]} | {r['streams']} | {r['min_fps']:.2f} | {r['max_p95_ms']:.0f} | "
                  f"{r['cpu_share']} | {cpu_ms_per_frame(r, cores) or 0:.1f} | {r['rss_mb']:.0f} | "
                  f"{'yes' if r['keeps_up'] else 'no'} |" for r in rows]
    lines += ["", "| clip | way | most streams kept up | per core | boxes of this kind for 100 cameras "
              "| estimate from CPU ms a frame (80 % of the cores) |", "|---|---|---|---|---|---|"]
    for clip, rows in report["clips"].items():
        for mode in report["modes"]:
            n, all_kept = most_streams(rows, mode)
            at_least = ">= " if all_kept else ""  # it never fell behind: more were not tried
            boxes = f"{'<= ' if all_kept else ''}{-(-100 // n)}" if n else "-"
            guess = estimate(rows, mode, cores, fps)
            lines.append(f"| {clip} | {LABELS[mode]} | {at_least}{n} | {at_least}{n / cores:.1f} | {boxes} | "
                         f"{guess if guess is not None else '-'} streams |")
    check = report.get("ray_check")
    if check:
        lines += ["", f"Ray vs one process, {check['streams']} copies of the 720p clip as files at `--fps {fps}` "
                  f"({check['frames']} frames): {check['streams_identical']} of {check['streams']} streams' JSONL "
                  "identical."]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=30.0, help="each run's length (the clips loop)")
    p.add_argument("--max-streams", type=int, default=32)
    p.add_argument("--counts", default=None, help="the stream counts to try, e.g. 1,2,3,4 (default: 1, 2, 4, 8, 12, "
                   "16, ... up to --max-streams); a run stops at the first that falls behind")
    p.add_argument("--modes", default="one,procs,ray")
    p.add_argument("--clips", default="720p,480p")
    p.add_argument("--ray-check-streams", type=int, default=8, help="0: skip the Ray-equals-one-process check")
    p.add_argument("--machine", default="shared", help="'quiet' only when nothing else ran on the machine")
    p.add_argument("--crops", default="motion", help="each stream's region stage (motion: MOG2 alone; detector)")
    p.add_argument("--replot", action="store_true", help="only redraw the PNG and the docs table from the JSON")
    args = p.parse_args()
    if args.replot:
        publish(json.loads(results_path(args.crops).read_text()))
        return
    modes = args.modes.split(",")
    report = {"date": time.strftime("%Y-%m-%d"), "machine": args.machine, "cores": os.cpu_count(), "fps": args.fps,
              "crops": args.crops,
              "seconds": args.seconds, "modes": modes,
              "command": "python benchmarks/streams.py " + " ".join(sys.argv[1:]),
              "clips": {}}
    for clip in args.clips.split(","):
        report["clips"][clip] = [row for mode in modes for row in capacity(mode, CLIPS[clip], args)]
    if "ray" in modes and args.ray_check_streams:
        report["ray_check"] = ray_matches_one_process(CLIPS["720p"], args.ray_check_streams, args.fps)
    write_json(results_path(args.crops), report)
    publish(report)


def results_path(crops: str) -> Path:
    """streams.json for motion regions (the capacity table), streams_CROPS.json for another stage."""
    return RESULTS if crops == "motion" else RESULTS.with_name(f"streams_{crops.split(':')[0]}.json")


def publish(report: dict) -> None:
    crops = report.get("crops", "motion")
    plot(report, results_path(crops).with_suffix(".png"))
    write_block("streams" if crops == "motion" else f"streams-{crops.split(':')[0]}", table(report), doc=DOC)
    print("\n".join(table(report)))


if __name__ == "__main__":
    main()
