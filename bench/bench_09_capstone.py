"""09-capstone: the time of each stage of the capstone pipeline at three scales, run with spark-submit.

The pipeline script is the one the notebook writes (solutions/09-capstone/09-capstone.ipynb, section 8):
the driver template of the cell `cap-pipeline-template` and the solution's own functions, taken from
the notebook's code cells. It runs as its own application with `scalelab.spark.spark_submit` (the
master in SCALELAB_SPARK_MASTER, else local[*]) once per scale and repeat; the medians of each stage
are recorded. Stages: generate the logs (pandas and JSON writing, no Spark), hydrate the history and
write it as Parquet, land two rounds with the streaming query, split (cache and count), popularity,
item similarity (collect the top-10 lists), evaluate (the four metrics in Python).

Run: `python -m bench bench_09_capstone` (SCALES and REPEAT below).
"""

import ast
import json
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from scalelab.bench import Benchmark, load_average
from scalelab.grading.course import source_notebook
from scalelab.spark import spark_submit

SCALES = (1, 4, 16)
REPEAT = 1
SECTION = "09-capstone: the pipeline's stages at three scales (spark-submit, local[*])"


def pipeline_source() -> str:
    """The script the notebook's section 8 writes, built from the solution notebook's cells."""
    nb = nbformat.read(source_notebook("09-capstone", "09-capstone"), as_version=4)
    template = {}
    functions = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.source.lstrip().startswith("%"):
            continue
        if cell.get("id") == "cap-pipeline-template":
            exec(cell.source, template)  # three constants: the head, the driver and the function names
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef):
                functions[node.name] = ast.get_source_segment(cell.source, node)
    sources = [functions[name] for name in template["PIPELINE_FUNCTIONS"]]
    return template["PIPELINE_HEAD"] + "\n\n" + "\n\n".join(sources) + "\n" + template["PIPELINE_MAIN"]


def run_once(script: Path, scale: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-capstone-{scale}-"))
    started = time.perf_counter()
    done = spark_submit(script, str(scale), str(work), timeout=1800)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["total"] = time.perf_counter() - started
    return report


def main() -> None:
    from scalelab.datasets.catalog import sizes

    script = Path(tempfile.mkdtemp(prefix="bench-capstone-")) / "capstone_pipeline.py"
    script.write_text(pipeline_source())
    rows = []
    benchmark = Benchmark(__file__)
    for scale in SCALES:
        runs = [run_once(script, scale) for _ in range(REPEAT)]
        stages = list(runs[0]["seconds"])
        size = sizes(scale)
        row = {"scale": scale, "users": size.n_users, "items": size.n_items, "events": size.n_events,
               "JSON MB": f"{size.approx_mb:.1f}"}
        for stage in stages:
            row[f"{stage} (s)"] = f"{statistics.median(r['seconds'][stage] for r in runs):.2f}"
        row["spark-submit total (s)"] = f"{statistics.median(r['total'] for r in runs):.1f}"
        last = runs[-1]["quality"]
        row["NDCG@10 pop / sim"] = f"{last['popularity']['ndcg']:.3f} / {last['item similarity']['ndcg']:.3f}"
        rows.append(row)
        print(row, flush=True)
    notes = (f"{REPEAT} run(s) a scale (medians when more); each run is a new spark-submit application (local[*]). "
             f"Load average before: {benchmark.load_before}; after: {load_average()}. 'spark-submit total' includes "
             "the JVM start and the Python driver's imports, which no stage counts.")
    benchmark.record(SECTION, rows, notes)


if __name__ == "__main__":
    main()
