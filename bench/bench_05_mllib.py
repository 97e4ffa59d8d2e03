"""05-mllib: what MLlib's fits cost on one machine, behind the labs' "Scale it up" figures.

1. CrossValidator (05-pipelines-and-tuning): a polynomial-regression pipeline on a generated curve,
   2 folds from a fold column, grids of 2 and 8 combinations, `parallelism` 1 and 2.
2. MLlib versus scikit-learn (05-optimisation-by-hand): the same unregularised logistic regression
   (L-BFGS in both) on `make_labelled_points` at three sizes; MLlib on a cached DataFrame.
3. ALS (05-clustering-and-recommendations): fit time and test RMSE versus rank and number of ratings.
4. Text features (05-features): `CountVectorizer` + `IDF` versus `HashingTF` + `IDF` on generated reviews.

Classic local session (`get_spark()`, local[*]). Run: `python -m bench bench_05_mllib` (about 10 minutes
on 2 busy cores). The CV section fits once unmeasured first, to warm the JVM. `SCALELAB_BENCH_QUICK=1`
runs tiny sizes once, to check the script, and records nothing.
"""

from __future__ import annotations

import os

from scalelab.bench import Benchmark, format_runs, started, time_it

QUICK = bool(os.environ.get("SCALELAB_BENCH_QUICK"))
REPEAT, WARMUP = (1, 0) if QUICK else (3, 0)  # every section warms the JVM with one fit first
CV_ROWS = 500 if QUICK else 10_000
LR_SIZES = (2_000, 5_000) if QUICK else (10_000, 100_000, 400_000)
LR_FEATURES = 10
ALS_SIZES = ((100, 10),) if QUICK else ((1_000, 20), (4_000, 40))  # (users, ratings per user)
ALS_ITEMS = 500
ALS_RANKS = (5, 20)
TEXT_DOCS = (500,) if QUICK else (10_000, 40_000)
SECTION_CV = "05-mllib: CrossValidator cost versus grid size and parallelism"
SECTION_LR = "05-mllib: logistic regression fit time, MLlib versus scikit-learn"
SECTION_ALS = "05-mllib: ALS fit time and test RMSE versus rank and ratings"
SECTION_TEXT = "05-mllib: CountVectorizer versus HashingTF before IDF"


def cv_rows(spark) -> list[dict[str, str]]:
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.feature import PolynomialExpansion, VectorAssembler
    from pyspark.ml.regression import LinearRegression
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from scalelab.datasets.learning import make_curve

    curve = spark.createDataFrame(make_curve(CV_ROWS, seed=1)).cache()
    curve.count()
    rows = []
    LinearRegression(labelCol="y").fit(VectorAssembler(inputCols=["x"], outputCol="features").transform(curve))
    for degrees, intercepts, regs in (([1, 3], [True], [0.0]), ([1, 3], [True, False], [0.0, 0.1])):
        for parallelism in (1, 2):
            expand = PolynomialExpansion(inputCol="raw", outputCol="features")
            regression = LinearRegression(labelCol="y")
            grid = (ParamGridBuilder().addGrid(expand.degree, degrees).addGrid(regression.fitIntercept, intercepts)
                    .addGrid(regression.regParam, regs).build())
            search = CrossValidator(
                estimator=Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="raw"), expand, regression]),
                estimatorParamMaps=grid, evaluator=RegressionEvaluator(labelCol="y"), numFolds=2, foldCol="fold",
                parallelism=parallelism)
            timing = time_it(lambda search=search: search.fit(curve), repeat=REPEAT, warmup=WARMUP)
            print(f"grid {len(grid)} parallelism {parallelism}: {timing}", flush=True)
            rows.append({"combinations": str(len(grid)), "fits (2 folds + refit)": str(2 * len(grid) + 1),
                         "parallelism": str(parallelism), "median (s)": f"{timing.median:.2f}",
                         "runs (s)": format_runs(timing.times),
                         "per fit (s)": f"{timing.median / (2 * len(grid) + 1):.2f}"})
    curve.unpersist()
    return rows


def lr_rows(spark) -> list[dict[str, str]]:
    import numpy as np
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    from scalelab.datasets.graphs import make_labelled_points
    from scalelab.datasets.learning import points_table

    rows = []
    for n in LR_SIZES:
        problem = make_labelled_points(n, LR_FEATURES, seed=2)
        columns = [f"x{j}" for j in range(1, LR_FEATURES + 1)]
        frame = VectorAssembler(inputCols=columns, outputCol="features").transform(
            spark.createDataFrame(points_table(problem.features, problem.labels))).select("label", "features")
        frame = frame.repartition(4).cache()
        frame.count()
        mllib = time_it(lambda frame=frame: LogisticRegression().fit(frame), repeat=REPEAT, warmup=WARMUP)
        x, y = problem.features[:, 1:], problem.labels
        sk = time_it(lambda x=x, y=y: SkLogisticRegression(C=np.inf, max_iter=1000).fit(x, y),
                     repeat=REPEAT, warmup=WARMUP)
        spark_w = np.concatenate([[mllib.result.intercept], mllib.result.coefficients.toArray()])
        sk_w = np.concatenate([sk.result.intercept_, sk.result.coef_[0]])
        print(f"{n:>8} points: MLlib {mllib}; scikit-learn {sk}", flush=True)
        rows.append({"points": f"{n:,}", "MLlib median (s)": f"{mllib.median:.2f}",
                     "MLlib runs (s)": format_runs(mllib.times),
                     "scikit-learn median (s)": f"{sk.median:.3f}",
                     "MLlib / scikit-learn": f"{mllib.median / sk.median:.0f}×",
                     "max |weight difference|": f"{np.abs(spark_w - sk_w).max():.1e}"})
        frame.unpersist()
    return rows


