"""The SQLite store of items and interaction events: the only module that speaks SQL.

Why SQLite: an embedding app already has a file system and nothing else; SQLite gives it
transactions (an ingest either fully lands or leaves the store as it was), WAL mode (readers
never wait for the writer) and an index that answers "history of user U, newest first"
without reading anyone else's events.

Sharing: one ``Store`` may be used from many threads (every statement runs under one lock,
and a transaction holds it to the end, so no thread ever reads another's uncommitted rows)
and several processes may open the same file (WAL, a busy timeout, and retries when SQLite
still reports the database locked).

Dedupe rule: an event is identified by (user, item, event type, timestamp). Adding the same
event again is ignored, so re-ingesting a file never doubles the data. Events without a
timestamp count as timestamp "unknown": repeating one of those adds nothing either; give the
repetition count as a weight instead.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import sqlite_utils

from .errors import InputError, StoreError

SCHEMA_VERSION = 1

# (user_id, item_id, event, weight, ts); ts is seconds since the epoch or None.
EventRow = tuple[str, str, str, float, "float | None"]
# (item_id, title, metadata)
ItemRow = tuple[str, "str | None", dict]

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
CREATE INDEX IF NOT EXISTS items_inactive ON items (item_id) WHERE active = 0;
"""
# Retired items are read after every write, so they have their own (tiny) partial index;
# stores made before it existed get it with their first retirement.
_INACTIVE_INDEX = "CREATE INDEX IF NOT EXISTS items_inactive ON items (item_id) WHERE active = 0"

# Bumped by every catalogue write, so catalogue-derived caches (retired items, filter
# results) survive the far more frequent event writes.
_ITEMS_VERSION = "items_version"

# Keys that also match their plural list: where={"category": "Comedy"} finds items whose
# metadata has "categories": ["Comedy", ...] (what `edgerec items` writes).
PLURALS = {"category": "categories", "genre": "genres", "tag": "tags"}

LOCK_RETRIES = 6


def _retry(op, path: Path):
    """Run ``op``, retrying while SQLite reports the file locked by another connection.

    The busy timeout already makes SQLite wait; these retries cover the cases where it
    gives up at once (a checkpoint or WAL recovery in another process).
    """
    for attempt in range(LOCK_RETRIES):
        try:
            return op()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if attempt == LOCK_RETRIES - 1:
                raise StoreError(f"{path}: database stayed locked by another connection "
                                 f"({exc})") from None
            time.sleep(0.02 * 2 ** attempt)


class Store:
    """A store file opened for reading and writing.

    ``Store.open(path)`` creates the file when ``create`` is true; otherwise a missing file
    is an error, so a typo in a path never silently yields an empty store.
    """

    def __init__(self, path: Path, db: sqlite_utils.Database):
        self.path = path
        self.db = db
        self._commits = 0
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> "Store":
        path = Path(path)
        if not create and not path.exists():
            raise StoreError(f"{path}: store not found (create one with `edgerec ingest`)")
        try:
            conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False,
                                   isolation_level=None)
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA busy_timeout = 30000")
            # WAL makes NORMAL sync crash-safe (a power cut may lose the last commits, never
            # corrupt); a 64 MiB page cache keeps bulk ingests from thrashing the indexes.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA cache_size = -65536")
            store = cls(path, db)
            store._check_schema(create)
            if not _has_math(conn):  # SQLite built without its math functions
                conn.create_function("exp", 1, math.exp, deterministic=True)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not an edgerec store ({exc})") from None
        return store

    def _check_schema(self, create: bool) -> None:
        tables = set(self.db.table_names())
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            found = row[0] if row else None
            if found != str(SCHEMA_VERSION):
                raise StoreError(f"{self.path}: store schema version {found}, this edgerec "
                                 f"reads version {SCHEMA_VERSION}")
            return
        if tables:
            raise StoreError(f"{self.path}: not an edgerec store (tables: {', '.join(sorted(tables))})")
        if not create:
            raise StoreError(f"{self.path}: empty file, not an edgerec store")
        self.db.enable_wal()
        self.db.conn.executescript(
            "BEGIN IMMEDIATE;" + _SCHEMA
            + f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;")

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all.

        The connection lock is held until the end, so other threads neither write into this
        transaction nor read its rows before they are committed.
        """
        conn = self.db.conn
        with self._lock:
            _retry(lambda: conn.execute("BEGIN IMMEDIATE"), self.path)
            try:
                yield
                _retry(lambda: conn.execute("COMMIT"), self.path)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._commits += 1

    def _rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """A read under the connection lock (with retries while another process locks)."""
        with self._lock:
            return _retry(lambda: self.db.conn.execute(sql, params).fetchall(), self.path)

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
        self.db.conn.execute(
            "INSERT INTO meta VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1", (_ITEMS_VERSION,))

    # -- writes ---------------------------------------------------------------------------

    def add_events(self, rows: Iterable[EventRow]) -> int:
        """Insert events in one transaction; returns how many were new (duplicates skipped)."""
        with self.transaction():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO events (user_id, item_id, event, weight, ts) "
                "VALUES (?, ?, ?, ?, ?)", rows)
            return self.db.conn.total_changes - before

    def add_items(self, rows: Iterable[ItemRow]) -> int:
        """Insert or update catalogue items in one transaction; returns how many were written."""
        with self.transaction():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                "INSERT INTO items (item_id, title, metadata) VALUES (?, ?, ?) "
                "ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, "
                "metadata = excluded.metadata",
                ((item_id, title, json.dumps(meta, sort_keys=True)) for item_id, title, meta in rows))
            written = self.db.conn.total_changes - before
            self._bump_items_version()
            return written

    def set_active(self, item_ids: Iterable[str], active: bool) -> int:
        """Retire items (``active=False``: never recommended again) or bring them back.

        Items without a catalogue row get one, so an item known only from events can be
        retired too. Returns how many items were given.
        """
        ids = [(str(i),) for i in item_ids]
        with self.transaction():
            conn = self.db.conn
            conn.execute(_INACTIVE_INDEX)
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

    def history(self, user_id: str, limit: int | None = None) -> list[str]:
        """The user's item ids, newest first (all of them unless ``limit``)."""
        rows = self._rows(self._HISTORIES.format("?"), (user_id,))
        items = json.loads(rows[0][1]) if rows else []
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
        if half_life is None:
            score, params = "COUNT(DISTINCT e.user_id)", []
        else:
            if not half_life > 0:
                raise ValueError("half_life must be positive")
            score = ("SUM(e.weight * exp((ifnull(e.ts, (SELECT MIN(ts) FROM events)) - "
                     "(SELECT MAX(ts) FROM events)) * ?))")
            params = [math.log(2) / half_life]
        rows = self._rows(
            f"SELECT e.item_id, {score} AS score FROM events e "
            "LEFT JOIN items i ON i.item_id = e.item_id WHERE ifnull(i.active, 1) = 1 "
            "GROUP BY e.item_id ORDER BY score DESC, e.item_id LIMIT ?", params + [n + len(skip)])
        return [(item, score) for item, score in rows if item not in skip][:n]

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
                if '"' in name or "\\" in name:
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

    def summary(self) -> dict:
        (n_events, n_users, n_items, t0, t1), = self._rows(
            "SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT item_id), MIN(ts), MAX(ts) "
            "FROM events")
        return {"events": n_events, "users": n_users, "items": n_items,
                "catalogue_items": self._rows("SELECT COUNT(*) FROM items")[0][0],
                "first_ts": t0, "last_ts": t1}


def _has_math(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT exp(0)")
        return True
    except sqlite3.OperationalError:
        return False
