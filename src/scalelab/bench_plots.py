"""bench/RESULTS.md read and drawn: the tables each benchmark recorded, as labelled plots.

``scalelab.bench.record`` writes the results file: one ``## title`` section a benchmark, the machine as
``- key: value`` lines, the command, one or more markdown tables and notes. ``parse`` reads it back and
``plots`` draws one figure per table: the medians against the first numeric column that varies (a
scaling curve), or as bars when the rows are methods; min-max error bars where a "runs" column records
every run; the unit from the column's header and the machine from the section's header in the title.

``make bench-report`` (bench/report.py) puts every section's plots on one page; a lab's "Scale it up"
section shows its own with ``scalelab.bench.show_results``. Figures are bare ``Figure`` objects (no
pyplot), so drawing them chooses no backend and works anywhere.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

TIME_UNIT = re.compile(r"\(((?:s|ms|µs)\b[^)]*)\)")  # "(s)", "(ms)", "(s per submission)"
RUNS = re.compile(r"\bruns\b|\beach run\b")  # a column with every run's time: "runs (s)", "totals of each run"
SEPARATOR = re.compile(r"^:?-{3,}:?$")


class ResultsError(ValueError):
    """A results file this parser can't read; the message says where and why."""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    line: int  # where the table starts in the file, for messages


@dataclass
class Section:
    title: str
    line: int
    machine: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    notes: str = ""


# --- reading RESULTS.md ----------------------------------------------------------------------------


def row_cells(line: str) -> list[str] | None:
    """The cells of a markdown table row, `\\|` kept as a literal bar; None if it isn't a row."""
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|") and len(line) > 1):
        return None
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line[1:-1])]


def _table(lines: list[tuple[int, str]], where: str) -> Table:
    first = lines[0][0]
    cells = [(n, row_cells(text)) for n, text in lines]
    for n, row in cells:
        if row is None:
            raise ResultsError(f"{where}, line {n}: a table row must start and end with '|'")
    header = cells[0][1]
    if len(cells) < 2 or not all(SEPARATOR.match(c) for c in cells[1][1]) or len(cells[1][1]) != len(header):
        raise ResultsError(f"{where}, line {first}: the table has no '| --- |' row under its header")
    for n, row in cells[2:]:
        if len(row) != len(header):
            raise ResultsError(f"{where}, line {n}: the row has {len(row)} cells, the header {len(header)}")
    if len(cells) == 2:
        raise ResultsError(f"{where}, line {first}: the table has a header but no rows")
    return Table(header, [row for _, row in cells[2:]], first)


def parse(text: str, source: str = "RESULTS.md") -> list[Section]:
    """Sections (``## title``) with their machine (``- key: value``), tables and notes."""
    sections: list[Section] = []
    block: list[tuple[int, str]] = []
    fenced = False

    def close_table() -> None:
        if block:
            section = sections[-1]
            section.tables.append(_table(block, f"{source}, section '{section.title}'"))
            block.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("## "):
            close_table()
            sections.append(Section(line[3:].strip(), number))
        elif not sections:
            continue  # the file's title and preamble
        elif line.lstrip().startswith("|"):
            block.append((number, line))
        else:
            close_table()
            section = sections[-1]
            item = re.match(r"^- ([^:]+): (.*)$", line)
            if item and not section.tables:
                section.machine[item.group(1)] = item.group(2).strip()
            elif line.strip() and section.tables and not line.startswith("Command:"):
                section.notes = f"{section.notes} {line.strip()}".strip()
    close_table()
    for section in sections:
        if not section.tables:
            raise ResultsError(f"{source}, line {section.line}: section '{section.title}' has no table")
    return sections


def number(cell: str) -> float | None:
    """A figure as a table writes it ("100,000", "1 M", "1e+03", "256×256"), else None."""
    cell = cell.strip()
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", cell):
        cell = cell.replace(",", "")
    scale = {"k": 1e3, "M": 1e6}
    if match := re.fullmatch(r"([\d.]+) ?([kM])", cell):
        return float(match.group(1)) * scale[match.group(2)]
    if match := re.fullmatch(r"(\d+)×(\d+)", cell):  # a matrix n×m: its number of elements
        return float(match.group(1)) * float(match.group(2))
    try:
        return float(cell)
    except ValueError:
        return None


def numbers(cell: str) -> list[float] | None:
    """A list of runs ("0.044, 0.046, 0.045"), else None."""
    values = [number(part) for part in cell.split(", ")]
    return values if len(values) > 1 and None not in values else None


# --- what to draw ----------------------------------------------------------------------------------


@dataclass
class Plot:
    title: str
    machine: str
    table: Table
    figure: Figure


