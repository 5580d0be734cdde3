"""The ``demo:listens`` shape: last.fm-like play counts, and the ceiling of its own odds."""

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from edgerec.store import Store
from edgerec.trainer.data import load_interactions

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from listens import Listening, ceiling, listens  # noqa: E402 - the benchmark's own module

SHAPE = {"n_users": 300, "n_items": 1_200, "mean_events": 30, "seed": 5}


@pytest.fixture(scope="module")
def events():
    return listens(**SHAPE)


def test_each_user_lists_distinct_artists_with_play_counts(events):
    by_user = defaultdict(list)
    for user, artist, kind, count, _ in events:
        assert kind == "play" and count >= 1 and count == int(count)
        by_user[user].append(artist)
    assert len(by_user) == SHAPE["n_users"]
    lengths = [len(artists) for artists in by_user.values()]
    assert all(5 <= n <= SHAPE["mean_events"] for n in lengths)
    assert np.mean(np.array(lengths) == SHAPE["mean_events"]) > 0.8  # most lists are full
    assert all(len(set(artists)) == len(artists) for artists in by_user.values())


def test_play_counts_follow_the_users_taste(events):
    process = Listening(SHAPE["n_users"], SHAPE["n_items"], SHAPE["seed"])
    users = np.array([int(e[0][1:]) for e in events])
    artists = np.array([int(e[1][1:]) for e in events])
    taste = process.mixture[users, process.scene[artists]]
    counts = np.log([e[3] for e in events])
    liked = taste > np.median(taste)
    assert counts[liked].mean() > counts[~liked].mean() + 0.3


def test_the_ceiling_ranks_far_above_popularity(events, tmp_path):
    from edgerec.metrics import ranking_metrics
    from edgerec.pipelines.evaluate import split

    store = Store.open(tmp_path / "listens.db")
    store.add_events(events)
    data = load_interactions(store)
    store.close()
    best = ceiling(data, SHAPE)
    train_mask, test_mask = split(data, "temporal")
    train, test = data.subset(train_mask), data.subset(test_mask)
    users = np.flatnonzero(np.bincount(test.users, minlength=data.n_users))
    seen, relevant = train.items_by_user(), test.items_by_user()
    popular = np.argsort(-np.bincount(train.items, minlength=data.n_items), kind="stable")
    top = [[i for i in popular if i not in set(seen[u])][:10] for u in users]
    popularity = ranking_metrics(np.array(top), [relevant[u] for u in users], 10, data.n_items)
    assert best["users"] == len(users)
    assert best["ndcg@10"] > 2 * popularity["ndcg@10"]
