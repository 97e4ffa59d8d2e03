"""Figures the solution notebooks quote from bench/RESULTS.md are still there, and drawn below the quote
(reads notebooks, runs none); scalelab.bench.show_results, which draws them, on a small results file.

The rule is in docs/architecture.md, "Figures quoted from the benchmarks": below a comment
`<!-- figures from bench/RESULTS.md: "section" -->`, up to the next such comment or heading or the cell's
end, every number with a unit or a speed-up, and every number in a table's body rows, must round from a
number of that section's tables or notes (12.3 from 12.34, 2.0 from 1.96). Code is not read. The cell
right after the quote is a demonstration (tagged skip-when-grading) that calls
`show_results("section", ...)` for each quoted section.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import nbformat
import pytest

from scalelab import bench_plots
from scalelab.bench import show_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
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
    cells = bench_plots.row_cells(line)
    return cells is not None and all(bench_plots.SEPARATOR.match(cell) for cell in cells)


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
        if bench_plots.row_cells(line) is not None:
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
    sections = bench_plots.parse(RESULTS.read_text(encoding="utf-8"), str(RESULTS))
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


def quoted_titles(markdown: str) -> list[str]:
    """The sections every marker of a markdown cell names, in order, once each."""
    titles: list[str] = []
    for marker in MARKER.finditer(markdown):
        titles += [t for t in re.findall(r'"([^"]+)"', marker.group(1)) if t not in titles]
    return titles


def drawn_titles(code: str) -> list[str] | None:
    """The sections a code cell draws: the string arguments of its show_results(...) calls (None: no call)."""
    calls = [node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", getattr(node.func, "attr", None)) == "show_results"]
    if not calls:
        return None
    return [arg.value for call in calls for arg in call.args if isinstance(arg, ast.Constant)]


def plot_cell_problems(path: Path) -> list[str]:
    """Each markdown cell that quotes RESULTS.md must be followed by a demonstration cell drawing those sections."""
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    cells = nbformat.read(path, as_version=4).cells
    found = []
    for cell, below in zip(cells, [*cells[1:], None], strict=True):
        if cell.cell_type != "markdown" or not MARKER.search(cell.source):
            continue
        quoted = quoted_titles(cell.source)
        drawn = drawn_titles(below.source) if below is not None and below.cell_type == "code" else None
        if drawn is None:
            found.append(f"{where}, cell {cell.id}: quotes bench/RESULTS.md but the next cell doesn't draw the "
                         f"figures: add a code cell `show_results({', '.join(map(repr, quoted))})`")
            continue
        if "skip-when-grading" not in below.metadata.get("tags", []) or "nbgrader" in below.metadata:
            found.append(f"{where}, cell {below.id}: a plot cell is a demonstration: tag it skip-when-grading "
                         "and give it no nbgrader metadata")
        if set(drawn) != set(quoted):
            found.append(f"{where}, cell {below.id}: draws {sorted(set(drawn))}, the cell above quotes {quoted}")
        found += [f"{where}, cell {below.id}: no section {t!r} in bench/RESULTS.md"
                  for t in drawn if t not in recorded_numbers()]
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


# --- the plot below each quote ----------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_quote_of_the_benchmarks_is_drawn_by_a_demonstration_cell_below_it(path):
    assert not plot_cell_problems(path), "\n".join(plot_cell_problems(path))


def test_a_quote_without_its_plot_cell_or_with_a_wrong_one_is_named(tmp_path):
    title = "08-dask: chunk size of a dask.array sum"
    other = "08-dask: one groupby over CSV files, pandas vs dask.dataframe"
    quote = f'<!-- figures from bench/RESULTS.md: "{title}"; "{other}" -->\nOne chunk took 0.05 s.'
    demo = {"tags": ["skip-when-grading"]}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(quote),  # fine: both sections drawn below
        nbformat.v4.new_code_cell(f"from scalelab.bench import show_results\n\nshow_results({title!r}, {other!r})",
                                  metadata=demo),
        nbformat.v4.new_markdown_cell(quote),  # drawn by a cell grading would run, and one section only
        nbformat.v4.new_code_cell(f"show_results({title!r})"),
        nbformat.v4.new_markdown_cell(quote),  # not drawn at all
        nbformat.v4.new_code_cell("x = 1", metadata=demo),
        nbformat.v4.new_markdown_cell('<!-- figures from bench/RESULTS.md: "no such section" -->\n1 s'),
        nbformat.v4.new_code_cell("show_results('no such section')", metadata=demo),
        nbformat.v4.new_markdown_cell(quote),  # the last cell: nothing below
    ]
    path = tmp_path / "unplotted.ipynb"
    nbformat.write(nb, path)
    found = plot_cell_problems(path)
    ids = [cell.id for cell in nb.cells]
    assert [line.split(": ", 1)[0] for line in found] == [f"{path}, cell {i}" for i in
                                                         [ids[3], ids[3], ids[4], ids[7], ids[8]]], found
    assert "tag it skip-when-grading" in found[0] and f"the cell above quotes [{title!r}, {other!r}]" in found[1]
    assert "the next cell doesn't draw the figures" in found[2] and "no section 'no such section'" in found[3]


RESULTS_SAMPLE = """# Benchmark results

