"""Figures the solution notebooks quote from bench/RESULTS.md are still there (reads notebooks, runs none).

The rule is in docs/architecture.md, "Figures quoted from the benchmarks": below a comment
`<!-- figures from bench/RESULTS.md: "section" -->`, up to the next such comment or heading or the cell's
end, every number with a unit or a speed-up, and every number in a table's body rows, must round from a
number of that section's tables or notes (12.3 from 12.34, 2.0 from 1.96). Code is not read.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import nbformat
import pytest

from bench import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(report.BENCH_DIR) / "RESULTS.md"
NOTEBOOKS = sorted((ROOT / "solutions").glob("*/*.ipynb"))

MARKER = re.compile(r"<!--\s*figures from bench/RESULTS\.md:(.*?)-->", re.S)
NUMBER = r"(?<![\w.])[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?"
UNIT = r"\s?(?:[kMG]B/s|ms|µs|s|min|kB|MB|GB|bytes|%)(?![\w/])|[×x](?!\w)"
FIGURE = re.compile(rf"({NUMBER})(?:{UNIT})")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def value(text: str) -> tuple[float, float]:
    """A written number and how far the figure it rounds may be: "12.3" -> (12.3, 0.05)."""
    mantissa, _, exponent = text.replace(",", "").partition("e")
    decimals = len(mantissa.partition(".")[2])
    return float(text.replace(",", "")), 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def separator(line: str) -> bool:
    cells = report._cells(line)
    return cells is not None and all(report.SEPARATOR.match(cell) for cell in cells)


def figures(markdown: str) -> list[tuple[list[str], str, str]]:
    """(section titles, figure as written, its number) for each figure after a marker in one markdown cell."""
    found = []
    titles: list[str] = []
    lines = CODE.sub("", markdown).splitlines()
    for i, line in enumerate(lines):
        for marker in MARKER.finditer(line):
            titles = re.findall(r'"([^"]+)"', marker.group(1))
        line = MARKER.sub("", line)
        if line.startswith("#"):
            titles = []  # a heading ends the quote: "## 8. Questions" below "Scale it up" is not from the bench
        if not titles:
            continue
        if report._cells(line) is not None:
            if separator(line) or (i + 1 < len(lines) and separator(lines[i + 1])):
                continue  # a separator row, or the header above one: names, not figures
            found += [(titles, number, number) for number in re.findall(NUMBER, line)]
        else:
            found += [(titles, match.group(0).strip(), match.group(1)) for match in FIGURE.finditer(line)]
    return found


def holds(number: str, recorded: list[float]) -> bool:
    """Whether a recorded figure rounds to the written number."""
    written, slack = value(number)
    slack += 1e-9 * max(1.0, abs(written))  # 12.3 against 12.25 is exactly half a unit, in binary a hair more
    return any(abs(r - written) <= slack for r in recorded)


@cache
def recorded_numbers() -> dict[str, list[float]]:
    """Every number in each section's tables and notes (not its machine header), by section title."""
    sections = report.parse(RESULTS.read_text(encoding="utf-8"), str(RESULTS))
    numbers = {}
    for section in sections:
        text = " ".join(" ".join(row) for table in section.tables for row in [table.header, *table.rows])
        numbers[section.title] = [value(n)[0] for n in re.findall(NUMBER, f"{text} {section.notes}")]
    return numbers


def problems(path: Path) -> list[str]:
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        if not MARKER.search(cell.source):
            # a cell that cites the benchmarks and states figures must say which section they come from
            cites = re.search(r"bench/|RESULTS\.md", cell.source)
            if cites and FIGURE.search(CODE.sub("", cell.source)):
                found.append(
                    f"{where}, cell {cell.id}: cites the benchmarks and states figures, but has no "
                    f'<!-- figures from bench/RESULTS.md: "section" --> comment'
                )
            continue
        for titles, figure, number in figures(cell.source):
            unknown = [t for t in titles if t not in recorded_numbers()]
            if unknown:
                found.append(f"{where}, cell {cell.id}: no section {unknown[0]!r} in bench/RESULTS.md")
                continue
            if not holds(number, [n for t in titles for n in recorded_numbers()[t]]):
                named = " or ".join(repr(t) for t in titles)
                found.append(f"{where}, cell {cell.id}: {figure!r} is not in bench/RESULTS.md, section {named}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_quoted_from_the_benchmarks_are_what_results_records(path):
    assert not problems(path), "\n".join(problems(path))


def test_the_scale_it_up_sections_name_their_results():
    marked = [p.stem for p in NOTEBOOKS if MARKER.search(p.read_text(encoding="utf-8"))]
    assert len(marked) >= 20, marked  # the check isn't vacuous: the notebooks that quote figures are marked


def test_the_rule_reads_units_speed_ups_and_tables_and_allows_rounding():
    text = (
        "Before the marker 50 GB is not read.\n"
        '<!-- figures from bench/RESULTS.md: "a" -->\n'
        "It took 2.0 s (1.9×), 34 µs per event, on 2 cores, `x = 10 s`.\n"
        "| rows | median (s) |\n| --- | --- |\n| 100,000 | 0.22 |\n"
    )
    assert [f for _, f, _ in figures(text)] == ["2.0 s", "1.9×", "34 µs", "100,000", "0.22"]
    assert holds("2.0", [1.96]) and holds("12.3", [12.25]) and holds("1.21e+03", [1210.4])
    assert not holds("2.0", [2.06]) and not holds("57", [57.51])


def test_a_stale_quote_names_the_notebook_the_figure_and_the_section(tmp_path):
    title = "08-dask: chunk size of a dask.array sum"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            f'<!-- figures from bench/RESULTS.md: "{title}" -->\nOne chunk took 0.05 s, not 42.7 s.'
        ),
        nbformat.v4.new_markdown_cell('<!-- figures from bench/RESULTS.md: "no such section" -->\n1 s'),
        nbformat.v4.new_markdown_cell("`bench/bench_08_dask.py` measured 3.9 s."),
    ]
    path = tmp_path / "stale.ipynb"
    nbformat.write(nb, path)
    found = problems(path)
    assert len(found) == 3, found
    assert f"{path}, cell {nb.cells[0].id}: '42.7 s' is not in bench/RESULTS.md, section {title!r}" == found[0]
    assert "no section 'no such section'" in found[1] and "has no <!-- figures from" in found[2]
