"""Experiments as data (benchmarks/run.py): the docs tables are what the committed results render to, the
experiment files describe the committed rows, and the runner trains, caches, measures and records a tiny
experiment end to end."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import tables  # noqa: E402

EXPERIMENTS = sorted((ROOT / "benchmarks" / "experiments").glob("*.toml"))


def _block(doc: str, name: str) -> list[str]:
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    assert start in doc and end in doc, f"docs/benchmarks.md has no block {name}"
    return doc[doc.index(start) + len(start):doc.index(end)].split("\n")


@pytest.mark.parametrize("block", sorted(tables.TABLES))
def test_a_docs_table_is_what_its_committed_results_render_to(block):
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    assert _block(doc, block) == tables.render(block), \
        f"docs/benchmarks.md's {block} table drifted from benchmarks/results/{block}.json: regenerate it"


def test_benchmarks_hold_a_runner_and_experiment_files_and_no_long_script():
    assert len(EXPERIMENTS) >= 3
    long = {p.name: n for p in (ROOT / "benchmarks").glob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"benchmark scripts over 300 lines: {long}"
    # a line-level lint (a write call on a line naming the package's folder or its bundle), not a proof
    writes = re.compile(r"(write_text|write_bytes|copytree|copyfile|rmtree|atomic_write_\w+)\(.*(sdk|BUNDLE)")
    writes_sdk = [f"{p.name}:{i}" for p in (ROOT / "benchmarks").glob("*.py")
                  for i, line in enumerate(p.read_text().splitlines(), 1) if writes.search(line)]
    assert not writes_sdk, f"benchmark lines that write into sdk/: {writes_sdk}"


def test_the_default_model_doc_is_what_its_committed_results_render_to():
    import default_model_doc

    results = json.loads(default_model_doc.RESULTS.read_text())
    variants = json.loads(default_model_doc.VARIANTS.read_text())
    assert (ROOT / "docs" / "default_model.md").read_text() == default_model_doc.render(results, variants), \
        "docs/default_model.md drifted from benchmarks/results/default_model*.json: rerun default_model_doc.write()"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_an_experiment_file_describes_its_committed_rows(path):
    pytest.importorskip("torch", reason="recipes live in lowres_sdk.training (pip install torch==2.13.0)")
    import experiment
    import run

    exp = experiment.load(path)
    committed = {r["run"] for r in json.loads(exp.results.read_text())}
    assert committed <= {r.name for r in exp.runs}, "committed rows of runs the file does not name"
    assert run.check(exp) == []


def test_a_changed_recipe_is_reported_against_the_committed_rows(tmp_path):
    pytest.importorskip("torch", reason="recipes live in lowres_sdk.training (pip install torch==2.13.0)")
    import experiment
    import run

    text = (ROOT / "benchmarks" / "experiments" / "cifar10_dfd.toml").read_text()
    changed = tmp_path / "cifar10_dfd.toml"
    teacher = 'name = "hr32"\nmethod = "hr"\nepochs = '
    changed.write_text(text.replace(teacher + "15", teacher + "14"))
    assert run.check(experiment.load(changed)) == ["hr32: epochs = 14, committed rows 15"]


def test_a_bad_experiment_file_is_a_typed_error(tmp_path):
    import experiment

    from lowres_sdk.errors import InputError

    bad = tmp_path / "bad.toml"
    bad.write_text('family = "x"\ndata = "d"\n[evaluate]\nkind = "torch_top1"\n[[runs]]\nname = "a"\nuse = ["nope"]\n')
    with pytest.raises(InputError, match="no preset 'nope'"):
        experiment.load(bad)
    bad.write_text('family = "x"\ndata = "d"\nepochs = 3\n')
    with pytest.raises(InputError, match="unknown keys \\['epochs'\\]"):
        experiment.load(bad)


TINY = """
family = "tiny"
data = "{data}"
image_size = 16

[evaluate]
kind = "torch_top1"
hr_input = true

[table]
block = "cifar10_dfd"

[defaults]
arch = "resnet20"
width = 0.5
seed = 3
batch_size = 16
lr = 0.05

[[runs]]
name = "teacher"
method = "hr"
epochs = 1

[[runs]]
name = "student"
method = "lr"
resolution = 8
epochs = 1
init = "run:teacher"
"""


def test_the_runner_trains_measures_caches_and_records_a_tiny_experiment(tiny_data, tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="training needs torch (pip install torch==2.13.0)")
    import experiment
    import run

    from lowres_sdk.errors import InputError
    from lowres_sdk.training import loop

    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(data=tiny_data))
    exp = experiment.load(path)
    results, doc = tmp_path / "results" / "tiny.json", tmp_path / "benchmarks.md"
    rows = run.run_experiment(exp, tmp_path / "runs", results=results, doc=doc, log=lambda *a: None)

    assert [(r["run"], r["resolution"]) for r in rows] == [("teacher", 32), ("teacher", 16), ("teacher", 8),
                                                          ("student", 8)]
    assert json.loads(results.read_text()) == rows
    assert all(0 <= r["top1"] <= 100 and r["epochs"] == 1 for r in rows)
    assert "top1_hr_input" in rows[3] and rows[3]["recipe_sha256"] == exp.runs[1].recipe_sha256
    student = json.loads((tmp_path / "runs" / "tiny" / "student" / "checkpoint.json").read_text())["recipe"]
    assert Path(student["init"]) == tmp_path / "runs" / "tiny" / "teacher"  # "run:teacher", resolved
    assert _block(doc.read_text(), "cifar10_dfd") == tables.dfd(rows)

    # a second pass: every run is finished and its weights unchanged, so nothing trains or is re-measured
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("retrained a finished run"))
    import evaluations
    monkeypatch.setattr(evaluations, "KINDS", {"torch_top1": lambda *a: pytest.fail("re-measured a cached run")})
    assert run.run_experiment(exp, tmp_path / "runs", results=results, doc=doc, log=lambda *a: None) == rows

    # the file changed under a finished run: refused, not measured under the new recipe's name
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("lr = 0.05", "lr = 0.04"))
    with pytest.raises(InputError, match="run teacher .* another recipe \\(lr: 0.04 here, 0.05 in the run"):
        run.run_experiment(experiment.load(changed), tmp_path / "runs", results=results, doc=doc)

    # a fresh cache and no training: the rows already recorded are kept, not dropped
    assert run.run_experiment(exp, tmp_path / "empty", train=False, results=results, doc=doc) == rows
