"""The item-neighbourhood kinds (itemknn, rp3beta, sparse_ease) beyond the shared suite:
scores computed by hand, live history, bundle size O(items x K), EASE on neighbourhoods."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgerec.recommender import Recommender
from edgerec.store import Store

# Four users, four items. Item columns over (u0, u1, u2, u3):
# i0 = 1100, i1 = 1110, i2 = 0111, i3 = 0001.
TINY = {"u0": ["i0", "i1"], "u1": ["i0", "i1", "i2"], "u2": ["i1", "i2"], "u3": ["i2", "i3"]}


def _store(path: Path, histories: dict) -> Path:
    store = Store.open(path)
    store.add_events((u, i, "purchase", 1.0, float(1000 * n + t))
                     for n, (u, items) in enumerate(histories.items()) for t, i in enumerate(items))
    store.close()
    return path


def _served(tmp_path, kind: str, **params) -> tuple[Path, Path]:
    from edgerec.pipelines import train_bundle

    store = _store(tmp_path / "tiny.db", TINY)
    bundle, _ = train_bundle(store, tmp_path / kind, kind, **params)
    return bundle, store


def _scores(rec: Recommender, user: str) -> dict:
    return {r.item_id: r.score for r in rec.recommend(user, n=10)}


def _random_interactions(rng, n_users: int, n_items: int, density: float):
    """Users who each bought every item with probability ``density``, in a random order."""
    from edgerec.trainer import Interactions

    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    return Interactions(np.array([f"u{u}" for u in range(n_users)], dtype=object),
                        np.array([f"i{i}" for i in range(n_items)], dtype=object),
                        users.astype(np.int64), items.astype(np.int64),
                        rng.permutation(len(users)).astype(float), {"interactions": len(users)})


def test_itemknn_scores_are_shrunk_cosines_summed_over_the_history(tmp_path):
    """A visitor who bought i0 and i3 gets, for i1, cos(i0, i1) = 2 / (sqrt2 sqrt3 + shrink)
    and, for i2, 1 / (sqrt2 sqrt3 + shrink) + 1 / (sqrt3 sqrt1 + shrink). Buying i3 again
    changes nothing (a repeat counts once); buying i2 changes the next answer. The model
    reads the 3 most recent items (the longest training history), so i0 then drops out."""
    bundle, store = _served(tmp_path, "itemknn", weighting="none", shrink=1.0)
    expected = {"i2": 1 / (math.sqrt(6) + 1) + 1 / (math.sqrt(3) + 1), "i1": 2 / (math.sqrt(6) + 1)}
    with Recommender.open(bundle, store) as rec:
        for item in ("i0", "i3"):
            rec.record("visitor", item, "purchase")
        assert list(_scores(rec, "visitor")) == ["i2", "i1"]
        assert _scores(rec, "visitor") == pytest.approx(expected, rel=1e-5)
        rec.record("visitor", "i3", "purchase")
        assert _scores(rec, "visitor") == pytest.approx(expected, rel=1e-5)
        rec.record("visitor", "i2", "purchase")
        assert _scores(rec, "visitor") == pytest.approx({"i1": 2 / (3 + 1)}, rel=1e-5)


def test_rp3beta_scores_are_popularity_damped_random_walks(tmp_path):
    """i0 -> {u0, u1} -> items, i3 -> {u3} -> items, each step uniform (alpha 1), then the
    target divided by its popularity^beta: pop(i1) = pop(i2) = 3."""
    bundle, store = _served(tmp_path, "rp3beta", alpha=1.0, beta=0.5)
    with Recommender.open(bundle, store) as rec:
        rec.record("visitor", "i0", "purchase")
        rec.record("visitor", "i3", "purchase")
        got = _scores(rec, "visitor")
    walk_i1 = 0.5 * 0.5 + 0.5 * (1 / 3)                  # via u0, via u1
    walk_i2 = 0.5 * (1 / 3) + 1.0 * 0.5                  # via u1; from i3 via u3
    assert got == pytest.approx({"i2": walk_i2 / math.sqrt(3), "i1": walk_i1 / math.sqrt(3)},
                                rel=1e-5)


def test_sparse_ease_on_every_item_is_ease_kept_to_its_positive_weights():
    """With every item a candidate (all pairs co-occur here), each item's regression is
    EASE's column: the tables hold exactly the positive entries of EASE's B."""
    from edgerec.trainer import Interactions, fit
    from edgerec.trainer.ease import ease_weights

    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((60, 12)) < 0.5)
    data = Interactions(np.array([f"u{u}" for u in range(60)], dtype=object),
                        np.array([f"i{i}" for i in range(12)], dtype=object),
                        users.astype(np.int64), items.astype(np.int64),
                        np.arange(len(users), dtype=float), {"interactions": len(users)})
    net = fit(data, "sparse_ease", neighbours=20, candidates=20, reg=5.0).model  # refit: all data
    full = ease_weights(data, 5.0)
    assert (full != 0).sum() == 12 * 11  # every pair co-occurs: nothing is left out
    index, weight, _ = net.neighbour_tables()
    got = np.zeros((13, 13), np.float32)
    np.add.at(got, (np.arange(13)[:, None].repeat(index.shape[1], 1), index), weight)
    np.testing.assert_allclose(got[:12, :12], np.maximum(full, 0), rtol=1e-4, atol=1e-6)


def test_bundle_grows_with_items_times_neighbours(tmp_path):
    """model.onnx holds an int32 index and a float32 weight per kept neighbour, plus a
    few kilobytes of graph: O(items x K), never items^2 (one graph serves all three kinds);
    a taste table (searched: ``taste`` chosen on the holdout) is a second, of
    ``taste_neighbours`` per item."""
    from edgerec.demo import write_demo
    from edgerec.pipelines import train_bundle

    store = Store.open(tmp_path / "s.db")
    write_demo(store, n_users=400, n_items=600, mean_events=40, seed=2)
    store.close()
    sizes = {}
    for k, taste in ((5, 0.0), (40, 0.0), (40, 0.3)):
        bundle, result = train_bundle(tmp_path / "s.db", tmp_path / f"knn{k}-{taste}", "itemknn",
                                      neighbours=k, taste=taste)
        sizes[k, taste] = (bundle / "model.onnx").stat().st_size
        n, slots = result.data.n_items, k + (result.params["taste_neighbours"] if taste else 0)
        assert (n + 1) * slots * 8 < sizes[k, taste] < (n + 1) * slots * 8 + 20_000
    assert sizes[40, 0.0] - sizes[5, 0.0] == pytest.approx((n + 1) * 35 * 8, rel=0.01)


def test_neighbourhood_kinds_refuse_bad_settings(tmp_path):
    from edgerec.errors import InputError

    store = _store(tmp_path / "tiny.db", TINY)
    from edgerec.trainer import fit
    for kind, params, message in [("itemknn", {"weighting": "okapi"}, "weighting must be one of"),
                                  ("itemknn", {"neighbours": 0}, "neighbours >= 1"),
                                  ("sparse_ease", {"reg": 0.0}, "reg > 0"),
                                  ("rp3beta", {"recency": 1.5}, "0 <= recency <= 1")]:
        with pytest.raises(InputError, match=message):
            fit(store, kind, **params)


def test_a_later_history_item_outweighs_an_earlier_one(tmp_path):
    """With recency r the newest item counts 1, the one before r (TINY's cosines, shrink 1):
    a visitor whose last purchase is i0 is led to i0's neighbour i1, one whose last is i3
    to i3's neighbour i2, though both bought the same two items. Without recency the two
    would get the same list."""
    r = 0.2
    bundle, store = _served(tmp_path, "itemknn", weighting="none", shrink=1.0, recency=r)
    c01, c02, c23 = 2 / (math.sqrt(6) + 1), 1 / (math.sqrt(6) + 1), 1 / (math.sqrt(3) + 1)
    with Recommender.open(bundle, store) as rec:
        for user, order in (("i0-last", ("i3", "i0")), ("i3-last", ("i0", "i3"))):
            for item in order:
                rec.record(user, item, "purchase")
        assert _scores(rec, "i0-last") == pytest.approx({"i1": c01, "i2": c02 + r * c23}, rel=1e-5)
        assert _scores(rec, "i3-last") == pytest.approx({"i2": c23 + r * c02, "i1": r * c01},
                                                        rel=1e-5)
        assert list(_scores(rec, "i0-last")) == ["i1", "i2"]
        assert list(_scores(rec, "i3-last")) == ["i2", "i1"]


@pytest.mark.parametrize("neighbours", [2, 29])
def test_exported_graph_weighs_history_slots_as_score_all_does(neighbours):
    """Histories with repeats and padding, scored by the ONNX core and by ``score_all``,
    with recency on, and with a taste table: equal scores; and recency and taste change
    them (so the check can fail). Both ways the graph sums neighbours: 2 per item are
    scatter-added slots, 29 (all of 30 items) gathered dense rows."""
    from edgerec.exporters.onnx import dense_neighbours, to_onnx
    from edgerec.session import Scorer
    from edgerec.trainer import fit
    from edgerec.trainer.validation import score_users

    assert dense_neighbours(30, neighbours) == (neighbours == 29)
    rng = np.random.default_rng(1)
    data = _random_interactions(rng, 80, 30, 0.2)
    history = rng.integers(0, 30, size=(16, 9))
    history[:, 3] = history[:, 0]         # a repeated item
    history[::2, 6:] = 30                 # padding at the end, as the runtime sends it
    nothing = np.full((16, 1), 30, np.int64)
    scores = {}
    for recency, taste in ((1.0, 0.0), (0.5, 0.0), (0.5, 0.3), (0.05, 0.3)):
        net = fit(data, "itemknn", recency=recency, taste=taste, forward=0.5,
                  neighbours=neighbours, refit=False).model
        scorer = Scorer(to_onnx(net), provider="cpu")
        for width in (4, 9):  # the runtime trims a history to the user's length
            want = score_users(net, np.zeros(16, np.int64), history[:, :width])
            items_, got_scores = scorer.top_k(np.zeros(16, np.int64), history[:, :width],
                                              nothing, 30)
            got = np.full_like(want, np.nan)
            np.put_along_axis(got, items_, got_scores, axis=1)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        scores[recency, taste] = want
    assert not np.allclose(scores[1.0, 0.0], scores[0.5, 0.0])
    assert not np.allclose(scores[0.5, 0.0], scores[0.5, 0.3])
    assert not np.allclose(scores[0.5, 0.3], scores[0.05, 0.3])


def test_forward_itemknn_recommends_what_came_after(tmp_path):
    """forward 1 counts only pairs in timeline order: i1 came before i2 for u1 and u2, so
    a visitor who bought i1 is offered i2 (2 / (sqrt3 sqrt3 + shrink)), never i0, which
    always came before i1 (the symmetric cosine offers both)."""
    bundle, store = _served(tmp_path, "itemknn", weighting="none", shrink=1.0, forward=1.0)
    with Recommender.open(bundle, store) as rec:
        rec.record("visitor", "i1", "purchase")
        got = _scores(rec, "visitor")
    assert list(got)[0] == "i2" and got == pytest.approx({"i2": 2 / (3 + 1), "i0": 0.0, "i3": 0.0})


def test_itemknn_shrink_auto_follows_the_table(tmp_path):
    """shrink "auto" is 1,000 for an ordered table (forward 1) and 10 where symmetric counts
    are in it: the served scores are the explicit setting's, and not the other one's."""
    def scores(**params):
        folder = tmp_path / "_".join(f"{n}{v}" for n, v in sorted(params.items()))
        folder.mkdir()
        bundle, store = _served(folder, "itemknn", weighting="none", **params)
        with Recommender.open(bundle, store) as rec:
            rec.record("visitor", "i1", "purchase")
            return _scores(rec, "visitor")

    for forward, shrink, other in ((1.0, 1000.0, 10.0), (0.0, 10.0, 1000.0)):
        chosen = scores(forward=forward)
        assert chosen == pytest.approx(scores(forward=forward, shrink=shrink))
        assert chosen != pytest.approx(scores(forward=forward, shrink=other))
    from edgerec.errors import InputError

    with pytest.raises(InputError, match="shrink"):
        scores(shrink=-1.0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(2, 30), st.integers(1, 12), st.floats(0.02, 1.0), st.integers(0, 2**31 - 1))
def test_neighbour_tables_keep_each_rows_largest_positive_weights(n_items, k, fill, seed):
    """Dense blocks (a partition per row) and sparse ones (a sort of the non-zeros) keep the
    same thing: each item's k largest positive weights to other items, largest first."""
    import scipy.sparse as sp

    from edgerec.trainer.neighbourhood import item_blocks, top_k_rows

    rng = np.random.default_rng(seed)
    weights = np.where(rng.random((n_items, n_items)) < fill,
                       rng.integers(-3, 6, (n_items, n_items)).astype(np.float32), 0.0)
    index, kept, _ = top_k_rows(lambda items: sp.csr_matrix(weights[items]), n_items, k,
                                item_blocks(n_items, order=rng.permutation(n_items)))
    k = min(k, n_items - 1)
    for item in range(n_items):
        others = np.delete(weights[item], item)
        expected = np.sort(others[others > 0])[::-1][:k]
        row = kept[item][:len(expected)]
        assert list(row) == list(expected) and not kept[item][len(expected):].any()
        assert (weights[item, index[item][:len(expected)]] == row).all()
        assert (index[item][len(expected):] == n_items).all() and item not in index[item]


def test_taste_adds_the_whole_history_symmetric_row_on_one_scale():
    """itemknn with ``taste`` t scores recent / its row's largest + t x whole / its row's,
    where "recent" is the same model without the taste table and "whole" the symmetric
    model (forward 0) of ``taste_neighbours`` neighbours reading every history item alike;
    a history of padding alone scores 0."""
    from edgerec.trainer import fit
    from edgerec.trainer.validation import score_users

    rng = np.random.default_rng(3)
    data = _random_interactions(rng, 60, 25, 0.25)
    history = rng.integers(0, 25, size=(8, 6))
    history[-1] = 25  # padding only

    def scores(**params):
        net = fit(data, "itemknn", refit=False, **{"forward": 1.0, **params}).model
        return score_users(net, np.zeros(8, np.int64), history)

    recent = scores(recency=0.3, taste=0.0)
    whole = scores(forward=0.0, recency=1.0, taste=0.0, neighbours=5)
    mixed = scores(recency=0.3, taste=0.5, taste_neighbours=5)
    largest = np.maximum(recent.max(1, keepdims=True), 1e-30), np.maximum(whole.max(1, keepdims=True), 1e-30)
    np.testing.assert_allclose(mixed, recent / largest[0] + 0.5 * whole / largest[1], rtol=1e-5, atol=1e-7)
    assert not np.allclose(mixed[:-1], recent[:-1] / largest[0][:-1]) and not mixed[-1].any()
