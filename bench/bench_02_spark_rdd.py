"""02-spark-rdd: what partitioning, caching and map-side combining buy on 2 cores.

1. PageRank, 10 iterations, on a generated web graph of 1 million edges (``make_web_graph``): the slow
   RDD version (links re-shuffled by every join, sums by ``groupByKey``), the fast one (links
   ``partitionBy`` + ``persist``, ranks co-partitioned, sums by ``reduceByKey`` with the same partitioner),
   and SciPy's sparse-matrix power iteration in one process as the anchor. All three must agree.
2. Batch logistic regression, 10 epochs of gradient descent over points parsed from a text file: the
   parsed RDD recomputed every epoch (no cache) against ``cache()``.
3. A sum per key over skewed keys (Zipf): ``groupByKey().mapValues(sum)`` against ``reduceByKey(add)``.

The Spark runs use ``get_spark()`` (``local[*]``, or ``SCALELAB_SPARK_MASTER``).
"""

from __future__ import annotations

import tempfile
import time
from operator import add
from pathlib import Path

import numpy as np

# Spark's Python workers import this module to unpickle its functions, and they may run a Python without
# the scalelab package (on this machine: the base interpreter): so scalelab is imported inside functions.

N_NODES = 100_000
N_EDGES = 1_000_000
ITERATIONS = 10
DAMPING = 0.85
PARTITIONS = 4
LR_POINTS = 200_000
LR_FEATURES = 10
LR_EPOCHS = 10
LR_STEP = 0.5
PAIRS = 2_000_000
KEYS = 10_000
REPEAT = 3
WARMUP = 0  # the JVM and the Python workers are warmed by a small job first; one PageRank run is minutes
SEED = 2
SECTION_PAGERANK = "02-spark-rdd: PageRank, 10 iterations, 1 million edges"
SECTION_CACHE = "02-spark-rdd: logistic regression epochs with and without cache()"
SECTION_SHUFFLE = "02-spark-rdd: groupByKey vs reduceByKey on skewed keys"


def parse_edge(line: str) -> tuple[int, int]:
    src, dst = line.split()
    return int(src), int(dst)


def _with_dangling(edges):
    """(node, [out-links]) for every node of the edge list, dangling nodes with an empty list."""
    links = edges.groupByKey().mapValues(list)
    nodes = edges.flatMap(lambda e: e).distinct().map(lambda v: (v, []))
    return nodes.union(links).reduceByKey(add)


def _spread(item):
    node, (outs, rank) = item
    yield node, 0.0  # keeps every node in the result, also those nobody links to
    for dst in outs:
        yield dst, rank / len(outs)


def pagerank_slow(sc, path: str, iterations: int = ITERATIONS, d: float = DAMPING) -> dict[int, float]:
    """Links neither partitioned nor persisted: every join shuffles them again; groupByKey, no combiner."""
    links = _with_dangling(sc.textFile(path, PARTITIONS).map(parse_edge))
    n = links.count()
    ranks = links.mapValues(lambda _: 1.0 / n)
    for _ in range(iterations):
        # explicit partition counts: left at their defaults, every join's output would have as many
        # partitions as both its inputs, and the ranks' partition count would grow with each iteration
        sums = links.join(ranks, PARTITIONS).flatMap(_spread).groupByKey(PARTITIONS).mapValues(sum).cache()
        dangling = 1.0 - sums.values().sum()
        ranks = sums.mapValues(lambda s, dangling=dangling: (1 - d) / n + d * (s + dangling / n))
    return ranks.collectAsMap()


def pagerank_fast(sc, path: str, iterations: int = ITERATIONS, d: float = DAMPING,
                  partitions: int = PARTITIONS) -> dict[int, float]:
    links = _with_dangling(sc.textFile(path, partitions).map(parse_edge)).partitionBy(partitions).persist()
    n = links.count()
    ranks = links.mapValues(lambda _: 1.0 / n)
    previous = None
    for _ in range(iterations):
        sums = links.join(ranks).flatMap(_spread).reduceByKey(add, partitions).cache()
        dangling = 1.0 - sums.values().sum()
        ranks = sums.mapValues(lambda s, dangling=dangling: (1 - d) / n + d * (s + dangling / n))
        if previous is not None:
            previous.unpersist()
        previous = sums
    result = ranks.collectAsMap()
    links.unpersist()
    return result


