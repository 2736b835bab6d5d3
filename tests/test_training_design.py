"""Design rules of training/ that a refactor must not break: no import cycles, one method table,
`lowres train` options generated from `Recipe`."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

TRAINING = Path(__file__).resolve().parents[1] / "training"


def _imports(path: Path) -> set[str]:
    """training/ modules ``path`` imports at run time (module or function level, not TYPE_CHECKING)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
            elif node.module and node.module.startswith("lowres_sdk.training"):
                rest = node.module[len("lowres_sdk.training"):].lstrip(".")
                names = [rest] if rest else [a.name for a in node.names]
            else:
                continue
            out.update(n.split(".")[0] for n in names)
    return {n for n in out if (TRAINING / f"{n}.py").exists()}


def test_no_training_module_imports_a_module_that_imports_it_back():
    graph = {p.stem: _imports(p) for p in TRAINING.glob("*.py")}

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph.get(start, ()))

    cycles = sorted(m for m in graph if reaches(m, m))
    assert not cycles, f"import cycles through: {cycles}"
    methods = [m for m in graph["methods"] if m in graph]
    assert "lr" in methods and "fsrgan" in methods
    for m in methods:
        assert "loop" not in graph[m], f"method {m} imports the loop it plugs into"


def test_every_method_is_named_once_in_the_table():
    from lowres_sdk.training.methods import METHODS

    for name, method in METHODS.items():
        assert method.module.__name__.endswith("." + name)
        assert hasattr(method.module, "make_task") != method.own_procedure, name
    assert {n for n, m in METHODS.items() if m.own_procedure} == {"transfer", "fsrgan"}
    # No other file spells the list of methods out.
    listed = [p.name for p in TRAINING.glob("*.py") if '"staged", "mixed"' in p.read_text() or "staged | mixed" in p.read_text()]
    assert listed == []


def test_train_options_come_from_recipe_fields():
    from lowres_sdk.training.cli import train_command
    from lowres_sdk.training.recipe import Recipe

    options = {o.name for o in train_command.params}
    fields = {f.name for f in dataclasses.fields(Recipe)}
    assert fields <= options
    assert options - fields == {"recipe_file", "out", "resume"}
    for f in dataclasses.fields(Recipe):
        assert f.metadata.get("help"), f"{f.name} has no help"


def test_recipe_file_is_a_base_the_command_line_overrides(tmp_path, monkeypatch):
    from lowres_sdk.training import cli as training_cli
    from lowres_sdk.training.recipe import Recipe

    seen = {}
    monkeypatch.setattr("lowres_sdk.training.loop.train",
                        lambda recipe, out, resume: seen.update(recipe=recipe) or {
                            "history": [{"test_top1": 0.5}], "epoch": 1, "params": 1, "mflops": 1.0})
    saved = Recipe(method="dfd", data="d", resolution=16, epochs=7, teacher="t", label_smoothing=0.1)
    (tmp_path / "r.json").write_text(__import__("json").dumps(saved.to_dict()))
    result = CliRunner().invoke(training_cli.train_command, ["--recipe", str(tmp_path / "r.json"), "--epochs", "3",
                                                             "--no-augment", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert seen["recipe"] == dataclasses.replace(saved, epochs=3, augment=False)


@pytest.mark.parametrize("args, message", [
    (["--data", "x", "--method", "nope"], "unknown method 'nope'"),
    (["--method", "lr"], "--data is required"),
    (["--data", "x", "--method", "lr", "--width", "0"], "width and image_size must be positive"),
    (["--data", "x", "--method", "lr", "--limit-per-class", "0"], "limit_per_class must be >= 1"),
    (["--data", "x", "--method", "lr", "--degradation", "camera", "--camera-min", "9", "--camera-max", "8"], "camera sizes"),
])
def test_bad_recipes_are_one_line_errors(tmp_path, capsys, args, message):
    from lowres_sdk.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", *args, "--out", str(tmp_path / "o")])
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
