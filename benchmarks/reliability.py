"""The reliability probe behind docs/reliability.md: fuzzed crops on the shipped default bundle,
the corrupt-bundle and corrupt-gallery kinds, the CLI bad inputs, and the peak RSS of big crops,
each case of the last in its own process. Writes benchmarks/results/reliability.json.

    python benchmarks/reliability.py [--examples 10000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

RSS_CASES = [("32x32", (32, 32), 1), ("1x16384", (1, 16384), 1), ("1x40000", (1, 40000), 1),
             ("8 x 1x4096", (1, 4096), 8), ("1x8192", (1, 8192), 1), ("4000x4000", (4000, 4000), 1),
             ("64 x 512x512", (512, 512), 64), ("64 x 32x32", (32, 32), 64)]


def fuzz(examples: int) -> dict:
    """Runs in a child process, so a crash shows as a dead child rather than a dead probe."""
    code = textwrap.dedent(f"""
        import json, time, warnings, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        import numpy as np
        from hypothesis import HealthCheck, given, settings
        from lowres_sdk import Classifier, InputError
        from lowres_sdk.crops import FloatRangeWarning
        from test_runtime_fuzz import CROPS, documented_accept
        clf = Classifier()  # the shipped default bundle
        counts = dict(tried=0, typed=0, accepted=0, untyped=0, garbage_accepted=0, good_refused=0, hangs=0)
        slowest = [0.0]
        @settings(max_examples={examples}, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(crops=CROPS)
        def run(crops):
            counts["tried"] += 1
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    clf(crops)
                    counts["accepted"] += 1
                    counts["garbage_accepted"] += not documented_accept(crops)
                except InputError:
                    counts["typed"] += 1
                    counts["good_refused"] += documented_accept(crops)
                except Exception:
                    counts["untyped"] += 1
            dt = time.perf_counter() - t
            slowest[0] = max(slowest[0], dt)
            counts["hangs"] += dt > 10
        run()
        counts["slowest_call_s"] = round(slowest[0], 3)
        print(json.dumps(counts))
    """)
    t = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return {"crashes": 1, "returncode": out.returncode, "stderr": out.stderr[-2000:]}
    return {**json.loads(out.stdout.splitlines()[-1]), "crashes": 0, "seconds": round(time.time() - t, 1)}


def corrupt_bundles() -> dict:
    from lowres_sdk import BundleError, Classifier, Embedder
    from test_bundle_corrupt import CORRUPTIONS
    from tiny_bundles import make_bundle

    outcome = {}
    for kind, (task, corrupt) in CORRUPTIONS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = make_bundle(Path(tmp) / "b", task=task)
            corrupt(path)
            try:
                (Classifier if task == "classify" else Embedder)(path)
                outcome[kind] = "loaded"
            except BundleError:
                outcome[kind] = "BundleError"
            except Exception as e:  # what the probe exists to find
                outcome[kind] = f"untyped {type(e).__name__}"
    return {"kinds": len(outcome), "counts": dict(Counter(outcome.values())), "outcome": outcome}


def corrupt_galleries() -> dict:
    from lowres_sdk import BundleError
    from lowres_sdk.gallery import Gallery
    from test_gallery_corrupt import CORRUPTIONS, saved

    outcome = {}
    for kind, corrupt in CORRUPTIONS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = saved(Path(tmp) / "g")
            corrupt(path)
            try:
                Gallery.load(path)
                outcome[kind] = "loaded"
            except BundleError:
                outcome[kind] = "BundleError"
            except Exception as e:
                outcome[kind] = f"untyped {type(e).__name__}"
    return {"kinds": len(outcome), "counts": dict(Counter(outcome.values()))}


def cli() -> dict:
    import test_cli_bad_inputs as t

    with tempfile.TemporaryDirectory() as tmp:
        world = t.build_world(Path(tmp))
        (world["root"] / "cwd").mkdir()
        results = t.run_driver(t.bad_cases(world), world["root"] / "cwd")
        user_ok = (world["user"] / "thesis.tex").read_text() == "precious"
    return {"cases": len(results), "counts": dict(Counter(t.classify_result(r) for r in results)),
            "user_files_intact": user_ok}


def rss() -> dict:
    out = {}
    for name, shape, n in RSS_CASES:
        code = textwrap.dedent(f"""
            import resource, numpy as np
            from lowres_sdk import Classifier
            clf = Classifier()
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            clf([np.random.default_rng(0).integers(0, 256, {(*shape, 3)!r}, dtype=np.uint8)] * {n})
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            held = int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20
            print(base // 1024, peak // 1024, held)
        """)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if r.returncode:
            out[name] = {"error": r.stderr[-500:]}
            continue
        base, peak, held = map(int, r.stdout.split())
        out[name] = {"baseline_mb": base, "peak_mb": peak, "held_after_mb": held}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=10_000)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    report = {"fuzz": fuzz(a.examples), "corrupt_bundles": corrupt_bundles(), "corrupt_galleries": corrupt_galleries(),
              "cli": cli(), "peak_rss": rss()}
    dest = ROOT / "benchmarks" / "results" / "reliability.json"
    dest.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v if k != "corrupt_bundles" else {"kinds": v["kinds"], "counts": v["counts"]}
                      for k, v in report.items()}, indent=2))


if __name__ == "__main__":
    main()
