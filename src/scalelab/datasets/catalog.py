"""Generated logs for the capstone recommender: a catalogue, users with tastes, page views, at one knob's scale.

``make_page_views`` in ``events.py`` draws pages independently of the viewer, which is right for a
collector lab but leaves a recommender nothing to learn. Here every user has a favourite section and
reads mostly from it, so "people who read this also read that" carries information and a
similarity-based recommender can beat the popularity list. The logs are as messy as the collector
lab's (same JSON-lines format and ``PAGE_VIEW_SCHEMA``): anonymous views, unknown user ids, events
delivered twice, lines that are not JSON.

One knob, ``scale``, sets every size (users, items, events); ``sizes(scale)`` says what it gives. The
logs come in three parts in time order: a history folder written at once (the nightly batch), and two
rounds of new files that ``CapstoneLogs.deliver()`` drops into an ``incoming`` folder one at a time (the
stream). The second round also re-delivers some events of the first, as an at-least-once queue does
after a restart. Deterministic in ``seed``; numpy and pandas are imported only when a generator runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scalelab.datasets.events import SECTIONS, _event_line, _zipf, make_users, page_paths, write_json_lines

if TYPE_CHECKING:
    import pandas as pd

START = "2024-03-01"
DAYS = 14
HISTORY_DAYS = 9.0  # history: days [0, 9); round 1: [9, 11.5); round 2: [11.5, 14)
ROUND_SPLIT_DAYS = 11.5
CUTOFF_DAYS = 11  # the suggested train/test cutoff: 2024-03-12 00:00:00
EVENTS_PER_USER = 30


@dataclass(frozen=True)
class Sizes:
    """What one value of the knob gives."""

    scale: float
    n_users: int
    n_items: int
    n_events: int

    @property
    def approx_mb(self) -> float:
        """About 150 bytes a JSON line."""
        return self.n_events * 150 / 1e6


def sizes(scale: float) -> Sizes:
    """Users grow with ``scale``; the catalogue grows with its square root (catalogues grow slower than audiences)."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    n_users = max(20, round(200 * scale))
    n_items = max(24, round(60 * math.sqrt(scale)))
    return Sizes(scale, n_users, n_items, EVENTS_PER_USER * n_users)


def make_items(n_items: int) -> pd.DataFrame:
    """The items dimension table: ``item_id`` (1..n_items), its ``page_url_path`` and ``section``."""
    import pandas as pd

    paths = page_paths(n_items)
    return pd.DataFrame({
        "item_id": range(1, n_items + 1),
        "page_url_path": paths,
        "section": [SECTIONS[k % len(SECTIONS)] for k in range(n_items)],
    }).astype({"item_id": "int64"})


