"""The store's change detector (``Store.version``, ``edgerec.walwatch``): every commit, by this
store, another connection or another process, changes it before the next request; with no
commit it stays put; a store not in WAL mode falls back to SQLite's data_version."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

from edgerec import Recommender
from edgerec.store import Store

ONE_EVENT = textwrap.dedent("""
    import sys
    from edgerec.store import Store
    store = Store.open(sys.argv[1], create=False)
    store.add_events([(sys.argv[2], sys.argv[3], "view", 1.0, 4e9)])
    store.close()
""")


def _store(path, journal_mode: str | None = None):
    store = Store.open(path)
    store.add_events([(f"u{n}", f"i{n % 7}", "view", 1.0, float(n)) for n in range(40)])
    store.close()
    if journal_mode:
        conn = sqlite3.connect(path)
        assert conn.execute(f"PRAGMA journal_mode = {journal_mode}").fetchone()[0] == journal_mode
        conn.close()
    return Store.open(path, create=False)


def test_every_commit_changes_the_version_and_nothing_else_does(tmp_path):
    store = _store(tmp_path / "s.db")
    other = Store.open(tmp_path / "s.db", create=False)  # another connection's commits
    try:
        assert store._open_watch() is not None  # WAL: the header, not a query
        seen = {store.version()}
        assert store.version() in seen and len(seen) == 1  # no commit, same version
        for n in range(30):
            (store if n % 2 else other).add_events([(f"w{n}", "i1", "view", 1.0, 1e9 + n)])
            version = store.version()
            assert version not in seen, f"commit {n} not seen"
            seen.add(version)
            assert store.version() == version
    finally:
        other.close()
        store.close()


def test_another_process_commit_is_seen_by_the_next_request(mf, tmp_path):
    """No sleep, no retry: the write has returned, so the next request must exclude it."""
    store_path = tmp_path / "store.db"
    store_path.write_bytes(mf.store.read_bytes())
    with Recommender.open(mf.bundle, store_path) as rec:
        user = rec.store.user_ids()[0]
        for _ in range(3):
            top = rec.recommend(user, n=5)[0].item_id
            rec.recommend(user, n=5)  # cached now: only the version check stands in the way
            subprocess.run([sys.executable, "-c", ONE_EVENT, str(store_path), user, top], check=True)
            assert top not in [r.item_id for r in rec.recommend(user, n=50)]


def test_a_store_not_in_wal_mode_still_sees_other_connections(tmp_path):
    store = _store(tmp_path / "s.db", journal_mode="delete")
    other = Store.open(tmp_path / "s.db", create=False)
    try:
        assert store._open_watch() is None
        before = store.version()
        other.add_events([("w", "i1", "view", 1.0, 1e9)])
        assert store.version() != before
    finally:
        other.close()
        store.close()
