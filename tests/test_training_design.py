"""Design rules of training/ that a refactor must not break: no import cycles, one method table,
`lowres train` options generated from `Recipe`."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from lowres_sdk.errors import InputError

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
    assert "baseline" in methods and "fsrgan" in methods
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


def test_train_options_come_from_recipe_fields_and_the_methods_option_groups():
    from lowres_sdk.training.cli import train_command
    from lowres_sdk.training.methods import METHODS
    from lowres_sdk.training.options import CameraOptions
    from lowres_sdk.training.recipe import Recipe, core_fields

    options = {o.name for o in train_command.params}
    groups = [CameraOptions] + [m.options for m in METHODS.values()]
    settings = {f.name for f in core_fields()} | {name for g in groups for name in g.flat_fields()}
    assert settings <= options
    assert options - settings == {"recipe_file", "out", "resume"}
    for f in [*core_fields(), *(f for g in groups for f in dataclasses.fields(g))]:
        assert f.metadata.get("help"), f"{f.name} has no help"
    # Every setting of the old one-level recipe is still an option of the same name.
    assert set(Recipe(method="kd").flat()) | set(Recipe(method="fsrgan").flat()) <= options | {"method"}


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


OLD_FLAT = {  # a recipe as earlier versions saved it: one level, every method's settings, the old method name
    "method": "lr", "data": "d", "arch": "airnet", "width": 0.5, "resolution": 16, "input_mode": "native",
    "degradation": "camera", "camera_min": 10, "camera_max": 24, "camera_aspect": 1.0, "camera_box_jitter": 0.1,
    "camera_realism": 0.5, "camera_kernels": "area,cubic", "kd_alpha": 0.9, "kd_tau": 4.0, "kd_same_view": False,
    "kd_teachers": "", "kd_targets": "", "dfd_lambda": 2.0, "init_from_teacher": True, "cache_teacher": False,
    "trainable": "all", "mixed_ratio": 0.5, "clusters": 50, "transfer_hidden": 256, "transfer_labels": "nearest",
    "sr_width": 64, "crossres_p": 0.5, "query_min": 8, "query_max": 24, "fsr_lr": 8e-4, "fsr_critic_steps": 5,
    "fsr_clip": 0.01, "fsr_views": 4, "a_key_of_a_later_version": 1,
}


def test_an_old_flat_recipe_loads_into_the_core_and_its_groups():
    from lowres_sdk.training.recipe import Recipe

    r = Recipe.from_dict(OLD_FLAT)
    assert (r.method, r.arch, r.width, r.resolution, r.degradation) == ("baseline", "airnet", 0.5, 16, "camera")
    c = r.camera
    assert (c.min, c.max, c.aspect, c.box_jitter, c.realism, c.kernel_list) == (10, 24, 1.0, 0.1, 0.5, ("area", "cubic"))
    assert r == Recipe.from_dict(r.to_dict()) == Recipe.from_dict(r.flat())
    saved = r.to_dict()
    assert saved["camera"]["min"] == 10 and "kd" not in saved and "camera_min" not in saved
    kd = Recipe.from_dict({**OLD_FLAT, "method": "kd", "kd_alpha": 0.7, "kd_tau": 2.0})
    assert (kd.options.alpha, kd.options.tau) == (0.7, 2.0) and kd.to_dict()["kd"]["alpha"] == 0.7
    fsr = Recipe.from_dict({**OLD_FLAT, "method": "fsrgan", "query_min": 6, "fsr_views": 2})
    assert (fsr.options.query_min, fsr.options.views, fsr.resolution) == (6, 2, fsr.image_size)
    assert fsr.flat()["query_min"] == 6 and fsr.flat()["fsr_views"] == 2
    assert kd.differences(Recipe.from_dict({**OLD_FLAT, "method": "kd"})) == ["kd_alpha: 0.7 != 0.9", "kd_tau: 2.0 != 4.0"]
    later = {**kd.to_dict(), "kd": {**kd.to_dict()["kd"], "a_later_setting": 1}, "camera": {"min": 10, "later": 2}}
    assert Recipe.from_dict(later) == Recipe.from_dict({**kd.to_dict(), "camera": {"min": 10}})


def test_a_setting_of_another_method_is_refused_where_it_is_given():
    from lowres_sdk.training.recipe import Recipe

    with pytest.raises(InputError, match="kd_alpha is for --method kd, not dfd"):
        Recipe(method="dfd", kd_alpha=0.5)
    with pytest.raises(InputError, match="query_min is for --method crossres / fsrgan, not baseline"):
        Recipe(query_min=4)
    with pytest.raises(InputError, match="unknown recipe setting 'bogus'"):
        Recipe(bogus=1)
    with pytest.raises(InputError, match="kd needs 0 <= kd_alpha <= 1"):
        Recipe(method="kd", kd={"alpha": 1.5})
    with pytest.raises(InputError, match=r"mixed_ratio must be in \[0, 1\], got 1.5"):
        Recipe(method="mixed", mixed_ratio=1.5)
    with pytest.raises(InputError, match=r"crossres_p must be in \[0, 1\], got -0.1"):
        Recipe.from_dict({"method": "crossres", "crossres": {"p": -0.1}})


@pytest.mark.parametrize("old, new", [("lr", "baseline"), ("hr", "highres")])
def test_the_old_method_names_are_aliases(old, new, tmp_path, monkeypatch):
    from lowres_sdk.training import cli as training_cli
    from lowres_sdk.training.recipe import Recipe

    assert Recipe(method=old) == Recipe(method=new) and Recipe(method=old).method == new
    assert Recipe.from_dict({"method": old, "data": "d"}).to_dict()["method"] == new
    seen = []
    monkeypatch.setattr("lowres_sdk.training.loop.train", lambda recipe, out, resume: seen.append(recipe) or {
        "history": [{"test_top1": 0.5}], "epoch": 1, "params": 1, "mflops": 1.0})
    for name in (old, new):
        result = CliRunner().invoke(training_cli.train_command, ["--method", name, "--data", "d", "--out",
                                                                 str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert seen[0] == seen[1] and seen[0].method == new


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