## demo: sum of n numbers

- date: 2026-12-01 10:00 UTC
- cpu: Test CPU 9000
- cpu count: 2 logical, 2 physical
- memory: 8.0 GiB

Command:

```
python -m bench bench_demo
```

| n | median (s) | runs (s) |
| --- | --- | --- |
| 1,000 | 0.010 | 0.009, 0.010, 0.012 |
| 10,000 | 0.10 | 0.09, 0.10, 0.13 |
| 100,000 | 1.0 | 0.9, 1.0, 1.4 |

Medians of 3 runs.

## demo: two tables

- cpu: Test CPU 9000

| method | median (ms) |
| --- | --- |
| loop | 12 |
| vectorised | 0.5 |

| workers | median (s) |
| --- | --- |
| 1 | 4.0 |
| 2 | 2.1 |
"""


@pytest.fixture
def sample(tmp_path) -> Path:
    path = tmp_path / "RESULTS.md"
    path.write_text(RESULTS_SAMPLE, encoding="utf-8")
    return path


def test_show_results_draws_a_section_with_its_unit_machine_medians_and_spread(sample):
    figure = show_results("demo: sum of n numbers", results=sample)
    (axes,) = figure.axes
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("n", "median time (s)")
    assert [t.get_text() for t in axes.get_xticklabels()] == ["1,000", "10,000", "100,000"]
    title = figure._suptitle.get_text()
    assert "demo: sum of n numbers" in title and "Test CPU 9000, 2 logical, 2 physical cores" in title
    assert "error bars: fastest to slowest run" in title
    (curve,) = axes.containers  # the medians, with a bar from the fastest run to the slowest
    assert list(curve.lines[0].get_ydata()) == [0.010, 0.10, 1.0]
    assert [tuple(map(tuple, s)) for s in curve.lines[2][0].get_segments()] == [
        ((1000, 0.009), (1000, 0.012)), ((10000, 0.09), (10000, 0.13)), ((100000, 0.9), (100000, 1.4))]


def test_show_results_returns_the_last_plot_and_a_notebook_shows_every_one_as_an_image(sample, monkeypatch):
    import IPython
    import IPython.display
    from IPython.core.formatters import DisplayFormatter

    formatter = DisplayFormatter()  # a kernel's formatters before pyplot is imported: a Figure is only text
    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"display_formatter": formatter})())
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    last = show_results("demo: two tables", "demo: sum of n numbers", results=sample)
    assert [f.axes[0].get_xlabel() for f in [*shown, last]] == ["median time (ms)", "workers", "n"]
    for figure in [*shown, last]:
        assert formatter.format(figure)[0]["image/png"].startswith(b"\x89PNG")


@pytest.mark.parametrize("missing", ["section", "file"])
def test_show_results_without_the_figures_says_where_they_come_from_in_one_sentence(sample, capsys, missing):
    results = sample if missing == "section" else sample.with_name("absent.md")
    assert show_results("demo: not measured yet", results=results) is None
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith('The figures of "demo: not measured yet" come from bench/RESULTS.md in the course '
                           "repository") and "run `make bench` there" in line and line.count(". ") == 0
    assert ("has no such section" if missing == "section" else "which is not here") in line


def test_show_results_draws_what_there_is_and_names_what_is_missing(sample, capsys):
    figure = show_results("demo: nothing", "demo: sum of n numbers", results=sample)
    assert figure.axes[0].get_xlabel() == "n"
    assert '"demo: nothing"' in capsys.readouterr().out