def machine_line(section: Section) -> str:
    m = section.machine
    parts = [m.get("cpu", "machine not recorded"), f"{m['cpu count']} cores" if "cpu count" in m else "",
             m.get("memory", ""), m.get("date", "")]
    return ", ".join(p for p in parts if p)


def _measures(table: Table) -> list[int]:
    """The columns to draw: time columns, only the medians where the table has them."""
    times = [i for i, h in enumerate(table.header) if TIME_UNIT.search(h) and not RUNS.search(h)]
    medians = [i for i in times if "median" in table.header[i]]
    return medians or times


def _runs_column(table: Table, measure: int, measures: list[int]) -> int | None:
    """The column with every run of `measure`'s median: same prefix ("Python median" / "Python runs")."""
    runs = [i for i, h in enumerate(table.header) if RUNS.search(h)]
    prefix = table.header[measure].split("median")[0].strip(" ,")
    matching = [i for i in runs if prefix and table.header[i].startswith(prefix)]
    if not matching and len(runs) == 1 and len(measures) == 1:
        matching = runs
    return matching[0] if matching else None


def _label(header: str) -> str:
    """A measure's name in a legend: "Python median (s)" -> "Python"."""
    return TIME_UNIT.sub("", header).replace("median", "").strip(" ,") or "median"


def _safe(text: str) -> str:
    return text.replace("$", r"\$")  # a dollar would start matplotlib's mathtext


def _spread(table: Table, row: list[str], measure: int, runs: int | None) -> tuple[float, float] | None:
    values = numbers(row[runs]) if runs is not None else None
    median = number(row[measure])
    return (median - min(values), max(values) - median) if values and median is not None else None


def _new_figure(section: Section, spread: bool, height: float = 4.2, panels: int = 1) -> tuple[Figure, list]:
    columns = min(panels, 3)
    rows = -(-panels // columns)
    figure = Figure(figsize=(7.5 if columns == 1 else 11, height * rows if panels > 1 else height),
                    layout="constrained")
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for extra in axes[panels:]:
        extra.remove()
    note = "; error bars: fastest to slowest run" if spread else ""
    figure.suptitle(_safe(textwrap.fill(section.title, 90) + "\n" + machine_line(section) + note), fontsize=10)
    for a in axes[:panels]:
        a.grid(alpha=0.3)
    return figure, axes[:panels]


def _wide(values: list[float], ratio: float = 20) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) >= ratio


def _unit_label(table: Table, measures: list[int]) -> str:
    header = table.header[measures[0]]
    unit = TIME_UNIT.search(header).group(1)
    return f"{'median ' if 'median' in header else ''}time ({unit})"


def _scaling(section: Section, table: Table, measures: list[int], x: int, used: list[list[str]]) -> Figure:
    """Medians against column `x`: a line per measure and per value of the keys that x doesn't decide;
    with several measures and several such values, one panel per value (else 15 lines in one)."""
    keys = [i for i in range(measures[0]) if i != x]
    numeric = [r for r in used if number(r[x]) is not None]
    decided = {k for k in keys if len({number(r[x]) for r in numeric}) == len({(number(r[x]), r[k]) for r in numeric})}
    series_keys = [k for k in keys if k not in decided]
    runs = {m: _runs_column(table, m, measures) for m in measures}
    groups: dict[str, list[list[str]]] = {}
    for r in numeric:
        name = ", ".join(f"{table.header[k]} {r[k]}" if number(r[k]) is not None else r[k] for k in series_keys)
        groups.setdefault(name, []).append(r)
    panels = len(groups) if len(groups) > 1 and len(measures) > 1 else 1
    spread = any(r is not None for r in runs.values())
    figure, axes = _new_figure(section, spread, 3.6 if panels > 1 else 4.4, panels)
    for index, (group, members) in enumerate(groups.items()):
        ax = axes[index if panels > 1 else 0]
        members.sort(key=lambda r: number(r[x]))
        for m in measures:
            parts = [group] if group and panels == 1 else []
            parts += [_label(table.header[m])] if len(measures) > 1 else []
            errors = [_spread(table, r, m, runs[m]) for r in members]
            ax.errorbar([number(r[x]) for r in members], [number(r[m]) for r in members],
                        yerr=list(zip(*errors, strict=True)) if all(errors) else None, marker="o", capsize=3,
                        label=_safe(", ".join(parts)) if parts else None)
        if panels > 1:
            ax.set_title(_safe(textwrap.fill(group, 40)), fontsize=9)
    for index, ax in enumerate(axes):
        for r in used:  # a row whose x isn't a number is a reference (NumPy on one array): a flat line
            if number(r[x]) is None:
                for m in measures:
                    name = f"{r[x]}: {_label(table.header[m])}"
                    ax.axhline(number(r[m]), linestyle="--", color="gray", label=_safe(name))
        _scaling_axes(ax, table, measures, x, list(groups.values())[index] if panels > 1 else numeric)
    if axes[0].get_legend_handles_labels()[1]:
        axes[0].legend(fontsize="small")
    return figure


