"""The maintained popularity ranking: the cold-start list without a GROUP BY over every event.

It must equal the count it replaces after any sequence of writes (duplicates, deletes and
edits made outside edgerec, retirements), a store made before it gets it when opened, a
read-only store without it still ranks, and the ranking query reads no event rows (the
first unknown user's request took 25 s over 1.1M events during a big ingest).
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from pathlib import Path

from edgerec.store import Store, snapshots


def expected(store: Store, n: int) -> list[tuple[str, int]]:
    """Distinct users per active item, most first, ties by id: the definition."""
    events = snapshots.events_array(store)
    users = defaultdict(set)
    for user, item in zip(events["user_id"], events["item_id"]):
        users[item].add(user)
    retired = store.inactive_items()
    ranked = sorted(((item, len(u)) for item, u in users.items() if item not in retired),
                    key=lambda pair: (-pair[1], pair[0]))
    return ranked[:n]


def random_events(rng: random.Random, count: int) -> list[tuple]:
    return [(f"u{rng.randrange(30)}", f"i{rng.randrange(25)}", rng.choice(["view", "click"]),
             1.0, float(1_700_000_000 + rng.randrange(50))) for _ in range(count)]


def test_ranking_equals_the_count_after_any_writes(tmp_path):
    path = tmp_path / "s.db"
    store = Store.open(path)
    rng = random.Random(3)
    for _ in range(5):
        store.add_events(random_events(rng, 80))  # duplicates and repeated pairs included
        assert store.popular(30) == expected(store, 30)
    store.set_active(["i3", "i7"], False)
    assert store.popular(30) == expected(store, 30)
    raw = sqlite3.connect(path)  # writes made outside edgerec
    raw.execute("DELETE FROM events WHERE id % 3 = 0")
    raw.execute("UPDATE OR IGNORE events SET item_id = 'i0' WHERE id % 5 = 0")
    raw.execute("UPDATE events SET user_id = user_id WHERE id % 7 = 0")  # no change at all
    raw.commit()
    raw.close()
    assert store.popular(30) == expected(store, 30)
    assert store.popular(5, exclude={"i0"}) == [p for p in expected(store, 30) if p[0] != "i0"][:5]


def made_before_the_table(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.executescript("DROP TABLE item_popularity; DROP TRIGGER events_popularity_insert;"
                      "DROP TRIGGER events_popularity_delete; DROP TRIGGER events_popularity_update;")
    raw.close()


def has_table(path: Path) -> bool:
    raw = sqlite3.connect(path)
    try:
        return bool(raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'item_popularity'").fetchall())
    finally:
        raw.close()


def test_a_store_made_before_the_table_gets_it_filled_when_opened(tmp_path):
    path = tmp_path / "s.db"
    Store.open(path).add_events(random_events(random.Random(5), 300))
    made_before_the_table(path)
    store = Store.open(path)
    assert has_table(path) and store.popular(30) == expected(store, 30)
    store.add_events(random_events(random.Random(6), 50))
    assert store.popular(30) == expected(store, 30)


def test_a_store_that_cannot_be_migrated_now_opens_and_still_ranks(tmp_path):
    """Another process holding the write lock (as a read-only file would) only postpones
    the table: the store opens at once and ranks by counting."""
    path = tmp_path / "s.db"
    Store.open(path).add_events(random_events(random.Random(7), 200))
    made_before_the_table(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        store = Store.open(path, busy_timeout=0.2)
        assert not has_table(path) and store.popular(10) == expected(store, 10)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert Store.open(path).popular(10) == expected(store, 10) and has_table(path)


def test_the_cold_start_ranking_reads_no_event_rows(tmp_path):
    """The plan of every statement behind ``popular`` touches the small table only, so the
    first unknown user's request costs the same over a thousand events or a billion."""
    store = Store.open(tmp_path / "s.db")
    store.add_events(random_events(random.Random(8), 200))
    statements = []
    store._reader().set_trace_callback(statements.append)
    ranked = store.popular(10)
    store._reader().set_trace_callback(None)
    assert ranked == expected(store, 10)
    plans = [row[-1] for sql in statements if sql.lstrip().upper().startswith("SELECT")
             for row in store.read("EXPLAIN QUERY PLAN " + sql, [10] * sql.count("?"))]
    assert plans and not [p for p in plans if "events" in p or p.startswith("SCAN e ")], plans
