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


def _show(value: Any) -> str:
    text = repr(value)
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
        _fail(what, f"expected a number close to {expected!r}, got {_show(actual)}", hint)
    if not math.isclose(number, expected, rel_tol=rel, abs_tol=abs_tol):
        _fail(what, f"expected {expected!r} (relative tolerance {rel:g}), got {number!r}", hint)
    passed(what)


def check_array_close(
    actual: Any, expected: Any, what: str, rtol: float = 1e-6, atol: float = 1e-9, hint: str | None = None
) -> None:
    """Arrays of the same shape whose elements agree within tolerances (numpy.allclose)."""
    import numpy as np

    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        _fail(what, f"expected shape {e.shape}, got shape {a.shape}", hint)
    bad = ~np.isclose(a, e, rtol=rtol, atol=atol)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        _fail(
            what,
            f"{int(bad.sum())} of {a.size} elements differ (rtol={rtol:g}, atol={atol:g}); "
            f"first at index {first}: expected {e[first]!r}, got {a[first]!r}",
            hint,
        )
    passed(what)


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
