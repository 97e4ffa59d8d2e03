"""Measuring speed-ups honestly: repeated timings, medians, tables, scaling laws and plots.

One timing of anything that starts a JVM, fills a cache or spawns workers says little, so ``time_it``
warms up first and keeps every run; the median is what tables and plots report. ``record`` writes
results with the machine they were measured on and the command that measured them, because a speed-up
means nothing without both.

numpy, psutil and matplotlib are imported only by the functions that need them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

T = TypeVar("T")

SECTION_PREFIX = "## "
RESULTS_TITLE = (
    "# Benchmark results\n\n"
    "Written by `python -m bench` (`make bench`); a benchmark replaces its own section when it runs again.\n"
)


def format_seconds(seconds: float) -> str:
    """A duration with a unit a reader can take in at a glance (s, ms or µs)."""
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


@dataclass(frozen=True)
class Timing:
    """Every measured run (seconds), and the value the last run returned."""

    times: tuple[float, ...]
    result: Any = field(default=None, repr=False, compare=False)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def __str__(self) -> str:
        return (
            f"median {format_seconds(self.median)} (min {format_seconds(self.min)}, "
            f"max {format_seconds(self.max)}, {len(self.times)} runs)"
        )


def time_it(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> Timing:
    """Run ``fn`` ``warmup`` times unmeasured, then ``repeat`` times measured with a monotonic clock."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got {repeat} and {warmup}")
    for _ in range(warmup):
        fn()
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return Timing(tuple(times), result)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; numbers keep the format the caller gave them."""

    def cells(values: Sequence[Any]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"  # `tr | sort` stays one cell

    lines = [cells(header), "|" + " --- |" * len(header)]
    lines += [cells(row) for row in rows]
    return "\n".join(lines)


def _check_fraction(p: float) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"the parallel fraction p must be between 0 and 1, got {p}")


def amdahl(p: float, n: Any) -> np.ndarray | float:
    """Amdahl's law: the speed-up of a fixed-size job whose fraction ``p`` runs in parallel on ``n`` workers.

    The serial part (1 - p) bounds it by 1 / (1 - p), however many workers are added.
    """
    import numpy as np

    _check_fraction(p)
    workers = np.asarray(n, dtype=float)
    speedup = 1.0 / ((1.0 - p) + p / workers)
    return float(speedup) if speedup.ndim == 0 else speedup


def gustafson(p: float, n: Any) -> np.ndarray | float:
    """Gustafson's law: the scaled speed-up when the job grows with ``n`` so that each worker stays busy."""
    import numpy as np

    _check_fraction(p)
    workers = np.asarray(n, dtype=float)
    speedup = (1.0 - p) + p * workers
    return float(speedup) if speedup.ndim == 0 else speedup


# --- recording results ----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1/5/15-minute load averages, for a results file: busy cores make timings slower."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_description() -> dict[str, str]:
    """What a reader needs to compare these numbers with theirs."""
    import psutil

    physical = psutil.cpu_count(logical=False)
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu count": f"{os.cpu_count()} logical" + (f", {physical} physical" if physical else ""),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def rows_markdown(rows: str | Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of dict rows (columns in the first row's order); a string is taken as it is."""
    if isinstance(rows, str):
        return rows.strip()
    if not rows:
        return "(no rows)"
    header = list(rows[0])
    return markdown_table(header, [[row.get(column, "") for column in header] for row in rows])


def format_section(name: str, rows: str | Sequence[Mapping[str, Any]], command: str, notes: str = "") -> str:
    """One benchmark's section of a results file: heading, machine, command, results, notes."""
    machine = "\n".join(f"- {key}: {value}" for key, value in machine_description().items())
    parts = [f"{SECTION_PREFIX}{name}", machine, f"Command:\n\n```\n{command}\n```", rows_markdown(rows)]
    if notes:
        parts.append(notes.strip())
    return "\n\n".join(parts) + "\n"


