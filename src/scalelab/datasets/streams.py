"""Event streams for the Structured Streaming labs: JSON-lines files dropped into a folder, offline.

A file source is the simplest stream that needs no broker: some process keeps dropping new files
into a folder and Spark picks up the ones it has not seen. Two details make such a stream
repeatable, and this module takes care of both:

* a file must appear *whole*: it is written in a staging folder beside the watched one and then
  moved in with ``os.replace`` (one atomic rename on the same file system), so Spark never lists a
  half-written file;
* files are taken in modification-time order, so every file gets its own, increasing modification
  time (one minute apart, from a fixed date): "the next file" means the same file on every run.

Events are clicks in a small shop (``view``, ``cart``, ``purchase``). Each has an *event time* (when
it happened, on the user's device) and an *arrival* order (when the collector received it). Most
events arrive within seconds; a chosen share arrives late, up to ``max_lateness_s`` after it happened,
and a chosen share is delivered twice (queues deliver at least once). Everything is deterministic in
the seed, so hidden tests can ask for fresh streams and pandas can compute the expected answers.

``watermark_model`` is the reference for late data: which rows a windowed aggregation with a
watermark drops and when each window is emitted in append mode, computed batch by batch with pandas.
``tests/test_module_04.py`` checks it against Spark.

numpy and pandas are imported only when a generator runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

EVENT_SCHEMA = (
    "event_id STRING, user_id BIGINT, action STRING, amount DOUBLE, event_time TIMESTAMP, attempt INT"
)
"""The events' schema as a Spark DDL string (``spark.readStream.schema(EVENT_SCHEMA)``)."""
EVENT_FIELDS = ("event_id", "user_id", "action", "amount", "event_time", "attempt")
ACTIONS = ("view", "cart", "purchase")
ACTION_WEIGHTS = (0.6, 0.25, 0.15)
START = "2024-05-01 09:00:00"
MTIME_START = 1_714_550_400  # 2024-05-01 08:00 UTC: file k gets this + 60 k seconds
USER_SCHEMA = "user_id BIGINT, name STRING, tier STRING"
TIERS = ("free", "plus", "pro")

LATE_FIXTURE = (
    (("a", "12:01"), ("b", "12:04"), ("c", "12:12")),
    (("d", "12:03"), ("e", "12:26")),
    (("f", "12:08"), ("g", "12:14"), ("h", "12:31")),
    (("i", "12:05"), ("j", "12:13"), ("k", "12:40")),
)
"""A hand-made stream of four files (event id, event time on 2024-05-01) for the late-data table."""
LATE_FIXTURE_DAY = "2024-05-01"


def make_events(
    n_events: int,
    seed: int = 0,
    n_users: int = 40,
    start: str = START,
    seconds_apart: float = 6.0,
    late: float = 0.1,
    max_lateness_s: int = 900,
    duplicates: float = 0.0,
) -> pd.DataFrame:
    """Events in arrival order: ``event_id, user_id, action, amount, event_time, attempt``.

    Event k arrives ``k * seconds_apart`` seconds after ``start``. An on-time event happened 0-20 s
    before it arrived; a late one (share ``late``) 1-``max_lateness_s`` s before. ``amount`` is set
    for purchases only (null otherwise). A share ``duplicates`` of the rows are second deliveries of
    an earlier event: same id, user, action, amount and event time, ``attempt`` 2, arriving later.
    Event times are whole seconds.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 4])
    n_copies = int(round(n_events * duplicates))
    n_first = n_events - n_copies
    arrival = np.arange(n_first) * seconds_apart
    delay = rng.integers(0, 21, n_first).astype(float)
    is_late = rng.random(n_first) < late
    delay[is_late] = rng.integers(1, max_lateness_s + 1, int(is_late.sum()))
    event_s = np.floor(arrival - delay)
    action = rng.choice(ACTIONS, n_first, p=ACTION_WEIGHTS)
    amount = np.where(action == "purchase", np.round(rng.gamma(2.0, 12.0, n_first) + 1, 2), np.nan)
    first = pd.DataFrame({
        "event_id": [f"e{seed:03d}-{k:05d}" for k in range(n_first)],
        "user_id": rng.integers(1, n_users + 1, n_first).astype("int64"),
        "action": action,
        "amount": amount,
        "event_time": pd.Timestamp(start) + pd.to_timedelta(event_s, unit="s"),
        "attempt": np.ones(n_first, dtype="int64"),
        "_arrival": arrival,
    })
    if n_copies:
        originals = rng.choice(n_first, n_copies, replace=n_copies > n_first)
        copies = first.iloc[originals].copy()
        copies["attempt"] = 2
        # a re-delivery comes a little later than the first delivery (up to 2 minutes)
        copies["_arrival"] = copies["_arrival"] + rng.uniform(1, 120, n_copies)
        first = pd.concat([first, copies])
    events = first.sort_values("_arrival", kind="stable").drop(columns="_arrival")
    return events.reset_index(drop=True)


def make_users(n_users: int, seed: int = 0) -> pd.DataFrame:
    """The users dimension table for stream-static joins: ``user_id`` (1..n), ``name``, ``tier``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, 5])
    return pd.DataFrame({
        "user_id": np.arange(1, n_users + 1, dtype="int64"),
        "name": [f"user{u:03d}" for u in range(1, n_users + 1)],
        "tier": rng.choice(TIERS, n_users, p=(0.6, 0.3, 0.1)),
    })


