"""Run the benchmarks: `python -m bench` runs every `bench/bench_*.py`, `python -m bench NAME...` some.

Each benchmark module offers `main()`, which measures and writes its section of `bench/RESULTS.md`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """The benchmark modules, in name order (which is teaching order: bench_setup, bench_mapreduce...)."""
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))


def _module_name(name: str) -> str:
    stem = Path(name).stem
    return stem if stem.startswith("bench_") else f"bench_{stem}"


def main(argv: list[str] | None = None) -> int:
    names = [_module_name(n) for n in (sys.argv[1:] if argv is None else argv)] or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
