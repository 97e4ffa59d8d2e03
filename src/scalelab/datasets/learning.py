"""Generators for the MLlib labs (module 05): tables with known structure, made offline from a seed.

Every table carries its own split and fold columns, derived from the row ids, so that a result never
depends on how Spark partitions the data or on ``randomSplit``'s seed-per-partition behaviour. The
generators return pandas frames or NumPy arrays; the labs turn them into Spark DataFrames.

numpy and pandas are imported only inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PLANS = ("basic", "plus", "pro", "family")
REGIONS = ("north", "south", "east", "west")
# The test rows are drawn from a shifted population (more "pro" plans, higher spend): a scaler or an
# indexer fitted on all rows learns something different from one fitted on the training rows only.
_PLAN_P_TRAIN = (0.40, 0.30, 0.20, 0.10)
_PLAN_P_TEST = (0.30, 0.10, 0.50, 0.10)
_PLAN_EFFECT = {"basic": 0.4, "plus": 0.0, "pro": -0.6, "family": -0.3}

POSITIVE_WORDS = ("great", "excellent", "loved", "superb", "fun", "charming", "brilliant", "moving")
NEGATIVE_WORDS = ("boring", "awful", "dull", "weak", "hated", "messy", "slow", "bland")
NEUTRAL_WORDS = ("the", "film", "plot", "actor", "scene", "story", "music", "ending", "cast", "script",
                 "was", "and", "very", "quite", "it", "this")


def make_customers(n_customers: int, seed: int = 0) -> pd.DataFrame:
    """A churn table: ``customer_id``, ``plan``, ``region``, ``age``, ``monthly_spend``, ``tenure_months``,
    ``label`` (1.0 = churned), ``split`` (``"train"``/``"test"``) and ``fold`` (0/1 on training rows, -1 on test).

    Every fourth customer (``customer_id % 4 == 0``) is a test row; training rows alternate between
    folds 0 and 1 by ``customer_id // 4``. The label follows a logistic model of spend, tenure and
    plan, with noise, so no feature separates the classes.
    """
    import numpy as np
    import pandas as pd

    if n_customers < 8:
        raise ValueError(f"need at least 8 customers, got {n_customers}")
    rng = np.random.default_rng([seed, 5, 1])
    ids = np.arange(1, n_customers + 1)
    is_test = ids % 4 == 0
    plan = np.where(is_test, rng.choice(PLANS, n_customers, p=_PLAN_P_TEST),
                    rng.choice(PLANS, n_customers, p=_PLAN_P_TRAIN))
    region = rng.choice(REGIONS, n_customers, p=(0.35, 0.3, 0.2, 0.15))
    age = rng.integers(18, 75, n_customers)
    spend = np.round(rng.gamma(4.0, 12.0, n_customers) + np.where(is_test, 15.0, 0.0), 2)
    tenure = rng.integers(1, 60, n_customers)
    logit = (-0.3 + 0.03 * (spend - 50) - 0.04 * (tenure - 30) + np.array([_PLAN_EFFECT[p] for p in plan])
             + 0.01 * (age - 45))
    label = (rng.random(n_customers) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return pd.DataFrame({
        "customer_id": ids, "plan": plan, "region": region, "age": age, "monthly_spend": spend,
        "tenure_months": tenure, "label": label, "split": np.where(is_test, "test", "train"),
        "fold": np.where(is_test, -1, (ids // 4) % 2),
    })


def make_reviews(n_docs: int, seed: int = 0) -> pd.DataFrame:
    """Short film reviews: ``doc_id``, ``text`` (lower-case words of two or more letters, single spaces)
    and ``label`` (1.0 positive, 0.0 negative).

    A review mixes neutral words with words of its own sentiment and, less often, of the other one, so
    word counts predict the label well but not perfectly. The text needs no cleaning: Spark's
    ``Tokenizer`` and scikit-learn's default tokeniser split it into the same words.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 5, 2])
    rows = []
    for doc in range(n_docs):
        label = float(rng.random() < 0.5)
        own, other = (POSITIVE_WORDS, NEGATIVE_WORDS) if label else (NEGATIVE_WORDS, POSITIVE_WORDS)
        words = list(rng.choice(NEUTRAL_WORDS, rng.integers(3, 8)))
        words += list(rng.choice(own, rng.integers(1, 4)))
        words += list(rng.choice(other, rng.integers(0, 2)))
        rng.shuffle(words)
        rows.append((doc + 1, " ".join(words), label))
    return pd.DataFrame(rows, columns=["doc_id", "text", "label"])


