"""Generated web-site logs for the Spark SQL labs: users, page-view events and ratings, any size, offline.

A recommender's offline collector starts from raw event logs (one JSON object a line, as a web server
or a message queue writes them) and a users dimension table. Real logs are messy, so the generator
makes them messy in controlled ways: some views are anonymous (no user id), some come from user ids
that are not in the users table, some events are delivered twice (the same ``page_view_id``), and a
known share of lines are not JSON at all (truncated writes, an error page, a stray log line). Every
function is deterministic in its seed, so a hidden test can ask for fresh data and a benchmark for a
large one, and pandas can compute the expected answers from the same rows.

numpy and pandas are imported only when a generator runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "JP")
COUNTRY_WEIGHTS = (0.35, 0.15, 0.12, 0.1, 0.12, 0.1, 0.06)
SECTIONS = ("news", "sport", "tech", "culture", "travel", "food")
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_WEIGHTS = (0.6, 0.32, 0.08)
START_DATE = "2024-03-01"
GARBAGE_LINES = (  # what else ends up in a log folder: the same few lines, again and again
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "WARN collector: connection reset by peer, retrying",
    "null,null,null",
)
EVENT_FIELDS = ("page_view_id", "authenticated_user_id", "page_url_path", "view_tstamp", "device", "dwell_ms")
PAGE_VIEW_SCHEMA = (
    "page_view_id STRING, authenticated_user_id BIGINT, page_url_path STRING, "
    "view_tstamp TIMESTAMP, device STRING, dwell_ms BIGINT"
)
"""The page-view events' schema as a Spark DDL string (``spark.read.schema(PAGE_VIEW_SCHEMA)``)."""
USER_SCHEMA = "user_id BIGINT, country_code STRING, signup_date DATE"


