"""The SQLite store of items and interaction events: the only module that speaks SQL.

Why SQLite: an embedding app already has a file system and nothing else; SQLite gives it
transactions (an ingest either fully lands or leaves the store as it was), WAL mode (readers
never wait for the writer) and an index that answers "history of user U, newest first"
without reading anyone else's events.

Sharing: one ``Store`` may be used from many threads (writes go through one connection
behind a lock, reads through one connection per thread, so no thread ever reads another's
uncommitted rows and a write waiting for the file's write lock never holds up a read) and several processes
may open the same file (WAL, a bounded busy timeout, and retries when SQLite still reports
the database locked).

Dedupe rule: an event is identified by (user, item, event type, timestamp). Adding the same
event again is ignored, so re-ingesting a file never doubles the data. Events without a
timestamp count as timestamp "unknown": repeating one of those adds nothing either; give the
repetition count as a weight instead.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import sqlite_utils

from . import validate
from .errors import InputError, StoreError, UnknownItemError

SCHEMA_VERSION = 2

# (user_id, item_id, event, weight, ts); ts is seconds since the epoch or None.
EventRow = tuple[str, str, str, float, "float | None"]
# (item_id, title, metadata)
ItemRow = tuple[str, "str | None", dict]
# (experiment, variant, request_id, user_id, item_id, position, ts)
ImpressionRow = tuple[str, str, str, str, str, int, float]


class VariantTotals(NamedTuple):
    """One variant's attributed counts, with the per-user sums that variances need.

    ``clicked``: impressions with an attributed click-like outcome; ``converted``: users
    with an attributed conversion. The sums of squares and products run over users
    (n = a user's impressions, c = their clicked impressions), which is what the
    user-level (delta method) variance of a ratio of sums needs.
    """

    variant: str
    users: int
    impressions: int
    clicked: int
    converted: int
    first_ts: float
    last_ts: float
    sum_nn: float
    sum_cc: float
    sum_nc: float

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    title TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    weight REAL NOT NULL,
    ts REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (user_id, item_id, event, ifnull(ts, -1));
CREATE INDEX IF NOT EXISTS events_user_history ON events (user_id, ts DESC, item_id);
CREATE INDEX IF NOT EXISTS events_item ON events (item_id);
"""
# Version 2 adds A/B experiments (see the "experiments" section of ``Store``): what was
# shown to whom, so outcomes can be attributed to it. Additive, so a version 1 store is
# upgraded in place, in one transaction, when it is opened.
_EXPERIMENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS impressions (
    id INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS impressions_attribution ON impressions (experiment, user_id, item_id, ts);
CREATE INDEX IF NOT EXISTS impressions_variant ON impressions (experiment, variant, ts);
"""

# Retired items are read after every write, so they have their own (tiny) partial index;
# version 1 stores made before it existed get it with the upgrade.
_INACTIVE_INDEX = "CREATE INDEX IF NOT EXISTS items_inactive ON items (item_id) WHERE active = 0;"

# The cold-start ranking (distinct users per item), kept by triggers in the same transaction
# as every event write, so the first unknown user's request reads ``items`` rows instead of
# a GROUP BY over every event (25 s over 1.1M events on a loaded 2-core machine, while a
# big ingest ran). Triggers live in the file, so any writer (an older edgerec, the sqlite3
# shell) keeps it right. Additive: a store without it gets it, filled once, when opened
# for writing; until then (read-only file, busy) ``popular`` counts as before. The cost is
# on writes: a 200K-row ingest took 1.9x as long (no index on ``users``: 3.7x with one).
_POPULARITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS item_popularity (item_id TEXT PRIMARY KEY, users INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO item_popularity SELECT item_id, COUNT(DISTINCT user_id) FROM events GROUP BY item_id;
CREATE TRIGGER IF NOT EXISTS events_popularity_insert AFTER INSERT ON events
WHEN NOT EXISTS (SELECT 1 FROM events WHERE user_id = new.user_id AND item_id = new.item_id AND id <> new.id)
BEGIN
    INSERT INTO item_popularity VALUES (new.item_id, 1)
    ON CONFLICT (item_id) DO UPDATE SET users = users + 1;
END;
CREATE TRIGGER IF NOT EXISTS events_popularity_delete AFTER DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM events WHERE user_id = old.user_id AND item_id = old.item_id)
BEGIN
    UPDATE item_popularity SET users = users - 1 WHERE item_id = old.item_id;
END;
CREATE TRIGGER IF NOT EXISTS events_popularity_update AFTER UPDATE OF user_id, item_id ON events
WHEN old.user_id IS NOT new.user_id OR old.item_id IS NOT new.item_id
BEGIN
    UPDATE item_popularity SET users = users - 1 WHERE item_id = old.item_id AND NOT EXISTS (
        SELECT 1 FROM events WHERE user_id = old.user_id AND item_id = old.item_id);
    INSERT INTO item_popularity SELECT new.item_id, 1 WHERE NOT EXISTS (
        SELECT 1 FROM events WHERE user_id = new.user_id AND item_id = new.item_id AND id <> new.id)
    ON CONFLICT (item_id) DO UPDATE SET users = users + 1;
END;
"""

# Bumped by every catalogue write, so catalogue-derived caches (retired items, filter
# results) survive the far more frequent event writes.
_ITEMS_VERSION = "items_version"

# Keys that also match their plural list: where={"category": "Comedy"} finds items whose
# metadata has "categories": ["Comedy", ...] (what `edgerec items` writes).
PLURALS = {"category": "categories", "genre": "genres", "tag": "tags"}

# Seconds a write waits for another connection's write lock before giving up.
BUSY_TIMEOUT = 30.0


def _is_busy(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


def _retry(op, path: Path, timeout: float):
    """Run ``op``, retrying while SQLite reports the file locked, for at most ``timeout`` s.

    SQLite's busy timeout already makes a statement wait; these retries cover the cases
    where it gives up at once (a checkpoint or WAL recovery in another process). A wait
    longer than ``timeout`` is a ``StoreError`` saying so, never a hang.
    """
    deadline = time.monotonic() + timeout
    for attempt in itertools.count():
        try:
            return op()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreError(f"{path}: another connection held the store's write lock for "
                                 f"over {timeout:g} s (a large ingest?); nothing was written, "
                                 "retry later") from None
            time.sleep(min(0.02 * 2 ** attempt, 0.5))


def fault(exc: sqlite3.Error, path: Path) -> StoreError:
    """One line saying what went wrong with the store file and what to do about it."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        advice = ("the store is read-only here: check the permissions of the file and of its "
                  "directory (SQLite writes -wal and -shm files beside it)")
    elif "full" in text:
        advice = "the disk is full: free some space and retry; nothing was written"
    elif "unable to open" in text:
        advice = "cannot open the store file: check the path and the directory's permissions"
    elif any(word in text for word in ("malformed", "not a database", "disk I/O", "corrupt")):
        advice = f"not an edgerec store, or a damaged one: run `edgerec check {path}`"
    elif _is_busy(exc):
        advice = "the store stayed locked by another connection; retry later"
    else:
        advice = "SQLite failed"
    return StoreError(f"{path}: {advice} ({text})")


@contextmanager
def _faults(path: Path) -> Iterator[None]:
    """Raise SQLite's errors as ``StoreError`` (see ``fault``)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise fault(exc, path) from None


class _Reader(sqlite3.Connection):
    """A thread's read connection (a subclass only so that a WeakSet can hold it)."""


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False,
                           isolation_level=None)
    _configure(conn, busy_timeout)
    return conn


def _configure(conn: sqlite3.Connection, busy_timeout: float) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    # WAL makes NORMAL sync crash-safe (a power cut may lose the last commits, never
    # corrupt); a 64 MiB page cache keeps bulk ingests from thrashing the indexes.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    if not _has_math(conn):  # SQLite built without its math functions
        conn.create_function("exp", 1, math.exp, deterministic=True)


class Store:
    """A store file opened for reading and writing.

    ``Store.open(path)`` creates the file when ``create`` is true; otherwise a missing file
    is an error, so a typo in a path never silently yields an empty store.

    Writes go through one connection behind a lock; each reading thread has its own
    connection. A write waiting for another process's write lock (up to ``busy_timeout``
    seconds, then ``StoreError``) therefore never holds up this process's reads, which in
    WAL mode go on from the last committed snapshot meanwhile, and a slow read never
    holds up another thread's. ``db`` is one more connection: the version counter's.
    """

    def __init__(self, path: Path, db: sqlite_utils.Database, writer: sqlite3.Connection,
                 busy_timeout: float = BUSY_TIMEOUT):
        self.path = path
        self.db = db  # the read connection
        self._writer = writer
        self.busy_timeout = busy_timeout
        self._commits = 0
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._local = threading.local()  # each thread's own read connection
        self._readers: weakref.WeakSet = weakref.WeakSet()

    @classmethod
    def open(cls, path: str | Path, create: bool = True,
             busy_timeout: float = BUSY_TIMEOUT) -> "Store":
        path = Path(path)
        if not create and not path.exists():
            raise StoreError(f"{path}: store not found (create one with `edgerec ingest`)")
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not a store file")
        writer = reader = None
        try:
            writer = _connect(path, busy_timeout)
            store = cls(path, None, writer, busy_timeout)
            store._check_schema(create)
            reader = _connect(path, busy_timeout)
            store.db = sqlite_utils.Database(reader)
        except sqlite3.DatabaseError as exc:
            for conn in (writer, reader):
                if conn is not None:
                    conn.close()
            raise fault(exc, path) from None
        except BaseException:
            for conn in (writer, reader):
                if conn is not None:
                    conn.close()
            raise
        return store

    def _check_schema(self, create: bool) -> None:
        conn = self._writer
        tables = {r[0] for r in _retry(lambda: conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall(), self.path,
            self.busy_timeout)}
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            found = row[0] if row else None
            if found == "1":
                self._upgrade(_INACTIVE_INDEX + _EXPERIMENT_SCHEMA + _POPULARITY_SCHEMA)
                return
            if found != str(SCHEMA_VERSION):
                raise StoreError(f"{self.path}: store schema version {found}, this edgerec "
                                 f"reads version {SCHEMA_VERSION}")
            if "item_popularity" not in tables:
                self._add_popularity()
            return
        if tables:
            raise StoreError(f"{self.path}: not an edgerec store (tables: {', '.join(sorted(tables))})")
        if not create:
            raise StoreError(f"{self.path}: empty file, not an edgerec store")
        # Several processes may create the same new store at once: every statement is
        # idempotent, and BEGIN IMMEDIATE (with retries) takes turns.
        _retry(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.path, self.busy_timeout)
        self._script(_SCHEMA + _INACTIVE_INDEX + _EXPERIMENT_SCHEMA + _POPULARITY_SCHEMA
                     + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');")

    def _upgrade(self, additions: str) -> None:
        """Bring an older store to ``SCHEMA_VERSION`` in place: all of it or nothing.

        The additions only create tables and indexes (IF NOT EXISTS), so two processes
        upgrading the same file at once both succeed; BEGIN IMMEDIATE serialises them.
        """
        try:
            self._script(additions + f"UPDATE meta SET value = '{SCHEMA_VERSION}' "
                                     "WHERE key = 'schema_version';")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot upgrade the store to schema version "
                             f"{SCHEMA_VERSION} ({exc})") from None

    def _add_popularity(self) -> None:
        """Give a store made before it the maintained popularity table (one GROUP BY, once).

        Optional: where the file cannot be written now (read-only, another writer busy past
        the timeout) the store opens as it is and ``popular`` counts over the events."""
        try:
            self._script(_POPULARITY_SCHEMA)
        except (sqlite3.Error, StoreError):
            pass

    def _script(self, sql: str) -> None:
        """Run DDL in one IMMEDIATE transaction on the write connection."""
        conn = self._writer

        def run():
            try:
                conn.executescript("BEGIN IMMEDIATE;" + sql + "COMMIT;")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        _retry(run, self.path, self.busy_timeout)

    def close(self) -> None:
        with self._write_lock, self._lock:
            self._writer.close()
            self.db.conn.close()
            for conn in list(self._readers):
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside (on the yielded write connection) commit together or not at all.

        The write lock is held until the end, so other threads never write into this
        transaction; they read through the other connection, which sees its rows only once
        committed. SQLite errors come out as ``StoreError`` (see ``fault``).
        """
        conn = self._writer
        with self._write_lock, _faults(self.path):
            _retry(lambda: conn.execute("BEGIN IMMEDIATE"), self.path, self.busy_timeout)
            try:
                yield conn
                _retry(lambda: conn.execute("COMMIT"), self.path, self.busy_timeout)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._commits += 1

    def _rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """A read on this thread's own connection (with retries while another process locks).

        One connection per thread, so a slow query (popularity over millions of events)
        never queues another thread's reads behind it; in WAL mode each read sees the last
        commit made before it started.
        """
        with _faults(self.path):
            conn = self._reader()
            return _retry(lambda: conn.execute(sql, params).fetchall(), self.path, self.busy_timeout)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _Reader(str(self.path), timeout=self.busy_timeout,
                                              check_same_thread=False, isolation_level=None)
            _configure(conn, self.busy_timeout)
            self._readers.add(conn)
        return conn

    def version(self) -> tuple[int, int]:
        """A value that changes whenever anyone commits to the store: the key for caches.

        SQLite's data_version counts commits by *other* connections (other processes
        included); commits on this connection are counted here.
        """
        with self._lock:
            return self.db.conn.execute("PRAGMA data_version").fetchone()[0], self._commits

    def items_version(self) -> int:
        """Changes with every catalogue write (items added, updated, retired)."""
        row = self._rows("SELECT value FROM meta WHERE key = ?", (_ITEMS_VERSION,))
        return int(row[0][0]) if row else 0

    def _bump_items_version(self) -> None:
        self._writer.execute(
            "INSERT INTO meta VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1", (_ITEMS_VERSION,))

    # -- writes ---------------------------------------------------------------------------

    def _write_many(self, sql: str, rows: Iterable) -> int:
        """``sql`` for every row, inside the caller's transaction; returns rows written
        (``rowcount`` leaves out what triggers wrote, such as ``item_popularity``)."""
        return self._writer.executemany(sql, rows).rowcount

    def add_events(self, rows: Iterable[EventRow]) -> int:
        """Insert events in one transaction; returns how many were new (duplicates skipped).

        Every row is checked (``edgerec.validate``); the first bad one raises ``InputError``
        naming its position and field, and nothing is written.
        """
        with self.transaction():
            return self._write_many("INSERT OR IGNORE INTO events (user_id, item_id, event, "
                                    "weight, ts) VALUES (?, ?, ?, ?, ?)",
                                    validate.rows(rows, validate.event, "event"))

    def add_items(self, rows: Iterable[ItemRow]) -> int:
        """Insert or update catalogue items in one transaction; returns how many were written.

        Checked like ``add_events``: metadata must be a JSON object of finite values.
        """
        with self.transaction():
            written = self._write_many(
                "INSERT INTO items (item_id, title, metadata) VALUES (?, ?, ?) "
                "ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, "
                "metadata = excluded.metadata",
                validate.rows(rows, validate.item, "item"))
            self._bump_items_version()
            return written

    def set_active(self, item_ids: Iterable[str], active: bool) -> int:
        """Retire items (``active=False``: never recommended again) or bring them back.

        Items without a catalogue row get one, so an item known only from events can be
        retired too; an id known from neither is an ``UnknownItemError`` (a typo must not
        create a phantom catalogue row), and nothing is changed. Returns how many were given.
        """
        if isinstance(item_ids, (str, bytes)):
            raise InputError("item_ids must be a list of ids, not one string")
        ids = [(i,) for i in validate.rows(item_ids, lambda v: validate.identifier(v, "item_id"),
                                           "item")]
        with self.transaction() as conn:
            unknown = [i for (i,) in ids if conn.execute(
                "SELECT EXISTS (SELECT 1 FROM items WHERE item_id = ?1) "
                "OR EXISTS (SELECT 1 FROM events WHERE item_id = ?1)", (i,)).fetchone()[0] == 0]
            if unknown:
                raise UnknownItemError(f"{len(unknown)} unknown item(s), e.g. {unknown[0]!r} (in "
                                       "neither the catalogue nor any event); nothing changed")
            conn.executemany("INSERT OR IGNORE INTO items (item_id) VALUES (?)", ids)
            conn.executemany(f"UPDATE items SET active = {int(bool(active))} WHERE item_id = ?", ids)
            self._bump_items_version()
        return len(ids)

    # -- reads ----------------------------------------------------------------------------

    # One row per user with the item ids as a JSON array: SQLite builds the list in C while
    # walking the (user, ts DESC) index, which is 2-4x faster than a Python row per event.
    # The index scan has no sort step, so the array keeps the index order: newest first.
    _HISTORIES = ("SELECT user_id, json_group_array(item_id) FROM events "
                  "INDEXED BY events_user_history WHERE user_id IN ({}) GROUP BY user_id")

    # One user: no GROUP BY (an aggregate over no rows still gives one row, "[]"), which
    # makes the first request of a user about a third faster.
    _HISTORY = ("SELECT json_group_array(item_id) FROM events "
                "INDEXED BY events_user_history WHERE user_id = ?")

    def history(self, user_id: str, limit: int | None = None) -> list[str]:
        """The user's item ids, newest first (all of them unless ``limit``)."""
        items = json.loads(self._rows(self._HISTORY, (user_id,))[0][0])
        return items if limit is None else items[:limit]

    def histories(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Histories of many users, newest first; users without events get []."""
        out: dict[str, list[str]] = {u: [] for u in user_ids}
        for start in range(0, len(user_ids), 500):  # stay under SQLite's parameter limit
            chunk = list(user_ids[start:start + 500])
            sql = self._HISTORIES.format(",".join("?" * len(chunk)))
            for user, items in self._rows(sql, chunk):
                out[user] = json.loads(items)
        return out

    # Users in id order, one page at a time (keyset: after the last user of the previous
    # page), each with its history newest first and its newest event's time: a whole store
    # streams through bounded memory, walking the (user, ts DESC) index once.
    _HISTORY_PAGE = ("SELECT user_id, json_group_array(item_id), MAX(ts) FROM events "
                     "INDEXED BY events_user_history WHERE user_id > ? "
                     "GROUP BY user_id ORDER BY user_id LIMIT ?")

    def history_pages(self, page: int = 10_000) -> Iterator[list[tuple[str, list[str], float | None]]]:
        """Every user with events as (user_id, history newest first, newest ts), in pages."""
        after = ""
        while True:
            rows = self._rows(self._HISTORY_PAGE, (after, page))
            if not rows:
                return
            yield [(user, json.loads(items), ts) for user, items, ts in rows]
            after = rows[-1][0]

    def newest_event_times(self, user_ids: Sequence[str]) -> dict[str, float | None]:
        """Each user's newest event time (users without events are absent)."""
        out: dict[str, float | None] = {}
        for start in range(0, len(user_ids), 500):  # stay under SQLite's parameter limit
            chunk = list(user_ids[start:start + 500])
            out.update(self._rows("SELECT user_id, MAX(ts) FROM events WHERE user_id IN "
                                  f"({','.join('?' * len(chunk))}) GROUP BY user_id", chunk))
        return out

    def user_count(self) -> int:
        """How many users have events."""
        return self._rows("SELECT COUNT(DISTINCT user_id) FROM events")[0][0]

    def longest_history(self) -> int:
        """The most events any one user has (0 for an empty store)."""
        return self._rows("SELECT ifnull(MAX(c), 0) FROM (SELECT COUNT(*) AS c FROM events "
                          "INDEXED BY events_user_history GROUP BY user_id)")[0][0]

    def max_event_id(self) -> int:
        """The newest event's id (0 when there is none).

        Events are append-only and ``id`` only grows, so events committed after this read
        have larger ids: what ``users_with_events_after`` finds.
        """
        return self._rows("SELECT ifnull(MAX(id), 0) FROM events")[0][0]

    def users_with_events_after(self, event_id: int) -> set[str]:
        """Users with an event whose id is above ``event_id`` (a range of the primary key).

        Deduplicated here: with DISTINCT, SQLite scans the whole (user, ts) index instead.
        """
        return {r[0] for r in self._rows("SELECT user_id FROM events WHERE id > ?", (event_id,))}

    def user_ids(self) -> list[str]:
        """Every user with at least one event, in a stable order."""
        return [r[0] for r in self._rows("SELECT DISTINCT user_id FROM events ORDER BY user_id")]

    def popular(self, n: int, exclude: Iterable[str] = (),
                half_life: float | None = None) -> list[tuple[str, float]]:
        """The n most popular active items, skipping ``exclude``.

        Popularity is the number of distinct users, or with ``half_life`` (seconds) the sum
        of event weights decayed by age: weight * 0.5 ** (age / half_life), the age counted
        from the newest event in the store (so a store of old data still ranks sensibly;
        events without a timestamp count as the oldest).
        """
        skip = set(exclude)
        if half_life is None and self._has_popularity():
            rows = self._rows(
                "SELECT p.item_id, p.users FROM item_popularity p LEFT JOIN items i "
                "ON i.item_id = p.item_id WHERE ifnull(i.active, 1) = 1 AND p.users > 0 "
                "ORDER BY p.users DESC, p.item_id LIMIT ?", [n + len(skip)])
            return [(item, score) for item, score in rows if item not in skip][:n]
        if half_life is None:
            score, params = "COUNT(DISTINCT e.user_id)", []
        else:
            if not half_life > 0:
                raise ValueError("half_life must be positive")
            score = ("SUM(e.weight * exp((ifnull(e.ts, (SELECT MIN(ts) FROM events)) - "
                     "(SELECT MAX(ts) FROM events)) * ?))")
            params = [math.log(2) / half_life]
        # One sequential pass over the table, then the join per item: reading every event
        # through the item index (and joining each one) was 2.5x slower over 1.1M events.
        rows = self._rows(
            f"SELECT a.item_id, a.score FROM (SELECT e.item_id, {score} AS score FROM events e "
            "NOT INDEXED GROUP BY e.item_id) a LEFT JOIN items i ON i.item_id = a.item_id "
            "WHERE ifnull(i.active, 1) = 1 ORDER BY a.score DESC, a.item_id LIMIT ?",
            params + [n + len(skip)])
        return [(item, score) for item, score in rows if item not in skip][:n]

    def _has_popularity(self) -> bool:
        """Whether the maintained ranking exists (see ``_POPULARITY_SCHEMA``)."""
        return bool(self._rows("SELECT 1 FROM sqlite_master WHERE name = 'item_popularity'"))

    def inactive_items(self) -> set[str]:
        """Retired item ids (``set_active(..., False)``): never to be recommended."""
        return {r[0] for r in self._rows("SELECT item_id FROM items WHERE active = 0")}

    def matching_items(self, where: dict) -> set[str]:
        """Active catalogue items whose metadata matches every ``key: value`` of ``where``.

        A key matches when the metadata value equals the value or is a list containing it;
        a list of values matches any of them; ``category``/``genre``/``tag`` also look in
        ``categories``/``genres``/``tags``. Comparison is exact (case included).
        """
        clauses, params = ["active = 1"], []
        for key, value in where.items():
            values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            if not values:
                return set()
            keys = [key] + ([PLURALS[key]] if key in PLURALS else [])
            marks = ",".join("?" * len(values))
            either = []
            for name in keys:
                if '"' in name or "\\" in name or "\x00" in name:
                    raise InputError(f"bad metadata key {name!r} in the filter")
                either.append(f"EXISTS (SELECT 1 FROM json_each(metadata, ?) WHERE value IN ({marks}))")
                params += [f'$."{name}"', *values]
            clauses.append("(" + " OR ".join(either) + ")")
        return {r[0] for r in self._rows(f"SELECT item_id FROM items WHERE {' AND '.join(clauses)}", params)}

    def newest_items(self) -> list[str]:
        """Active catalogue item ids, most recently added first (insertion order)."""
        return [r[0] for r in self._rows("SELECT item_id FROM items WHERE active = 1 ORDER BY rowid DESC")]

    def item_titles(self, item_ids: Iterable[str]) -> dict[str, str]:
        ids = list(item_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return {i: t for i, t in self._rows(
            f"SELECT item_id, title FROM items WHERE item_id IN ({marks}) AND title IS NOT NULL", ids)}

    def events_array(self) -> dict[str, np.ndarray]:
        """Every event as columns (user_id, item_id, event, weight, ts) for training."""
        rows = self._rows(
            "SELECT user_id, item_id, event, weight, ifnull(ts, 'nan') FROM events ORDER BY id")
        cols = list(zip(*rows)) if rows else [(), (), (), (), ()]
        return {
            "user_id": np.array(cols[0], dtype=object),
            "item_id": np.array(cols[1], dtype=object),
            "event": np.array(cols[2], dtype=object),
            "weight": np.array(cols[3], dtype=np.float64),
            "ts": np.array(cols[4], dtype=np.float64),
        }

    def integrity(self) -> list[str]:
        """SQLite's ``integrity_check`` (["ok"] when the file is sound) and the schema version."""
        try:
            with self._lock:
                problems = [r[0] for r in self.db.conn.execute("PRAGMA integrity_check")]
                version = self.db.conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        except sqlite3.DatabaseError as exc:  # too damaged to even check
            return [str(exc)]
        return problems if version == [(str(SCHEMA_VERSION),)] else problems + [
            f"schema version {version[0][0] if version else None}, expected {SCHEMA_VERSION}"]

    def summary(self) -> dict:
        (n_events, n_users, n_items, t0, t1), = self._rows(
            "SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT item_id), MIN(ts), MAX(ts) "
            "FROM events")
        return {"events": n_events, "users": n_users, "items": n_items,
                "catalogue_items": self._rows("SELECT COUNT(*) FROM items")[0][0],
                "first_ts": t0, "last_ts": t1}

    # -- experiments (A/B tests, schema version 2) ---------------------------------------
    # ``edgerec.experiment`` logs every served list here as impressions; outcomes are the
    # ordinary events. Attribution joins the two in SQL, so a report needs nothing but the
    # store file (the experiment's config is stored with it).

    def experiment_config(self, name: str) -> dict | None:
        """The config stored for experiment ``name``, or None when it was never opened here."""
        rows = self._rows("SELECT config FROM experiments WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def experiment_names(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT name FROM experiments ORDER BY name")]

    def save_experiment(self, name: str, config: dict) -> None:
        """Store an experiment's config (replacing an older one, keeping its creation time),
        so that reports read shares, control, outcomes and bundles from the store alone."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO experiments (name, config, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET config = excluded.config",
                (name, json.dumps(config, sort_keys=True), time.time()))

    def add_impressions(self, rows: Iterable[ImpressionRow]) -> int:
        """Log served items in one transaction (a list is logged whole or not at all)."""
        with self.transaction():
            return self._write_many(
                "INSERT INTO impressions (experiment, variant, request_id, user_id, item_id, "
                "position, ts) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    # One row per impression of the experiment with 0/1 flags ``clicked`` and ``converted``.
    # Attribution rule: an outcome event (user, item, type, ts) goes to the most recent
    # impression of that item to that user in this experiment with
    # impression ts <= event ts <= impression ts + window (latest id on equal times), so
    # each outcome is attributed at most once; an impression is flagged once however many
    # outcomes of a kind it got. Events without a timestamp are never attributed.
    _SCORED = """
    WITH imp AS (SELECT id, variant, user_id, ts FROM impressions WHERE experiment = :name),
    hits AS (
        SELECT (SELECT i.id FROM impressions i
                WHERE i.experiment = :name AND i.user_id = e.user_id AND i.item_id = e.item_id
                  AND i.ts BETWEEN e.ts - :window AND e.ts
                ORDER BY i.ts DESC, i.id DESC LIMIT 1) AS impression,
               e.event IN (SELECT value FROM json_each(:clicks)) AS click,
               e.event IN (SELECT value FROM json_each(:conversions)) AS conversion
        FROM (SELECT DISTINCT user_id, item_id FROM impressions WHERE experiment = :name) p
        JOIN events e ON e.user_id = p.user_id AND e.item_id = p.item_id
        WHERE e.ts IS NOT NULL AND (e.event IN (SELECT value FROM json_each(:clicks))
                                    OR e.event IN (SELECT value FROM json_each(:conversions)))),
    flags AS (SELECT impression, MAX(click) AS clicked, MAX(conversion) AS converted
              FROM hits WHERE impression IS NOT NULL GROUP BY impression),
    scored AS (SELECT imp.variant, imp.user_id, imp.ts, ifnull(f.clicked, 0) AS clicked,
                      ifnull(f.converted, 0) AS converted
               FROM imp LEFT JOIN flags f ON f.impression = imp.id),
    per_user AS (SELECT variant, user_id, COUNT(*) AS n, SUM(clicked) AS c, MAX(converted) AS v,
                        MIN(ts) AS first_ts, MAX(ts) AS last_ts,
                        MIN(CASE WHEN converted THEN ts END) AS converted_ts
                 FROM scored GROUP BY variant, user_id)
    """

    def _scored(self, select: str, name: str, window: float, clicks: Sequence[str],
                conversions: Sequence[str], **params) -> list[tuple]:
        return self._rows(self._SCORED + select, {
            "name": name, "window": float(window), "clicks": json.dumps(list(clicks)),
            "conversions": json.dumps(list(conversions)), **params})

    def experiment_totals(self, name: str, window: float, clicks: Sequence[str],
                          conversions: Sequence[str]) -> list[VariantTotals]:
        """Per variant (by name): users, impressions and attributed outcomes.

        ``window`` is the attribution window in seconds; ``clicks``/``conversions`` are
        the event types of each outcome kind (see the attribution rule above).
        """
        rows = self._scored(
            "SELECT variant, COUNT(*), SUM(n), SUM(c), SUM(v), MIN(first_ts), MAX(last_ts), "
            "SUM(n * n), SUM(c * c), SUM(n * c) FROM per_user GROUP BY variant ORDER BY variant",
            name, window, clicks, conversions)
        return [VariantTotals(*row) for row in rows]

    def experiment_series(self, name: str, window: float, clicks: Sequence[str],
                          conversions: Sequence[str], bucket: float) -> list[tuple]:
        """Per (variant, time bucket): impressions, clicked impressions, users first exposed
        and users first converted in it, for plotting cumulative metrics over time.

        Buckets start at multiples of ``bucket`` seconds; outcomes count at the time of
        the impression they are attributed to. Rows are (variant, bucket start,
        impressions, clicked, new users, new converted users), in time order.
        """
        return self._scored(
            """SELECT variant, start, SUM(imps), SUM(hits), SUM(users), SUM(convs) FROM (
                   SELECT variant, CAST(ts / :bucket AS INTEGER) * :bucket AS start,
                          1 AS imps, clicked AS hits, 0 AS users, 0 AS convs FROM scored
                   UNION ALL SELECT variant, CAST(first_ts / :bucket AS INTEGER) * :bucket,
                          0, 0, 1, 0 FROM per_user
                   UNION ALL SELECT variant, CAST(converted_ts / :bucket AS INTEGER) * :bucket,
                          0, 0, 0, 1 FROM per_user WHERE converted_ts IS NOT NULL)
               GROUP BY variant, start ORDER BY variant, start""",
            name, window, clicks, conversions, bucket=float(bucket))

    def new_items_after(self, ts: float) -> dict[str, list[str]]:
        """Per user, the items they interacted with after ``ts`` and never at or before it.

        The ground truth of an offline replay: what each user went on to find, with items
        they already had (which a recommender excludes as seen) left out.
        """
        rows = self._rows(
            "SELECT user_id, json_group_array(DISTINCT item_id) FROM events e WHERE e.ts > :ts "
            "AND NOT EXISTS (SELECT 1 FROM events o WHERE o.user_id = e.user_id AND "
            "o.item_id = e.item_id AND ifnull(o.ts, -1) <= :ts) GROUP BY user_id ORDER BY user_id",
            {"ts": float(ts)})
        return {user: json.loads(items) for user, items in rows}

    def times_after(self, ts: float) -> np.ndarray:
        """Timestamps of the events after ``ts``, ascending.

        ``edgerec update`` cuts the events a bundle never saw at a quantile of these.
        """
        rows = self._rows("SELECT ts FROM events WHERE ts > ? ORDER BY ts", (float(ts),))
        return np.array([r[0] for r in rows], dtype=np.float64)

    def snapshot_before(self, path: str | Path, ts: float) -> "Store":
        """A new store at ``path``: this catalogue and the events at or before ``ts``.

        An offline replay serves from it, so models see the history as it was at ``ts``
        (events without a timestamp count as old). The copy is made by the new store's
        connection, so this store's writers are never blocked by it.
        """
        snapshot = Store.open(path)
        conn = snapshot._writer
        with snapshot._write_lock:
            conn.execute("ATTACH DATABASE ? AS source", (str(self.path),))
            try:
                with snapshot.transaction():
                    conn.execute("INSERT INTO main.events (user_id, item_id, event, weight, ts) "
                                 "SELECT user_id, item_id, event, weight, ts FROM source.events "
                                 "WHERE ts IS NULL OR ts <= ? ORDER BY id", (float(ts),))
                    conn.execute("INSERT INTO main.items (item_id, title, metadata, active) "
                                 "SELECT item_id, title, metadata, active FROM source.items")
            finally:
                conn.execute("DETACH DATABASE source")
        return snapshot


def _has_math(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT exp(0)")
        return True
    except sqlite3.OperationalError:
        return False