def make_views(
    n_events: int,
    seed: int = 0,
    n_users: int = 200,
    n_items: int = 60,
    taste: float = 0.75,
    anonymous: float = 0.05,
    unknown_users: float = 0.02,
    duplicates: float = 0.03,
) -> pd.DataFrame:
    """``n_events`` well-formed page views in time order, the page-view columns plus ``part``.

    A viewer is drawn with a skewed activity (some users read a lot); with probability ``taste`` the
    page comes from the viewer's favourite section (Zipf within it), else from the whole catalogue
    (Zipf). ``part`` is ``"history"``, ``"round-1"`` or ``"round-2"`` by the time of the first delivery;
    a re-delivered event (same ``page_view_id``, one second later) stays in its original's part, except
    for the round-1 events that round 2 delivers again.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 90])
    n_unique = max(1, n_events - int(round(n_events * duplicates)))
    favourite = rng.integers(0, len(SECTIONS), n_users)
    activity = rng.lognormal(0.0, 0.8, n_users)
    viewer = rng.choice(n_users, n_unique, p=activity / activity.sum())
    item_section = np.arange(n_items) % len(SECTIONS)
    by_section = [np.flatnonzero(item_section == s) for s in range(len(SECTIONS))]
    section_order = [rng.permutation(items) for items in by_section]  # each section's own popularity order
    global_order = rng.permutation(n_items)
    global_p = _zipf(n_items, 1.0)
    item = global_order[rng.choice(n_items, n_unique, p=global_p)]
    from_taste = rng.random(n_unique) < taste
    for s in range(len(SECTIONS)):
        chosen = from_taste & (favourite[viewer] == s)
        order = section_order[s]
        item[chosen] = order[rng.choice(len(order), int(chosen.sum()), p=_zipf(len(order), 0.8))]
    users = (viewer + 1).astype("float64")
    kind = rng.random(n_unique)
    users[kind < anonymous] = np.nan
    unknown = (kind >= anonymous) & (kind < anonymous + unknown_users)
    users[unknown] = n_users + 1 + rng.integers(0, max(1, n_users // 10), int(unknown.sum()))
    seconds = np.sort(rng.integers(0, DAYS * 86_400, n_unique))
    parts = np.where(seconds < HISTORY_DAYS * 86_400, "history",
                     np.where(seconds < ROUND_SPLIT_DAYS * 86_400, "round-1", "round-2"))
    stamps = pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s")
    ids = [f"{v:016x}" for v in rng.integers(0, 2**63 - 1, n_unique, dtype=np.int64)]
    paths = np.array(page_paths(n_items))
    events = pd.DataFrame({
        "page_view_id": ids,
        "authenticated_user_id": pd.array(users, dtype="Int64"),
        "page_url_path": paths[item],
        "view_tstamp": stamps,
        "device": rng.choice(("mobile", "desktop", "tablet"), n_unique, p=(0.6, 0.32, 0.08)),
        "dwell_ms": rng.integers(500, 300_000, n_unique),
        "part": parts,
    })
    again = events.iloc[np.sort(rng.choice(n_unique, n_events - n_unique, replace=False))].copy()
    again["view_tstamp"] = again["view_tstamp"] + pd.Timedelta(seconds=1)
    round_one = np.flatnonzero(parts == "round-1")
    if len(round_one):  # after a restart, the queue sends part of round 1 again with round 2
        resent = events.iloc[rng.choice(round_one, max(1, len(round_one) // 20), replace=False)].copy()
        resent["view_tstamp"] = resent["view_tstamp"] + pd.Timedelta(seconds=1)
        resent["part"] = "round-2"
        again = pd.concat([again, resent])
    events = pd.concat([events, again]).sort_values("view_tstamp", kind="stable").reset_index(drop=True)
    events["view_tstamp"] = events["view_tstamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return events


def write_views(folder: str | os.PathLike[str], events: pd.DataFrame, seed: int = 0, files: int = 2,
                malformed: float = 0.01, prefix: str = "part") -> list[Path]:
    """Write ``events`` (page-view columns) as JSON lines into ``files`` files, with ``malformed`` bad lines."""
    import numpy as np

    from scalelab.datasets.events import EVENT_FIELDS

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 91])
    lines = [_event_line(row) for row in events[list(EVENT_FIELDS)].itertuples(index=False, name=None)]
    return write_json_lines(target, lines, files, malformed, rng, prefix)[0]


class CapstoneLogs:
    """The capstone's raw data in ``folder``: ``history/`` now, ``incoming/`` one round per ``deliver()``.

    ``users`` and ``items`` are the dimension tables (pandas), ``events`` every well-formed event with
    its ``part``, ``cutoff`` a suggested train/test split time.
    """

    def __init__(self, folder: str | os.PathLike[str], scale: float = 1.0, seed: int = 0, malformed: float = 0.01,
                 files: int = 2):
        import pandas as pd

        self.folder = Path(folder)
        self.sizes = sizes(scale)
        self.seed = seed
        self.malformed = malformed
        self.files = files
        self.users = make_users(self.sizes.n_users, seed=seed)
        self.items = make_items(self.sizes.n_items)
        self.events = make_views(self.sizes.n_events, seed=seed, n_users=self.sizes.n_users,
                                 n_items=self.sizes.n_items)
        self.cutoff = str(pd.Timestamp(START) + pd.Timedelta(days=CUTOFF_DAYS))
        self.history = self.folder / "history"
        self.incoming = self.folder / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        write_views(self.history, self.part("history"), seed=seed, files=files, malformed=malformed)
        self.delivered = 0

    def part(self, name: str) -> pd.DataFrame:
        return self.events[self.events["part"] == name].drop(columns="part").reset_index(drop=True)

    def deliver(self) -> pd.DataFrame:
        """Drop the next round's files into ``incoming/``; return that round's well-formed events."""
        if self.delivered >= 2:
            raise RuntimeError("both rounds were delivered already")
        self.delivered += 1
        name = f"round-{self.delivered}"
        events = self.part(name)
        write_views(self.incoming, events, seed=self.seed + self.delivered, files=self.files,
                    malformed=self.malformed, prefix=name)
        return events

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*.json"))