def make_curve(n_points: int, seed: int = 0) -> pd.DataFrame:
    """A noisy cubic for model selection: ``id``, ``x`` (uniform in [-2, 2]), ``y`` and ``fold``
    (``id % 2``). A straight line underfits it; degree 3 is right."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 5, 4])
    x = np.round(rng.uniform(-2, 2, n_points), 4)
    y = 1.5 + 0.8 * x - 0.9 * x**3 + rng.normal(0, 0.5, n_points)
    ids = np.arange(n_points)
    return pd.DataFrame({"id": ids, "x": x, "y": y, "fold": ids % 2})


class Blobs(NamedTuple):
    """Points, the cluster each was drawn from, and the true centres."""

    points: np.ndarray
    labels: np.ndarray
    centres: np.ndarray


def make_blobs(n_points: int, k: int = 3, dim: int = 2, spread: float = 0.6, seed: int = 0) -> Blobs:
    """``n_points`` points around ``k`` centres at least 6 apart (``spread`` is each blob's standard
    deviation): well-separated clusters on which every k-means run that starts sensibly agrees."""
    import numpy as np

    rng = np.random.default_rng([seed, 5, 3])
    centres: list[np.ndarray] = []
    while len(centres) < k:
        candidate = rng.uniform(-10, 10, dim)
        if all(np.linalg.norm(candidate - c) >= 6 for c in centres):
            centres.append(candidate)
    labels = np.sort(rng.integers(0, k, n_points))
    labels[:k] = np.arange(k)  # every cluster has at least one point
    labels = np.sort(labels)
    points = np.array(centres)[labels] + rng.normal(0, spread, (n_points, dim))
    return Blobs(points, labels, np.array(centres))


def load_movielens_sample() -> pd.DataFrame:
    """pyspark's bundled ``data/mllib/als/sample_movielens_ratings.txt`` (``user::movie::rating::time``):
    ``user_id``, ``item_id``, ``rating`` (float) and ``timestamp``."""
    import pandas as pd

    from scalelab.datasets import pyspark_data

    path = pyspark_data("data/mllib/als/sample_movielens_ratings.txt")
    rows = [tuple(int(x) if n != 2 else float(x) for n, x in enumerate(line.split("::")))
            for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def split_by_hash(ratings: pd.DataFrame, test_share: float = 0.2) -> pd.DataFrame:
    """``ratings`` with a ``split`` column, ``"test"`` for about ``test_share`` of the rows, chosen by a
    hash of (``user_id``, ``item_id``): the same rows whatever the order, partitioning or seed.

    (pyspark's MovieLens sample has one timestamp for every rating, so a split by time is no choice.)
    """
    import numpy as np

    key = (ratings["user_id"].to_numpy(np.uint64) * np.uint64(2654435761)
           + ratings["item_id"].to_numpy(np.uint64) * np.uint64(40503)) % np.uint64(1000)
    return ratings.assign(split=np.where(key < int(test_share * 1000), "test", "train"))


def points_table(features: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """A labelled-points problem (``make_labelled_points``) as a table Spark can take: ``id``, ``label``
    and one column ``x0 … x{d}`` per feature (``x0`` is the intercept's constant 1.0)."""
    import pandas as pd

    table = pd.DataFrame(features, columns=[f"x{j}" for j in range(features.shape[1])])
    table.insert(0, "label", labels.astype(float))
    table.insert(0, "id", range(len(table)))
    return table
