"""Module 09 (capstone): the generator, the metric solutions against independent implementations, the split
without leakage and the collector's tables against pandas, on data the notebook never uses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score
from solution_notebooks import run_solution

from scalelab.datasets.catalog import CapstoneLogs, make_items, make_views, sizes


@pytest.fixture(scope="module")
def metrics():
    """The metric answers, run with the set-up cell's imports only: no Spark session starts."""
    return run_solution("09-capstone", "cap-precision-recall", "cap-ndcg", "cap-coverage", "cap-validity",
                        imports_only=True)


# --- the generator ---------------------------------------------------------------------------------


def test_one_knob_sets_every_size():
    small, large = sizes(1), sizes(100)
    assert (small.n_users, small.n_items, small.n_events) == (200, 60, 6000)
    assert large.n_users == 100 * small.n_users and large.n_items == 10 * small.n_items
    with pytest.raises(ValueError):
        sizes(0)


def test_views_are_deterministic_and_readers_have_tastes():
    views = make_views(6000, seed=3, n_users=200, n_items=60)
    assert views.equals(make_views(6000, seed=3, n_users=200, n_items=60))
    known = views.dropna(subset=["authenticated_user_id"])
    known = known[known.authenticated_user_id <= 200].merge(make_items(60), on="page_url_path")
    top_share = known.groupby("authenticated_user_id")["section"].agg(lambda s: s.value_counts().iloc[0] / len(s))
    assert top_share.median() > 0.6  # one favourite section: 75 % of reads plus chance
    assert set(views.part) == {"history", "round-1", "round-2"}


def test_round_two_resends_part_of_round_one(tmp_path):
    logs = CapstoneLogs(tmp_path, scale=0.3, seed=4)
    first, second = logs.deliver(), logs.deliver()
    assert set(first.page_view_id) & set(second.page_view_id)
    assert not set(logs.part("history").page_view_id) & (set(first.page_view_id) | set(second.page_view_id))
    assert len(list(logs.incoming.glob("*.json"))) == 2 * logs.files
    with pytest.raises(RuntimeError):
        logs.deliver()


# --- the metrics against independent implementations --------------------------------------------


def _random_lists(seed: int, n_users: int, n_items: int, k: int):
    rng = np.random.default_rng(seed)
    recs = {u: [int(i) for i in rng.permutation(n_items)[:k]] for u in range(n_users)}
    truth = {u: {int(i) for i in rng.choice(n_items, rng.integers(1, 8), replace=False)}
             for u in range(n_users) if u % 6}
    return recs, truth


@pytest.mark.parametrize("seed,k", [(11, 5), (12, 10), (13, 1)])
def test_ndcg_agrees_with_scikit_learn(metrics, seed, k):
    n_items = 40
    recs, truth = _random_lists(seed, 60, n_items, k)
    values = []
    for u, relevant in truth.items():
        true_row, score_row = np.zeros(n_items), np.zeros(n_items)
        true_row[list(relevant)] = 1
        score_row[recs[u]] = np.arange(k, 0, -1)
        values.append(ndcg_score([true_row], [score_row], k=k))
    assert metrics.ndcg_at_k(recs, truth, k) == pytest.approx(float(np.mean(values)), rel=1e-12)


@pytest.mark.parametrize("seed,k", [(21, 5), (22, 3)])
def test_precision_recall_and_coverage_agree_with_numpy(metrics, seed, k):
    n_items = 50
    recs, truth = _random_lists(seed, 80, n_items, k + 2)
    users = sorted(truth)
    ranked = np.array([recs[u][:k] for u in users])
    relevant = np.zeros((len(users), n_items), dtype=bool)
    for row, u in enumerate(users):
        relevant[row, list(truth[u])] = True
    hits = np.take_along_axis(relevant, ranked, axis=1).sum(axis=1)
    precision, recall = metrics.precision_recall_at_k(recs, truth, k)
    assert precision == pytest.approx(hits.mean() / k, rel=1e-12)
    assert recall == pytest.approx((hits / relevant.sum(axis=1)).mean(), rel=1e-12)
    shown = np.zeros(n_items, dtype=bool)
    shown[np.array([recs[u][:k] for u in recs]).ravel()] = True
    assert metrics.coverage_at_k(recs, range(n_items), k) == pytest.approx(shown.mean(), rel=1e-12)


