"""Usage per caller: requests, errors, characters in, audio seconds out; kept in SQLite; daily quotas.

Every metered request (the API routes, once the guard knows the caller) is counted when its response
is complete. The counts go three ways:

- into ``usage.sqlite3`` in the data directory, as totals per caller and UTC hour (one row per
  caller and hour, so the file grows with callers x hours, not with requests). A writer thread owns
  the file; the event loop only queues. Reports (``GET /v1/usage``, ``indextts2 serve usage``)
  read it, so they survive restarts;
- into ``/metrics`` counters labelled by caller: the first ``metrics_callers`` callers seen get a
  label of their own, everyone after them is counted as ``other`` (labels never move, so each
  series only grows, as a counter must, and the number of series stays bounded);
- into today's audio seconds per caller, for the daily quotas (read back from the file at start).

A quota is checked when a synthesis is admitted: a caller that has used its audio seconds for the
UTC day gets 429 ``quota_exceeded`` until midnight UTC. A request admitted just under the quota
finishes, so a caller can overshoot by at most what its requests in flight produce.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from indextts2.errors import ConfigError, InvalidInput
from indextts2.server.context import RequestContext
from indextts2.server.errors import QuotaExceeded

__all__ = ["CallerUsage", "UsageMeter", "UsageReport", "UsageStore", "parse_time"]

logger = logging.getLogger(__name__)

HOUR = 3600
DAY = 86400
OTHER = "other"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    hour          INTEGER NOT NULL,  -- UTC hours since 1970-01-01
    caller        TEXT    NOT NULL,  -- key:NAME, jwt:SUBJECT, anonymous
    requests      INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    characters    INTEGER NOT NULL DEFAULT 0,
    audio_seconds REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, caller)
) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO usage (hour, caller, requests, errors, characters, audio_seconds) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, caller) DO UPDATE SET
    requests = requests + excluded.requests,
    errors = errors + excluded.errors,
    characters = characters + excluded.characters,
    audio_seconds = audio_seconds + excluded.audio_seconds
"""
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CallerUsage:
    """One caller's totals over a window."""

    caller: str
    requests: int = 0
    errors: int = 0
    characters: int = 0
    audio_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["audio_seconds"] = round(self.audio_seconds, 3)
        return data


@dataclass(frozen=True)
class UsageReport:
    """Totals per caller between ``since`` and ``until`` (epoch seconds, whole UTC hours)."""

    since: float
    until: float
    callers: list[CallerUsage]

    @property
    def total(self) -> CallerUsage:
        return CallerUsage(
            "total",
            requests=sum(c.requests for c in self.callers),
            errors=sum(c.errors for c in self.callers),
            characters=sum(c.characters for c in self.callers),
            audio_seconds=sum(c.audio_seconds for c in self.callers),
        )

    def to_json(self) -> dict[str, Any]:
        total = self.total.to_json()
        del total["caller"]
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "resolution_seconds": HOUR,
            "callers": [c.to_json() for c in self.callers],
            "total": total,
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": HOUR, "d": DAY, "w": 7 * DAY}


