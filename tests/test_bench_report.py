"""scalelab.bench_plots and bench/report.py: every section of the real bench/RESULTS.md parses and gets its
plots, and the page embeds them (no timing runs)."""

from pathlib import Path

import pytest

from bench import report
from scalelab import bench_plots

RESULTS = Path(report.BENCH_DIR) / "RESULTS.md"


def test_every_section_of_results_parses_and_gets_a_plot():
    text = RESULTS.read_text(encoding="utf-8")
    sections = bench_plots.parse(text, str(RESULTS))
    assert len(sections) == text.count("\n## ") >= 10
    for section in sections:
        assert section.tables and "cpu" in section.machine, section.title
        plots = bench_plots.plots(section)
        assert plots, f"no plot for {section.title!r}"
        for plot in plots:
            axes = plot.figure.axes[0]
            assert axes.get_xlabel()
            if bench_plots._measures(plot.table):  # timings say their unit: "median time (s)"
                assert "(" in axes.get_ylabel() + axes.get_xlabel()
            assert section.machine["cpu"] in plot.figure._suptitle.get_text()


def test_scaling_figures_are_drawn_against_size_with_their_spread():
    section = next(s for s in bench_plots.parse(RESULTS.read_text(encoding="utf-8")) if s.title.startswith("00-setup"))
    (plot,) = bench_plots.plots(section)
    axes = plot.figure.axes[0]
    assert axes.get_xlabel() == "words" and axes.get_ylabel() == "median time (s)"
    assert [t.get_text() for t in axes.get_xticklabels()] == ["1 M", "4 M", "16 M"]
    assert sorted(axes.get_legend_handles_labels()[1]) == ["Python", "Spark"]
    assert "error bars: fastest to slowest run" in plot.figure._suptitle.get_text()


def test_numbers_as_the_tables_write_them():
    assert [bench_plots.number(c) for c in ["100,000", "1 M", "1e+03", "256×256", "0.0285", "-", "0.73×"]] == [
        100_000, 1e6, 1000, 65536, 0.0285, None, None]
    assert bench_plots.numbers("0.044, 0.046, 0.045") == [0.044, 0.046, 0.045]
    assert bench_plots.numbers("100,000") is None


@pytest.mark.parametrize(("table", "problem"), [
    ("| a | median (s) |\n| --- | --- |\n| 1 | 2 | 3 |\n", "line 6: the row has 3 cells, the header 2"),
    ("| a | median (s) |\n| 1 | 2 |\n", "line 4: the table has no '| --- |' row"),
    ("| a | median (s) |\n| --- | --- |\n| 1 | 2\n", "line 6: a table row must start and end with '|'"),
])
def test_a_table_it_cannot_read_fails_with_where_and_why(table, problem):
    text = f"# Benchmark results\n\n## demo: a broken table\n{table}"
    with pytest.raises(bench_plots.ResultsError, match="section 'demo: a broken table'") as error:
        bench_plots.parse(text, "RESULTS.md")
    assert problem in str(error.value)


def test_the_page_embeds_every_plot(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("\n## ".join(RESULTS.read_text(encoding="utf-8").split("\n## ")[:3]), encoding="utf-8")
    page = report.write_report(results, tmp_path / "report").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(list((tmp_path / "report").glob("*.png"))) >= 2
    assert "AMD EPYC" in page and "://" not in page.replace("data:image", "")
