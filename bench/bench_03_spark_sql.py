"""03-spark-sql: how the offline collector's time grows, CSV/JSON versus Parquet, and UDFs versus built-ins.

1. The offline collector (03-offline-collector): read page-view JSON lines with a declared schema
   (malformed lines dropped), join the users table, keep one country from a date on, count distinct
   page views per (user, page). Generated logs of three sizes; each run reads the files again.
2. One selective query (mobile views per page, one day, one country) on the same hydrated table stored
   as CSV, JSON and Parquet partitioned by day (03-file-formats): bytes on disk and time.
3. The same column (the section of a page path, lower case) computed by a built-in expression, a
   row-at-a-time Python UDF (no Arrow) and a pandas (Arrow) UDF, over the same rows.

Classic local session (`get_spark()`, local[*], 2 shared cores). Run: `python -m bench bench_03_spark_sql`.
"""


import shutil
import tempfile
from pathlib import Path

from scalelab.bench import Benchmark, format_runs, started, time_it

EVENTS = (50_000, 200_000, 800_000)
FORMAT_EVENTS = 800_000
UDF_ROWS = 1_000_000
N_USERS = 20_000
N_PAGES = 2_000
DAYS = 14
COUNTRY = "US"
SINCE = "2024-03-05"
DAY = "2024-03-08"
REPEAT = 5
WARMUP = 2
SEED = 0
SECTION_COLLECTOR = "03-spark-sql: the offline collector over page-view logs of three sizes"
SECTION_FORMATS = "03-spark-sql: one selective query on CSV, JSON and partitioned Parquet"
SECTION_UDF = "03-spark-sql: built-in function vs Python UDF vs pandas (Arrow) UDF"


def collector(spark, folder: str, users):
    from pyspark.sql import functions as F

    from scalelab.datasets.events import PAGE_VIEW_SCHEMA

    views = spark.read.schema(PAGE_VIEW_SCHEMA).option("mode", "DROPMALFORMED").json(folder)
    chosen = (views.join(users, views.authenticated_user_id == users.user_id)
              .filter((F.col("country_code") == COUNTRY) & (F.to_date("view_tstamp") >= F.lit(SINCE).cast("date"))))
    counts = chosen.groupBy("authenticated_user_id", "page_url_path").agg(
        F.count_distinct("page_view_id").alias("count_views"))
    return counts.count()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))


def collector_rows(spark, root: Path, users) -> list[dict[str, str]]:
    from scalelab.datasets.events import write_page_views

    rows = []
    first = None
    for n in EVENTS:
        folder = root / f"views-{n}"
        files = write_page_views(folder, n, seed=SEED, files=8, n_users=N_USERS, n_pages=N_PAGES, days=DAYS)
        timing = time_it(lambda folder=folder: collector(spark, str(folder), users), repeat=REPEAT, warmup=WARMUP)
        first = first or (n, timing.median)
        print(f"{n:>10} events  {files.bytes / 1e6:6.1f} MB  {timing}", flush=True)
        rows.append({
            "events": f"{n:,}",
            "JSON (MB)": f"{files.bytes / 1e6:.1f}",
            "malformed lines": f"{files.malformed:,}",
            "result rows": f"{timing.result:,}",
            "median (s)": f"{timing.median:.2f}",
            "runs (s)": format_runs(timing.times),
            "time / smallest": f"{timing.median / first[1]:.2f}× for {n / first[0]:g}× the events",
            "µs per event": f"{timing.median / n * 1e6:.1f}",
        })
        if n != FORMAT_EVENTS:
            shutil.rmtree(folder)
    return rows


def format_rows(spark, root: Path, users) -> list[dict[str, str]]:
    from pyspark.sql import functions as F

    from scalelab.datasets.events import PAGE_VIEW_SCHEMA

    folder = str(root / f"views-{FORMAT_EVENTS}")
    views = spark.read.schema(PAGE_VIEW_SCHEMA).option("mode", "DROPMALFORMED").json(folder)
    table = (views.join(users, views.authenticated_user_id == users.user_id, "left").drop("user_id", "signup_date")
             .withColumn("view_date", F.to_date("view_tstamp")))
    paths = {"CSV": root / "csv", "JSON": root / "json", "Parquet (by view_date)": root / "parquet"}
    table.write.mode("overwrite").option("header", True).csv(str(paths["CSV"]))
    table.write.mode("overwrite").json(str(paths["JSON"]))
    table.write.mode("overwrite").partitionBy("view_date").parquet(str(paths["Parquet (by view_date)"]))
    schema = PAGE_VIEW_SCHEMA + ", country_code STRING, view_date DATE"

    def query(name):
        path = str(paths[name])
        if name == "CSV":
            df = spark.read.schema(schema).option("header", True).csv(path)
        elif name == "JSON":
            df = spark.read.schema(schema).json(path)
        else:
            df = spark.read.parquet(path)
        chosen = df.filter((F.col("view_date") == F.lit(DAY).cast("date")) & (F.col("country_code") == COUNTRY)
                           & (F.col("device") == "mobile"))
        return chosen.groupBy("page_url_path").count().count()

    rows = []
    parquet_median = None
    timings = {}
    for name in paths:
        timings[name] = time_it(lambda name=name: query(name), repeat=REPEAT, warmup=WARMUP)
        print(f"{name:<24} {_size(paths[name]) / 1e6:6.1f} MB  {timings[name]}", flush=True)
    parquet_median = timings["Parquet (by view_date)"].median
    results = {t.result for t in timings.values()}
    if len(results) != 1:
        raise RuntimeError(f"the three formats disagree: {results}")
    for name, timing in timings.items():
        rows.append({
            "format": name,
            "on disk (MB)": f"{_size(paths[name]) / 1e6:.1f}",
            "median (s)": f"{timing.median:.3f}",
            "runs (s)": format_runs(timing.times, 3),
            "time / Parquet": f"{timing.median / parquet_median:.1f}×",
        })
    return rows


