"""The store's change detector (``Store.version``): the WAL-index header read with pread,
SQLite's data_version where that cannot be used. A commit, this process's or another's,
must show at the next request; a repeat request with no commit runs no SQL at all."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edgerec import Recommender
from edgerec.store import Store
from edgerec.store.walindex import HEADER_BYTES, WalIndex

pytestmark = pytest.mark.runtime

# Another process commits one event with plain sqlite3 (no edgerec): what any app may do.
FOREIGN_WRITE = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("
                 "\"INSERT INTO events (user_id, item_id, event, weight, ts) "
                 "VALUES (?, ?, 'click', 1.0, 5e9)\", sys.argv[2:4]); c.commit(); c.close()")


@pytest.fixture
def store_copy(svd, tmp_path):
    path = tmp_path / "store.db"
    shutil.copy(svd.store, path)
    return path


def _write_elsewhere(path: Path, user: str, item: str) -> None:
    subprocess.run([sys.executable, "-c", FOREIGN_WRITE, str(path), user, item], check=True)


def _items(recs) -> list[str]:
    return [r.item_id for r in recs]


def test_another_process_commit_shows_at_the_next_request(svd, store_copy):
    with Recommender.open(svd.bundle, store_copy) as rec:
        assert rec.store._wal is not None  # the header path is the one under test
        user = rec.store.user_ids()[3]
        for _ in range(3):
            top = rec.recommend(user, n=5)[0].item_id
            assert rec.recommend(user, n=5)[0].item_id == top  # a repeat: served from the cache
            _write_elsewhere(store_copy, user, top)  # the user has now seen it
            assert top not in _items(rec.recommend(user, n=5))


def test_a_repeat_request_runs_no_sql(svd, store_copy):
    with Recommender.open(svd.bundle, store_copy) as rec:
        user = rec.store.user_ids()[5]
        first = rec.recommend(user, n=5)
        statements: list[str] = []
        for conn in (rec.store.db.conn, rec.store._reader(), rec.store._writer):
            conn.set_trace_callback(statements.append)
        assert _items(rec.recommend(user, n=5)) == _items(first)
        assert statements == []
        rec.record(user, first[0].item_id, "click")  # this process's own commit shows too
        assert first[0].item_id not in _items(rec.recommend(user, n=5))
        assert statements  # ... by reading the store again


def test_closing_one_store_keeps_the_others_detector(store_copy):
    """Stores on one file share one ``-shm`` descriptor, closed only with the last of them:
    closing a descriptor early would drop SQLite's locks on the file for the whole process."""
    first, second = Store.open(store_copy), Store.open(store_copy)
    first.close()
    before = second.version()
    assert isinstance(before, bytes) and second.version() == before
    _write_elsewhere(store_copy, "someone", "i1")
    assert second.version() != before
    if Path("/proc/self/fd").is_dir():
        assert _shm_descriptors(store_copy) == 1
        second.close()
        assert _shm_descriptors(store_copy) == 0
    else:
        second.close()


def _shm_descriptors(db: Path) -> int:
    """This process's open descriptors of the store's -shm (SQLite's own one included)."""
    shm = os.path.realpath(db) + "-shm"
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}") == shm
        except OSError:
            pass
    return found - (1 if found else 0)  # less SQLite's, which lives while a connection does


def test_outside_wal_mode_data_version_decides(store_copy):
    conn = sqlite3.connect(store_copy)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    with Store.open(store_copy) as store:
        assert store._wal is None
        before = store.version()
        assert store.version() == before
        _write_elsewhere(store_copy, "someone", "i1")
        assert store.version() != before


def test_a_header_mid_write_or_uninitialised_is_not_trusted(tmp_path):
    """Two different copies mean a writer is between them; isInit 0 means no header yet."""
    db = tmp_path / "fake.db"
    shm = tmp_path / "fake.db-shm"
    header = bytearray(HEADER_BYTES)
    header[12] = 1  # isInit
    header[8] = 7  # iChange
    shm.write_bytes(bytes(header) * 2 + bytes(40))
    wal = WalIndex.open(db)
    try:
        assert wal.header() == bytes(header)
        newer = bytearray(header)
        newer[8] = 8
        with open(shm, "r+b") as fh:
            fh.seek(HEADER_BYTES)
            fh.write(newer)  # the writer's first copy written, the second not yet
        assert wal.header() is None
        shm.write_bytes(bytes(HEADER_BYTES * 2 + 40))
        assert wal.header() is None
        shm.write_bytes(b"\x01" * 20)  # shorter than a header
        assert wal.header() is None
    finally:
        wal.close()
