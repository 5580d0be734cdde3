"""The ``demo:shop`` shape: sparse purchases with a long tail, in an order that matters."""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgerec import demo
from edgerec.demo import shop
from edgerec.store import Store, snapshots

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from quality import synthetic_store  # noqa: E402 - the benchmark's own entry point

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def events():
    return shop(n_users=2_000, n_items=1_600, seed=3)[0]


def _by_user(events):
    users: dict[str, list] = {}
    for user, item, _, _, ts in events:
        users.setdefault(user, []).append((ts, item))
    return users


def test_shop_is_sparse_and_long_tailed(events):
    users = _by_user(events)
    assert 8 <= len(events) / len(users) <= 12
    for rows in users.values():
        times = [t for t, _ in rows]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert len({i for _, i in rows}) == len(rows)  # no product bought twice
    counts = np.sort(list(Counter(e[1] for e in events).values()))[::-1]
    assert counts[: len(counts) // 10].sum() > 0.35 * counts.sum()  # top 10%: a third of sales
    assert (counts <= 2).mean() > 0.07                                # and a long tail


def _order_signal(events) -> float:
    """How much more often consecutive purchases repeat the same pairs than the same
    purchases in a shuffled order do: above 1 when the next item depends on the previous."""
    rng = np.random.default_rng(0)
    ordered, shuffled = Counter(), Counter()
    for rows in _by_user(events).values():
        items = [i for _, i in sorted(rows)]
        mixed = list(rng.permutation(items))
        ordered.update(zip(items, items[1:]))
        shuffled.update(zip(mixed, mixed[1:]))
    repeated = [sum(c for c in pairs.values() if c > 1) / sum(pairs.values())
                for pairs in (ordered, shuffled)]
    return repeated[0] / repeated[1]


def test_shop_order_carries_item_to_item_transitions(events):
    assert _order_signal(events) > 1.2
    assert _order_signal(shop(n_users=2_000, n_items=1_600, follow=0.0, seed=3)[0]) < 1.1


def test_shop_is_seeded():
    assert shop(n_users=50, n_items=100, seed=1) == shop(n_users=50, n_items=100, seed=1)
    assert shop(n_users=50, n_items=100, seed=1)[0] != shop(n_users=50, n_items=100, seed=2)[0]


def test_quality_benchmark_builds_the_small_shop(tmp_path):
    path = synthetic_store("shop-small", tmp_path / "shop.db")
    store = Store.open(path, create=False)
    ev = snapshots.events_array(store)
    store.close()
    assert 2_500 < len(set(ev["user_id"].tolist())) <= 3_000
    assert set(ev["event"].tolist()) == {"purchase"}
    assert len(ev["user_id"]) / 3_000 > 8


def _later_in_own_categories(users, items, category, rng) -> float:
    """How much likelier a user's last 20% of purchases fall in the categories of their own
    first 80% than in those of another user's: 1 when purchases ignore who buys."""
    n = np.bincount(users)
    rank = np.arange(len(users)) - np.repeat(np.cumsum(n) - n, n)  # purchases are user-ordered
    early = rank < 0.8 * n[users]
    seen = set(zip(users[early].tolist(), category[items[early]].tolist()))
    other = rng.permutation(len(n))
    late_users, late_categories = users[~early], category[items[~early]].tolist()
    own = np.mean([(u, c) in seen for u, c in zip(late_users.tolist(), late_categories)])
    theirs = np.mean([(u, c) in seen for u, c in zip(other[late_users].tolist(), late_categories)])
    return own / theirs


def test_long_shop_baskets_keep_their_users_tastes(monkeypatch):
    """At 100 purchases per user (the 10M-event training benchmark's shape, smaller), a
    user's later purchases still follow their earlier ones, so a model can beat
    most-popular there; with ``follow = stay = 0`` nothing does. Blocks of users are
    simulated apart (a tiny block here): every user is there, in time order, no repeats."""
    monkeypatch.setattr(demo, "_SHOP_BLOCK", 64)
    rng = np.random.default_rng(0)
    users, items, times, category = demo.shop_purchases(300, 20_000, 100, seed=4)
    assert np.array_equal(np.unique(users), np.arange(300)) and 80 < len(users) / 300 < 120
    assert (np.diff(users) >= 0).all() and (np.diff(times)[np.diff(users) == 0] > 0).all()
    assert len(np.unique(users * 20_000 + items)) == len(users)
    assert _later_in_own_categories(users, items, category, rng) > 1.25  # 1.4 at seed 4
    flat = demo.shop_purchases(300, 20_000, 100, follow=0.0, stay=0.0, seed=4)
    assert _later_in_own_categories(flat[0], flat[1], flat[3], rng) < 1.15  # 1.05