def _scaling_axes(ax, table: Table, measures: list[int], x: int, rows: list[list[str]]) -> None:
    """Units, log scales for wide ranges, and ticks at the measured sizes, written as the table writes them."""
    ax.set_xlabel(_safe(table.header[x]))
    ax.set_ylabel(_safe(_unit_label(table, measures)))
    xs = {number(r[x]): r[x] for r in rows}
    if _wide(list(xs), 10):
        ax.set_xscale("log")
        ax.minorticks_off()
    ticks = sorted(xs)
    ax.set_xticks(ticks, [_safe(xs[t]) for t in ticks], fontsize=8)
    ys = [v for line in ax.get_lines() for v in line.get_ydata()]
    if _wide(ys, 20):
        ax.set_yscale("log")


def _bars(section: Section, table: Table, measures: list[int], used: list[list[str]]) -> Figure:
    """One bar per row and measure, the rows named by their key cells."""
    runs = {m: _runs_column(table, m, measures) for m in measures}
    spread = any(r is not None for r in runs.values())
    figure, (axes,) = _new_figure(section, spread, height=1.6 + 0.45 * len(used) * max(1, len(measures) * 0.6))
    height = 0.8 / len(measures)
    values = []
    for j, m in enumerate(measures):
        positions = [i + j * height for i in range(len(used))]
        widths = [number(r[m]) for r in used]
        errors = [_spread(table, r, m, runs[m]) for r in used]
        xerr = list(zip(*errors, strict=True)) if runs[m] is not None and all(errors) else None
        axes.barh(positions, widths, height=height, xerr=xerr, capsize=3, label=_safe(_label(table.header[m])))
        values += widths
    names = [r[0] + "".join(f"; {table.header[k]} {r[k]}" for k in range(1, measures[0])) for r in used]
    axes.set_yticks([i + height * (len(measures) - 1) / 2 for i in range(len(used))],
                    [_safe(textwrap.fill(n, 45)) for n in names], fontsize=8)
    axes.invert_yaxis()  # the table's first row on top
    axes.set_xlabel(_safe(_unit_label(table, measures)))
    if _wide(values):
        axes.set_xscale("log")
    if len(measures) > 1:
        axes.legend(fontsize="small")
    return figure


def _series(section: Section, table: Table) -> Figure | None:
    """A table of lists without times (state rows after each batch): one line per row."""
    lists = [i for i in range(len(table.header)) if all(numbers(r[i]) for r in table.rows)]
    if not lists:
        return None
    column = lists[0]
    figure, (axes,) = _new_figure(section, spread=False)
    for row in table.rows:
        axes.plot(range(1, len(numbers(row[column])) + 1), numbers(row[column]), marker="o", label=_safe(row[0]))
    axes.set_xlabel("micro-batch")
    axes.set_ylabel(_safe(table.header[column]))
    axes.legend(fontsize="small")
    return figure


def table_figure(section: Section, table: Table) -> Figure | None:
    """The plot of one table, or None when it has nothing to draw."""
    measures = _measures(table)
    if not measures:
        return _series(section, table)
    # rows without a number in every measure are summaries ("slow / fast | 0.73×"): not drawn
    used = [r for r in table.rows if all(number(r[m]) is not None for m in measures)]
    if not used:
        return None
    names = [r[0] for r in used]
    if all(number(n) is None for n in names) and len(set(names)) == len(names):
        return _bars(section, table, measures, used)  # one row per method or format: nothing scales
    for x in range(measures[0]):
        values = {number(r[x]) for r in used} - {None}
        if len(values) >= 2 and 2 * sum(number(r[x]) is not None for r in used) >= len(used):
            return _scaling(section, table, measures, x, used)
    return _bars(section, table, measures, used)


def plots(section: Section) -> list[Plot]:
    found = []
    for table in section.tables:
        figure = table_figure(section, table)
        if figure is not None:
            found.append(Plot(section.title, machine_line(section), table, figure))
    return found


def results_file() -> Path:
    """bench/RESULTS.md in the course repository (FileNotFoundError outside one)."""
    from scalelab.paths import repo_root

    return repo_root() / "bench" / "RESULTS.md"
