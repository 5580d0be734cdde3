"""What keeps ``fit`` fast at 10M interactions with the same results: the timeline sorted
once and carried into subsets, the ranking of sparse score rows, itemknn's ordered pairs
made in one conversion."""

import re

import numpy as np

from test_defaults import shop_like


def _timeline_by_sorting(data) -> np.ndarray:
    from edgerec.trainer.data import tie_break_key

    return np.lexsort((tie_break_key(data.users, data.items), data.ts, data.users))


def test_a_subset_inherits_its_timeline_as_if_sorted_again():
    """A split's parts read the parent's order (no new sort), and it is the order a fresh
    sort gives them, timestamp ties included; recent_items and the split agree with it."""
    from edgerec.trainer.data import temporal_split

    data = shop_like(200, 300, 8)
    data.ts = np.floor(data.ts / 50.0)  # many equal timestamps: the tie key decides
    train_mask, holdout_mask = temporal_split(data)
    for part in (data.subset(train_mask), data.subset(holdout_mask)):
        assert part._timeline is not None
        assert np.array_equal(part.timeline(), _timeline_by_sorting(part))
    fresh = type(data)(data.user_ids, data.item_ids, data.users, data.items, data.ts)
    assert np.array_equal(temporal_split(fresh)[1], holdout_mask)
    users = np.arange(0, data.n_users, 5)
    newest = fresh.recent_items(users, 3)
    order = _timeline_by_sorting(data)
    for row, user in zip(newest, users):
        mine = order[data.users[order] == user]
        assert list(row[row < data.n_items]) == list(data.items[mine][::-1][:3])


def test_top_k_of_rows_mostly_tied_at_zero_breaks_ties_by_the_lower_index():
    """A neighbour kind's score row is mostly 0 on a large catalogue: the few positive
    items first (best first), then the lowest-indexed unseen zeros, seen items never."""
    from edgerec.metrics import top_k_excluding

    rng = np.random.default_rng(0)
    scores = np.zeros((50, 400), np.float32)
    for row in scores:
        positive = rng.choice(400, rng.integers(0, 15), replace=False)
        row[positive] = rng.integers(1, 4, len(positive))  # ties among the positives too
    seen = [rng.choice(400, 20, replace=False) for _ in range(50)]
    got = top_k_excluding(scores, seen, 10)
    for row, ex, top in zip(scores, seen, got):
        allowed = np.setdiff1d(np.arange(400), ex)
        expected = allowed[np.lexsort((allowed, -row[allowed]))][:10]
        assert list(top) == list(expected)


def test_forward_pairs_count_what_came_after_within_the_window():
    """itemknn's ordered pairs against a count made by walking every timeline by hand."""
    from edgerec.trainer.itemknn import FORWARD_WINDOW, GAP_DECAY, ForwardPairs

    data = shop_like(60, 40, 30)
    expected = np.zeros((40, 40))
    order = _timeline_by_sorting(data)
    for user in range(data.n_users):
        line = data.items[order][data.users[order] == user]
        for a in range(len(line)):
            for gap in range(1, min(FORWARD_WINDOW, len(line) - 1 - a) + 1):
                expected[line[a], line[a + gap]] += GAP_DECAY ** (gap - 1)
    pairs = ForwardPairs(data)
    sources = np.array([3, 0, 17, 39, 5])
    assert np.allclose(pairs.rows(sources).toarray(), expected[sources], rtol=1e-5)


def test_popularity_metrics_rank_as_a_score_row_per_user_would():
    """Most popular unseen items from one ranking equal ``top_k_excluding`` over a copy of
    the counts per user, ties included, also for a user who has seen almost everything."""
    from edgerec.metrics import ranking_metrics, top_k_excluding
    from edgerec.trainer.validation import popularity_metrics

    rng = np.random.default_rng(1)
    counts = rng.integers(0, 6, 300).astype(np.float32)  # many ties
    seen = [rng.choice(300, n, replace=False) for n in rng.integers(0, 40, 60)]
    seen.append(np.arange(295))  # 5 unseen items left for k = 10
    relevant = [rng.choice(300, 5, replace=False) for _ in seen]
    broadcast = top_k_excluding(np.broadcast_to(counts, (len(seen), 300)), seen, 10)
    assert popularity_metrics(counts, seen, relevant, 10, 300) == \
        ranking_metrics(broadcast, relevant, 10, 300)


def test_autos_default_budget_grows_only_beyond_four_million_interactions(monkeypatch):
    """240 s for every shape measured so far; a minute per million interactions beyond 4M
    (600 s at the 100K x 100K shop's 10M); an explicit budget always wins."""
    from edgerec.trainer import MODEL_KINDS, fit, train
    from edgerec.trainer.train import auto_budget

    assert auto_budget(290_000) == auto_budget(4_000_000) == 240.0
    assert auto_budget(10_000_000) == 600.0
    monkeypatch.setattr(train, "MODEL_KINDS", {"rp3beta": MODEL_KINDS["rp3beta"]})  # fast
    for budget, said in ((None, "[auto] budget 240s"), (30.0, "[auto] budget 30s")):
        lines = []
        fit(shop_like(60, 50, 5), "auto", budget_seconds=budget, progress=lines.append)
        assert lines[0].startswith(said)


def test_a_time_limited_build_leaves_room_for_its_validation(monkeypatch):
    """A build whose validation is expected to take longer than the whole limit stops
    after its first block, so that the validation after it still ends in time."""
    from edgerec.trainer import MODEL_KINDS, fit, neighbourhood

    data = shop_like(300, 400, 10)
    monkeypatch.setattr(neighbourhood, "_BLOCK_CELLS", 20 * data.n_items)
    knn = MODEL_KINDS["itemknn"]
    monkeypatch.setattr(knn, "validation_seconds", classmethod(lambda cls, *a: 1e6))
    cut = fit(data, "itemknn", forward=0.0, recency=1.0, time_limit=1e5)
    built = int(re.search(r"rows of the (\d+) most popular of 400", cut.params["cut_short"])[1])
    assert built <= 20  # one block: the limit, 1e5 s, was never near


def test_a_time_limited_search_goes_on_where_the_next_setting_reuses_the_tables(monkeypatch):
    """rp3beta's recency values share one table: after a slow build (3 s here, of a 4.5 s
    limit) the next values cost a validation each, so all are tried; a search that priced
    each like the first would have stopped after one."""
    import time

    from edgerec.trainer import fit, neighbourhood

    build = neighbourhood.top_k_rows

    def slow(*args, **kwargs):
        time.sleep(3.0)
        return build(*args, **kwargs)

    monkeypatch.setattr(neighbourhood, "top_k_rows", slow)
    lines = []
    fit(shop_like(300, 400, 10), "rp3beta", refit=False, time_limit=4.5, progress=lines.append)
    assert [line for line in lines if line.startswith("search:")] == \
        [f"search: recency {r}" for r in neighbourhood.NeighbourModel.search["recency"]]
