"""Spark's JVM options for many short jobs: the JVM's defaults, QUICK_JVM_OPTIONS, and the class archive.

The test suite and `make grade` start hundreds of Spark sessions that each run a few small jobs. This
measures one such session as a fresh process (start, eight small aggregate-and-join queries, stop),
alternating the settings so that all see the same machine load. The class-data archive is the one
`make setup` wrote (`python -m scalelab.spark archive`); without it those rows are skipped.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from scalelab.bench import Benchmark, format_runs
from scalelab.spark import QUICK_JVM_OPTIONS, class_archive_path

REPEAT = 3
SECTION = "Spark JVM options: defaults vs C1-only JIT and serial GC vs the class archive, for short jobs"

SESSION = """
import time
start = time.perf_counter()
from pyspark.sql import functions as F
from scalelab.spark import get_spark, stop_spark
spark = get_spark("bench-jvm")
started = time.perf_counter()
df = spark.range(200_000).withColumn("k", F.col("id") % 97).withColumn("v", F.rand(1))
for _ in range(8):
    totals = df.groupBy("k").agg(F.sum("v").alias("s"), F.count("*").alias("n"))
    means = df.where(F.col("k") < 50).groupBy("k").agg(F.avg("v").alias("m"))
    rows = totals.join(means, "k").orderBy("k").collect()
assert len(rows) == 50
done = time.perf_counter()
stop_spark()
print(started - start, done - started)
"""


def one_session(java_options: str, archive: bool) -> tuple[float, float]:
    """(session start, queries) in seconds, in a fresh Python process as a kernel would be."""
    env = {**os.environ, "CI": "1", "SCALELAB_SPARK_JAVA_OPTIONS": java_options,
           "SCALELAB_SPARK_CDS": "1" if archive else "0"}
    run = subprocess.run([sys.executable, "-c", SESSION], env=env, capture_output=True, text=True, check=True)
    start, queries = map(float, run.stdout.split()[-2:])
    return start, queries


def main() -> None:
    settings = {"JVM defaults": ("", False), "QUICK_JVM_OPTIONS": (QUICK_JVM_OPTIONS, False)}
    if class_archive_path().exists():
        settings |= {"defaults + class archive": ("", True),
                     "QUICK_JVM_OPTIONS + class archive": (QUICK_JVM_OPTIONS, True)}
    benchmark = Benchmark(__file__)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    for _ in range(REPEAT):
        for name, (options, archive) in settings.items():
            runs[name].append(one_session(options, archive))
            print(f"{name}: start {runs[name][-1][0]:.1f} s, queries {runs[name][-1][1]:.1f} s", flush=True)
    table = []
    for name, (options, archive) in settings.items():
        starts, queries = zip(*runs[name], strict=True)
        totals = [s + q for s, q in runs[name]]
        table.append({
            "JVM": f"{name} ({options or 'no options'}{', archive' if archive else ''})",
            "session start, median (s)": f"{statistics.median(starts):.1f}",
            "8 queries, median (s)": f"{statistics.median(queries):.1f}",
            "total, median (s)": f"{statistics.median(totals):.1f}",
            "totals of each run (s)": format_runs(totals, 1),
        })
    notes = (f"{REPEAT} runs of each setting, alternating, each a fresh process (`local[*]`, Spark UI off). "
             f"{benchmark.load_note()}.")
    benchmark.record(SECTION, table, notes)


if __name__ == "__main__":
    main()