def test_a_perfect_list_scores_one_and_an_empty_one_zero(metrics):
    truth = {1: {4, 5}, 2: {7}}
    assert metrics.ndcg_at_k({1: [5, 4, 9], 2: [7, 1, 2]}, truth, 3) == pytest.approx(1.0)
    assert metrics.ndcg_at_k({}, truth, 3) == 0.0
    assert metrics.precision_recall_at_k({1: [5, 4, 9], 2: [7, 1, 2]}, truth, 3) == (
        pytest.approx(0.5), pytest.approx(1.0))
    assert math.isclose(metrics.ndcg_at_k({1: [9, 4]}, {1: {4}}, 2), 1 / math.log2(3))


def test_validity_report_counts_each_problem(metrics):
    recs = {1: [1, 2, 3], 2: [4, 4, 5], 3: [6, 99, 1], 4: [1, 2]}
    assert metrics.validity_report(recs, {1: {3}, 3: {6, 1}}, range(1, 7), 3) == {"seen": 3, "unknown": 1, "not_k": 2}


# --- the Spark parts against pandas ---------------------------------------------------------------


@pytest.fixture(scope="module")
def spark():
    from scalelab.spark import get_spark, stop_spark

    session = get_spark("test-module-09")
    yield session
    stop_spark()


def _events_pandas(logs: CapstoneLogs) -> pd.DataFrame:
    ev = logs.events.dropna(subset=["authenticated_user_id"]).astype({"authenticated_user_id": "int64"})
    ev = ev[ev.authenticated_user_id.isin(set(logs.users.user_id))].merge(logs.items, on="page_url_path")
    ev = ev.assign(view_tstamp=pd.to_datetime(ev.view_tstamp))
    first = ev.groupby(["page_view_id", "authenticated_user_id", "item_id"], as_index=False)["view_tstamp"].min()
    return first.rename(columns={"authenticated_user_id": "user_id"})


@pytest.mark.slow
def test_collector_tables_and_split_agree_with_pandas(spark, tmp_path):
    from pyspark.sql import functions as F

    logs = CapstoneLogs(tmp_path / "logs", scale=0.4, seed=77, malformed=0.03)
    for _ in range(2):
        logs.deliver()
    ns = run_solution("09-capstone", "cap-hydrate", "cap-user-items", "cap-split")  # its get_spark() is `spark`
    from scalelab.datasets.events import PAGE_VIEW_SCHEMA

    raw = spark.read.schema(PAGE_VIEW_SCHEMA).option("mode", "DROPMALFORMED").json(
        [str(logs.history), str(logs.incoming)])
    events = ns.hydrate(raw, spark.createDataFrame(logs.users), spark.createDataFrame(logs.items)).cache()
    want = _events_pandas(logs)
    stamp = F.date_format("view_tstamp", "yyyy-MM-dd HH:mm:ss")
    got = events.select("page_view_id", "user_id", "item_id", stamp).collect()
    assert {tuple(r) for r in got} == {(p, int(u), int(i), str(t)) for p, u, i, t in want.itertuples(index=False)}

    table = ns.user_item_table(events).collect()
    grouped = want.groupby(["user_id", "item_id"])
    assert {(r.user_id, r.item_id): r.views for r in table} == {k: int(v) for k, v in grouped.size().items()}

    cutoff = pd.Timestamp(logs.cutoff)
    train, test = ns.time_split(events, logs.cutoff)
    before = want[want.view_tstamp < cutoff]
    assert {(r.user_id, r.item_id): r.views for r in train.collect()} == {
        k: int(v) for k, v in before.groupby(["user_id", "item_id"]).size().items()}
    first = want.groupby(["user_id", "item_id"]).view_tstamp.min()
    known = set(before.user_id)
    future = {k for k, t in first.items() if t >= cutoff and k[0] in known}
    got_test = {(r.user_id, r.item_id) for r in test.collect()}
    assert got_test == future
    # no leakage: nothing in train happened at or after the cutoff, and no test pair was seen before it
    train_pairs = {(r.user_id, r.item_id) for r in train.collect()}
    assert not got_test & train_pairs
    assert all(first[k] < cutoff for k in train_pairs)
