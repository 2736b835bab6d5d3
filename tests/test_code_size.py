"""Code that fits on a screen: no function over 80 lines and no line over 120 characters in the
package's sources."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES, MAX_LINE_CHARS = 80, 120


def sources() -> list[Path]:
    return [p for folder in ("sdk", "training", "export") for p in sorted((ROOT / folder).rglob("*.py"))]


def oversize(path: Path) -> list[str]:
    """'path:line what' for each function over MAX_FUNCTION_LINES lines and each line over MAX_LINE_CHARS."""
    text, rel = path.read_text(), path.relative_to(ROOT).as_posix()
    found = [f"{rel}:{i} {len(line)} chars" for i, line in enumerate(text.splitlines(), 1) if len(line) > MAX_LINE_CHARS]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                found.append(f"{rel}:{node.lineno} {node.name} is {node.end_lineno - start + 1} lines")
    return found


def test_the_check_finds_a_long_function_and_a_long_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\ndef g():\n    return 1  # {'y' * 120}\n")
    assert oversize(tmp_path / "m.py") == ["m.py:85 136 chars", "m.py:1 f is 81 lines"]


def test_functions_and_lines_fit_on_a_screen():
    files = sources()
    assert len(files) > 80 and ROOT / "training" / "loop.py" in files
    assert {ROOT / "sdk" / "cli.py", ROOT / "sdk" / "runtime.py", ROOT / "sdk" / "serve" / "app.py"} <= set(files)
    assert [found for path in files for found in oversize(path)] == []
