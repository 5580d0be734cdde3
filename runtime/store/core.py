"""The store's core: the file, its connections and transactions, events and the catalogue.

With ``schema`` (tables and migrations), ``experiments`` (impressions, attribution) and
``snapshots`` (replay, update and training exports), the only modules that speak SQL.

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

Why the writes do not go through ``sqlite-utils`` (``insert_all``, ``upsert_all``): the store's
atomicity and locking model (issue 11) needs every write inside one ``BEGIN IMMEDIATE``
transaction that this class opens on its own autocommit write connection (see
``transaction``), with retries while another process holds the file's write lock, and
with reads on separate per-thread connections so that such a wait never holds them up. sqlite-utils' bulk methods batch rows into
several statements, each committed by ``with conn:``, which would commit such a transaction
half way and break "an ingest fully lands or leaves the store as it was"; plain
``executemany`` inside the transaction is also what they would run. sqlite-utils serves
the read side: ``Store.db`` is a ``sqlite_utils.Database`` for an app's own ad-hoc queries.
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
from typing import Iterable, Iterator, Sequence

import sqlite_utils

from .. import validate
from ..errors import InputError, StoreError, UnknownItemError
from .schema import CREATE, MIGRATIONS, POPULARITY, SCHEMA_VERSION
from .walindex import WalIndex


# (user_id, item_id, event, weight, ts); ts is seconds since the epoch or None.
EventRow = tuple[str, str, str, float, "float | None"]
# (item_id, title, metadata)
ItemRow = tuple[str, "str | None", dict]


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
        self._wal: WalIndex | None = None  # the cheap change detector, in WAL mode

    @classmethod
    def open(cls, path: str | Path, create: bool = True,
             busy_timeout: float = BUSY_TIMEOUT) -> "Store":
        """Open the store at ``path`` (see the class docstring); ``StoreError`` if unusable."""
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
            store._wal = store._wal_index()
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
            if found in MIGRATIONS:
                self._upgrade(MIGRATIONS[found])
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
        self._script(CREATE)

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
            self._script(POPULARITY)
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

    def _wal_index(self) -> WalIndex | None:
        """The WAL-index header reader (``edgerec.store.walindex``) once the read connection
        has the ``-shm`` open, or None outside WAL mode."""
        conn = self.db.conn
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            return None
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # maps the -shm
        return WalIndex.open(self.path)

    def close(self) -> None:
        """Close every connection (writer, readers of all threads), then the ``-shm``
        descriptor: never before them (see ``edgerec.store.walindex``)."""
        with self._write_lock, self._lock:
            wal, self._wal = self._wal, None
            self._writer.close()
            self.db.conn.close()
            for conn in list(self._readers):
                conn.close()
            if wal is not None:
                wal.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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

    def read(self, sql: str, params: Sequence | dict = ()) -> list[tuple]:
        """A read on this thread's own connection (with retries while another process locks).

        One connection per thread, so a slow query (popularity over millions of events)
        never queues another thread's reads behind it; in WAL mode each read sees the last
        commit made before it started.
        """
        try:  # the common case first, without the retry machinery (a first request's read)
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:  # locked: again, with retries; others as ``fault`` says
            if not _is_busy(exc):
                raise fault(exc, self.path) from None
            with _faults(self.path):
                conn = self._reader()
                return _retry(lambda: conn.execute(sql, params).fetchall(), self.path,
                              self.busy_timeout)

    @contextmanager
    def attached(self, path: str | Path, alias: str) -> Iterator[None]:
        """Another store file attached to the write connection as ``alias`` (for copies
        made by SQL, e.g. ``snapshots.snapshot_before``), detached on the way out.

        Holds the write lock throughout, so no other thread's transaction sees the alias.
        """
        conn = self._writer
        with self._write_lock, _faults(self.path):
            conn.execute("ATTACH DATABASE ? AS " + alias, (str(path),))
            try:
                yield
            finally:
                conn.execute("DETACH DATABASE " + alias)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _Reader(str(self.path), timeout=self.busy_timeout,
                                              check_same_thread=False, isolation_level=None)
            _configure(conn, self.busy_timeout)
            self._readers.add(conn)
        return conn

    def version(self) -> bytes | tuple[int, int]:
        """A value that changes whenever anyone commits to the store: the key for caches.

        In WAL mode, the WAL-index header (``edgerec.store.walindex``): every commit of any
        connection or process rewrites it, and reading it is two ``pread`` calls, no query.
        Otherwise, or while a writer is half-way through the header, SQLite's data_version
        (commits by *other* connections, other processes included) with this store's own
        commits counted here. The two kinds never compare equal, so switching between
        them only costs one cache refresh.
        """
        wal = self._wal
        if wal is not None:
            header = wal.header()
            if header is not None:
                return header
        with self._lock:
            return self.db.conn.execute("PRAGMA data_version").fetchone()[0], self._commits

    def items_version(self) -> int:
        """Changes with every catalogue write (items added, updated, retired)."""
        row = self.read("SELECT value FROM meta WHERE key = ?", (_ITEMS_VERSION,))
        return int(row[0][0]) if row else 0

    def _bump_items_version(self) -> None:
        self._writer.execute(
            "INSERT INTO meta VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1", (_ITEMS_VERSION,))

    # -- writes ---------------------------------------------------------------------------

    def write_many(self, sql: str, rows: Iterable) -> int:
        """``sql`` for every row, inside the caller's transaction; returns rows written
        (``rowcount`` leaves out what triggers wrote, such as ``item_popularity``)."""
        return self._writer.executemany(sql, rows).rowcount

    def add_events(self, rows: Iterable[EventRow]) -> int:
        """Insert events in one transaction; returns how many were new (duplicates skipped).

        Every row is checked (``edgerec.validate``); the first bad one raises ``InputError``
        naming its position and field, and nothing is written.
        """
        with self.transaction():
            return self.write_many("INSERT OR IGNORE INTO events (user_id, item_id, event, "
                                    "weight, ts) VALUES (?, ?, ?, ?, ?)",
                                    validate.rows(rows, validate.event, "event"))

    def add_items(self, rows: Iterable[ItemRow]) -> int:
        """Insert or update catalogue items in one transaction; returns how many were written.

        Checked like ``add_events``: metadata must be a JSON object of finite values.
        """
        with self.transaction():
            written = self.write_many(
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
        items = json.loads(self.read(self._HISTORY, (user_id,))[0][0])
        return items if limit is None else items[:limit]

    def histories(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Histories of many users, newest first; users without events get []."""
        out: dict[str, list[str]] = {u: [] for u in user_ids}
        for start in range(0, len(user_ids), 500):  # stay under SQLite's parameter limit
            chunk = list(user_ids[start:start + 500])
            sql = self._HISTORIES.format(",".join("?" * len(chunk)))
            for user, items in self.read(sql, chunk):
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
            rows = self.read(self._HISTORY_PAGE, (after, page))
            if not rows:
                return
            yield [(user, json.loads(items), ts) for user, items, ts in rows]
            after = rows[-1][0]

    def newest_event_times(self, user_ids: Sequence[str]) -> dict[str, float | None]:
        """Each user's newest event time (users without events are absent)."""
        out: dict[str, float | None] = {}
        for start in range(0, len(user_ids), 500):  # stay under SQLite's parameter limit
            chunk = list(user_ids[start:start + 500])
            out.update(self.read("SELECT user_id, MAX(ts) FROM events WHERE user_id IN "
                                  f"({','.join('?' * len(chunk))}) GROUP BY user_id", chunk))
        return out

    def user_count(self) -> int:
        """How many users have events."""
        return self.read("SELECT COUNT(DISTINCT user_id) FROM events")[0][0]

    def longest_history(self) -> int:
        """The most events any one user has (0 for an empty store)."""
        return self.read("SELECT ifnull(MAX(c), 0) FROM (SELECT COUNT(*) AS c FROM events "
                          "INDEXED BY events_user_history GROUP BY user_id)")[0][0]

    def max_event_id(self) -> int:
        """The newest event's id (0 when there is none).

        Events are append-only and ``id`` only grows, so events committed after this read
        have larger ids: what ``users_with_events_after`` finds.
        """
        return self.read("SELECT ifnull(MAX(id), 0) FROM events")[0][0]

    def users_with_events_after(self, event_id: int) -> set[str]:
        """Users with an event whose id is above ``event_id`` (a range of the primary key).

        Deduplicated here: with DISTINCT, SQLite scans the whole (user, ts) index instead.
        """
        return {r[0] for r in self.read("SELECT user_id FROM events WHERE id > ?", (event_id,))}

    def user_ids(self) -> list[str]:
        """Every user with at least one event, in a stable order."""
        return [r[0] for r in self.read("SELECT DISTINCT user_id FROM events ORDER BY user_id")]

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
            rows = self.read(
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
        rows = self.read(
            f"SELECT a.item_id, a.score FROM (SELECT e.item_id, {score} AS score FROM events e "
            "NOT INDEXED GROUP BY e.item_id) a LEFT JOIN items i ON i.item_id = a.item_id "
            "WHERE ifnull(i.active, 1) = 1 ORDER BY a.score DESC, a.item_id LIMIT ?",
            params + [n + len(skip)])
        return [(item, score) for item, score in rows if item not in skip][:n]

    def _has_popularity(self) -> bool:
        """Whether the maintained ranking exists (see ``POPULARITY``)."""
        return bool(self.read("SELECT 1 FROM sqlite_master WHERE name = 'item_popularity'"))

    def inactive_items(self) -> set[str]:
        """Retired item ids (``set_active(..., False)``): never to be recommended."""
        return {r[0] for r in self.read("SELECT item_id FROM items WHERE active = 0")}

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
        return {r[0] for r in self.read(f"SELECT item_id FROM items WHERE {' AND '.join(clauses)}", params)}

    def newest_items(self) -> list[str]:
        """Active catalogue item ids, most recently added first (insertion order)."""
        return [r[0] for r in self.read("SELECT item_id FROM items WHERE active = 1 ORDER BY rowid DESC")]

    def item_titles(self, item_ids: Iterable[str]) -> dict[str, str]:
        """Titles of the given items that have one (ids without a title are absent)."""
        ids = list(item_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return {i: t for i, t in self.read(
            f"SELECT item_id, title FROM items WHERE item_id IN ({marks}) AND title IS NOT NULL", ids)}

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
        """Counts (events, users, items, catalogue items) and the events' time span."""
        (n_events, n_users, n_items, t0, t1), = self.read(
            "SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT item_id), MIN(ts), MAX(ts) "
            "FROM events")
        return {"events": n_events, "users": n_users, "items": n_items,
                "catalogue_items": self.read("SELECT COUNT(*) FROM items")[0][0],
                "first_ts": t0, "last_ts": t1}


def _has_math(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT exp(0)")
        return True
    except sqlite3.OperationalError:
        return False
