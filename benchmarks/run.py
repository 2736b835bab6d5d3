"""The one runner of the experiment files: for each run of each file, restore it from its committed
checkpoint, train what is not finished (resumed from the local run cache), measure it as the file's
[evaluate] says, keep the rows in benchmarks/results/FAMILY.json and regenerate the docs table.

    python -m benchmarks.run benchmarks/experiments/cifar10_robust.toml [--only RUN,RUN] [--no-train]
    python -m benchmarks.run --check benchmarks/experiments/*.toml   # the files against the committed rows

A run's cached rows are kept while its weights (sha256) are the same; a run that is not in the cache
and not trained here (--no-train, --only) keeps the rows it already has.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' own modules, run as scripts too

import experiment as exp_mod  # noqa: E402
from experiment import ROOT, RUNS, Experiment, Run  # noqa: E402
from results_io import finished, restore, train_and_commit, write_json  # noqa: E402

# the row columns a recipe field is recorded under, where they differ
ROW_NAMES = {"train_fraction": "data_fraction"}
PATHS = ("data", "init", "teacher", "kd_teachers", "kd_targets")  # fields compared by the run they name


def _rows(path: Path) -> list[dict]:
    import json

    return json.loads(path.read_text()) if path.exists() else []


class Splits:
    """The experiment's data, loaded on first use (a pass that only keeps cached rows loads nothing)."""

    def __init__(self, exp: Experiment):
        self.exp, self._splits = exp, None

    def get(self):
        if self._splits is None:
            from lowres_sdk.training.data import load_splits

            self._splits = load_splits(exp_mod._resolve_data(self.exp.data), self.exp.image_size)
        return self._splits


def measure(exp: Experiment, run: Run, folder: Path, splits: Splits, earlier: list[dict],
            runs_root: Path) -> list[dict]:
    """The run's rows: its cached ones while its weights are unchanged, else measured now."""
    from evaluations import KINDS

    from lowres_sdk.training.checkpoint import load_checkpoint

    meta = load_checkpoint(folder)[1]
    sha = meta["weights_sha256"]
    shown = {k: meta["recipe"][k] for k in exp.evaluate.get("shown", ()) if k in meta["recipe"]}
    extra = {"source": run.family} if run.family != exp.family else {}
    cached = [r for r in earlier if r.get("weights_sha256") == sha]
    if not cached:
        cached = KINDS[exp.evaluate["kind"]](run.name, folder, meta, splits.get()[1], exp.evaluate,
                                             runs_root / run.family / "bundles")
    return [{**r, **shown, **extra, "weights_sha256": sha, "recipe_sha256": run.recipe_sha256} for r in cached]


def _train(recipe, folder: Path, data, log) -> None:
    """Train (resumed) a run that is committed nowhere."""
    import time

    from lowres_sdk.training import loop

    t = time.time()
    log(f"== {folder.name}")
    loop.train(recipe, folder, resume=True, data=data, progress=sys.stderr.isatty())
    log(f"== {folder.name} done in {time.time() - t:.0f}s")


def run_experiment(exp: Experiment, runs_root: Path = RUNS, train: bool = True, only: set[str] | None = None,
                   results: Path | None = None, doc: Path | None = None, log=print) -> list[dict]:
    """Train, measure and record every run of ``exp`` (see the module's doc) into ``results`` (default:
    benchmarks/results/FAMILY.json) and the table block of ``doc`` (default: docs/benchmarks.md);
    returns the rows."""
    results = results or exp.results
    earlier, rows = _rows(results), []
    splits = Splits(exp)
    skip = {exp_mod.canonical_method(m) for m in exp.evaluate.get("no_rows_for", ())}
    for run in exp.runs:
        folder = run.folder(runs_root)
        committed = ROOT / exp.committed / run.name if exp.committed and run.family == exp.family else None
        if committed:
            restore(folder, committed)
        kept = [r for r in earlier if r["run"] == run.name]
        recipe = exp.recipe(run, runs_root) if run.family == exp.family else None
        done = finished(folder, recipe.epochs if recipe else 1)
        if not done and (recipe is None or not train or (only and run.name not in only)):
            rows += kept  # not in the cache and not trained here: the rows it has stay
            continue
        if not done and committed:
            train_and_commit(recipe, folder, committed, splits.get(), log=log)
        elif not done:
            _train(recipe, folder, splits.get(), log)
        if recipe is not None:
            _same_recipe(run, recipe, folder)
            if exp_mod.canonical_method(recipe.method) in skip:
                continue
        rows += measure(exp, run, folder, splits, kept, runs_root)
        write_json(results, rows + [r for r in earlier if r["run"] not in {x["run"] for x in rows}])
    write_json(results, rows)
    if exp.table.get("block"):
        from tables import regenerate

        regenerate(exp.table["block"], rows, doc)
    return rows