def udf_rows(spark) -> list[dict[str, str]]:
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf, udf

    from scalelab.datasets.events import page_paths

    paths = page_paths(N_PAGES)
    table = (spark.range(UDF_ROWS).withColumn("page_url_path", F.element_at(
        F.array(*[F.lit(p) for p in paths[:64]]), (F.col("id") % 64 + 1).cast("int"))).cache())
    table.count()

    def section_py(path):
        return path.split("/")[1].lower()

    python_udf = udf(section_py, "string", useArrow=False)

    @pandas_udf("string")
    def arrow_udf(path: pd.Series) -> pd.Series:
        return path.str.split("/").str[1].str.lower()

    builtin = F.lower(F.split(F.col("page_url_path"), "/").getItem(1))
    variants = {"built-in (split, lower)": builtin, "pandas UDF (Arrow)": arrow_udf("page_url_path"),
                "Python UDF (row at a time)": python_udf("page_url_path")}
    timings = {}
    for name, column in variants.items():
        def run(column=column):  # a new DataFrame each run: collecting the same one again reuses its shuffle files
            return sorted(map(tuple, table.select(column.alias("section")).groupBy("section").count().collect()))

        timings[name] = time_it(run, repeat=REPEAT, warmup=WARMUP)
        print(f"{name:<28} {timings[name]}", flush=True)
    if len({tuple(t.result) for t in timings.values()}) != 1:
        raise RuntimeError("the three section columns disagree")
    base = timings["built-in (split, lower)"].median
    table.unpersist()
    return [{"method": name, "median (s)": f"{t.median:.3f}", "runs (s)": format_runs(t.times, 3),
             "time / built-in": f"{t.median / base:.1f}×"} for name, t in timings.items()]


def main() -> None:
    from scalelab.datasets.events import make_users
    from scalelab.spark import get_spark, stop_spark

    benchmark = Benchmark(__file__)
    with started(lambda: get_spark("bench-03"), stop_spark) as (spark, started_in):
        users = spark.createDataFrame(make_users(N_USERS, seed=SEED)).cache()
        users.count()
        with tempfile.TemporaryDirectory(prefix="scalelab-bench-sql-") as tmp:
            root = Path(tmp)
            collected = collector_rows(spark, root, users)
            formats = format_rows(spark, root, users)
        udfs = udf_rows(spark)
        master = spark.conf.get("spark.master", "local[*]")
        version = spark.version
    common = (f"Medians of {REPEAT} runs after {WARMUP} warm-up run; Spark {version}, master {master}, "
              f"session started in {started_in:.1f} s (not included). {benchmark.load_note()} "
              "(the 2 cores were shared with other work).")
    benchmark.record(
        SECTION_COLLECTOR, collected,
        f"Query: `read.schema(...).option('mode', 'DROPMALFORMED').json(folder)`, inner join with a cached "
        f"users table of {N_USERS:,} rows, `country_code = '{COUNTRY}'` and `to_date(view_tstamp) >= {SINCE}`, "
        "`count_distinct(page_view_id)` per (user, page), then `count()`. Logs from "
        f"`write_page_views(folder, n, seed={SEED}, files=8, n_users={N_USERS:,}, n_pages={N_PAGES:,}, "
        f"days={DAYS})` (1 % malformed lines). " + common)
    benchmark.record(
        SECTION_FORMATS, formats,
        f"The collector's {FORMAT_EVENTS:,} events joined (left) with the users' country and a `view_date` "
        f"column, written once per format (Spark's default compression: none for CSV/JSON, snappy for "
        f"Parquet). Query: `view_date = {DAY}`, `country_code = '{COUNTRY}'`, `device = 'mobile'`, views per "
        "page. CSV and JSON are read with the declared schema (no inference pass). " + common)
    benchmark.record(
        SECTION_UDF, udfs,
        f"`section` = the first segment of the page path, lower case, on {UDF_ROWS:,} cached rows, then a "
        "groupBy count: `F.lower(F.split(path, '/')[1])`, `@pandas_udf` with pandas string methods, and "
        "`udf(..., useArrow=False)` (pickled rows, one Python call per row). " + common)


if __name__ == "__main__":
    main()
