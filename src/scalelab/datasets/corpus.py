"""A generated English-like text: Zipf-distributed words from a fixed made-up vocabulary, any size, offline."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

COMMON_WORDS = (
    "the of and to a in is it you that he was for on are with as his they be at one have this from or "
    "had by not word but what some we can out other were all there when up use your how said an each she "
    "which do their time if will way about many then them would write like so these her long make thing "
    "see him two has look more day could go come did number sound no most people my over know water than "
    "call first who may down side been now find"
).split()
ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pl",
          "pr", "r", "s", "sh", "sl", "st", "t", "th", "tr", "v", "w", "y", "z", "")
INNER_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")  # no clusters mid-word
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou", "y")
CODAS = ("", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng", "rt", "sh")
SYLLABLE_COUNTS = (1, 2, 3)
SYLLABLE_WEIGHTS = (0.3, 0.5, 0.2)
VOCABULARY_SIZE = 5000
VOCABULARY_SEED = 1729  # fixed: every corpus, whatever its seed, draws from the same words
ZIPF_EXPONENT = 1.07  # word frequency ~ 1 / (rank + ZIPF_SHIFT) ** ZIPF_EXPONENT, as in English text
ZIPF_SHIFT = 2.7
BLOCK_WORDS = 1 << 20  # words drawn per step: bounded memory, and the text does not depend on the caller


def vocabulary(size: int = VOCABULARY_SIZE) -> list[str]:
    """Distinct lowercase words, most frequent first: real function words, then made-up pronounceable ones.

    Built from syllables with a fixed seed, so nothing is downloaded and every machine gets the same list.
    """
    import numpy as np

    rng = np.random.default_rng(VOCABULARY_SEED)
    words = list(dict.fromkeys(COMMON_WORDS))[:size]
    seen = set(words)
    made_up: list[str] = []
    while len(words) + len(made_up) < size:
        word = _made_up_word(rng)
        if len(word) > 1 and word not in seen:
            seen.add(word)
            made_up.append(word)
    # short words first: frequent words are short in real languages too (Zipf's law of abbreviation)
    return words + sorted(made_up, key=len)


def _made_up_word(rng: np.random.Generator) -> str:
    syllables = int(rng.choice(SYLLABLE_COUNTS, p=SYLLABLE_WEIGHTS))
    word = ONSETS[rng.integers(len(ONSETS))] + VOWELS[rng.integers(len(VOWELS))]
    for _ in range(syllables - 1):
        word += INNER_ONSETS[rng.integers(len(INNER_ONSETS))] + VOWELS[rng.integers(len(VOWELS))]
    return word + CODAS[rng.integers(len(CODAS))]


def zipf_probabilities(size: int = VOCABULARY_SIZE) -> np.ndarray:
    """Rank-frequency law of natural language (Zipf-Mandelbrot): a few words dominate, most are rare."""
    import numpy as np

    weights = 1.0 / (np.arange(size) + ZIPF_SHIFT) ** ZIPF_EXPONENT
    return weights / weights.sum()


def iter_corpus(n_words: int, seed: int = 0, line_words: int = 12) -> Iterator[str]:
    """The corpus as text blocks, each a whole number of lines ending with a newline.

    Lines hold ``line_words`` words (the last may hold fewer). The text depends only on the arguments.
    """
    import numpy as np

    if n_words < 0 or line_words < 1:
        raise ValueError(f"need n_words >= 0 and line_words >= 1, got {n_words} and {line_words}")
    words = np.array(vocabulary())
    cumulative = np.cumsum(zipf_probabilities(len(words)))
    rng = np.random.default_rng(seed)
    block = max(line_words, BLOCK_WORDS - BLOCK_WORDS % line_words)  # whole lines per block
    for start in range(0, n_words, block):
        count = min(block, n_words - start)
        ranks = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
        chosen = words[np.minimum(ranks, len(words) - 1)].tolist()
        yield "".join(" ".join(chosen[i : i + line_words]) + "\n" for i in range(0, count, line_words))


def make_corpus(n_words: int, seed: int = 0, line_words: int = 12) -> str:
    """A deterministic English-like text of exactly ``n_words`` words, with Zipf-distributed frequencies."""
    return "".join(iter_corpus(n_words, seed, line_words))


@dataclass(frozen=True)
class Corpus:
    """What ``write_corpus`` wrote: the file, and its size in words and bytes."""

    path: Path
    words: int
    bytes: int


def write_corpus(
    target: str | os.PathLike[str],
    n_words: int | None = None,
    n_bytes: int | None = None,
    seed: int = 0,
    line_words: int = 12,
) -> Corpus:
    """Write a corpus of ``n_words`` words, or of about ``n_bytes`` bytes, a block at a time.

    With ``n_bytes`` the file ends with the first whole line that reaches that size (so it is at most
    one line larger); ``Corpus.words`` says exactly how many words it holds.
    """
    if (n_words is None) == (n_bytes is None):
        raise ValueError("give exactly one of n_words and n_bytes")
    if n_bytes is not None and n_bytes < 1:
        raise ValueError(f"n_bytes must be positive, got {n_bytes}")
    target = Path(target)
    limit = n_words if n_words is not None else sys.maxsize
    words = written = 0
    with open(target, "w", encoding="ascii", newline="\n") as stream:
        for text in iter_corpus(limit, seed, line_words):
            if n_bytes is not None and written + len(text) >= n_bytes:
                text = text[: text.index("\n", n_bytes - written - 1) + 1]  # up to the line reaching n_bytes
            stream.write(text)
            words += text.count(" ") + text.count("\n")
            written += len(text)
            if n_bytes is not None and written >= n_bytes:
                break
    return Corpus(target, words, written)


