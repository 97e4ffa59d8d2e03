"""Module 01 (map/reduce): the solution functions agree with independent references.

The references are `collections.Counter` over the whole text and the Unix pipeline
`LC_ALL=C tr -cs 'A-Za-z' '\\n' | tr 'A-Z' 'a-z' | sort | uniq -c`, run here directly (not through the
notebook's `unix_word_count`). The solution notebooks' set-up, worked-example and answer cells run in a
fresh module (tests/solution_notebooks.py), registered so that a `multiprocessing.Pool` (fork) can pickle
their functions by name. The module uses no Spark or Dask, so no loopback cluster fixture applies.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
import types
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import pytest
from solution_notebooks import run_solution

from scalelab.datasets import make_corpus, write_corpus


def load_notebook(stem: str, *grade_ids: str, demonstrations: bool = False) -> types.ModuleType:
    """The solution's module, importable by name: a worker process unpickles its functions from sys.modules."""
    module = run_solution(stem, *grade_ids, examples=True, demonstrations=demonstrations)
    sys.modules[module.__name__] = module
    return module


@pytest.fixture(scope="module")
def lazy():
    return load_notebook("01-lazy-pipelines")


@pytest.fixture(scope="module")
def parallel():
    return load_notebook("01-reduce-and-parallel", "mr-reduce-lengths", "mr-pool-count", "mr-fold")  # no timings


@pytest.fixture(scope="module")
def by_hand():
    return load_notebook("01-mapreduce-by-hand", demonstrations=True)  # a demonstration writes the streaming scripts


def messy_text(seed: int, n_words: int) -> str:
    """Generated words with capitals, punctuation and digits mixed in, so the tokenisers have work to do."""
    words = make_corpus(n_words, seed=seed).split()
    decorate = itertools.cycle(["{}", "{}", "{},", "{}.", "{}!", "({})", "{} 42", "{}"])
    out = []
    for n, (word, form) in enumerate(zip(words, decorate, strict=False)):
        word = word.capitalize() if n % 7 == 0 else word.upper() if n % 31 == 0 else word
        out.append(form.format(word) + ("\n" if n % 13 == 12 else " "))
    return "-- " + "".join(out)


def unix_counts(path: Path) -> dict[str, int]:
    pipeline = (f"LC_ALL=C tr -cs 'A-Za-z' '\\n' < {shlex.quote(str(path))} | LC_ALL=C tr 'A-Z' 'a-z' "
                "| LC_ALL=C sort | uniq -c")
    output = subprocess.run(pipeline, shell=True, capture_output=True, text=True, check=True).stdout
    fields = (line.split() for line in output.splitlines())
    return {pair[1]: int(pair[0]) for pair in fields if len(pair) == 2}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mr01")
    paths = []
    for n in range(3):
        path = folder / f"messy-{n}.txt"
        path.write_text(messy_text(seed=500 + n, n_words=40_000))
        paths.append(path)
    paths.append(write_corpus(folder / "plain.txt", n_words=60_000, seed=9).path)
    whole = folder / "all.txt"
    whole.write_text("\n".join(p.read_text() for p in paths))
    reference = Counter(re.findall("[a-z]+", whole.read_text().lower()))
    return {"folder": folder, "paths": paths, "whole": whole, "reference": reference}


def test_the_two_references_agree(corpus):
    assert unix_counts(corpus["whole"]) == dict(corpus["reference"])
    assert "" not in corpus["reference"] and sum(corpus["reference"].values()) > 150_000


def test_lazy_words_and_cleaning_pipeline(lazy, corpus):
    assert Counter(lazy.iter_words(corpus["paths"])) == corpus["reference"]
    with open(corpus["whole"]) as lines:
        cleaned = Counter(lazy.clean_words(lines, {"the", "of"}))
    expected = Counter({w: c for w, c in corpus["reference"].items() if w not in {"the", "of"}})
    assert cleaned == expected
    batches = list(lazy.batches(lazy.iter_words(corpus["paths"]), 9_999))
    assert all(len(b) == 9_999 for b in batches[:-1]) and sum(map(len, batches)) == corpus["reference"].total()


def test_reduce_pool_and_fold_counts(parallel, corpus):
    assert parallel.parallel_word_count(corpus["paths"], processes=2) == corpus["reference"]
    words = re.findall("[a-z]+", corpus["whole"].read_text().lower())
    assert parallel.fold_word_count(words, 10_000) == corpus["reference"]
    with Pool(2) as pool:
        assert parallel.fold_word_count(words, 25_000, pool_map=pool.map) == corpus["reference"]
    assert parallel.count_by_length(words) == dict(Counter(map(len, words)))


def test_unix_spill_and_partition(by_hand, corpus, tmp_path):
    assert by_hand.unix_word_count(corpus["whole"]) == unix_counts(corpus["whole"])
    spilled = list(by_hand.spill_word_count(corpus["whole"], 7_000, tmp_path))
    assert spilled == sorted(unix_counts(corpus["whole"]).items())
    assert len(list(tmp_path.iterdir())) > 1
    pairs = list(corpus["reference"].items())
    parts = by_hand.partition_pairs(pairs, 5)
    owners = {key: n for n, part in enumerate(parts) for key, _ in part}
    assert sorted(itertools.chain.from_iterable(parts)) == sorted(pairs) and len(owners) == len(pairs)


def test_partition_is_stable_across_processes(by_hand):
    """The point of crc32: another interpreter (another hash seed) sends each key to the same reducer."""
    keys = make_corpus(300, seed=3).split()
    ours = [n for n, part in enumerate(by_hand.partition_pairs([(k, 1) for k in keys], 4)) for _ in part]
    script = (
        "import sys, zlib; keys = sys.stdin.read().split(); "
        "print(sorted(zlib.crc32(k.encode()) % 4 for k in keys))"
    )
    theirs = subprocess.run([sys.executable, "-c", script], input=" ".join(keys), capture_output=True, text=True,
                            check=True, env={"PYTHONHASHSEED": "random"}).stdout
    assert sorted(ours) == eval(theirs)  # noqa: S307 - our own subprocess's repr of a list of ints


def test_mrjob_jobs_inline(by_hand, corpus):
    counted = dict(by_hand.run_job(by_hand.MRWordCount, corpus["whole"]))
    assert counted == unix_counts(corpus["whole"])
    best = min(corpus["reference"].items(), key=lambda item: (-item[1], item[0]))
    assert by_hand.run_job(by_hand.MRMostUsedWord, corpus["whole"]) == [best]


def test_streaming_scripts_match_counter(by_hand, corpus):
    python = shlex.quote(sys.executable)
    command = (f"{python} {by_hand.mapper_py} < {shlex.quote(str(corpus['whole']))} | LC_ALL=C sort "
               f"| {python} {by_hand.reducer_py}")
    output = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout
    assert {json.loads(k): int(v) for k, v in (line.split("\t") for line in output.splitlines())} == dict(
        corpus["reference"])