def split_files(events: pd.DataFrame, n_files: int) -> list[pd.DataFrame]:
    """Cut events (in arrival order) into ``n_files`` consecutive chunks of near-equal size."""
    size = len(events)
    bounds = [round(k * size / n_files) for k in range(n_files + 1)]
    return [events.iloc[bounds[k]:bounds[k + 1]] for k in range(n_files)]


def to_json_lines(frame: pd.DataFrame) -> str:
    """One JSON object a line; timestamps as ``2024-05-01T09:00:03``; null fields left out."""
    lines = []
    for row in frame.to_dict("records"):
        record = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            elif hasattr(value, "item"):  # numpy scalars
                value = value.item()
            record[key] = value
        lines.append(json.dumps(record))
    return "\n".join(lines) + ("\n" if lines else "")


def drop_file(folder: str | os.PathLike[str], name: str, text: str, mtime: float) -> Path:
    """Write ``text`` to ``folder/name`` atomically, with modification time ``mtime``.

    The file is written in ``.staging/`` beside ``folder`` (same file system), given its time, then
    moved in by ``os.replace``: a reader listing ``folder`` sees either no file or the whole file.
    """
    folder = Path(folder)
    staging = folder.parent / f".{folder.name}.staging"
    staging.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = staging / name
    temporary.write_text(text, encoding="utf-8")
    os.utime(temporary, (mtime, mtime))
    target = folder / name
    os.replace(temporary, target)
    return target


@dataclass
class EventFeed:
    """A folder that receives event files one drop at a time, as a collector would write them.

    ``files[k]`` holds the events of file k; ``drop()`` moves the next file(s) in. ``dropped`` says
    how many files are in the folder so far, ``dropped_events()`` what they hold.
    """

    folder: Path
    files: list[pd.DataFrame]
    prefix: str = "events"
    dropped: int = 0
    paths: list[Path] = field(default_factory=list)

    def drop(self, n: int | None = None) -> list[Path]:
        """Move the next ``n`` files into the folder (all remaining ones if ``n`` is None)."""
        last = len(self.files) if n is None else min(len(self.files), self.dropped + n)
        new = []
        for k in range(self.dropped, last):
            name = f"{self.prefix}-{k:04d}.json"
            new.append(drop_file(self.folder, name, to_json_lines(self.files[k]), MTIME_START + 60 * k))
        self.dropped = last
        self.paths.extend(new)
        return new

    def dropped_events(self) -> pd.DataFrame:
        """The events of the files dropped so far, in arrival order (a copy)."""
        import pandas as pd

        if not self.dropped:
            return self.files[0].iloc[:0].copy()
        return pd.concat(self.files[: self.dropped]).reset_index(drop=True)

    @property
    def events(self) -> pd.DataFrame:
        """All events of the feed, dropped or not, in arrival order."""
        import pandas as pd

        return pd.concat(self.files).reset_index(drop=True)

    def clear(self) -> None:
        """Delete the folder and its staging folder (a new run starts empty)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.folder.parent / f".{self.folder.name}.staging", ignore_errors=True)
        self.dropped = 0
        self.paths = []


def event_feed(
    folder: str | os.PathLike[str], n_events: int, n_files: int, seed: int = 0, drop: bool = True, **options
) -> EventFeed:
    """``make_events(n_events, seed, **options)`` cut into ``n_files`` files; all dropped unless ``drop=False``."""
    feed = EventFeed(Path(folder), split_files(make_events(n_events, seed=seed, **options), n_files))
    if drop:
        feed.drop()
    return feed


def late_fixture() -> list[pd.DataFrame]:
    """``LATE_FIXTURE`` as one small frame per file: ``event_id, user_id, action, amount, event_time, attempt``."""
    import pandas as pd

    files = []
    for rows in LATE_FIXTURE:
        files.append(pd.DataFrame({
            "event_id": [event_id for event_id, _ in rows],
            "user_id": [1] * len(rows),
            "action": ["view"] * len(rows),
            "amount": [float("nan")] * len(rows),
            "event_time": [pd.Timestamp(f"{LATE_FIXTURE_DAY} {hhmm}:00") for _, hhmm in rows],
            "attempt": [1] * len(rows),
        }))
    return files


# --- the reference model of watermarks and late data -------------------------------------------------


@dataclass
class WatermarkRun:
    """What a windowed count with a watermark does, batch by batch (see ``watermark_model``)."""

    watermarks: list[pd.Timestamp]
    """the watermark of each batch, the no-data batch at the end included (the first is the epoch)"""
    dropped: list[str]
    """ids of the rows dropped as too late (from at least one of their windows)"""
    emitted: pd.DataFrame
    """append mode's output: ``window_start, window_end, count, batch`` (the batch that emitted it)"""
    final: pd.DataFrame
    """every window's count over the kept rows: ``window_start, window_end, count``"""

    @property
    def n_batches(self) -> int:
        """Batches Spark runs: one per file, plus one without data if the watermark moved at the end."""
        return len(self.watermarks)


