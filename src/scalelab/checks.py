"""What students see when they run a test cell.

Each helper either prints one line starting with ✓, or raises ``CheckFailed`` whose message says what
was checked, what was expected, what came back, and a hint. ``CheckFailed`` is an ``AssertionError``,
so nbgrader counts it as a failed test like any other.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_SHOWN = 300  # characters of a value shown in a message


class CheckFailed(AssertionError):
    """A check did not pass; the message says why and what to try."""


def _readable(value: Any) -> Any:
    """NumPy scalars as Python numbers, inside lists, tuples and dicts too: NumPy 2 shows 1.5 as np.float64(1.5)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_readable(v) for v in value) if type(value) in (list, tuple) else value
    if isinstance(value, dict):
        return {_readable(k): _readable(v) for k, v in value.items()}
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _show(value: Any) -> str:
    text = repr(_readable(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 15] + f"... ({len(text)} chars)"


def _fail(what: str, problem: str, hint: str | None) -> None:
    message = f"{what}: {problem}"
    if hint:
        message += f"\nHint: {hint}"
    raise CheckFailed(message)


def passed(what: str) -> None:
    print(f"✓ {what}")


def check(condition: bool, what: str, problem: str = "the check did not hold", hint: str | None = None) -> None:
    """The general form: `condition` must be true."""
    if not condition:
        _fail(what, problem, hint)
    passed(what)


def check_type(value: Any, expected: type | tuple[type, ...], what: str, hint: str | None = None) -> None:
    if not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        _fail(what, f"expected a {names}, got a {type(value).__name__}: {_show(value)}", hint)
    passed(what)


Hint = str | Callable[[Any], "str | None"] | None


def check_equal(actual: Any, expected: Any, what: str, hint: Hint = None) -> None:
    """`actual == expected`; for mappings the message names the keys that differ.

    `hint` may be a function of the wrong value, so that the hint follows from what came back (capitals
    left in the words, counts too low...) rather than from the one mistake its author expected.
    """
    if actual == expected:
        passed(what)
        return
    if callable(hint):
        hint = hint(actual)
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        _fail(what, _mapping_difference(actual, expected), hint)
    if type(actual) is not type(expected) and not _both_numbers(actual, expected):
        _fail(
            what,
            f"expected {_show(expected)} ({type(expected).__name__}), "
            f"got {_show(actual)} ({type(actual).__name__})",
            hint,
        )
    _fail(what, f"expected {_show(expected)}, got {_show(actual)}", hint)


def _both_numbers(a: Any, b: Any) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float))


def _mapping_difference(actual: Mapping, expected: Mapping) -> str:
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    wrong = [k for k in expected if k in actual and actual[k] != expected[k]]
    parts = []
    if missing:
        parts.append(f"missing keys {_show(missing[:10])}")
    if extra:
        parts.append(f"unexpected keys {_show(extra[:10])}")
    if wrong:
        examples = ", ".join(f"{k!r}: expected {_show(expected[k])}, got {_show(actual[k])}" for k in wrong[:5])
        parts.append(f"{len(wrong)} wrong values ({examples})")
    return "; ".join(parts)


def check_count(actual: int, expected: int, what: str, too_many: str | None = None,
                too_few: str | None = None) -> None:
    """A count (rows, lines, items) equal to `expected`, with a hint for each direction it can be off."""
    if actual == expected:
        passed(what)
        return
    direction = "more" if actual > expected else "fewer"
    _fail(what, f"expected {expected}, got {actual} ({direction} than expected)",
          too_many if actual > expected else too_few)


def check_close(
    actual: Any, expected: float, what: str, rel: float = 1e-6, abs_tol: float = 1e-9, hint: str | None = None
) -> None:
    """A number within a tolerance of `expected` (math.isclose with rel and abs_tol)."""
    try:
        number = float(actual)
    except (TypeError, ValueError):
        _fail(what, f"expected a number close to {_show(expected)}, got {_show(actual)}", hint)
    if not math.isclose(number, expected, rel_tol=rel, abs_tol=abs_tol):
        _fail(what, f"expected {_show(expected)} (relative tolerance {rel:g}), got {number!r}", hint)
    passed(what)


