"""Module 06 (MPI): the solution programs against independent single-process references, at 1, 2 and 4
processes, and the release keeping each program's ``%%writefile`` line above the stub.

The programs are taken from the solution notebooks' answer cells, so these tests check what the labs
teach. MPI has no loopback-cluster fixture: ``mpiexec`` on this machine is the cluster (oversubscribed).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from solution_notebooks import REPO, SOLUTIONS, answer_sources

from scalelab.mpi import MPIError, run_mpi

LABS = REPO / "labs"
NOTEBOOKS = sorted(p.stem for p in (SOLUTIONS / "06-mpi").glob("*.ipynb"))


def _program(grade_id: str, folder: Path) -> Path:
    """The solution's program for `grade_id`, written where its %%writefile line says."""
    for name in NOTEBOOKS:
        source = answer_sources(name).get(grade_id)
        if source is not None:
            first, _, body = source.partition("\n")
            assert first.startswith("%%writefile "), first
            path = folder / first.split()[1]
            path.write_text("\n".join(line for line in body.splitlines() if "### " not in line) + "\n")
            return path
    raise KeyError(grade_id)


def _last_json(result, rank: int = 0):
    return json.loads(result.lines(rank)[-1])


def test_release_keeps_the_writefile_line_above_the_stub():
    for name in NOTEBOOKS:
        solution, lab = answer_sources(name), answer_sources(name, LABS)
        assert solution.keys() == lab.keys()
        for grade_id, source in solution.items():
            if source.startswith("%%writefile"):
                assert lab[grade_id].splitlines()[0] == source.splitlines()[0], grade_id
                assert "raise NotImplementedError" in lab[grade_id]


def test_an_unanswered_program_fails_at_once_rather_than_hanging(tmp_path):
    stub = answer_sources("06-patterns-and-scaling", LABS)["mpi-pi"].partition("\n")[2]
    with pytest.raises(MPIError) as error:
        run_mpi(stub, n=2, args=[100, 10, 0], timeout=60)
    assert "NotImplementedError" in str(error.value)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_monte_carlo_pi_is_the_single_process_value_on_any_number_of_ranks(tmp_path, n):
    N, B, seed = 30_001, 4_096, 11
    hits = 0
    for b, first in enumerate(range(0, N, B)):
        rng = np.random.default_rng([seed, b])
        count = min(B, N - first)
        x, y = rng.random(count), rng.random(count)
        hits += int(np.count_nonzero(x * x + y * y <= 1.0))
    answer = _last_json(run_mpi(_program("mpi-pi", tmp_path), n=n, args=[N, B, seed], timeout=60))
    assert answer == {"hits": hits, "pi": 4 * hits / N}
    assert abs(answer["pi"] - np.pi) < 0.05


@pytest.mark.parametrize("n", [1, 2, 4])
def test_heat_stencil_matches_numpy(tmp_path, n):
    u0 = np.random.default_rng(n).uniform(0, 10, size=37)
    np.save(tmp_path / "in.npy", u0)
    run_mpi(_program("mpi-heat", tmp_path), n=n, args=[tmp_path / "in.npy", tmp_path / "out.npy", 0.3, 40],
            timeout=60)
    u = u0.copy()
    for _ in range(40):
        u[1:-1] = u[1:-1] + 0.3 * (u[:-2] - 2 * u[1:-1] + u[2:])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), u, rtol=1e-12, atol=1e-12)
    assert u[0] == u0[0] and u[-1] == u0[-1]


@pytest.mark.parametrize("n, length", [(1, 5), (2, 1001), (4, 3), (4, 10)])
def test_distributed_mean_and_variance_match_numpy(tmp_path, n, length):
    data = 1e9 + np.random.default_rng(length).normal(size=length)
    np.save(tmp_path / "x.npy", data)
    result = run_mpi(_program("mpi-moments", tmp_path), n=n, args=[tmp_path / "x.npy"], timeout=60)
    for rank in range(n):
        row = _last_json(result, rank)
        assert row["n"] == length
        assert row["mean"] == pytest.approx(np.mean(data), rel=1e-12)
        assert row["var"] == pytest.approx(np.var(data), rel=1e-7)


@pytest.mark.parametrize("n", [1, 4])
def test_histogram_matches_numpy(tmp_path, n):
    data = np.random.default_rng(3).gamma(2.0, size=400)
    np.save(tmp_path / "x.npy", data)
    answer = _last_json(run_mpi(_program("mpi-hist", tmp_path), n=n, args=[tmp_path / "x.npy", 9], timeout=60))
    assert answer["counts"] == np.histogram(data, bins=9)[0].tolist()


@pytest.mark.parametrize("n", [1, 2, 4])
def test_ring_sum_and_collect(tmp_path, n):
    ring = run_mpi(_program("mpi-ring", tmp_path), n=n, args=[20_000, 4], timeout=60)
    total = np.sum([np.random.default_rng([4, r]).normal(size=20_000) for r in range(n)], axis=0)
    for rank in range(n):
        assert _last_json(ring, rank)["sum"] == pytest.approx(total.sum(), rel=1e-9, abs=1e-6)
    collected = _last_json(run_mpi(_program("mpi-collect", tmp_path), n=n, args=[6, 2], timeout=60))
    vectors = [np.random.default_rng([2, r]).integers(0, 1000, size=6 + r) for r in range(n)]
    assert collected == {"lengths": [len(v) for v in vectors], "sums": [int(v.sum()) for v in vectors]}


def test_grid_search_picks_what_scikit_learn_cross_validation_picks(tmp_path):
    from sklearn.datasets import load_wine
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    grid = [{"n_neighbors": k, "weights": w} for k in (3, 7, 11, 19) for w in ("uniform", "distance")]
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    X, y = load_wine(return_X_y=True)
    scores = [cross_val_score(make_pipeline(StandardScaler(), KNeighborsClassifier(**p)), X, y, cv=5).mean()
              for p in grid]
    result = run_mpi(_program("mpi-search", tmp_path), n=3, args=[tmp_path / "grid.json", "wine"], timeout=120)
    rows = [_last_json(result, r) for r in range(3)]
    assert sum(row["evaluated"] for row in rows) == len(grid)
    assert {row["best_index"] for row in rows} == {int(np.argmax(scores))}
    assert rows[0]["best_score"] == pytest.approx(max(scores), rel=1e-12)
