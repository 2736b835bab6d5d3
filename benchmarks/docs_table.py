"""Rewrite one marked block of docs/benchmarks.md (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``),
leaving the hand-written text around it alone; appended at the end if the markers are missing."""
from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_block(name: str, lines: list[str], doc: Path = DOC) -> None:
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n" + "\n".join(lines) + f"\n{end}"
    if start in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    from lowres_sdk._io import atomic_write_text

    doc.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(doc, text)  # a stopped run leaves the doc whole


def kernel_table(rep: dict, digits: int = 1) -> list[str]:
    """Markdown rows of an `accuracy_by_kernel` report: top-1 by kernel (rows) and size (columns), then
    the minimum over kernels and the spread at each size, to ``digits`` decimals."""
    res = [str(x) for x in rep["resolutions"]]  # the report's keys
    cell = (lambda v: f"{v:.{digits}f}")
    rows = ["| kernel | " + " | ".join(f"{x} px" for x in res) + " |", "|---|" + "---|" * len(res)]
    rows += [f"| {k} | " + " | ".join(cell(rep["top1"][k][x]) for x in res) + " |" for k in rep["kernels"]]
    rows.append("| **min over kernels** | " + " | ".join(f"**{cell(rep['min_over_kernels'][x])}**" for x in res) + " |")
    rows.append("| spread (best - worst) | " + " | ".join(cell(rep["spread"][x]) for x in res) + " |")
    return rows
