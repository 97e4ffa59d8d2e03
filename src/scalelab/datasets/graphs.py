"""Generated graphs and labelled points for the iterative-algorithm labs: any size, from a seed, offline.

``make_web_graph`` draws a directed graph whose in-degrees are skewed the way links on the web are (a few
pages receive most links), so that PageRank has something to find and a shuffle by destination has hot
keys. ``make_labelled_points`` draws a classification problem with known true weights, for gradient
descent. Both depend only on their arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np

IN_DEGREE_EXPONENT = 1.0  # popularity of the k-th most linked page ~ 1 / (k + IN_DEGREE_SHIFT)
IN_DEGREE_SHIFT = 1.0
UNIFORM_SHARE = 0.3  # share of links to a page drawn uniformly: every possible edge stays reachable


def _destination_probabilities(n_nodes: int, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    zipf = 1.0 / (np.arange(n_nodes) + IN_DEGREE_SHIFT) ** IN_DEGREE_EXPONENT
    zipf = zipf[rng.permutation(n_nodes)]  # popular pages are not simply the small ids
    return (1 - UNIFORM_SHARE) * zipf / zipf.sum() + UNIFORM_SHARE / n_nodes


def make_web_graph(n_nodes: int, n_edges: int, seed: int = 0) -> np.ndarray:
    """``n_edges`` distinct directed edges (no self-links) between ids ``0 .. n_nodes-1``, as an int64 array.

    Shape ``(n_edges, 2)``: one row per link, source then destination. Sources are uniform, destinations
    skewed, so some nodes have no out-links (dangling) in sparse graphs and some appear in no edge at all.
    """
    import numpy as np

    if n_nodes < 2 or n_edges < 0:
        raise ValueError(f"need n_nodes >= 2 and n_edges >= 0, got {n_nodes} and {n_edges}")
    if n_edges > n_nodes * (n_nodes - 1) // 2:
        raise ValueError(f"{n_edges} edges are too many for {n_nodes} nodes (at most half of all pairs)")
    rng = np.random.default_rng(seed)
    weights = _destination_probabilities(n_nodes, rng)
    kept = np.empty(0, dtype=np.int64)  # edges encoded as src * n_nodes + dst, in the order drawn
    while len(kept) < n_edges:
        wanted = n_edges - len(kept)
        draw = int(wanted * 1.3) + 16
        src = rng.integers(0, n_nodes, draw, dtype=np.int64)
        dst = rng.choice(n_nodes, size=draw, p=weights).astype(np.int64)
        fresh = (src * n_nodes + dst)[src != dst]
        codes = np.concatenate([kept, fresh])
        _, first = np.unique(codes, return_index=True)
        kept = codes[np.sort(first)]
    kept = kept[:n_edges]
    return np.stack([kept // n_nodes, kept % n_nodes], axis=1)


class LabelledPoints(NamedTuple):
    """Features (first column all ones: the intercept), 0/1 labels, and the weights they were drawn from."""

    features: np.ndarray
    labels: np.ndarray
    true_weights: np.ndarray


def make_labelled_points(n_points: int, n_features: int, seed: int = 0) -> LabelledPoints:
    """A logistic-regression problem: ``P(label = 1 | x) = 1 / (1 + exp(-x · w))`` for known weights ``w``.

    ``features`` has ``n_features + 1`` columns: a constant 1.0, then standard normal values. The weights
    are drawn once from the seed, with magnitudes between 0.5 and 2 so that every sign is learnable.
    """
    import numpy as np

    if n_points < 1 or n_features < 1:
        raise ValueError(f"need n_points >= 1 and n_features >= 1, got {n_points} and {n_features}")
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=n_features + 1)
    weights = signs * rng.uniform(0.5, 2.0, size=n_features + 1)
    features = np.hstack([np.ones((n_points, 1)), rng.standard_normal((n_points, n_features))])
    probability = 1.0 / (1.0 + np.exp(-features @ weights))
    labels = (rng.random(n_points) < probability).astype(np.float64)
    return LabelledPoints(features, labels, weights)
