"""Module 05 (MLlib): the generators, and the solutions against scikit-learn and NumPy on fresh data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from solution_notebooks import run_solution

from scalelab.datasets.graphs import make_labelled_points
from scalelab.datasets.learning import (
    load_movielens_sample,
    make_blobs,
    make_curve,
    make_customers,
    make_reviews,
    points_table,
    split_by_hash,
)

# --- the generators -------------------------------------------------------------------------------


def test_customers_are_deterministic_with_id_derived_split_and_folds():
    customers = make_customers(200, seed=3)
    assert customers.equals(make_customers(200, seed=3)) and not customers.equals(make_customers(200, seed=4))
    assert (customers.split == np.where(customers.customer_id % 4 == 0, "test", "train")).all()
    train = customers[customers.split == "train"]
    assert set(train.fold) == {0, 1} and (customers[customers.split == "test"].fold == -1).all()
    assert 0.2 < customers.label.mean() < 0.8
    big = make_customers(4000, seed=0)
    by_split = big.groupby("split")
    # the test rows come from a shifted population: fitting on all rows is detectable
    assert by_split.monthly_spend.mean()["test"] > by_split.monthly_spend.mean()["train"] + 8
    assert by_split.plan.agg(lambda p: (p == "pro").mean())["test"] > 0.4


def test_reviews_tokenise_the_same_in_spark_and_scikit_learn():
    reviews = make_reviews(50, seed=2)
    assert reviews.equals(make_reviews(50, seed=2))
    words = {w for text in reviews.text for w in text.split(" ")}
    assert all(len(w) >= 2 and w.isalpha() and w.islower() for w in words)
    assert set(reviews.label) == {0.0, 1.0}


def test_curve_blobs_and_points_tables():
    curve = make_curve(30, seed=1)
    assert list(curve.columns) == ["id", "x", "y", "fold"] and (curve.fold == curve.id % 2).all()
    blobs = make_blobs(90, k=3, dim=2, seed=4)
    assert blobs.points.shape == (90, 2) and set(blobs.labels) == {0, 1, 2}
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(blobs.centres) for b in blobs.centres[i + 1:]]
    assert min(gaps) >= 6
    problem = make_labelled_points(20, 3, seed=1)
    table = points_table(problem.features, problem.labels)
    assert list(table.columns) == ["id", "label", "x0", "x1", "x2", "x3"] and (table.x0 == 1).all()


def test_movielens_sample_and_hash_split():
    ratings = load_movielens_sample()
    assert len(ratings) == 1501 and ratings.user_id.nunique() == 30 and ratings.rating.between(1, 5).all()
    split = split_by_hash(ratings, test_share=0.2)
    assert split.equals(split_by_hash(ratings.sample(frac=1.0, random_state=1), 0.2).loc[split.index])
    assert 0.12 < (split.split == "test").mean() < 0.28


# --- the solutions against scikit-learn and NumPy -----------------------------------------------------


@pytest.fixture(scope="module")
def spark():
    from scalelab.spark import get_spark, stop_spark

    session = get_spark("test-module-05")
    yield session
    stop_spark()


@pytest.mark.slow  # starts Spark
def test_features_solutions_agree_with_scikit_learn(spark):
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import Vectors
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    answers = run_solution("05-features")
    assert answers.spark is spark  # the notebook's set-up cell got this session from get_spark()
    customers = make_customers(120, seed=501)
    features = answers.encode_features(spark.createDataFrame(customers)).transform(spark.createDataFrame(customers))
    got = np.array(features.orderBy("customer_id").select(vector_to_array("features").alias("f")).toPandas().f.tolist())
    blocks = []
    for column in ("plan", "region"):
        counts = customers[column].value_counts()
        order = sorted(counts.index, key=lambda c: (-counts[c], c))
        encoder = OneHotEncoder(categories=[order], sparse_output=False).fit(customers[[column]])
        blocks.append(encoder.transform(customers[[column]])[:, :-1])
    blocks.append(customers[["age", "monthly_spend", "tenure_months"]].to_numpy(float))
    np.testing.assert_allclose(got, np.hstack(blocks))

    matrix = np.random.default_rng(502).normal(2, 4, (25, 4))
    frame = spark.createDataFrame([(i, Vectors.dense(r.tolist())) for i, r in enumerate(matrix)], ["id", "features"])
    scaled = answers.standardise_like_sklearn(frame).orderBy("id").select(vector_to_array("scaled").alias("z"))
    np.testing.assert_allclose(np.array(scaled.toPandas().z.tolist()), StandardScaler().fit_transform(matrix),
                               rtol=1e-9, atol=1e-12)

    reviews = make_reviews(40, seed=503)
    vocabulary, table = answers.tfidf_like_sklearn(spark.createDataFrame(reviews[["doc_id", "text"]]))
    weights = dict(zip(table.toPandas().doc_id, table.toPandas().tfidf, strict=True))
    vectorizer = TfidfVectorizer()
    want = vectorizer.fit_transform(reviews.text).toarray()
    column = {term: j for j, term in enumerate(vocabulary)}
    got = np.array([[weights[d].toArray()[column[t]] for t in vectorizer.get_feature_names_out()]
                    for d in reviews.doc_id])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.slow  # starts Spark
def test_pipeline_solutions_agree_with_scikit_learn_and_numpy(spark):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import PredefinedSplit

    answers = run_solution("05-pipelines-and-tuning")
    customers = make_customers(320, seed=504)
    model, auc = answers.fit_churn_model(spark.createDataFrame(customers))
    numeric = ["age", "monthly_spend", "tenure_months"]
    design = pd.get_dummies(customers[["plan", "region"]], drop_first=True, dtype=float).join(customers[numeric])
    train = (customers.split == "train").to_numpy()
    mean, std = design[train].mean().to_numpy(), design[train].std(ddof=0).to_numpy()
    reference = LogisticRegression(C=np.inf, max_iter=5000).fit((design[train] - mean) / std, customers.label[train])
    want = roc_auc_score(customers.label[~train], reference.decision_function((design[~train] - mean) / std))
    assert abs(auc - want) < 0.005
    scaler = [s for s in model.stages if type(s).__name__ == "StandardScalerModel"][0]
    np.testing.assert_allclose(scaler.mean.toArray()[-3:], customers[train][numeric].mean(), rtol=1e-9)

    curve = make_curve(50, seed=505)
    fitted = answers.tune_degree(spark.createDataFrame(curve))
    folds = PredefinedSplit(curve.fold.to_numpy())
    for params, metric in zip(fitted.getEstimatorParamMaps(), fitted.avgMetrics, strict=True):
        named = {p.name: v for p, v in params.items()}
        rmses = []
        for fit_rows, held_out in folds.split():
            def design_of(rows, named=named):
                columns = [curve.x.to_numpy()[rows] ** p for p in range(1, named["degree"] + 1)]
                return np.column_stack(columns + ([np.ones(len(rows))] if named["fitIntercept"] else []))
            weights = np.linalg.lstsq(design_of(fit_rows), curve.y.to_numpy()[fit_rows], rcond=None)[0]
            errors = design_of(held_out) @ weights - curve.y.to_numpy()[held_out]
            rmses.append(np.sqrt(np.mean(errors**2)))
        assert metric == pytest.approx(np.mean(rmses), rel=1e-6)


@pytest.mark.slow  # starts Spark
def test_optimisation_solutions_agree_with_numpy_and_mllib(spark):
    from pyspark.ml.classification import NaiveBayes
    from pyspark.ml.feature import CountVectorizer, Tokenizer

    answers = run_solution("05-optimisation-by-hand")
    problem = make_labelled_points(150, 4, seed=506)
    x, y = problem.features, problem.labels
    frame = spark.createDataFrame(points_table(x, y)).cache()
    w = np.linspace(-0.5, 0.5, 5)
    np.testing.assert_allclose(answers.logistic_gradient(frame, w), x.T @ (1 / (1 + np.exp(-x @ w)) - y) / len(y),
                               rtol=1e-9, atol=1e-12)
    history = answers.minibatch_descent(frame, np.zeros(5), 0.8, 3, 2)  # with the solution's own gradient
    w = np.zeros(5)
    for step in range(6):
        rows = np.arange(len(y)) % 3 == step % 3
        w = w - 0.8 * x[rows].T @ (1 / (1 + np.exp(-x[rows] @ w)) - y[rows]) / rows.sum()
        np.testing.assert_allclose(history[step], w, rtol=1e-9, atol=1e-12)

    reviews = spark.createDataFrame(make_reviews(50, seed=507))
    priors, probs = answers.naive_bayes_counts(reviews)
    tokens = Tokenizer(inputCol="text", outputCol="words").transform(reviews)
    vectorizer = CountVectorizer(inputCol="words", outputCol="features").fit(tokens)
    bayes = NaiveBayes(smoothing=1.0).fit(vectorizer.transform(tokens))
    np.testing.assert_allclose(bayes.pi.toArray(), [priors[0.0], priors[1.0]], rtol=1e-9)
    np.testing.assert_allclose(bayes.theta.toArray(),
                               [[probs[(c, t)] for t in vectorizer.vocabulary] for c in (0.0, 1.0)], rtol=1e-9)


@pytest.mark.slow  # starts Spark
def test_clustering_and_recommendation_solutions_agree_with_scikit_learn_and_numpy(spark):
    from pyspark.ml.recommendation import ALS
    from sklearn.cluster import KMeans

    answers = run_solution("05-clustering-and-recommendations")
    blobs = make_blobs(120, k=3, dim=2, seed=508)
    frame = spark.createDataFrame(pd.DataFrame({"id": range(120), "x0": blobs.points[:, 0], "x1": blobs.points[:, 1]}))
    start = blobs.points[[0, 1, 2]]
    centres = start
    for _ in range(4):
        centres, _cost = answers.kmeans_step(frame, centres)
    reference = KMeans(n_clusters=3, init=start, n_init=1, max_iter=4, algorithm="lloyd", tol=0).fit(blobs.points)
    np.testing.assert_allclose(centres, reference.cluster_centers_, rtol=1e-9)

    ratings = split_by_hash(load_movielens_sample(), 0.25)
    train = ratings[ratings.split == "train"]
    model = ALS(rank=3, maxIter=3, userCol="user_id", itemCol="item_id", ratingCol="rating", seed=1).fit(
        spark.createDataFrame(train[["user_id", "item_id", "rating"]]))
    recs = answers.top_k_unrated(model, spark.createDataFrame(train[["user_id", "item_id"]]), 4).toPandas()
    users = model.userFactors.toPandas()
    items = model.itemFactors.toPandas()
    scores = np.array(users.features.tolist(), dtype=float) @ np.array(items.features.tolist(), dtype=float).T
    rated = set(zip(train.user_id, train.item_id, strict=True))
    for a, user in enumerate(users.id):
        allowed = [(scores[a, b], item) for b, item in enumerate(items.id) if (user, item) not in rated]
        want = sorted(s for s, _ in allowed)[::-1][:4]
        mine = recs[recs.user_id == user].sort_values("rank")
        np.testing.assert_allclose(mine.score, want, rtol=1e-5)

    test = ratings[ratings.split == "test"]
    metrics = answers.ranking_metrics(spark.createDataFrame(recs[["user_id", "item_id", "rank"]]),
                                          spark.createDataFrame(test[["user_id", "item_id", "rating"]]), 4, 3.0)
    precisions, ndcgs = [], []
    for user, group in test[test.rating >= 3.0].groupby("user_id"):
        ranked = recs[recs.user_id == user].sort_values("rank").item_id.tolist()[:4]
        hits = np.array([float(i in set(group.item_id)) for i in ranked])
        precisions.append(hits.sum() / 4)
        ideal = (1 / np.log2(np.arange(min(4, len(group))) + 2)).sum()
        ndcgs.append((hits / np.log2(np.arange(len(hits)) + 2)).sum() / ideal)
    assert metrics["precision"] == pytest.approx(np.mean(precisions), rel=1e-9)
    assert metrics["ndcg"] == pytest.approx(np.mean(ndcgs), rel=1e-9)

# The labs themselves run on the Spark Connect fixture with their grading cases (tests/test_grading.py).
