"""scalelab.datasets: the MANIFEST really guards the committed data, and the generators are deterministic."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from scalelab import datasets
from scalelab.paths import repo_root

SAMPLE = "setup/sample_lines.txt"


@pytest.fixture
def copied_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of datasets/ that a test may damage; SCALELAB_DATASETS points at it."""
    copy = tmp_path / "datasets"
    shutil.copytree(repo_root() / "datasets", copy)
    monkeypatch.setenv("SCALELAB_DATASETS", str(copy))
    return copy


def test_committed_file_passes_its_manifest_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCALELAB_DATASETS", raising=False)
    file = datasets.path(SAMPLE)
    entry = datasets.read_manifest()[SAMPLE]
    assert file == repo_root() / "datasets" / SAMPLE
    assert file.stat().st_size == entry.bytes
    assert datasets.sha256_of(file) == entry.sha256
    assert entry.licence.startswith("CC0-1.0")
    assert datasets.verify() == []


def test_tampered_copy_is_refused_with_the_fix(copied_datasets: Path) -> None:
    target = copied_datasets / SAMPLE
    text = target.read_text()
    target.write_text(text.replace("the", "teh", 1))  # same size, different content: only the hash tells
    assert target.stat().st_size == len(text)
    with pytest.raises(datasets.DatasetError) as error:
        datasets.path(SAMPLE)
    message = str(error.value)
    assert "sha256" in message
    assert f"git checkout datasets/{SAMPLE}" in message
    assert "python -m scalelab.datasets manifest" in message
    assert datasets.verify() != []


def test_a_file_verified_once_is_checked_again_after_it_changes(copied_datasets: Path) -> None:
    target = copied_datasets / SAMPLE
    datasets.path(SAMPLE)
    with open(target, "a") as stream:
        stream.write("one more line\n")
    with pytest.raises(datasets.DatasetError, match="bytes"):
        datasets.path(SAMPLE)


def test_missing_file_says_how_to_restore_it(copied_datasets: Path) -> None:
    (copied_datasets / SAMPLE).unlink()
    with pytest.raises(datasets.DatasetError, match="missing.*git checkout"):
        datasets.path(SAMPLE)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(datasets.DatasetError) as error:
        datasets.path("setup/no_such_file.txt")
    assert "no_such_file" in str(error.value)
    assert SAMPLE in str(error.value)


def test_manifest_command_refreshes_the_hash_and_keeps_provenance(copied_datasets: Path) -> None:
    target = copied_datasets / SAMPLE
    before = datasets.read_manifest()[SAMPLE]
    with open(target, "a") as stream:
        stream.write("an intended new line\n")
    assert datasets.main(["verify"]) == 1
    assert datasets.main(["manifest"]) == 0
    after = datasets.read_manifest()[SAMPLE]
    assert (after.bytes, after.sha256) == (target.stat().st_size, datasets.sha256_of(target))
    assert (after.source, after.licence) == (before.source, before.licence)
    assert (copied_datasets / "MANIFEST").read_text().startswith("#")  # comments kept
    assert datasets.main(["verify"]) == 0


def test_unlisted_file_is_reported(copied_datasets: Path) -> None:
    (copied_datasets / "setup" / "stray.csv").write_text("a,b\n")
    assert any("setup/stray.csv" in problem for problem in datasets.verify())


def test_pyspark_data_finds_shipped_files() -> None:
    followers = datasets.pyspark_data("data/graphx/followers.txt")
    assert followers.is_file()
    assert followers.read_text().split()[:2] == ["2", "1"]
    with pytest.raises(datasets.DatasetError, match="followers.txt"):  # names what is there instead
        datasets.pyspark_data("data/graphx/followees.txt")


def test_vocabulary_is_distinct_words_with_common_english_first() -> None:
    words = datasets.vocabulary()
    assert len(words) == datasets.corpus.VOCABULARY_SIZE == len(set(words))
    assert words[:3] == ["the", "of", "and"]
    assert all(word.isalpha() and word.islower() for word in words)
    assert datasets.vocabulary() == words


def test_corpus_is_deterministic_and_depends_on_the_seed() -> None:
    text = datasets.make_corpus(5000, seed=3)
    assert datasets.make_corpus(5000, seed=3) == text
    assert datasets.make_corpus(5000, seed=4) != text


@pytest.mark.parametrize("n_words, line_words", [(0, 12), (1, 12), (25, 12), (1000, 7)])
def test_corpus_has_the_words_asked_for(n_words: int, line_words: int) -> None:
    lines = datasets.make_corpus(n_words, seed=1, line_words=line_words).splitlines()
    assert sum(len(line.split()) for line in lines) == n_words
    assert all(len(line.split()) == line_words for line in lines[:-1])


def test_corpus_frequencies_are_zipf_like() -> None:
    counts = Counter(datasets.make_corpus(300_000, seed=0).split())
    ranked = [count for _, count in counts.most_common()]
    assert counts.most_common(1)[0][0] == "the"
    assert ranked[0] > 20 * ranked[99]
    assert len(counts) > 2000  # a long tail, not a handful of words


def test_corpus_blocks_join_to_the_same_text_as_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.corpus, "BLOCK_WORDS", 1200)  # many blocks, each a whole number of lines
    blocks = list(datasets.iter_corpus(10_000, seed=2))
    assert len(blocks) > 1 and all(block.endswith("\n") for block in blocks)
    assert sum(len(block.split()) for block in blocks) == 10_000


def test_write_corpus_by_words_and_by_bytes(tmp_path: Path) -> None:
    by_words = datasets.write_corpus(tmp_path / "w.txt", n_words=3000, seed=5)
    assert by_words.path.read_text() == datasets.make_corpus(3000, seed=5)
    assert by_words.words == 3000 and by_words.bytes == by_words.path.stat().st_size
    by_bytes = datasets.write_corpus(tmp_path / "b.txt", n_bytes=100_000, seed=5)
    assert 100_000 <= by_bytes.bytes == by_bytes.path.stat().st_size < 100_000 + 300  # stops within a line
    assert by_bytes.path.read_text().endswith("\n")
    assert len(by_bytes.path.read_text().split()) == by_bytes.words
    with pytest.raises(ValueError):
        datasets.write_corpus(tmp_path / "x.txt", n_words=10, n_bytes=10)


def test_demo_size_scales_worked_examples_only_when_asked(monkeypatch):
    from scalelab.datasets import demo_size

    monkeypatch.delenv("SCALELAB_DEMO_SCALE", raising=False)
    assert (demo_size(600), demo_size(0.5)) == (600, 0.5)  # students get the sizes the lab names
    monkeypatch.setenv("SCALELAB_DEMO_SCALE", "0.2")
    assert (demo_size(600), demo_size(0.5), demo_size(3)) == (120, 0.1, 1)
    monkeypatch.setenv("SCALELAB_DEMO_SCALE", "small")
    with pytest.raises(ValueError, match="a number such as 0.2"):
        demo_size(600)