def parse_time(text: str, *, now: float) -> float:
    """A point in time, epoch seconds: ``now``, a duration ago (``90m``, ``24h``, ``7d``, ``2w``), or
    ISO 8601 (``2026-12-01``, ``2026-12-01T08:00:00Z``; without an offset it is UTC).

    Raises:
        InvalidInput: none of these.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    match = _DURATION.match(value.lower())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a time: use 'now', a duration ago (90m, 24h, 7d, 2w) or an ISO 8601 "
            "date or time (2026-12-01, 2026-12-01T08:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class UsageStore:
    """The usage file: totals per caller and UTC hour."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.exists():
                raise ConfigError(
                    f"no usage has been recorded at {path} (a server writes it there as it serves "
                    "requests; --usage-db names another file)"
                )
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode = WAL")  # reports read while the server writes
                self._db.execute("PRAGMA synchronous = NORMAL")
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                self._db.executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(
                    f"cannot open the usage file {path}: {exc}; give a writable place with --usage-db"
                ) from exc
            if version > _SCHEMA_VERSION:
                raise ConfigError(
                    f"{path} was written by a newer indextts2 (schema {version}); upgrade, or move the file"
                )
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, rows: list[tuple[int, str, int, int, int, float]]) -> None:
        """Add ``(hour, caller, requests, errors, characters, audio_seconds)`` rows in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_UPSERT, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def report(self, since: float, until: float, caller: str | None = None) -> UsageReport:
        """Totals per caller over the whole UTC hours from ``since`` to ``until``."""
        first, end = math.floor(since / HOUR), math.ceil(until / HOUR)
        query = (
            "SELECT caller, SUM(requests), SUM(errors), SUM(characters), SUM(audio_seconds) FROM usage "
            "WHERE hour >= ? AND hour < ?"
        )
        parameters: list[Any] = [first, end]
        if caller is not None:
            query += " AND caller = ?"
            parameters.append(caller)
        query += " GROUP BY caller ORDER BY SUM(audio_seconds) DESC, SUM(requests) DESC, caller"
        with self._lock:
            rows = self._db.execute(query, parameters).fetchall()
        callers = [CallerUsage(str(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows]
        return UsageReport(since=first * HOUR, until=end * HOUR, callers=callers)

    def audio_seconds_since(self, hour: int) -> dict[str, float]:
        with self._lock:
            rows = self._db.execute(
                "SELECT caller, SUM(audio_seconds) FROM usage WHERE hour >= ? GROUP BY caller", (hour,)
            ).fetchall()
        return {str(caller): float(seconds) for caller, seconds in rows}


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class UsageMeter:
    """Counts what each caller uses; see the module's docstring.

    Args:
        path: the SQLite file.
        daily_quota: audio seconds per caller and UTC day (None: none).
        caller_quotas: audio seconds per day for named callers, in place of ``daily_quota``.
        registry: where the per-caller counters go (the server's Prometheus registry).
        metrics_callers: callers with a label of their own; later ones count as ``other``.
        clock: epoch seconds (tests move it).
    """

    def __init__(
        self,
        path: Path,
        *,
        daily_quota: float | None = None,
        caller_quotas: Mapping[str, float] | None = None,
        registry: CollectorRegistry | None = None,
        metrics_callers: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.daily_quota = daily_quota
        self.caller_quotas = dict(caller_quotas or {})
        self._clock = clock
        self._store: UsageStore | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._day = -1
        self._today: dict[str, float] = {}
        self._labels: dict[str, str] = {}
        self._metrics_callers = metrics_callers
        registry = registry or CollectorRegistry()
        labels = ["caller"]
        self._requests = Counter(
            "indextts2_caller_requests", "API requests per caller", labels, registry=registry
        )
        self._errors = Counter(
            "indextts2_caller_errors",
            "API requests answered with an error, per caller",
            labels,
            registry=registry,
        )
        self._characters = Counter(
            "indextts2_caller_characters",
            "Characters of text to speak, per caller",
            labels,
            registry=registry,
        )
        self._audio = Counter(
            "indextts2_caller_audio_seconds",
            "Seconds of audio produced, per caller",
            labels,
            registry=registry,
        )

    @property
    def quotas(self) -> bool:
        return self.daily_quota is not None or bool(self.caller_quotas)

    # ---- lifecycle

    def start(self) -> None:
        """Open the file, read today's audio seconds back, start the writer (blocking: off the loop)."""
        if self._store is not None:
            return
        self._store = UsageStore(self.path)
        day = self._current_day()
        self._today = self._store.audio_seconds_since(day * 24)
        self._day = day
        self._writer = threading.Thread(target=self._write, name="indextts2-usage", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Write what is queued and close the file (blocking)."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(30)
            self._writer = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # ---- counting (event loop)

    def record(self, context: RequestContext) -> None:
        """Count a finished request (a listener of the request context layer)."""
        if not context.metered or context.caller is None:
            return
        caller = context.caller
        error = 1 if context.status >= 400 else 0
        label = self._label(caller)
        self._requests.labels(label).inc()
        if error:
            self._errors.labels(label).inc()
        if context.characters:
            self._characters.labels(label).inc(context.characters)
        if context.audio_seconds:
            self._audio.labels(label).inc(context.audio_seconds)
            self._roll_day()
            self._today[caller] = self._today.get(caller, 0.0) + context.audio_seconds
        hour = int(self._clock() // HOUR)
        self._queue.put((hour, caller, 1, error, context.characters, context.audio_seconds))

    def _label(self, caller: str) -> str:
        label = self._labels.get(caller)
        if label is None:
            label = caller if len(self._labels) < self._metrics_callers else OTHER
            if label != OTHER:
                self._labels[caller] = label
        return label

    # ---- quotas

    def quota_of(self, caller: str) -> float | None:
        """The caller's audio seconds per UTC day (None: unlimited)."""
        return self.caller_quotas.get(caller, self.daily_quota)

    def used_today(self, caller: str) -> float:
        self._roll_day()
        return self._today.get(caller, 0.0)

    def check_quota(self, caller: str) -> None:
        """Raise when ``caller`` has used its audio seconds for today.

        Raises:
            QuotaExceeded: with Retry-After at midnight UTC.
        """
        quota = self.quota_of(caller)
        if quota is None:
            return
        used = self.used_today(caller)
        if used < quota:
            return
        wait = (self._current_day() + 1) * DAY - self._clock()
        hours, minutes = int(wait // HOUR), int(wait % HOUR // 60)
        raise QuotaExceeded(
            f"{caller} has used {used:.0f} of its {quota:g} seconds of audio for today (UTC); the quota "
            f"renews at 00:00 UTC, in {hours} h {minutes} min (ask the operator for a larger one)",
            retry_after=wait,
        )

    def _current_day(self) -> int:
        return int(self._clock() // DAY)

    def _roll_day(self) -> None:
        day = self._current_day()
        if day != self._day:
            self._day = day
            self._today = {}

    # ---- reports

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything counted so far is in the file (blocking)."""
        if self._writer is None:
            return
        marker = _Flush()
        self._queue.put(marker)
        marker.done.wait(timeout)

    def report(self, since: float, until: float, caller: str | None = None) -> UsageReport:
        """Totals per caller (blocking: call it off the event loop)."""
        self.flush()
        if self._store is None:
            raise RuntimeError("the usage meter is not started")
        return self._store.report(since, until, caller)

    # ---- the writer thread

    def _write(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 1000:
                    batch.append(self._queue.get_nowait())
            rows: dict[tuple[int, str], list[Any]] = {}
            markers: list[_Flush] = []
            for item in batch:
                if item is None:
                    stopping = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    hour, caller, *counts = item
                    totals = rows.setdefault((hour, caller), [0, 0, 0, 0.0])
                    for index, value in enumerate(counts):
                        totals[index] += value
            if rows and self._store is not None:
                try:
                    self._store.add([(hour, caller, *totals) for (hour, caller), totals in rows.items()])
                except sqlite3.Error as exc:
                    logger.error("cannot record usage in %s: %s", self.path, exc)
            for marker in markers:
                marker.done.set()
