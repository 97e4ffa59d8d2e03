"""04-streaming: a windowed count as a stream versus as a batch job, batch size, and state with and without a watermark.

1. The same windowed count (purchases and revenue per 10-minute window of event time) over generated
   JSON-lines event files of three sizes, as a batch job (`spark.read`) and as a stream
   (`readStream`, `maxFilesPerTrigger=4`, `trigger(availableNow=True)`, complete mode into the memory
   sink, a new checkpoint each run): median seconds and events per second.
2. The stream of the middle size with `maxFilesPerTrigger` 1, 2, 4 and 8: micro-batches and time.
3. State rows of a 5-minute windowed count fed one file a batch, without a watermark and with a
   10-minute one: rows and bytes in the state store after each batch (from `recentProgress`).

Classic local session (`get_spark()`, local[*], 2 shared cores, 2 shuffle partitions as in the labs).
Run: `python -m bench bench_04_streaming`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from scalelab.bench import Benchmark, rows_markdown, started, time_it

SIZES = (20_000, 80_000, 320_000)
FILES = 8
PER_TRIGGER = (1, 2, 4, 8)
STATE_EVENTS = 4_000
REPEAT = 3
WARMUP = 1
SECTION = "04-streaming: a windowed count as a stream and as a batch job; batch size; state and watermarks"


def windowed(frame):
    from pyspark.sql import functions as F

    return (frame.filter(F.col("action") == "purchase")
            .groupBy(F.window("event_time", "10 minutes"))
            .agg(F.count("*").alias("purchases"), F.sum("amount").alias("revenue")))


def as_batch(spark, folder: str) -> int:
    from scalelab.datasets.streams import EVENT_SCHEMA

    return len(windowed(spark.read.schema(EVENT_SCHEMA).json(folder)).collect())


def as_stream(spark, folder: str, per_trigger: int, scratch: Path):
    from scalelab.datasets.streams import EVENT_SCHEMA, drain

    stream = spark.readStream.schema(EVENT_SCHEMA).option("maxFilesPerTrigger", per_trigger).json(folder)
    rows, query = drain(windowed(stream), "complete", scratch)
    return len(rows), query


def main() -> None:
    from scalelab.datasets.streams import EVENT_SCHEMA, drain, event_feed
    from scalelab.spark import get_spark, stop_spark

    with started(lambda: get_spark("bench-04-streaming"), stop_spark) as (spark, _):
        spark.conf.set("spark.sql.shuffle.partitions", "2")
        benchmark = Benchmark(__file__)
        size_rows, batch_rows, state_rows = [], [], []
        with tempfile.TemporaryDirectory(prefix="bench-04-", ignore_cleanup_errors=True) as tmp:
            root = Path(tmp)
            for n in SIZES:
                folder = str(event_feed(root / f"events-{n}", n, FILES, seed=0, seconds_apart=0.5).folder)
                batch = time_it(lambda folder=folder: as_batch(spark, folder), repeat=REPEAT, warmup=WARMUP)
                stream = time_it(lambda folder=folder: as_stream(spark, folder, 4, root)[0],
                                 repeat=REPEAT, warmup=WARMUP)
                print(f"{n:>8} events: batch {batch}, stream {stream}", flush=True)
                size_rows.append({
                    "events": f"{n:,}", "windows": f"{batch.result}",
                    "batch median (s)": f"{batch.median:.2f}", "stream median (s)": f"{stream.median:.2f}",
                    "batch events/s": f"{n / batch.median:,.0f}", "stream events/s": f"{n / stream.median:,.0f}",
                    "stream / batch": f"{stream.median / batch.median:.2f}×",
                })
            middle = str(root / f"events-{SIZES[1]}")
            for per_trigger in PER_TRIGGER:
                runs = []

                def run(p=per_trigger, runs=runs):
                    runs.append(as_stream(spark, middle, p, root)[1])
                    return len(runs)

                timing = time_it(run, repeat=REPEAT, warmup=WARMUP)
                progress = runs[-1].recentProgress
                per_batch = [r["durationMs"]["triggerExecution"] / 1000 for r in progress]
                print(f"maxFilesPerTrigger={per_trigger}: {len(progress)} batches, {timing}", flush=True)
                batch_rows.append({
                    "maxFilesPerTrigger": per_trigger, "micro-batches": len(progress),
                    "median (s)": f"{timing.median:.2f}",
                    "mean batch (s)": f"{sum(per_batch) / len(per_batch):.2f}",
                    "events/s": f"{SIZES[1] / timing.median:,.0f}",
                })
            growing = event_feed(root / "growing", STATE_EVENTS, FILES, seed=1, seconds_apart=30).folder
            source = spark.readStream.schema(EVENT_SCHEMA).option("maxFilesPerTrigger", 1).json(str(growing))
            from pyspark.sql import functions as F

            for label, frame in (("no watermark", source),
                                 ("10-minute watermark", source.withWatermark("event_time", "10 minutes"))):
                _, query = drain(frame.groupBy(F.window("event_time", "5 minutes")).count(), "update", root)
                states = [r["stateOperators"][0] for r in query.recentProgress]
                print(label, [s["numRowsTotal"] for s in states], flush=True)
                state_rows.append({
                    "query": label,
                    "state rows after each batch": ", ".join(str(s["numRowsTotal"]) for s in states),
                    "state bytes, first → last batch":
                        f"{states[0]['memoryUsedBytes']:,} → {states[-1]['memoryUsedBytes']:,}",
                })
        load, version = benchmark.load_note(), spark.version
    tables = "\n\n".join(rows_markdown(rows) for rows in (size_rows, batch_rows, state_rows))
    notes = (
        f"Events from `event_feed(folder, n, {FILES}, seed=0, seconds_apart=0.5)` (8 JSON-lines files; 15 % "
        "purchases). First table: the windowed count (purchases and revenue per 10-minute window) as a batch "
        "job and as a stream with `maxFilesPerTrigger=4` (2 micro-batches), `availableNow`, complete mode into "
        "the memory sink, a new checkpoint each run. Second: the stream over the 80,000 events with other "
        "`maxFilesPerTrigger` (mean batch = `durationMs.triggerExecution`). Third: a 5-minute windowed count in "
        f"update mode over {STATE_EVENTS:,} events (33 hours of event time, 8 files, one a batch), from "
        f"`stateOperators`. Medians of {REPEAT} runs after {WARMUP} warm-up. Spark {version}, local[*], "
        f"2 shuffle partitions. {load}. The machine's 2 cores were shared with other work while this ran."
    )
    benchmark.record(SECTION, tables, notes)


if __name__ == "__main__":
    main()
