"""The store's history as of some moment, for the jobs that look back: offline replay
(``edgerec.replay``), the update gate (``edgerec update``) and training's export.

Read-only queries over events and a copy of the store cut at a time; apart from ``Store``
so that these jobs' needs never grow the class every request path imports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .core import Store


def events_array(store: Store) -> dict[str, np.ndarray]:
    """Every event as columns (user_id, item_id, event, weight, ts) for training."""
    rows = store.read(
        "SELECT user_id, item_id, event, weight, ifnull(ts, 'nan') FROM events ORDER BY id")
    cols = list(zip(*rows)) if rows else [(), (), (), (), ()]
    return {
        "user_id": np.array(cols[0], dtype=object),
        "item_id": np.array(cols[1], dtype=object),
        "event": np.array(cols[2], dtype=object),
        "weight": np.array(cols[3], dtype=np.float64),
        "ts": np.array(cols[4], dtype=np.float64),
    }


def new_items_after(store: Store, ts: float) -> dict[str, list[str]]:
    """Per user, the items they interacted with after ``ts`` and never at or before it.

    The ground truth of an offline replay: what each user went on to find, with items
    they already had (which a recommender excludes as seen) left out.
    """
    rows = store.read(
        "SELECT user_id, json_group_array(DISTINCT item_id) FROM events e WHERE e.ts > :ts "
        "AND NOT EXISTS (SELECT 1 FROM events o WHERE o.user_id = e.user_id AND "
        "o.item_id = e.item_id AND ifnull(o.ts, -1) <= :ts) GROUP BY user_id ORDER BY user_id",
        {"ts": float(ts)})
    return {user: json.loads(items) for user, items in rows}

def times_after(store: Store, ts: float) -> np.ndarray:
    """Timestamps of the events after ``ts``, ascending.

    ``edgerec update`` cuts the events a bundle never saw at a quantile of these.
    """
    rows = store.read("SELECT ts FROM events WHERE ts > ? ORDER BY ts", (float(ts),))
    return np.array([r[0] for r in rows], dtype=np.float64)

def snapshot_before(store: Store, path: str | Path, ts: float) -> Store:
    """A new store at ``path``: this catalogue and the events at or before ``ts``.

    An offline replay serves from it, so models see the history as it was at ``ts``
    (events without a timestamp count as old). The copy is made by the new store's
    connection, so this store's writers are never blocked by it.
    """
    snapshot = Store.open(path)
    with snapshot.attached(store.path, "source"), snapshot.transaction() as conn:
        conn.execute("INSERT INTO main.events (user_id, item_id, event, weight, ts) "
                     "SELECT user_id, item_id, event, weight, ts FROM source.events "
                     "WHERE ts IS NULL OR ts <= ? ORDER BY id", (float(ts),))
        conn.execute("INSERT INTO main.items (item_id, title, metadata, active) "
                     "SELECT item_id, title, metadata, active FROM source.items")
    return snapshot
