"""00-setup: counting the words of a text file with plain Python and with a Spark DataFrame.

The lab's "Scale it up" section asks when Spark starts to pay for its overheads (a JVM, a query plan,
tasks, Python-to-JVM hops) on one machine. This measures both ways on generated corpora of growing size,
read from disk each time, and checks that they agree with the number of words written.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from scalelab.bench import Benchmark, format_runs, started, time_it
from scalelab.datasets import write_corpus

SIZES = (1_000_000, 4_000_000, 16_000_000)  # words
SEED = 0
REPEAT = 3
WARMUP = 1
SECTION = "00-setup: word count, plain Python vs Spark DataFrame"


def count_python(path: Path) -> int:
    with open(path, encoding="ascii") as lines:
        return sum(len(line.split()) for line in lines)


def count_spark(spark, path: Path) -> int:
    from pyspark.sql import functions as F

    words = spark.read.text(str(path)).select(F.explode(F.split(F.trim("value"), r"\s+")).alias("word"))
    return words.where(F.col("word") != "").count()


def _measure(spark, n_words: int, folder: Path) -> dict[str, str]:
    start = time.perf_counter()
    corpus = write_corpus(folder / f"corpus-{n_words}.txt", n_words=n_words, seed=SEED)
    written_in = time.perf_counter() - start
    python = time_it(lambda: count_python(corpus.path), repeat=REPEAT, warmup=WARMUP)
    with_spark = time_it(lambda: count_spark(spark, corpus.path), repeat=REPEAT, warmup=WARMUP)
    if not python.result == with_spark.result == corpus.words == n_words:
        raise RuntimeError(f"counts: Python {python.result}, Spark {with_spark.result}, made {n_words}")
    print(f"{n_words:>10} words  python {python}  spark {with_spark}", flush=True)
    corpus.path.unlink()
    return {
        "words": f"{n_words / 1e6:g} M",
        "file (MB)": f"{corpus.bytes / 1e6:.1f}",
        "write_corpus (s, 1 run)": f"{written_in:.2f}",
        "Python median (s)": f"{python.median:.3f}",
        "Spark median (s)": f"{with_spark.median:.3f}",
        "Python runs (s)": format_runs(python.times, 3),
        "Spark runs (s)": format_runs(with_spark.times, 3),
        "Spark speed-up": f"{python.median / with_spark.median:.2f}×",
    }


def main() -> None:
    from scalelab.spark import get_spark, stop_spark

    benchmark = Benchmark(__file__)
    with started(lambda: get_spark("bench-setup"), stop_spark) as (spark, started_in):
        cores, version, master = spark.sparkContext.defaultParallelism, spark.version, spark.sparkContext.master
        with tempfile.TemporaryDirectory(prefix="scalelab-bench-") as folder:
            rows = [_measure(spark, n, Path(folder)) for n in SIZES]
    notes = (
        f"Medians of {REPEAT} runs after {WARMUP} warm-up run; each run reads the file again (from the page "
        f"cache). Corpus: `scalelab.datasets.write_corpus(n_words=..., seed={SEED})`. Spark {version}, "
        f"master `{master}`, default parallelism {cores}; starting the session took {started_in:.1f} s "
        f"(not included above). Speed-up = Python median / Spark median. {benchmark.load_note()}."
    )
    benchmark.record(SECTION, rows, notes)


if __name__ == "__main__":
    main()
