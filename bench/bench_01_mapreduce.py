"""01-mapreduce: one word count, five ways, against the Unix pipeline.

Counts the words (lowercase runs of a-z) of one generated corpus with: a plain `Counter` over a lazy
line stream, `multiprocessing.Pool(2)` map over 1 MB blocks + reduce, the constant-memory spill-and-merge
count with a fixed buffer, mrjob (inline runner), and `LC_ALL=C tr | sort | uniq -c` as the anchor.
mrjob's local runner (`SCALELAB_MRJOB_RUNNER=local`) starts a subprocess per task and sorts in Python:
it measured 0.2 MB/s on a 5 MB corpus here, about 4 minutes per 50 MB run, so the default is inline.

Every run is a fresh child process, so its peak resident memory is its own (`os.wait4` returns the
rusage of the child and of the processes it waited for; `ru_maxrss` is the largest of them). Each
Python child times its own work (interpreter start-up excluded) and prints a digest of its counts, so
the benchmark also checks that all five agree. The spill-and-merge count's Python heap peak
(`tracemalloc`) is measured at two input sizes to show that it does not grow with the input.

The issue asks for ~200 MB; this uses 50 MB (and 10 MB for the second size) to keep the run short on
a machine shared by several people. Run: `python -m bench bench_01_mapreduce`. This file is also the
mrjob job script: with `SCALELAB_MRJOB_RUNNER=local`, mrjob starts it again with `--step-num`/`--mapper`/... arguments.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from scalelab.paths import repo_root

WORD = re.compile(r"[a-z]+")
BIG_BYTES = 50_000_000
SMALL_BYTES = 10_000_000
SEED = 0
REPEAT = 3
SPILL_WORDS = 200_000  # words held in memory by the spill-and-merge count (the fixed budget)
BLOCK_BYTES = 1 << 20  # the pool's map unit
PROCESSES = 2
MRJOB_RUNNER = os.environ.get("SCALELAB_MRJOB_RUNNER", "inline")
SECTION = "01-mapreduce: word count five ways against the Unix pipeline"
UNIX = "LC_ALL=C tr -cs 'A-Za-z' '\\n' < {path} | LC_ALL=C tr 'A-Z' 'a-z' | LC_ALL=C sort | uniq -c"


# --- the word counts (run inside a child process) -----------------------------------------------------


def count_counter(path: Path) -> Counter:
    counts: Counter = Counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            counts.update(WORD.findall(line.lower()))
    return counts


def block_offsets(path: Path, block: int = BLOCK_BYTES) -> list[tuple[int, int]]:
    """(start, end) byte ranges of about `block` bytes that begin and end on line boundaries."""
    size = path.stat().st_size
    starts = [0]
    with open(path, "rb") as stream:
        while starts[-1] + block < size:
            stream.seek(starts[-1] + block)
            stream.readline()
            if stream.tell() >= size:
                break
            starts.append(stream.tell())
    return list(zip(starts, starts[1:] + [size], strict=True))


def count_block(job: tuple[str, int, int]) -> Counter:
    path, start, end = job
    with open(path, "rb") as stream:
        stream.seek(start)
        text = stream.read(end - start).decode("utf-8")
    return Counter(WORD.findall(text.lower()))


def count_pool(path: Path) -> Counter:
    from multiprocessing import Pool

    jobs = [(str(path), start, end) for start, end in block_offsets(path)]
    total: Counter = Counter()
    with Pool(PROCESSES) as pool:
        for counts in pool.imap_unordered(count_block, jobs):
            total.update(counts)
    return total


def _spill(counts: Counter, folder: Path, number: int) -> Path:
    spill = folder / f"spill-{number:05d}.tsv"
    with open(spill, "w", encoding="utf-8") as out:
        out.writelines(f"{word}\t{count}\n" for word, count in sorted(counts.items()))
    return spill


def _read_spill(spill: Path):
    with open(spill, encoding="utf-8") as lines:
        for line in lines:
            word, count = line.split("\t")
            yield word, int(count)


def spill_word_count(path: Path, max_words: int, folder: Path):
    """Sorted (word, count) pairs, holding at most `max_words` words plus one line per spill file."""
    with open(path, encoding="utf-8") as lines:
        words = (word for line in lines for word in WORD.findall(line.lower()))
        spills = []
        while batch := list(itertools.islice(words, max_words)):
            spills.append(_spill(Counter(batch), folder, len(spills)))
    merged = heapq.merge(*map(_read_spill, spills))
    for word, group in itertools.groupby(merged, key=lambda pair: pair[0]):
        yield word, sum(count for _, count in group)


def count_spill(path: Path) -> Counter:
    with tempfile.TemporaryDirectory(prefix="bench-spill-") as folder:
        return Counter(dict(spill_word_count(path, SPILL_WORDS, Path(folder))))


def count_mrjob(path: Path) -> Counter:
    job = MRWordCount(args=["-r", MRJOB_RUNNER, "--no-conf", str(path)])
    with job.make_runner() as runner:
        runner.run()
        return Counter(dict(job.parse_output(runner.cat_output())))


METHODS = {
    "Counter over a lazy line stream": count_counter,
    f"Pool({PROCESSES}) map over 1 MB blocks + reduce": count_pool,
    f"spill-and-merge, {SPILL_WORDS:,} words in memory": count_spill,
    f"mrjob, {MRJOB_RUNNER} runner (mapper, combiner, reducer)": count_mrjob,
}


def digest(counts: dict[str, int]) -> str:
    text = "".join(f"{word} {count}\n" for word, count in sorted(counts.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def child(method: str, path: str, trace: bool) -> None:
    """Entry point of a child process: run one method once and print what it measured as JSON."""
    import tracemalloc

    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    counts = METHODS[method](Path(path))
    seconds = time.perf_counter() - start
    heap = tracemalloc.get_traced_memory()[1] if trace else None
    print(json.dumps({"seconds": seconds, "digest": digest(counts), "words": sum(counts.values()),
                      "heap": heap}))


# --- the job mrjob's local runner runs ------------------------------------------------------------------

try:
    from mrjob.job import MRJob
except ImportError:  # mrjob is part of the course's environment; this only keeps the module importable
    MRJob = object


class MRWordCount(MRJob):
    def mapper(self, _, line):
        for word in WORD.findall(line.lower()):
            yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


# --- the parent: run children, collect medians ------------------------------------------------------------


def run_child(argv: list[str], shell: bool = False) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, peak RSS in bytes of the largest process, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, shell=shell, text=True,
                               cwd=repo_root())
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{argv!r} failed ({process.returncode}): {err[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, out


def python_method(method: str, path: Path, trace: bool = False) -> tuple[float, int, dict]:
    argv = [sys.executable, "-m", "bench.bench_01_mapreduce", "--child", method, str(path)]
    _, rss, out = run_child(argv + (["--trace"] if trace else []))
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], rss, result


def unix_method(path: Path) -> tuple[float, int, dict]:
    with tempfile.NamedTemporaryFile("w+", suffix=".txt") as output:
        seconds, rss, _ = run_child(UNIX.format(path=shlex.quote(str(path))) + f" > {output.name}", shell=True)
        counts = {}
        for line in Path(output.name).read_text().splitlines():
            fields = line.split()
            if len(fields) == 2:
                counts[fields[1]] = int(fields[0])
    return seconds, rss, {"digest": digest(counts), "words": sum(counts.values())}


def make_corpus_file(target: Path, n_bytes: int, seed: int) -> dict:
    """Write the corpus from a child process: a parent that grew while generating text would pass its
    peak RSS on to every process it starts (Linux keeps ru_maxrss across fork and exec)."""
    code = (
        "import json, sys; from scalelab.datasets import write_corpus; "
        f"c = write_corpus({str(target)!r}, n_bytes={n_bytes}, seed={seed}); "
        "print(json.dumps({'words': c.words, 'bytes': c.bytes}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {"path": target, **json.loads(out)}


def main() -> None:
    from scalelab.bench import Benchmark, format_runs

    benchmark = Benchmark(__file__)
    with tempfile.TemporaryDirectory(prefix="scalelab-bench-01-") as folder:
        big = make_corpus_file(Path(folder) / "big.txt", BIG_BYTES, SEED)
        small = make_corpus_file(Path(folder) / "small.txt", SMALL_BYTES, SEED + 1)
        baseline = run_child([sys.executable, "-c", "pass"])[1]
        megabytes = big["bytes"] / 1e6
        measured = {}
        runs = [("Unix pipeline: LC_ALL=C tr -cs, tr, sort, uniq -c", lambda: unix_method(big["path"]))]
        runs += [(name, lambda name=name: python_method(name, big["path"])) for name in METHODS]
        for name, run in runs:
            results = [run() for _ in range(REPEAT)]
            measured[name] = results
            print(f"{name}: " + ", ".join(f"{s:.2f} s / {r / 1e6:.0f} MB" for s, r, _ in results), flush=True)
        digests = {name: {res["digest"] for _, _, res in results} for name, results in measured.items()}
        if len(set().union(*digests.values())) != 1 or any(res["words"] != big["words"] for r in measured.values()
                                                            for _, _, res in r):
            raise RuntimeError(f"the methods disagree: {digests}")
        spill = next(name for name in METHODS if name.startswith("spill"))
        heaps = {c["bytes"]: python_method(spill, c["path"], trace=True)[2]["heap"] for c in (small, big)}

    unix_seconds = statistics.median(s for s, _, _ in measured[runs[0][0]])
    rows = []
    for name, results in measured.items():
        seconds = statistics.median(s for s, _, _ in results)
        rss = statistics.median(r for _, r, _ in results)
        rows.append({
            "method": name,
            "median (s)": f"{seconds:.2f}",
            "MB/s": f"{megabytes / seconds:.1f}",
            "peak RSS (MB)": f"{rss / 1e6:.0f}",
            "time / Unix time": f"{seconds / unix_seconds:.2f}",
            "runs (s)": format_runs(s for s, _, _ in results),
        })
    heap_text = "; ".join(f"{size / 1e6:.0f} MB input: {heap / 1e6:.2f} MB" for size, heap in heaps.items())
    notes = (
        f"One corpus of {megabytes:.0f} MB ({big['words']:,} words; `scalelab.datasets.write_corpus(n_bytes="
        f"{BIG_BYTES:_}, seed={SEED})`), read from the page cache. The issue asks for ~200 MB; 50 MB keeps the "
        f"run short on a machine shared with other people. Medians of {REPEAT} runs, each a fresh child "
        "process; Python methods time their own work (interpreter start-up excluded), the Unix pipeline is "
        "timed from outside. Peak RSS: `ru_maxrss` from `os.wait4`, the largest process of the run (the "
        f"bare interpreter here: {baseline / 1e6:.0f} MB; `sort` sizes its buffer from the input and the machine's "
        "memory). All five "
        f"give identical counts. Spill-and-merge Python heap peak (`tracemalloc`, buffer {SPILL_WORDS:,} words): "
        f"{heap_text}: it depends on the buffer, not on the input (the corpus has a 5,000-word vocabulary, so "
        "a whole-file `Counter` stays small here too; the lab's hidden test uses almost-distinct words, where "
        "it doesn't). "
        f"mrjob {MRJOB_RUNNER} runner: the same job class as the lab, JSON between steps, sort in Python "
        "(the local runner measured 0.2 MB/s on a 5 MB corpus: a subprocess per task). "
        f"{benchmark.load_note()}."
    )
    benchmark.record(SECTION, rows, notes)


if __name__ == "__main__":
    if "--child" in sys.argv:
        index = sys.argv.index("--child")
        child(sys.argv[index + 1], sys.argv[index + 2], "--trace" in sys.argv)
    elif any(arg.startswith("--step-num") or arg in ("--mapper", "--reducer", "--combiner", "--steps")
             for arg in sys.argv[1:]):
        MRWordCount.run()
    else:
        main()
