"""Module 02 (Spark RDDs): the solutions agree with networkx, scikit-learn and Counter on fresh data.

One local SparkSession serves the whole file (the notebooks' set-up cells get it from `get_spark()`). The
solution functions are the notebooks' answer cells, run with their set-up (and in 02-text-at-scale the
worked examples that define `tokens`) by tests/solution_notebooks.py; the references never call them.
The generators of ``scalelab.datasets.graphs`` and ``scalelab.spark.spark_submit`` are unit-tested here
too. The notebooks' runs on the loopback standalone cluster are in tests/test_grading.py.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from itertools import pairwise

import networkx as nx
import numpy as np
import pytest
from solution_notebooks import run_solution

from scalelab.datasets import make_corpus
from scalelab.datasets.graphs import make_labelled_points, make_web_graph


@pytest.fixture(scope="module")
def sc():
    from scalelab.spark import get_spark, stop_spark

    spark = get_spark("test-module-02")
    yield spark.sparkContext
    stop_spark()


# --- generators ------------------------------------------------------------------------------------


def test_web_graph_is_deterministic_distinct_and_skewed():
    edges = make_web_graph(500, 4_000, seed=3)
    assert edges.shape == (4_000, 2) and edges.dtype == np.int64
    assert np.array_equal(edges, make_web_graph(500, 4_000, seed=3))
    assert not np.array_equal(edges, make_web_graph(500, 4_000, seed=4))
    assert len({tuple(e) for e in edges.tolist()}) == 4_000, "edges are distinct"
    assert (edges[:, 0] != edges[:, 1]).all(), "no self-links"
    assert edges.min() >= 0 and edges.max() < 500
    in_degree, out_degree = np.bincount(edges[:, 1], minlength=500), np.bincount(edges[:, 0], minlength=500)
    assert in_degree.max() > 5 * in_degree.mean() > 3 * out_degree.max() / 5, "in-degrees are skewed"
    assert out_degree.max() < 4 * out_degree.mean(), "out-degrees are not"
    assert len(make_web_graph(2, 1)) == 1
    with pytest.raises(ValueError):
        make_web_graph(10, 46)
    with pytest.raises(ValueError):
        make_web_graph(1, 0)


def test_labelled_points_follow_their_weights():
    data = make_labelled_points(4_000, 3, seed=5)
    assert data.features.shape == (4_000, 4) and data.labels.shape == (4_000,)
    assert (data.features[:, 0] == 1.0).all() and set(np.unique(data.labels)) <= {0.0, 1.0}
    assert np.all((np.abs(data.true_weights) >= 0.5) & (np.abs(data.true_weights) <= 2.0))
    agree = ((data.features @ data.true_weights > 0) == (data.labels == 1)).mean()
    assert agree > 0.7, "labels follow the true weights"
    assert np.array_equal(data.labels, make_labelled_points(4_000, 3, seed=5).labels)
    with pytest.raises(ValueError):
        make_labelled_points(0, 3)


# --- spark_submit ----------------------------------------------------------------------------------


def test_spark_submit_runs_a_job_and_reports_failures(tmp_path, monkeypatch):
    from scalelab.spark import SparkSubmitError, spark_submit

    # a notebook on Spark Connect submits jobs too: its session leaves these in the environment
    monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:1")
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")

    job = tmp_path / "job.py"
    job.write_text(textwrap.dedent("""
        import sys
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()
        total = spark.sparkContext.parallelize(range(int(sys.argv[1])), 2).sum()
        print("total", total, spark.sparkContext.master)
        spark.stop()
        """))
    done = spark_submit(job, "101", master="local[1]", timeout=240)
    assert done.returncode == 0 and "total 5050 local[1]" in done.stdout
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nprint('about to fail', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(SparkSubmitError, match="status 3(.|\n)*stdout(.|\n)*about to fail"):
        spark_submit(broken, master="local[1]", timeout=240)


# --- the solutions against references ---------------------------------------------------------------


def test_basics_against_python(sc):
    answers = run_solution("02-rdd-basics")
    assert answers.partition_sizes(sc.parallelize(range(23), 5)) == [len(range(23)[i * 23 // 5:(i + 1) * 23 // 5])
                                                                     for i in range(5)]
    rng = np.random.default_rng(21)
    values = rng.normal(size=301).tolist()
    count, total, low, high = answers.summary(sc.parallelize(values, 7))
    assert (count, low, high) == (301, min(values), max(values)) and math.isclose(total, sum(values))
    pairs = list(zip(rng.integers(0, 9, 999).tolist(), rng.normal(size=999).tolist(), strict=True))
    means = answers.mean_by_key(sc.parallelize(pairs, 4))
    groups: dict = {}
    for key, value in pairs:
        groups.setdefault(key, []).append(value)
    assert means.keys() == groups.keys()
    assert all(math.isclose(means[k], float(np.mean(v))) for k, v in groups.items())


def test_text_counts_against_counter(sc):
    answers = run_solution("02-text-at-scale", examples=True)  # `tokens` is a worked example
    lines = make_corpus(6_000, seed=22).splitlines() + ["Hello, WORLD! hello-world", ""]
    words = [re.findall(r"[a-z]+", line.lower()) for line in lines]
    assert dict(answers.word_counts(sc.parallelize(lines, 3)).collect()) == Counter(w for ws in words for w in ws)
    bigrams = Counter(pair for ws in words for pair in pairwise(ws))
    assert dict(answers.bigram_counts(sc.parallelize(lines, 3)).collect()) == bigrams

    background = make_corpus(3_000, seed=23).splitlines()
    scores = dict(answers.phrase_scores(sc.parallelize(lines, 2), sc.parallelize(background, 2)).collect())
    bg_words = [re.findall(r"[a-z]+", line.lower()) for line in background]
    bg_bigrams = Counter(pair for ws in bg_words for pair in pairwise(ws))
    fg_words = Counter(w for ws in words for w in ws)
    v1 = len(set(fg_words) | {w for ws in bg_words for w in ws})
    v2 = len(set(bigrams) | set(bg_bigrams))
    n1, n2, nb2 = sum(fg_words.values()), sum(bigrams.values()), sum(bg_bigrams.values())
    assert scores.keys() == bigrams.keys()
    for (x, y), count in bigrams.items():
        p_xy = (count + 1) / (n2 + v2)
        p_x, p_y = (fg_words[x] + 1) / (n1 + v1), (fg_words[y] + 1) / (n1 + v1)
        p_bg = (bg_bigrams[(x, y)] + 1) / (nb2 + v2)
        assert math.isclose(scores[(x, y)][0], p_xy * math.log(p_xy / (p_x * p_y)), rel_tol=1e-9)
        assert math.isclose(scores[(x, y)][1], p_xy * math.log(p_xy / p_bg), rel_tol=1e-9)


def test_pagerank_agrees_with_networkx(sc):
    answers = run_solution("02-iterative", "rdd-pagerank")
    edges = [tuple(e) for e in make_web_graph(150, 500, seed=24).tolist()]
    graph = nx.DiGraph(edges)
    assert any(graph.out_degree(v) == 0 for v in graph), "the graph has dangling pages"
    # damping 0.25 converges fast: 10 iterations leave an error below 0.25**10 ~ 1e-6, while the wrong
    # formulas of the grading cases are off by more than 1e-3
    ranks = answers.pagerank(sc.parallelize(edges, 3), 10, 0.25, 3)
    reference = nx.pagerank(graph, alpha=0.25, tol=1e-12, max_iter=2000)
    assert ranks.keys() == reference.keys()
    assert max(abs(ranks[v] - reference[v]) for v in reference) < 1e-5


def test_logistic_regression_agrees_with_scikit_learn(sc):
    from sklearn.linear_model import LogisticRegression

    answers = run_solution("02-iterative", "rdd-logistic")
    data = make_labelled_points(1_500, 4, seed=25)

    def gradient_descent(n_iter):  # the same full-batch update in NumPy
        weights = np.zeros(data.features.shape[1])
        for _ in range(n_iter):
            p = 1.0 / (1.0 + np.exp(-(data.features @ weights)))
            weights = weights - 1.0 * data.features.T @ (p - data.labels) / len(data.labels)
        return weights

    # Two steps of proof, so that Spark runs a few iterations and not sixty: the RDD version takes the
    # same steps as NumPy's...
    spark_weights = answers.train_logistic(sc.parallelize(list(zip(data.labels, data.features, strict=True)), 3),
                                           8, 1.0)
    np.testing.assert_allclose(spark_weights, gradient_descent(8), rtol=1e-9, atol=1e-12)
    # ...and those steps lead where scikit-learn's solver goes
    weights = gradient_descent(60)
    reference = LogisticRegression(fit_intercept=False, C=1e6, max_iter=1000).fit(data.features, data.labels)
    assert np.array_equal(np.sign(weights), np.sign(reference.coef_[0]))
    accuracy = ((data.features @ weights > 0) == (data.labels == 1)).mean()
    assert accuracy >= reference.score(data.features, data.labels) - 0.02
    assert np.corrcoef(weights, reference.coef_[0])[0, 1] > 0.95, "the same direction"