def make_users(n_users: int, seed: int = 0) -> pd.DataFrame:
    """The users dimension table: ``user_id`` (1..n_users), ``country_code``, ``signup_date``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 1])
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, n_users), unit="D")
    return pd.DataFrame({
        "user_id": np.arange(1, n_users + 1, dtype="int64"),
        "country_code": rng.choice(COUNTRIES, n_users, p=COUNTRY_WEIGHTS),
        "signup_date": signup.date,
    })


def page_paths(n_pages: int) -> list[str]:
    """Page URLs such as ``/tech/article-0042``; page k belongs to section k mod 6."""
    return [f"/{SECTIONS[k % len(SECTIONS)]}/article-{k:04d}" for k in range(n_pages)]


def _zipf(n: int, exponent: float = 1.1) -> np.ndarray:
    import numpy as np

    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def make_page_views(
    n_events: int,
    seed: int = 0,
    n_users: int = 500,
    n_pages: int = 200,
    days: int = 14,
    start: str = START_DATE,
    anonymous: float = 0.1,
    unknown_users: float = 0.02,
    duplicates: float = 0.03,
) -> pd.DataFrame:
    """``n_events`` well-formed page-view events (pandas), in time order.

    Page popularity follows a Zipf law; ``anonymous`` of the views have no user id (None),
    ``unknown_users`` carry an id above ``n_users`` (no row in the users table), and ``duplicates`` of
    the events are sent twice (a second row with the same ``page_view_id``, a second later), as an
    at-least-once delivery pipeline does. ``view_tstamp`` is an ISO-8601 string in UTC without zone.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 2])
    n_unique = max(0, n_events - int(round(n_events * duplicates)))
    paths = np.array(page_paths(n_pages))
    page = rng.choice(n_pages, n_unique, p=_zipf(n_pages))
    users = rng.integers(1, n_users + 1, n_unique).astype("float64")
    kind = rng.random(n_unique)
    users[kind < anonymous] = np.nan
    unknown = (kind >= anonymous) & (kind < anonymous + unknown_users)
    users[unknown] = n_users + 1 + rng.integers(0, max(1, n_users // 10), int(unknown.sum()))
    seconds = np.sort(rng.integers(0, days * 86_400, n_unique))
    stamps = pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")
    ids = [f"{v:016x}" for v in rng.integers(0, 2**63 - 1, n_unique, dtype=np.int64)]
    events = pd.DataFrame({
        "page_view_id": ids,
        "authenticated_user_id": pd.array(users, dtype="Int64"),
        "page_url_path": paths[page],
        "view_tstamp": stamps,
        "device": rng.choice(DEVICES, n_unique, p=DEVICE_WEIGHTS),
        "dwell_ms": rng.integers(500, 300_000, n_unique),
    })
    again = events.iloc[np.sort(rng.choice(n_unique, n_events - n_unique, replace=False))].copy()
    again["view_tstamp"] = again["view_tstamp"] + pd.Timedelta(seconds=1)
    events = pd.concat([events, again]).sort_values("view_tstamp", kind="stable").reset_index(drop=True)
    events["view_tstamp"] = events["view_tstamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return events


@dataclass(frozen=True)
class PageViewFiles:
    """What ``write_page_views`` wrote: the files, the well-formed events (pandas) and the bad lines."""

    folder: Path
    paths: tuple[Path, ...]
    events: pd.DataFrame
    malformed: int
    bytes: int


def _missing(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _event_line(row: tuple) -> str:
    record = dict(zip(EVENT_FIELDS, row, strict=True))
    user = record["authenticated_user_id"]
    record["authenticated_user_id"] = None if _missing(user) else int(user)
    record["dwell_ms"] = int(record["dwell_ms"])
    return json.dumps(record, separators=(",", ":"))


def _bad_line(good: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.5:  # a write cut short: the line stops in the middle of the object
        return good[: int(rng.integers(5, len(good) - 5))]
    return GARBAGE_LINES[int(rng.integers(len(GARBAGE_LINES)))]


def write_page_views(
    folder: str | os.PathLike[str],
    n_events: int,
    seed: int = 0,
    files: int = 4,
    malformed: float = 0.01,
    **options,
) -> PageViewFiles:
    """Write ``n_events`` events as JSON lines into ``files`` files ``part-NNNNN.json`` in ``folder``.

    About ``malformed`` of the lines (an exact count, returned) are not valid JSON: truncated objects
    and a few repeated garbage lines. ``options`` go to ``make_page_views``. The well-formed events are
    returned as a pandas DataFrame, so tests compute expected answers from exactly what was written.
    """
    import numpy as np

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    events = make_page_views(n_events, seed=seed, **options)
    rng = np.random.default_rng([seed, 3])
    lines = [_event_line(row) for row in events.itertuples(index=False, name=None)]
    paths, n_bad = write_json_lines(target, lines, files, malformed, rng)
    size = sum(p.stat().st_size for p in paths)
    return PageViewFiles(target, tuple(paths), events, n_bad, size)


def write_json_lines(target: Path, lines: list[str], files: int, malformed: float, rng,
                     prefix: str = "part") -> tuple[list[Path], int]:
    """Write ``lines`` into ``files`` files ``PREFIX-NNNNN.json`` in ``target``, with bad lines mixed in
    (``malformed`` of their count, drawn with ``rng``); the paths and the number of bad lines."""
    import numpy as np

    n_bad = int(round(len(lines) * malformed))
    bad_at = set(rng.choice(len(lines) + n_bad, n_bad, replace=False).tolist()) if n_bad else set()
    good = iter(lines)
    all_lines = [_bad_line(lines[int(rng.integers(len(lines)))], rng) if k in bad_at else next(good)
                 for k in range(len(lines) + n_bad)]
    bounds = np.linspace(0, len(all_lines), files + 1).astype(int)
    paths = []
    for number in range(files):
        path = target / f"{prefix}-{number:05d}.json"
        chunk = all_lines[bounds[number]:bounds[number + 1]]
        path.write_text("".join(line + "\n" for line in chunk), encoding="utf-8")
        paths.append(path)
    return paths, n_bad


def make_ratings(
    n_users: int,
    n_items: int,
    ratings_per_user: int = 12,
    seed: int = 0,
    rerated: float = 0.1,
    constant_users: int = 2,
) -> pd.DataFrame:
    """Star ratings 1-5 with a taste structure: ``user_id``, ``item_id``, ``rating``, ``rating_tstamp``.

    Users and items belong to hidden taste groups, so that user-user similarity finds something.
    ``rerated`` of the (user, item) pairs are rated again later with another value: only the latest
    rating counts. The first ``constant_users`` users give every item the same rating (zero variance:
    their deviations from their own mean are all zero, and a similarity with them is undefined).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 4])
    groups = 3
    user_group = rng.integers(0, groups, n_users)
    item_group = rng.integers(0, groups, n_items)
    per_user = min(ratings_per_user, n_items)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, per_user, replace=False)
        bias = rng.normal(0, 0.5)
        for i in items:
            taste = 1.2 if item_group[i] == user_group[u] else -0.6
            stars = int(np.clip(np.rint(3 + bias + taste + rng.normal(0, 0.8)), 1, 5))
            if u < constant_users:
                stars = 4 if u % 2 == 0 else 2
            rows.append((u + 1, int(i) + 1, stars))
    table = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    table["rating_tstamp"] = pd.Timestamp(START_DATE) + pd.to_timedelta(
        rng.integers(0, 30 * 86_400, len(table)), unit="s")
    again = table.sample(frac=rerated, random_state=int(rng.integers(2**31)))
    again = again[again["user_id"] > constant_users].copy()
    again["rating"] = np.clip(again["rating"] + rng.choice([-2, -1, 1, 2], len(again)), 1, 5)
    again["rating_tstamp"] = again["rating_tstamp"] + pd.to_timedelta(rng.integers(3600, 5 * 86_400, len(again)),
                                                                      unit="s")
    table = pd.concat([table, again]).sample(frac=1.0, random_state=int(rng.integers(2**31)))
    table["rating"] = table["rating"].astype("int64")
    return table.reset_index(drop=True)


def latest_ratings_pandas(ratings: pd.DataFrame) -> pd.DataFrame:
    """The latest rating of each (user, item) pair, with pandas: the reference for the Spark versions."""
    latest = ratings.sort_values("rating_tstamp").groupby(["user_id", "item_id"], as_index=False).last()
    return latest.sort_values(["user_id", "item_id"]).reset_index(drop=True)