def check_array_close(
    actual: Any, expected: Any, what: str, rtol: float = 1e-6, atol: float = 1e-9, hint: str | None = None
) -> None:
    """Arrays of the same shape whose elements agree within tolerances (numpy.allclose).

    Spark ML vectors count as arrays, and a list of them (a column of vectors, collected) as a matrix.
    """
    import numpy as np

    a, e = _as_array(actual), _as_array(expected)
    if a.shape != e.shape:
        _fail(what, f"expected shape {e.shape}, got shape {a.shape}", hint)
    bad = ~np.isclose(a, e, rtol=rtol, atol=atol)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        _fail(
            what,
            f"{int(bad.sum())} of {a.size} elements differ (rtol={rtol:g}, atol={atol:g}); "
            f"first at index {first}: expected {_show(e[first])}, got {_show(a[first])}",
            hint,
        )
    passed(what)


def _as_array(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "toArray"):  # a pyspark.ml.linalg vector or matrix
        return value.toArray()
    if isinstance(value, (list, tuple)) and value and all(hasattr(v, "toArray") for v in value):
        return np.stack([v.toArray() for v in value])
    return np.asarray(value)


def check_same_items(actual: Iterable, expected: Iterable, what: str, hint: str | None = None) -> None:
    """The same elements with the same multiplicities, in any order."""
    from collections import Counter

    got, want = Counter(actual), Counter(expected)
    if got != want:
        missing = list((want - got).elements())[:10]
        extra = list((got - want).elements())[:10]
        _fail(what, f"missing {_show(missing)}; unexpected {_show(extra)}", hint)
    passed(what)


def check_raises(
    error: type[BaseException], call: Callable[[], Any], what: str, hint: str | None = None
) -> None:
    """`call()` must raise `error`."""
    try:
        result = call()
    except error:
        passed(what)
        return
    except Exception as other:  # a different error is a failure with a clear message
        _fail(what, f"expected {error.__name__}, got {type(other).__name__}: {other}", hint)
    _fail(what, f"expected {error.__name__}, but it returned {_show(result)}", hint)


def _same_value(a: Any, b: Any, rel: float, abs_tol: float) -> bool:
    """Equal, numbers within the tolerances (NaN equals NaN), lists and tuples element by element."""
    if isinstance(a, bool) or isinstance(b, bool) or not _both_numbers(a, b):
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(_same_value(x, y, rel, abs_tol) for x, y in zip(a, b, strict=True))
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def check_record(actual: Any, expected: Mapping, what: str, rel: float = 1e-9, abs_tol: float = 1e-12,
                 hint: str | Mapping[str, str] | None = None) -> None:
    """A record (a dict, such as the JSON line an MPI rank prints) with the fields of `expected`.

    Fields that `expected` doesn't name are left alone; numbers, and lists of numbers, agree within `rel` and
    `abs_tol`. `hint` may map a field to its hint: the message gives the hints of the fields that differ.
    """
    if not isinstance(actual, Mapping):
        _fail(what, f"expected a dict with the fields {_show(list(expected))}, got {_show(actual)}",
              None if isinstance(hint, Mapping) else hint)
    missing = [k for k in expected if k not in actual]
    wrong = [k for k in expected if k in actual and not _same_value(_plain(actual[k]), expected[k], rel, abs_tol)]
    if not missing and not wrong:
        passed(what)
        return
    parts = [f"missing fields {_show(missing)}"] if missing else []
    parts += [f"{k!r}: expected {_show(expected[k])}, got {_show(actual[k])}" for k in wrong]
    if isinstance(hint, Mapping):
        hint = "; ".join(dict.fromkeys(hint[k] for k in missing + wrong if k in hint)) or None
    _fail(what, "; ".join(parts), hint)


def last_json(result: Any, rank: int = 0) -> Any:
    """What rank `rank` of an MPI run (``scalelab.mpi.run_mpi``'s result) printed as JSON on its last line."""
    import json

    lines = result.lines(rank)
    what = f"rank {rank}'s last line of output"
    if not lines:
        _fail(what, "rank printed nothing", "print(json.dumps(...)) the result as the program's last line")
    try:
        return json.loads(lines[-1])
    except ValueError:
        _fail(what, f"expected one line of JSON, got {_show(lines[-1])}",
              "print(json.dumps(...)) the result as the program's last line, and print nothing after it")


def each_rank_json(result: Any) -> list:
    """``last_json`` of every rank of an MPI run, in rank order."""
    return [last_json(result, rank) for rank in range(result.n)]


