"""scalelab.bench: timings, scaling laws, tables, results files and plots (no timing is asserted)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from scalelab import bench

matplotlib.use("Agg")


def test_time_it_runs_warmup_plus_repeat_and_reports_the_median(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count()  # each perf_counter() call advances by 1 "second"
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    durations = iter([0, 0, 4, 1, 9, 2, 3])  # extra ticks a call burns; the first is the warm-up
    calls = []

    def work() -> int:
        for _ in range(next(durations)):
            next(clock)
        calls.append(1)
        return len(calls)

    timing = bench.time_it(work, repeat=5, warmup=2)
    assert len(calls) == 7
    assert timing.times == (5, 2, 10, 3, 4)  # 1 tick between the two clock reads, plus the burnt ones
    assert timing.median == 4 and timing.min == 2 and timing.max == 10
    assert timing.result == 7
    assert "median 4 s" in str(timing) and "5 runs" in str(timing)


def test_time_it_rejects_zero_repeats() -> None:
    with pytest.raises(ValueError):
        bench.time_it(lambda: None, repeat=0)


def test_format_seconds_picks_a_readable_unit() -> None:
    assert bench.format_seconds(2.5) == "2.5 s"
    assert bench.format_seconds(0.0123) == "12.3 ms"
    assert bench.format_seconds(4.5e-6) == "4.5 µs"


def test_amdahl_known_values() -> None:
    assert bench.amdahl(0.5, 2) == pytest.approx(4 / 3)
    assert bench.amdahl(0.9, 10) == pytest.approx(1 / 0.19)
    assert bench.amdahl(1.0, 8) == pytest.approx(8)
    assert bench.amdahl(0.0, 8) == pytest.approx(1)
    curve = bench.amdahl(0.95, np.array([1, 4, 1e9]))
    assert isinstance(curve, np.ndarray)
    np.testing.assert_allclose(curve, [1, 1 / (0.05 + 0.95 / 4), 20], rtol=1e-6)


def test_gustafson_known_values() -> None:
    assert bench.gustafson(0.9, 10) == pytest.approx(9.1)
    assert bench.gustafson(0.5, 1) == pytest.approx(1)
    np.testing.assert_allclose(bench.gustafson(0.75, [1, 2, 4]), [1, 1.75, 3.25])


def test_laws_reject_a_fraction_outside_0_1() -> None:
    with pytest.raises(ValueError):
        bench.amdahl(1.5, 4)
    with pytest.raises(ValueError):
        bench.gustafson(-0.1, 4)


def _sections(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("## ")]


def test_record_writes_machine_command_and_rows(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    rows = [{"words": "1 M", "median (s)": "0.5"}, {"words": "4 M", "median (s)": "1.9"}]
    bench.record(results, "word count", rows, "python -m bench bench_x", notes="on a quiet machine")
    text = results.read_text()
    assert f"cpu count: {os.cpu_count()} logical" in text
    assert "memory:" in text and "GiB" in text and "python: " in text
    assert "platform:" in text and "date:" in text
    assert "python -m bench bench_x" in text and "on a quiet machine" in text
    assert "| words | median (s) |" in text and "| 4 M | 1.9 |" in text


def test_record_replaces_its_own_section_and_keeps_the_others(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    bench.record(results, "alpha", [{"n": 1}], "cmd a")
    bench.record(results, "beta", [{"n": 2}], "cmd b")
    bench.record(results, "alpha", [{"n": 3}], "cmd a2")
    text = results.read_text()
    assert _sections(text) == ["## alpha", "## beta"]
    assert "| 3 |" in text and "| 1 |" not in text and "cmd a2" in text
    assert "| 2 |" in text and "cmd b" in text
    assert text.startswith("# Benchmark results")


def test_record_accepts_a_ready_table(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    bench.record(results, "table", bench.markdown_table(["method", "time (s)"], [["fast", "1"]]), "cmd")
    assert "| fast | 1 |" in results.read_text()


def test_plot_speedup_draws_measured_points_and_amdahl_curves() -> None:
    from matplotlib.figure import Figure

    figure = bench.plot_speedup([1, 2, 4], {"Spark": [1.0, 1.8, 3.1]}, parallel_fractions=(0.5, 0.9))
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    assert "workers" in axes.get_xlabel() and "(" in axes.get_xlabel()
    assert "speed-up" in axes.get_ylabel() and "×" in axes.get_ylabel()
    labels = [line.get_label() for line in axes.get_lines()]
    assert labels == ["ideal (p = 1)", "Amdahl, p = 0.5", "Amdahl, p = 0.9", "measured: Spark"]
    np.testing.assert_allclose(axes.get_lines()[-1].get_ydata(), [1.0, 1.8, 3.1])
    amdahl_half = axes.get_lines()[1]
    assert amdahl_half.get_ydata()[-1] == pytest.approx(bench.amdahl(0.5, 4))
    figure.savefig(os.devnull, format="png")  # renders without a display


def test_markdown_table_keeps_a_pipe_inside_one_cell():
    from scalelab.bench import markdown_table

    table = markdown_table(["method", "s"], [["tr | sort | uniq -c", 1.5]])
    assert table.splitlines()[-1] == "| tr \\| sort \\| uniq -c | 1.5 |"


def test_load_average_is_three_figures_for_the_results_file() -> None:
    figures = bench.load_average().split(" / ")
    assert len(figures) == 3 and all(float(f) >= 0 for f in figures)


def test_format_runs_keeps_every_run_at_the_asked_precision() -> None:
    assert bench.format_runs([1.23456, 0.5]) == "1.23, 0.50"
    assert bench.format_runs((t for t in [0.01234]), 4) == "0.0123"


def test_started_times_the_start_and_stops_even_when_the_block_fails() -> None:
    stopped = []
    with pytest.raises(RuntimeError), bench.started(lambda: "engine", lambda: stopped.append(1)) as (engine, s):
        assert engine == "engine" and s >= 0
        raise RuntimeError("a run failed")
    assert stopped == [1]


def test_a_benchmark_records_beside_its_script_with_its_command(tmp_path: Path) -> None:
    benchmark = bench.Benchmark(tmp_path / "bench_x.py")
    assert benchmark.command == "python -m bench bench_x"
    assert benchmark.load_note().startswith(f"Load average (1/5/15 min) before: {benchmark.load_before}; after: ")
    target = benchmark.record("x", [{"n": 1}], "notes")
    assert target == tmp_path / "RESULTS.md"
    assert "python -m bench bench_x" in target.read_text() and "| 1 |" in target.read_text()
