"""08-dask: when does dask.dataframe beat pandas on 2 cores, and how does the chunk size change an array sum?

1. One groupby (mean quantity per product) over a folder of CSV files of growing size: pandas reads the
   files one after the other and groups; dask.dataframe reads and groups them on a LocalCluster of worker
   processes. Both start from the files every run, as a daily query would; the answers are compared.
2. One array reduction (the sum of 16 million random numbers, already persisted on the workers) with
   chunks from 16,000 to 16,000,000 elements: the number of tasks and the time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.bench import Benchmark, format_runs, started, time_it

ROWS = (100_000, 1_000_000, 4_000_000)  # rows in all, in files of at most ROWS_PER_FILE rows
ROWS_PER_FILE = 500_000
ARRAY_SIZE = 16_000_000
CHUNKS = (16_000, 160_000, 1_600_000, 4_000_000, 16_000_000)
PRODUCTS = np.array(["apples", "bread", "cheese", "coffee", "eggs", "milk", "rice", "tea"])
REPEAT = 3
WARMUP = 1
SEED = 0
SECTION_GROUPBY = "08-dask: one groupby over CSV files, pandas vs dask.dataframe"
SECTION_CHUNKS = "08-dask: chunk size of a dask.array sum"


def write_orders(folder: Path, rows: int) -> list[Path]:
    """CSV files with the columns of the 08-dataframes lab, ROWS_PER_FILE rows each (the last may hold fewer)."""
    rng = np.random.default_rng(SEED)
    files = []
    for number, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        n = min(ROWS_PER_FILE, rows - start)
        frame = pd.DataFrame({
            "order_id": np.arange(start, start + n),
            "customer_id": rng.integers(0, 20_000, n),
            "product": rng.choice(PRODUCTS, n),
            "quantity": rng.integers(1, 6, n),
            "unit_price": rng.integers(50, 1000, n) / 100,
        })
        files.append(folder / f"orders-{number:03d}.csv")
        frame.to_csv(files[-1], index=False)
    return files


def query_pandas(files: list[Path]) -> pd.Series:
    table = pd.concat(pd.read_csv(file) for file in files)
    return table.groupby("product")["quantity"].mean().sort_index()


def query_dask(folder: Path) -> pd.Series:
    import dask.dataframe as dd

    table = dd.read_csv(str(folder / "orders-*.csv"))
    return table.groupby("product")["quantity"].mean().compute().sort_index()


def groupby_rows(folder: Path) -> list[dict[str, str]]:
    rows = []
    for n in ROWS:
        for old in folder.glob("*.csv"):
            old.unlink()
        files = write_orders(folder, n)
        size = sum(f.stat().st_size for f in files)
        pandas_t = time_it(lambda files=files: query_pandas(files), repeat=REPEAT, warmup=WARMUP)
        dask_t = time_it(lambda: query_dask(folder), repeat=REPEAT, warmup=WARMUP)
        if not np.allclose(pandas_t.result.to_numpy(), dask_t.result.to_numpy()):
            raise RuntimeError(f"pandas and Dask disagree at {n} rows")
        print(f"{n:>10} rows  pandas {pandas_t}  dask {dask_t}", flush=True)
        rows.append({
            "rows": f"{n:,}",
            "files": str(len(files)),
            "CSV (MB)": f"{size / 1e6:.1f}",
            "pandas median (s)": f"{pandas_t.median:.3f}",
            "Dask median (s)": f"{dask_t.median:.3f}",
            "pandas runs (s)": format_runs(pandas_t.times, 3),
            "Dask runs (s)": format_runs(dask_t.times, 3),
            "Dask speed-up": f"{pandas_t.median / dask_t.median:.2f}×",
        })
    return rows


def chunk_rows() -> list[dict[str, str]]:
    import dask.array as da

    rows = []
    numpy_values = np.random.default_rng(SEED).random(ARRAY_SIZE)
    numpy_t = time_it(numpy_values.sum, repeat=REPEAT, warmup=WARMUP)
    for chunk in CHUNKS:
        values = da.random.default_rng(SEED).random(ARRAY_SIZE, chunks=chunk).persist()
        total = values.sum()
        timing = time_it(total.compute, repeat=REPEAT, warmup=WARMUP)
        print(f"{chunk:>10} elements per chunk  {timing}", flush=True)
        rows.append({
            "chunk (elements)": f"{chunk:,}",
            "chunk (MB)": f"{chunk * 8 / 1e6:g}",
            "chunks": str(values.npartitions),
            "tasks in the sum's graph": str(len(total.__dask_graph__())),
            "median (s)": f"{timing.median:.4f}",
            "runs (s)": format_runs(timing.times, 4),
        })
        del values
    rows.append({"chunk (elements)": "NumPy, one array", "chunk (MB)": f"{ARRAY_SIZE * 8 / 1e6:g}", "chunks": "1",
                 "tasks in the sum's graph": "-", "median (s)": f"{numpy_t.median:.4f}",
                 "runs (s)": format_runs(numpy_t.times, 3)})
    return rows


def main() -> None:
    import dask

    from scalelab.dask import close_client, get_client

    benchmark = Benchmark(__file__)
    with started(get_client, close_client) as (client, started_in):
        workers = client.scheduler_info(n_workers=-1)["workers"]
        threads = sum(w["nthreads"] for w in workers.values())
        cluster = f"Dask {dask.__version__}, {len(workers)} worker processes with {threads} threads in all"
        with tempfile.TemporaryDirectory(prefix="scalelab-bench-dask-") as folder:
            groupby = groupby_rows(Path(folder))
        chunks = chunk_rows()
    common = (f"Medians of {REPEAT} runs after {WARMUP} warm-up run. {cluster}; starting the cluster took "
              f"{started_in:.1f} s (not included). {benchmark.load_note()}.")
    benchmark.record(
        SECTION_GROUPBY, groupby,
        "Query: mean quantity per product, reading every CSV file each run (pandas: `read_csv` per file, "
        f"`concat`, `groupby`; Dask: `dd.read_csv(glob)`, one partition per file). Files of at most "
        f"{ROWS_PER_FILE:,} rows with the columns of the 08-dataframes lab. Speed-up = pandas / Dask. " + common)
    benchmark.record(
        SECTION_CHUNKS, chunks,
        f"`x.sum().compute()` on {ARRAY_SIZE:,} float64 values ({ARRAY_SIZE * 8 / 1e6:g} MB) made and persisted "
        "on the workers by `da.random`, so the timing is the reduction only; the last row is NumPy's "
        "`sum` on the same number of values in this process. " + common)


if __name__ == "__main__":
    main()