def window_starts(time: pd.Timestamp, window: pd.Timedelta, slide: pd.Timedelta) -> list[pd.Timestamp]:
    """The starts of the windows (length ``window``, every ``slide`` from the epoch) that hold ``time``."""
    import pandas as pd

    epoch = pd.Timestamp(0)
    start = epoch + ((time - epoch) // slide) * slide
    starts = []
    while start + window > time:
        starts.append(start)
        start -= slide
    return sorted(starts)


def watermark_model(
    batches: list[pd.DataFrame],
    delay: str,
    window: str,
    slide: str | None = None,
    time_column: str = "event_time",
    id_column: str = "event_id",
) -> WatermarkRun:
    """Spark's windowed count with ``withWatermark(time_column, delay)``, batch by batch, in pandas.

    The rules, measured on Spark 4.3 (one stream, one stateful operator):

    * the watermark of batch k is ``max(event time in batches 0..k-1) - delay`` (never lower than the
      one before); batch 0's is the epoch;
    * append mode emits a window, once, in the first batch whose watermark is at or past its end
      (state for it is dropped then);
    * a row is dropped from a window as too late when that window's end is at or before the watermark
      of the batch *before* (Spark filters late input with the previous batch's watermark and evicts
      state with the current one, so that chained stateful operators agree): a row older than the
      watermark still counts in a window that was open, and a window can be emitted with a row that
      arrived in the same batch;
    * after the last file Spark runs one more batch without data when the watermark moved; windows
      ending after the final watermark are never emitted in append mode.
    """
    import pandas as pd

    window_td = pd.Timedelta(window)
    slide_td = pd.Timedelta(slide) if slide else window_td
    delay_td = pd.Timedelta(delay)
    epoch = pd.Timestamp(0)
    watermark, previous = epoch, epoch
    max_seen = None
    watermarks, dropped = [], []
    counts: dict[pd.Timestamp, int] = {}
    emitted_rows = []
    emitted: set[pd.Timestamp] = set()

    def run_batch(k: int, batch: pd.DataFrame | None) -> None:
        watermarks.append(watermark)
        if batch is not None:
            for row_id, time in zip(batch[id_column], batch[time_column], strict=True):
                starts = window_starts(time, window_td, slide_td)
                kept = [s for s in starts if s + window_td > previous]
                if len(kept) < len(starts):
                    dropped.append(row_id)
                for s in kept:
                    counts[s] = counts.get(s, 0) + 1
        for start in sorted(counts):
            if start not in emitted and start + window_td <= watermark:
                emitted.add(start)
                emitted_rows.append((start, start + window_td, counts[start], k))

    for k, batch in enumerate(batches):
        run_batch(k, batch)
        if len(batch):
            batch_max = batch[time_column].max()
            max_seen = batch_max if max_seen is None else max(max_seen, batch_max)
        previous = watermark
        if max_seen is not None:
            watermark = max(watermark, max_seen - delay_td)
    if watermarks and watermark > watermarks[-1]:
        run_batch(len(batches), None)
    columns = ["window_start", "window_end", "count"]
    final = pd.DataFrame([(s, s + window_td, c) for s, c in sorted(counts.items())], columns=columns)
    return WatermarkRun(
        watermarks=watermarks,
        dropped=dropped,
        emitted=pd.DataFrame(emitted_rows, columns=[*columns, "batch"]),
        final=final,
    )


# --- running a query to the end, for checks and examples ----------------------------------------------

_query_serial = 0


def drain(frame, output_mode: str = "append", scratch: str | os.PathLike[str] | None = None, name: str | None = None):
    """Run a streaming DataFrame over everything available now into a memory table; return (rows, query).

    The query gets its own checkpoint folder (under ``scratch``, else a new temporary folder) and a
    query name never used before in this process; it runs with ``trigger(availableNow=True)``, is
    awaited, and is always stopped. ``rows`` is the memory table as a pandas DataFrame, ``query``
    the stopped query (its ``recentProgress`` stays readable).
    """
    import tempfile
    import uuid

    global _query_serial
    _query_serial += 1
    name = name or f"drained_{_query_serial}_{uuid.uuid4().hex[:6]}"
    checkpoint = tempfile.mkdtemp(prefix=f"{name}-", dir=scratch)
    query = (frame.writeStream.format("memory").queryName(name).outputMode(output_mode)
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    try:
        query.awaitTermination()
    finally:
        query.stop()
    rows = frame.sparkSession.table(name).toPandas()
    return rows, query