def pagerank_scipy(edges: np.ndarray, iterations: int = ITERATIONS, d: float = DAMPING) -> dict[int, float]:
    """The same iteration as a sparse matrix-vector product, on the nodes that appear in the edges."""
    import scipy.sparse as sp

    nodes, index = np.unique(edges, return_inverse=True)
    index = index.reshape(edges.shape)
    n = len(nodes)
    out_degree = np.bincount(index[:, 0], minlength=n).astype(float)
    weights = 1.0 / out_degree[index[:, 0]]
    transition = sp.csr_matrix((weights, (index[:, 1], index[:, 0])), shape=(n, n))  # column = source
    dangling = out_degree == 0
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        rank = (1 - d) / n + d * (transition @ rank + rank[dangling].sum() / n)
    return dict(zip(nodes.tolist(), rank.tolist(), strict=True))


def _largest_difference(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        raise RuntimeError("the PageRank versions returned different nodes")
    return max(abs(a[k] - b[k]) for k in a)


def pagerank_rows(sc, folder: Path) -> tuple[list[dict[str, str]], float]:
    from scalelab.bench import format_runs, time_it
    from scalelab.datasets.graphs import make_web_graph

    edges = make_web_graph(N_NODES, N_EDGES, seed=SEED)
    path = folder / "edges.txt"
    np.savetxt(path, edges, fmt="%d")
    scipy_t = time_it(lambda: pagerank_scipy(edges), repeat=REPEAT, warmup=1)
    fast_t = time_it(lambda: pagerank_fast(sc, str(path)), repeat=REPEAT, warmup=WARMUP)
    print(f"fast {fast_t}", flush=True)
    slow_t = time_it(lambda: pagerank_slow(sc, str(path)), repeat=REPEAT, warmup=WARMUP)
    print(f"slow {slow_t}", flush=True)
    worst = max(_largest_difference(scipy_t.result, fast_t.result),
                _largest_difference(scipy_t.result, slow_t.result))
    if worst > 1e-9:
        raise RuntimeError(f"the PageRank versions disagree by {worst}")
    rows = []
    for name, timing in [(f"RDD, slow (every join re-shuffles the links, groupByKey; {PARTITIONS} partitions)", slow_t),
                         (f"RDD, fast (links partitionBy({PARTITIONS}) + persist, reduceByKey)", fast_t),
                         ("SciPy sparse matrix, one process", scipy_t)]:
        rows.append({
            "version": name,
            "median (s)": f"{timing.median:.2f}",
            "runs (s)": format_runs(timing.times),
            "per iteration (s)": f"{timing.median / ITERATIONS:.3f}",
            "× SciPy": f"{timing.median / scipy_t.median:.0f}×",
        })
    rows.append({"version": "slow / fast", "median (s)": f"{slow_t.median / fast_t.median:.2f}×", "runs (s)": "",
                 "per iteration (s)": "", "× SciPy": ""})
    return rows, worst


def logistic_gradient_descent(points, n_features: int, sc) -> np.ndarray:
    weights = np.zeros(n_features)
    n = points.count()
    for _ in range(LR_EPOCHS):
        w = sc.broadcast(weights)
        gradient = points.map(
            lambda p, w=w: (1.0 / (1.0 + np.exp(-p[1] @ w.value)) - p[0]) * p[1]
        ).reduce(add)
        weights = weights - LR_STEP * gradient / n
        w.unpersist()
    return weights


def parse_point(line: str) -> tuple[float, np.ndarray]:
    values = np.array(line.split(","), dtype=float)
    return values[0], values[1:]


def cache_rows(sc, folder: Path) -> list[dict[str, str]]:
    from scalelab.bench import format_runs, time_it
    from scalelab.datasets.graphs import make_labelled_points

    data = make_labelled_points(LR_POINTS, LR_FEATURES, seed=SEED)
    path = folder / "points.csv"
    np.savetxt(path, np.hstack([data.labels[:, None], data.features]), fmt="%.6f", delimiter=",")
    dims = data.features.shape[1]

    def without_cache():
        return logistic_gradient_descent(sc.textFile(str(path), 4).map(parse_point), dims, sc)

    def with_cache():
        points = sc.textFile(str(path), 4).map(parse_point).cache()
        weights = logistic_gradient_descent(points, dims, sc)
        points.unpersist()
        return weights

    plain = time_it(without_cache, repeat=REPEAT, warmup=WARMUP)
    print(f"no cache {plain}", flush=True)
    cached = time_it(with_cache, repeat=REPEAT, warmup=WARMUP)
    print(f"cache {cached}", flush=True)
    if not np.allclose(plain.result, cached.result):
        raise RuntimeError("cached and uncached gradient descent disagree")
    return [
        {"points RDD": name, "median (s)": f"{t.median:.2f}", "runs (s)": format_runs(t.times),
         "per epoch (s)": f"{t.median / LR_EPOCHS:.3f}", "speed-up": f"{plain.median / t.median:.2f}×"}
        for name, t in [("re-read and re-parsed every epoch (no cache)", plain), ("cache()", cached)]
    ]


def shuffle_rows(sc) -> tuple[list[dict[str, str]], float]:
    from scalelab.bench import format_runs, time_it
    from scalelab.datasets import zipf_probabilities

    rng = np.random.default_rng(SEED)
    keys = rng.choice(KEYS, size=PAIRS, p=zipf_probabilities(KEYS))
    pairs = sc.parallelize(list(zip(keys.tolist(), rng.integers(0, 100, PAIRS).tolist(), strict=True)), 8).cache()
    pairs.count()
    grouped = time_it(lambda: dict(pairs.groupByKey().mapValues(sum).collect()), repeat=REPEAT, warmup=1)
    reduced = time_it(lambda: dict(pairs.reduceByKey(add).collect()), repeat=REPEAT, warmup=1)
    if grouped.result != reduced.result:
        raise RuntimeError("groupByKey and reduceByKey disagree")
    top_share = np.bincount(keys).max() / PAIRS
    rows = [
        {"method": name, "median (s)": f"{t.median:.2f}", "runs (s)": format_runs(t.times),
         "speed-up": f"{grouped.median / t.median:.2f}×"}
        for name, t in [("groupByKey().mapValues(sum)", grouped), ("reduceByKey(add)", reduced)]
    ]
    pairs.unpersist()
    return rows, top_share


def main() -> None:
    from scalelab.bench import Benchmark, started
    from scalelab.spark import get_spark, stop_spark

    benchmark = Benchmark(__file__)
    with started(lambda: get_spark("bench-02-spark-rdd"), stop_spark) as (spark, _):
        sc = spark.sparkContext
        sc.parallelize(range(1000), 4).map(lambda x: x * x).sum()  # start the Python workers
        where = f"Spark {spark.version}, master {sc.master}, default parallelism {sc.defaultParallelism}"
        with tempfile.TemporaryDirectory(prefix="scalelab-bench-rdd-") as folder:
            began = time.perf_counter()
            pagerank, worst = pagerank_rows(sc, Path(folder))
            print(f"PageRank done in {time.perf_counter() - began:.0f} s", flush=True)
            cache = cache_rows(sc, Path(folder))
        shuffle, top_share = shuffle_rows(sc)
    common = (f"Medians of {REPEAT} runs ({WARMUP} warm-up for the Spark runs; a small job warms the workers "
              f"first). {where}. {benchmark.load_note()}. "
              "The machine's 2 cores were shared with other work while this ran.")
    benchmark.record(
        SECTION_PAGERANK, pagerank,
        f"`make_web_graph({N_NODES:,}, {N_EDGES:,}, seed={SEED})` written as a text file of edges; each "
        f"Spark run reads it, builds the links (dangling nodes included) and runs {ITERATIONS} iterations "
        f"(damping {DAMPING}, dangling mass spread evenly, as networkx does), ending with `collectAsMap`. "
        "SciPy: `csr_matrix` built from the edges in memory, then the same 10 matrix-vector iterations "
        f"(timing includes building the matrix). The three results agree within {worst:.1e}. " + common)
    benchmark.record(
        SECTION_CACHE, cache,
        f"{LR_POINTS:,} points with {LR_FEATURES} features (+ intercept) from `make_labelled_points`, a "
        f"CSV text file in 4 partitions; {LR_EPOCHS} epochs of batch gradient descent, weights broadcast "
        "each epoch, the gradient summed with `reduce`. Without cache, every epoch reads and parses the file "
        "again. " + common)
    benchmark.record(
        SECTION_SHUFFLE, shuffle,
        f"{PAIRS:,} (key, value) pairs in 8 partitions, cached, keys drawn from {KEYS:,} with Zipf "
        f"frequencies (the most common key holds {top_share:.1%} of the pairs); the sum per key collected "
        "to the driver. " + common)


if __name__ == "__main__":
    main()
