"""`make bench-report`: bench/RESULTS.md's figures as one page of plots, bench/report/index.html.

    python -m bench.report [RESULTS.md] [--out bench/report]

Reads the tables each benchmark recorded (scalelab.bench.record writes them) and draws one plot per
table with scalelab.bench_plots, the same plots a lab's "Scale it up" section shows
(scalelab.bench.show_results): the medians against the first numeric column that varies (a scaling
curve), or as bars when the rows are methods; min-max bars where a "runs" column records every run;
the machine from the section's header. The page embeds the PNGs (also written next to it), so it needs
no network.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a build machine; set before anything imports pyplot

from matplotlib.figure import Figure  # noqa: E402 - after the backend is chosen

from scalelab.bench_plots import ResultsError, machine_line, parse, plots  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent


# --- the page --------------------------------------------------------------------------------------


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def write_report(results: Path, out: Path) -> Path:
    """Draw every section of `results` into `out`: one PNG per plot and index.html embedding them all."""
    sections = parse(results.read_text(encoding="utf-8"), str(results))
    out.mkdir(parents=True, exist_ok=True)
    parts, count = [], 0
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2><p class='m'>{html.escape(machine_line(section))}</p>")
        for plot in plots(section):
            count += 1
            png = _png(plot.figure)
            (out / f"{count:02d}-{_slug(section.title)}.png").write_bytes(png)
            parts.append(f"<img alt='{html.escape(section.title, quote=True)}' "
                         f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
        parts.append(f"<p>{html.escape(section.notes)}</p>")
    page = out / "index.html"
    page.write_text(
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Benchmark results</title>"
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem}"
        "img{max-width:100%;height:auto}.m{color:#666}</style></head><body>"
        f"<h1>Benchmark results</h1><p>{count} plots from {len(sections)} sections of "
        f"{html.escape(results.name)}. Medians; error bars, where the results record every run, go from the "
        "fastest run to the slowest.</p>\n" + "\n".join(parts) + "\n</body></html>\n", encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=BENCH_DIR / "RESULTS.md")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "report")
    args = parser.parse_args(argv)
    try:
        page = write_report(args.results, args.out)
    except ResultsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {page} and its PNGs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
