"""The README's promises: its two opening commands exist and CI runs exactly its test command."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_opens_with_install_and_test_commands():
    first, second = readme_commands()[:2]
    assert first.startswith("pip install torch==2.13.0 ") and "lowres " in first
    assert "pytest" in second


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == readme_commands()[1]
    assert any("pip install -q torch==2.13.0" in line for line in ci)