def _plain(value: Any) -> Any:
    """A cell of a table as plain Python: NumPy numbers as int/float, missing values as None, times as text."""
    try:
        import pandas as pd

        if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
            return None
    except (ImportError, TypeError, ValueError):
        pass
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()  # numpy scalars
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return str(value).replace("T", " ")
    return value


def _order(row: tuple) -> tuple:
    return tuple((0, "") if v is None else (1, v) if _both_numbers(v, 0) else (2, str(v)) for v in row)


def check_frame(actual: Any, expected: Any, what: str, ordered: bool = False, rel: float = 1e-6,
                abs_tol: float = 1e-9, hint: str | None = None) -> None:
    """A table with the columns of `expected`, then its rows, in any order unless `ordered`.

    `actual` is a pandas or a Spark DataFrame (collected with ``toPandas()``); `expected` a pandas DataFrame.
    The columns must be the same names (in the same order when `ordered`); the rows are compared sorted
    (unless `ordered`), numbers within `rel` and `abs_tol`, missing values (None, NaN) equal each other.
    The message names the missing or unexpected columns, or how many rows differ and the first of them.
    """
    if hasattr(actual, "toPandas"):
        actual = actual.toPandas()
    if not hasattr(actual, "columns") or not hasattr(actual, "itertuples"):
        _fail(what, f"expected a DataFrame, got a {type(actual).__name__}: {_show(actual)}", hint)
    got_columns, want_columns = [str(c) for c in actual.columns], [str(c) for c in expected.columns]
    if (got_columns != want_columns) if ordered else (sorted(got_columns) != sorted(want_columns)):
        missing = [c for c in want_columns if c not in got_columns]
        extra = [c for c in got_columns if c not in want_columns]
        detail = f"missing {_show(missing)}, unexpected {_show(extra)}" if missing or extra else "in another order"
        _fail(what, f"expected the columns {_show(want_columns)}, got {_show(got_columns)} ({detail})", hint)
    got = [tuple(_plain(v) for v in row) for row in actual[want_columns].itertuples(index=False, name=None)]
    want = [tuple(_plain(v) for v in row) for row in expected[want_columns].itertuples(index=False, name=None)]
    if len(got) != len(want):
        direction = "more" if len(got) > len(want) else "fewer"
        _fail(what, f"expected {len(want)} rows, got {len(got)} ({direction} than expected)", hint)
    if not ordered:
        got, want = sorted(got, key=_order), sorted(want, key=_order)
    bad = [n for n, (g, w) in enumerate(zip(got, want, strict=True))
           if not all(_same_value(a, b, rel, abs_tol) for a, b in zip(g, w, strict=True))]
    if bad:
        g, w = got[bad[0]], want[bad[0]]
        columns = [c for c, a, b in zip(want_columns, g, w, strict=True) if not _same_value(a, b, rel, abs_tol)]
        order = "in order" if ordered else "sorted"
        _fail(what, f"{len(bad)} of {len(want)} rows differ ({order}, numbers within rel={rel:g}); the first, "
                    f"row {bad[0]}: expected {_show(dict(zip(want_columns, w, strict=True)))}, "
                    f"got {_show(dict(zip(want_columns, g, strict=True)))} (columns {_show(columns)} differ)", hint)
    passed(what)


@dataclass(frozen=True)
class Call:
    args: tuple
    kwargs: dict
    result: Any


@contextlib.contextmanager
def recording(owner: Any, method: str) -> Iterator[list[Call]]:
    """Record the calls to `owner.<method>` while the block runs, for checks of how an answer works
    (did it query with ``spark.sql``? create an accumulator?). The method behaves as before and is
    put back afterwards, even when the block fails.

        with recording(spark, "sql") as queries:
            answer = mean_rating_by_country(spark, ratings, users)
        check(len(queries) > 0, "the answer is a spark.sql query", ...)
    """
    calls: list[Call] = []
    original = getattr(owner, method)
    own = vars(owner).get(method)  # the object's (or the class's) own attribute, to put back as it was

    @functools.wraps(original)
    def record(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(Call(args, kwargs, result))
        return result

    setattr(owner, method, record)
    try:
        yield calls
    finally:
        if own is None:
            delattr(owner, method)  # the class's method shows through again
        else:
            setattr(owner, method, own)