def _same(field: str, want, got) -> bool:
    if field == "method":
        return exp_mod.canonical_method(want) == exp_mod.canonical_method(got)
    if field in PATHS:  # a path differs between machines; the run it names does not
        return str(want or "").rstrip("/").split("/")[-1] == str(got or "").rstrip("/").split("/")[-1]
    if isinstance(want, float) or isinstance(got, float):
        return got is not None and want is not None and abs(float(want) - float(got)) < 1e-9
    return want == got


def _same_recipe(run: Run, recipe, folder: Path) -> None:
    """InputError when the finished run in the cache was trained with another recipe than the file's (its
    rows would describe other weights); paths compare by the run or file they name."""
    from lowres_sdk.errors import InputError
    from lowres_sdk.training.checkpoint import load_checkpoint

    theirs = exp_mod.flat_recipe(type(recipe).from_dict(load_checkpoint(folder)[1]["recipe"]))
    mine = exp_mod.flat_recipe(recipe)
    differ = [f"{k}: {mine[k]!r} here, {theirs.get(k)!r} in the run" for k in mine
              if not _same(k, mine[k], theirs.get(k))]
    if differ:
        raise InputError(f"run {run.name} in {folder} was trained with another recipe ({'; '.join(differ[:4])}): "
                         "rename the run in the file, or remove the cached run to retrain it")


def check(exp: Experiment, runs_root: Path = RUNS) -> list[str]:
    """Where the file disagrees with what is committed: each run's recipe against its committed
    checkpoint's and against the recipe fields its result rows record. Returns the disagreements."""
    import json

    rows, problems = _rows(exp.results), []
    for run in exp.trained_here():
        recipe = exp_mod.flat_recipe(exp.recipe(run, runs_root))
        saved = ROOT / exp.committed / run.name / "checkpoint.json" if exp.committed else None
        if saved and saved.exists():
            theirs = json.loads(saved.read_text())["recipe"]
            problems += [f"{run.name}: {k} = {recipe[k]!r}, committed checkpoint {theirs[k]!r}"
                         for k in theirs if k in recipe and not _same(k, recipe[k], theirs[k])]
        for row in [r for r in rows if r["run"] == run.name][:1]:
            problems += [f"{run.name}: {k} = {recipe[k]!r}, committed rows {row[ROW_NAMES.get(k, k)]!r}"
                         for k in recipe if ROW_NAMES.get(k, k) in row and k != "resolution"
                         and not _same(k, recipe[k], row[ROW_NAMES.get(k, k)])]
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="experiment files (benchmarks/experiments/*.toml)")
    p.add_argument("--runs-dir", type=Path, default=RUNS,
                   help="the run cache, one folder per family (default: %(default)s)")
    p.add_argument("--only", default=None, help="comma-separated runs to train (the others: cached or kept)")
    p.add_argument("--no-train", action="store_true", help="measure what is finished, train nothing")
    p.add_argument("--check", action="store_true", help="compare the files with the committed checkpoints and rows")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    from lowres_sdk.errors import LowresError

    try:
        experiments = [exp_mod.load(f) for f in args.files]
        if args.check:
            problems = [f"{e.path.name}: {line}" for e in experiments for line in check(e, args.runs_dir)]
            print("\n".join(problems) or f"{len(experiments)} file(s) agree with the committed checkpoints and rows")
            return 1 if problems else 0
        import torch

        torch.set_num_threads(args.threads)
        only = set(args.only.split(",")) if args.only else None
        for e in experiments:
            rows = run_experiment(e, args.runs_dir, train=not args.no_train, only=only)
            print(f"{e.family}: {len(rows)} rows in {e.results.relative_to(ROOT)}")
    except LowresError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
