"""Module 08 (Dask): the solutions agree with NumPy, pandas and Counter.

The answers run with their notebook's set-up imports only (tests/solution_notebooks.py), so no client starts
and Dask uses its local scheduler. The labs run on a loopback Dask scheduler in tests/test_grading.py (their
grading cases run there).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from solution_notebooks import run_solution

from scalelab.datasets import make_corpus


def test_array_solutions_agree_with_numpy():
    answers = run_solution("08-arrays", imports_only=True)
    rng = np.random.default_rng(808)
    for n, chunk in [(999, 100), (10, 3), (4, 4)]:
        x = rng.normal(size=n)
        assert np.allclose(answers.chunk_sums(x, chunk), np.add.reduceat(x, np.arange(0, n, chunk)))
    x = rng.normal(3.0, 2.0, size=(250, 6))
    assert np.allclose(answers.standardize(x, 40), (x - x.mean(axis=0)) / x.std(axis=0))


def test_dataframe_solutions_agree_with_pandas(tmp_path):
    answers = run_solution("08-dataframes", imports_only=True)
    rng = np.random.default_rng(809)
    frames = []
    (tmp_path / "pq").mkdir()
    for i, n in enumerate([200, 3, 90]):
        frame = pd.DataFrame({"order_id": np.arange(n) + 1000 * i, "customer_id": rng.integers(0, 12, n),
                              "product": rng.choice(["x", "y", "z"], n), "quantity": rng.integers(1, 6, n),
                              "unit_price": rng.integers(1, 999, n) / 100})
        frame.to_csv(tmp_path / f"o-{i}.csv", index=False)
        frame.to_parquet(tmp_path / "pq" / f"o-{i}.parquet", index=False)
        frames.append(frame)
    table = pd.concat(frames)
    revenue = answers.revenue_by_product(str(tmp_path / "o-*.csv"))
    expected = (table.quantity * table.unit_price).groupby(table["product"]).sum().sort_index()
    assert list(revenue.index) == list(expected.index) and np.allclose(revenue.to_numpy(), expected.to_numpy())

    people = pd.DataFrame({"customer_id": [0, 1, 2, 3, 5, 8], "region": ["a", "b", "a", "c", "b", "a"]})
    region = table.customer_id.map(dict(zip(people.customer_id, people.region, strict=True))).fillna("unknown")
    expected = table.groupby(region).quantity.agg(["count", "mean"]).sort_index()
    got = answers.orders_per_region(str(tmp_path / "pq"), people)
    assert list(got.index) == list(expected.index)
    assert got["orders"].tolist() == expected["count"].tolist()
    assert np.allclose(got["mean_quantity"].to_numpy(dtype=float), expected["mean"].to_numpy())

    answers.csv_to_parquet(str(tmp_path / "o-*.csv"), str(tmp_path / "out"), 4)
    assert len(list((tmp_path / "out").glob("*.parquet"))) == 4
    back = pd.read_parquet(tmp_path / "out")
    assert list(back.columns) == list(table.columns) and len(back) == len(table)


class _LocalClient:
    """The few Client methods estimate_pi may use, run in this process: enough to check its arithmetic."""

    class _Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    def _resolve(self, value):
        if isinstance(value, self._Done):
            return value.value
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        return value

    def submit(self, func, *args, pure=True, **kwargs):
        return self._Done(func(*self._resolve(list(args)), **kwargs))

    def map(self, func, *iterables, pure=True, **kwargs):
        return [self.submit(func, *args, **kwargs) for args in zip(*iterables, strict=True)]

    def gather(self, futures):
        return self._resolve(futures)


def test_bag_delayed_and_futures_solutions_agree_with_python():
    def count_inside(seed, n):
        return int(((np.random.default_rng(seed).random((n, 2)) ** 2).sum(axis=1) <= 1.0).sum())

    answers = run_solution("08-bags-delayed-futures", imports_only=True, count_inside=count_inside)
    lines = make_corpus(5_000, seed=810).splitlines() + ["", "  a\tb  "]
    assert answers.word_counts(lines, 5) == dict(Counter(w for line in lines for w in line.split()))
    assert answers.lazy_map_reduce(lambda v: v + 1, [1, 2, 3], sorted).compute() == [2, 3, 4]
    estimate = answers.estimate_pi(_LocalClient(), [1, 2, 3], 20_000)
    assert estimate == 4.0 * sum(count_inside(s, 20_000) for s in [1, 2, 3]) / 60_000
    assert abs(estimate - np.pi) < 0.05