def als_rows(spark) -> list[dict[str, str]]:
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from scalelab.datasets.events import latest_ratings_pandas, make_ratings
    from scalelab.datasets.learning import split_by_hash

    rows = []
    for users, per_user in ALS_SIZES:
        table = latest_ratings_pandas(make_ratings(users, ALS_ITEMS, ratings_per_user=per_user, seed=3,
                                                   constant_users=0))
        table = split_by_hash(table[["user_id", "item_id", "rating"]], 0.2)
        frame = spark.createDataFrame(table).withColumn("rating", F.col("rating").cast("float"))
        train, test = frame.filter("split = 'train'").cache(), frame.filter("split = 'test'").cache()
        n_train = train.count()
        test.count()
        for rank in ALS_RANKS:
            als = ALS(rank=rank, maxIter=10, regParam=0.1, userCol="user_id", itemCol="item_id", ratingCol="rating",
                      coldStartStrategy="drop", seed=0)
            timing = time_it(lambda als=als, train=train: als.fit(train), repeat=REPEAT, warmup=WARMUP)
            rmse = RegressionEvaluator(labelCol="rating").evaluate(timing.result.transform(test))
            print(f"{n_train:>7} ratings rank {rank}: {timing}, RMSE {rmse:.3f}", flush=True)
            rows.append({"training ratings": f"{n_train:,}", "users": f"{users:,}", "rank": str(rank),
                         "fit median (s)": f"{timing.median:.2f}", "runs (s)": format_runs(timing.times),
                         "test RMSE": f"{rmse:.3f}"})
        train.unpersist()
        test.unpersist()
    return rows


def text_rows(spark) -> list[dict[str, str]]:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import IDF, CountVectorizer, HashingTF, Tokenizer
    from pyspark.sql import functions as F

    from scalelab.datasets.learning import make_reviews

    rows = []
    for n in TEXT_DOCS:
        docs = Tokenizer(inputCol="text", outputCol="words").transform(
            spark.createDataFrame(make_reviews(n, seed=4))).select("words").cache()
        docs.count()
        for name in ("CountVectorizer", "HashingTF"):
            def run(name=name, docs=docs):
                counts = (CountVectorizer(inputCol="words", outputCol="tf") if name == "CountVectorizer"
                          else HashingTF(inputCol="words", outputCol="tf", numFeatures=1 << 12))
                model = Pipeline(stages=[counts, IDF(inputCol="tf", outputCol="tfidf")]).fit(docs)
                return model.transform(docs).agg(F.count("tfidf")).first()[0]

            timing = time_it(run, repeat=REPEAT, warmup=WARMUP)
            print(f"{n:>7} reviews {name}: {timing}", flush=True)
            rows.append({"reviews": f"{n:,}", "term counts": name, "fit + transform median (s)": f"{timing.median:.2f}",
                         "runs (s)": format_runs(timing.times)})
        docs.unpersist()
    return rows


def main() -> None:
    from scalelab.spark import get_spark, stop_spark

    benchmark = Benchmark(__file__)
    with started(lambda: get_spark("bench-05"), stop_spark) as (spark, started_in):
        cv = cv_rows(spark)
        lr = lr_rows(spark)
        als = als_rows(spark)
        text = text_rows(spark)
        master = spark.conf.get("spark.master", "local[*]")
        version = spark.version
    if QUICK:
        print("quick run: nothing recorded")
        return
    common = (f"Medians of {REPEAT} runs after {WARMUP} warm-up run; Spark {version}, master {master}, session "
              f"started in {started_in:.1f} s (not included). {benchmark.load_note()} "
              "(the 2 cores were shared with other work).")
    benchmark.record(
        SECTION_CV, cv,
        f"`make_curve({CV_ROWS:,})` cached; pipeline VectorAssembler → PolynomialExpansion → LinearRegression "
        "(normal equations); grids over degree {1, 3} × fitIntercept × regParam; `foldCol='fold'`, 2 folds, "
        "RMSE. " + common)
    benchmark.record(
        SECTION_LR, lr,
        f"`make_labelled_points(n, {LR_FEATURES}, seed=2)`; MLlib `LogisticRegression()` (regParam 0, L-BFGS, "
        "internal standardisation) on a cached DataFrame in 4 partitions; scikit-learn "
        "`LogisticRegression(C=inf)` (lbfgs) on the NumPy array in this process. " + common)
    benchmark.record(
        SECTION_ALS, als,
        f"Latest ratings of `make_ratings(users, {ALS_ITEMS}, ratings_per_user, seed=3)`, 80/20 split by a hash "
        "of (user, item); `ALS(maxIter=10, regParam=0.1, coldStartStrategy='drop')`; RMSE on the test rows. "
        + common)
    benchmark.record(
        SECTION_TEXT, text,
        "`make_reviews(n)` tokenised and cached; `Pipeline([CountVectorizer or HashingTF(2^12), IDF]).fit` then "
        "`transform` and a count. " + common)


if __name__ == "__main__":
    main()