def _split_sections(text: str) -> list[str]:
    """The file cut before each level-2 heading: [preamble, section, section, ...]."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.startswith(SECTION_PREFIX):
            chunks.append([])
        chunks[-1].append(line)
    return ["".join(chunk) for chunk in chunks]


def record(
    results_path: str | os.PathLike[str],
    name: str,
    rows: str | Sequence[Mapping[str, Any]],
    command: str,
    notes: str = "",
) -> Path:
    """Write the section ``name`` of a markdown results file, replacing an earlier one of that name.

    ``rows`` is a list of dicts (one table row each, columns in the first row's order) or a ready
    markdown table such as ``markdown_table(...)`` returns. Other sections stay as they are.
    """
    target = Path(results_path)
    text = target.read_text(encoding="utf-8") if target.exists() else RESULTS_TITLE
    section = format_section(name, rows, command, notes)
    chunks = _split_sections(text)
    heading = f"{SECTION_PREFIX}{name}"
    replaced = False
    for index, chunk in enumerate(chunks[1:], start=1):
        if chunk.splitlines()[0].rstrip() == heading:
            chunks[index] = section + "\n"
            replaced = True
    if not replaced:
        chunks[-1] = chunks[-1].rstrip("\n") + "\n\n"
        chunks.append(section + "\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(chunks).rstrip("\n") + "\n", encoding="utf-8")
    return target


# --- the frame of a benchmark script (bench/bench_*.py) ------------------------------------------


def format_runs(times: Iterable[float], digits: int = 2) -> str:
    """Every run's seconds, for a results table: the spread shows whether the median can be trusted."""
    return ", ".join(f"{t:.{digits}f}" for t in times)


@contextlib.contextmanager
def started(start: Callable[[], T], stop: Callable[[], Any]) -> Iterator[tuple[T, float]]:
    """(what ``start()`` returned, the seconds it took): an engine such as a Spark session, whose start-up
    a benchmark reports apart from its runs; ``stop()`` runs when the block ends, however it ends."""
    began = time.perf_counter()
    engine = start()
    seconds = time.perf_counter() - began
    try:
        yield engine, seconds
    finally:
        stop()


class Benchmark:
    """What a benchmark script records besides its measurements: the results file beside it, the command
    that measures again, and the machine's load when it began (busy cores make every timing slower)."""

    def __init__(self, script: str | os.PathLike[str]):
        """``script``: the benchmark's ``__file__``."""
        path = Path(script).resolve()
        self.results = path.with_name("RESULTS.md")
        self.command = f"python -m bench {path.stem}"
        self.load_before = load_average()

    def load_note(self) -> str:
        """The load averages before and now, for the notes (without a final full stop)."""
        return f"Load average (1/5/15 min) before: {self.load_before}; after: {load_average()}"

    def record(self, section: str, rows: str | Sequence[Mapping[str, Any]], notes: str = "",
               command: str | None = None) -> Path:
        """``record`` this section into the results file, with this script's command unless told another."""
        target = record(self.results, section, rows, command or self.command, notes)
        print(f"recorded {section!r} in {target}")
        return target


# --- plots ----------------------------------------------------------------------------------------


def plot_speedup(
    workers: Sequence[float],
    speedups: Mapping[str, Sequence[float]],
    parallel_fractions: Sequence[float] = (0.5, 0.9, 0.99),
    title: str | None = None,
) -> Figure:
    """Measured speed-ups against the ideal line and Amdahl's curves, so a reader sees which law fits.

    Built on a bare ``Figure`` (not pyplot), so it works with any backend and shows once in a notebook.
    """
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    grid = np.linspace(1, max(max(workers), 2), 200)
    axes.plot(grid, grid, color="grey", linestyle=":", label="ideal (p = 1)")
    for p in parallel_fractions:
        axes.plot(grid, amdahl(p, grid), linestyle="--", linewidth=1, label=f"Amdahl, p = {p:g}")
    for name, values in speedups.items():
        axes.plot(workers, values, marker="o", label=f"measured: {name}")
    axes.set_xlabel("workers (cores)")
    axes.set_ylabel("speed-up over 1 worker (×, higher is faster)")
    axes.set_title(title or "Measured speed-up and Amdahl's law")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def show_results(*sections: str, results: str | os.PathLike[str] | None = None) -> Figure | None:
    """Sections of bench/RESULTS.md drawn as ``make bench-report`` draws them, for a lab's "Scale it up".

    One labelled plot per table (scalelab.bench_plots): the medians in the table's unit, error bars
    from the fastest to the slowest run where the table records every run, the machine in the title.
    ``sections`` are ``## `` titles, exactly; ``results`` defaults to bench/RESULTS.md of the course
    repository. In a notebook every plot shows; the last one is returned, so that it is the cell's
    value. Where the file or a section is missing (labs without the course repository), it prints one
    sentence saying where the figures come from and how to get them, and returns None for want of a plot.
    """
    from scalelab import bench_plots

    if not sections:
        raise TypeError("show_results needs the title of at least one section of bench/RESULTS.md")
    try:
        path = Path(results) if results is not None else bench_plots.results_file()
        text = path.read_text(encoding="utf-8")
    except OSError:  # no course repository, or no results file in it
        found = None
    else:
        found = {section.title: section for section in bench_plots.parse(text, str(path))}
    missing = [title for title in sections if not found or title not in found]
    if missing:
        names = " and ".join(f'"{title}"' for title in missing)
        where = "which is not here" if found is None else f"whose copy here ({path}) has no such section"
        print(f"The figures of {names} come from bench/RESULTS.md in the course repository, {where}: "
              "run `make bench` there to record them (or see them all with `make bench-report`).")
    figures = [plot.figure for title in sections if found and title in found
               for plot in bench_plots.plots(found[title])]
    if not figures:
        return None
    if _notebook_shows(figures[-1]):
        from IPython.display import display

        for figure in figures[:-1]:
            display(figure)
    return figures[-1]


def _notebook_shows(figure: Figure) -> bool:
    """Whether this runs in IPython, making sure it draws a bare Figure as an image (matplotlib's inline
    backend registers that only once pyplot is imported; until then a Figure shows as text)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    formatters = shell.display_formatter.formatters
    for mime in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
        try:
            formatters[mime].lookup(figure)
            return True  # the inline backend (or the user) chose the format already
        except (KeyError, TypeError):
            continue
    from IPython.core.pylabtools import print_figure

    formatters["image/png"].for_type(type(figure), lambda fig: print_figure(fig, "png", bbox_inches="tight"))
    return True
