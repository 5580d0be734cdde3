"""The SQLite store: schema checks, transactions, dedupe, history order."""

import sqlite3

import pytest

from edgerec.errors import StoreError
from edgerec.store import Store

pytestmark = pytest.mark.runtime


def events(n=3, user="u1"):
    return [(user, f"i{i}", "click", 1.0, 1000.0 + i) for i in range(n)]


def test_history_is_newest_first_and_dedupes(tmp_path):
    store = Store.open(tmp_path / "s.db")
    assert store.add_events(events(3)) == 3
    assert store.add_events(events(3)) == 0  # same (user, item, event, ts): ignored
    assert store.history("u1") == ["i2", "i1", "i0"]
    assert store.history("u1", limit=2) == ["i2", "i1"]
    assert store.histories(["u1", "nobody"]) == {"u1": ["i2", "i1", "i0"], "nobody": []}


def test_events_without_timestamp_dedupe_too(tmp_path):
    store = Store.open(tmp_path / "s.db")
    row = [("u1", "i1", "view", 1.0, None)]
    assert store.add_events(row) == 1
    assert store.add_events(row) == 0
    assert store.summary()["events"] == 1


def test_failed_write_leaves_store_unchanged(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.add_events(events(2))

    def rows():
        yield ("u2", "i9", "click", 1.0, 5.0)
        raise ValueError("disk on fire")

    with pytest.raises(ValueError):
        store.add_events(rows())
    assert store.summary()["events"] == 2
    assert store.history("u2") == []


def test_popular_counts_distinct_users_and_skips(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.add_events([("a", "x", "click", 1, 1), ("b", "x", "click", 1, 2), ("a", "x", "view", 1, 3),
                      ("a", "y", "click", 1, 4), ("c", "z", "click", 1, 5), ("c", "y", "click", 1, 6)])
    assert store.popular(2) == [("x", 2), ("y", 2)]
    assert store.popular(2, exclude=["x"]) == [("y", 2), ("z", 1)]


def test_missing_store_is_an_error_when_not_creating(tmp_path):
    with pytest.raises(StoreError, match="store not found"):
        Store.open(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def test_foreign_sqlite_file_is_rejected(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE stuff (x)")
    with pytest.raises(StoreError, match="not an edgerec store"):
        Store.open(path)


def test_schema_version_is_checked(tmp_path):
    path = tmp_path / "s.db"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store.open(path)


def test_non_sqlite_file_is_rejected(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, I am not a database" * 100)
    with pytest.raises(StoreError, match="not an edgerec store"):
        Store.open(path)


def test_histories_are_newest_first_whatever_the_insert_order(tmp_path):
    import random

    store = Store.open(tmp_path / "s.db")
    rng = random.Random(3)
    stamps = iter(rng.sample(range(10**6), 20 * 60))  # distinct: ties have no defined order
    rows = [(f"u{u}", f"i{i}", "view", 1.0, float(next(stamps))) for u in range(20) for i in range(60)]
    rng.shuffle(rows)
    store.add_events(rows)
    expected = {}
    for user, item, _, _, ts in sorted(rows, key=lambda r: -r[4]):
        expected.setdefault(user, []).append(item)
    assert store.histories([f"u{u}" for u in range(20)]) == expected
    assert store.history("u7") == expected["u7"] and store.history("u7", limit=3) == expected["u7"][:3]


def _locked_by_another_connection(path):
    """Another connection (as another process would) holding the write lock."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_write_retries_while_another_connection_holds_the_lock(tmp_path):
    import threading

    path = tmp_path / "s.db"
    store = Store.open(path)
    store.db.execute("PRAGMA busy_timeout = 5")  # SQLite gives up at once: the retries must help
    other = _locked_by_another_connection(path)
    threading.Timer(0.15, other.rollback).start()  # released after ~3 of the 6 tries
    assert store.add_events(events(3)) == 3
    assert store.history("u1") == ["i2", "i1", "i0"]
    other.close()


def test_a_write_gives_up_with_one_line_when_the_lock_stays(tmp_path):
    path = tmp_path / "s.db"
    store = Store.open(path, busy_timeout=0.3)
    store.add_events(events(2))
    other = _locked_by_another_connection(path)
    try:
        with pytest.raises(StoreError) as info:
            store.add_events(events(3, user="u2"))
    finally:
        other.rollback()
        other.close()
    assert str(info.value) == (f"{path}: another connection held the store's write lock for "
                               "over 0.3 s (a large ingest?); nothing was written, retry later")
    assert store.history("u2") == [] and store.summary()["events"] == 2  # nothing half written
    assert store.add_events(events(3, user="u2")) == 3  # and the store works once it is free
