"""The ``seq`` kind: a self-attention model over the user's recent items, read at request time.

The bundle comes from conftest's ``train_once("seq")`` (the one the shared behaviour suite
uses too): the demo store, whose users like two neighbouring genres each.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from edgerec import Recommender
from edgerec.demo import GENRES
from edgerec.store import Store


@pytest.fixture(scope="module")
def seq(train_once):
    return train_once("seq")


def genre_of(store: Store) -> dict[str, str]:
    rows = store.db.conn.execute("SELECT item_id, metadata FROM items").fetchall()
    return {i: json.loads(m)["categories"][0] for i, m in rows}


def liked_with(genre: str) -> set[str]:
    """Genres a user who picks ``genre`` likes: each demo cluster likes genres g and g + 1."""
    g = GENRES.index(genre)
    return {GENRES[(g - 1) % 8], genre, GENRES[(g + 1) % 8]}


def test_seq_trains_and_exports_with_parity(seq):
    """Its quality floor is checked with every kind's in test_models.py."""
    net = seq.result.model
    with Recommender.open(seq.bundle, seq.store) as rec:
        manifest = rec.bundle.manifest
    assert manifest["model_kind"] == "seq"
    assert manifest["dims"]["history_length"] == net.history_length > 0
    assert manifest["dims"]["folds_in"] is True
    parity = manifest["onnx"]["parity"]
    assert parity["users"] > 0 and parity["max_abs_diff"] <= 1e-5


def test_scores_read_only_the_history_and_attention_is_causal(seq):
    net, data = seq.result.model, seq.result.data
    users = np.arange(8, dtype=np.int64)
    history = data.recent_items(users, net.history_length)
    scores = net.score_all(tf.constant(users), tf.constant(history)).numpy()
    unknown = net.score_all(tf.constant(np.full(8, -1, np.int64)), tf.constant(history)).numpy()
    np.testing.assert_array_equal(scores, unknown)  # the user index is ignored
    # A longer history (extra padding or older items) is cut to L: same scores.
    wider = np.concatenate([history, np.full((8, 7), net.n_items, np.int64)], axis=1)
    np.testing.assert_allclose(net.score_all(tf.constant(users), tf.constant(wider)).numpy(),
                               scores, rtol=1e-6, atol=1e-6)
    # Position p attends to p and older only: replacing the newest item changes position 0
    # and nothing else.
    encoded = net.encode(*net.embed(tf.constant(history))).numpy()
    changed = history.copy()
    changed[:, 0] = (changed[:, 0] + 1) % net.n_items
    other = net.encode(*net.embed(tf.constant(changed))).numpy()
    np.testing.assert_allclose(other[:, 1:], encoded[:, 1:], rtol=1e-5, atol=1e-5)
    assert np.abs(other[:, 0] - encoded[:, 0]).max() > 1e-3


def test_recommendations_follow_new_events_without_retraining(seq, tmp_path):
    store_path = tmp_path / "store.db"
    shutil.copy(seq.store, store_path)
    with Recommender.open(seq.bundle, store_path) as rec:
        genres = genre_of(rec.store)
        user = seq.result.data.user_ids[4]
        history = rec.store.history(user)
        before = rec.recommend(user, n=10)
        # Five recent events for popular items of the genre this user picked least.
        counts = {g: sum(genres[i] == g for i in history) for g in GENRES}
        new_genre = min(GENRES, key=lambda g: (counts[g], g))
        popular = [i for i, _ in rec.store.popular(200)]
        shown = {r.item_id for r in before}
        new_items = [i for i in popular
                     if genres[i] == new_genre and i not in history and i not in shown][:5]
        assert len(new_items) == 5
        rec.store.add_events((user, i, "click", 1.0, 2e9 + t) for t, i in enumerate(new_items))
        after = rec.recommend(user, n=10)
    assert not before.fallback and not after.fallback
    got = [r.item_id for r in after]
    assert got != [r.item_id for r in before]
    assert not set(got) & set(new_items)  # just seen: excluded at once
    # Not just exclusion: the user's representation moved, so the scores did.
    old = dict(before)
    assert any(abs(old[r.item_id] - r.score) > 1e-4 for r in after if r.item_id in old)


def test_user_unknown_to_the_model_gets_personalised_results(seq, tmp_path):
    store_path = tmp_path / "store.db"
    shutil.copy(seq.store, store_path)
    with Recommender.open(seq.bundle, store_path) as rec:
        genres = genre_of(rec.store)
        assert "newcomer" not in rec.bundle.user_index
        popular_list = [r.item_id for r in rec.recommend("nobody-at-all", n=10)]
        popular = [i for i, _ in rec.store.popular(200)]
        horror = [i for i in popular if genres[i] == "Horror"][:6]
        rec.store.add_events(("newcomer", i, "view", 1.0, 2e9 + t) for t, i in enumerate(horror))
        first = rec.recommend("newcomer", n=10)
        # Then the newcomer turns to Comedy (three genres away): the list follows.
        comedy = [i for i in popular if genres[i] == "Comedy"][:10]
        rec.store.add_events(("newcomer", i, "view", 1.0, 3e9 + t) for t, i in enumerate(comedy))
        second = rec.recommend("newcomer", n=10)
    for recs, seen in ((first, horror), (second, horror + comedy)):
        assert recs.fallback is False and len(recs) == 10
        assert not {r.item_id for r in recs} & set(seen)
    got = [r.item_id for r in first]
    assert got != [i for i in popular_list if i not in horror][:10]
    # Personalised: mostly the genres of clusters that like Horror (3 of the 8 genres).
    assert sum(genres[i] in liked_with("Horror") for i in got) >= 7, [genres[i] for i in got]
    moved = [genres[r.item_id] for r in second]
    assert sum(g in liked_with("Comedy") for g in moved) >= 5, moved


def test_sampled_softmax_for_large_catalogues_trains(demo_store):
    from edgerec.trainer import fit

    result = fit(demo_store, "seq", epochs=6, seed=1, refit=False,
                 full_softmax_items=50, sampled_negatives=64)
    assert result.model.sampled
    losses = [row["loss"] for row in result.epochs]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    # Measured: 0.291 at its best epoch (5 of 6); after 1-3 epochs 0.164, 0.210, 0.251.
    assert result.metrics["holdout"]["ndcg@10"] >= 0.9 * 0.291


def test_spectral_init_is_the_leading_singular_subspace():
    """The randomised SVD (sparse products) gives the rank-d part of the degree-normalised
    user-item matrix that a dense SVD gives: factors @ factors.T = V_d S_d V_d^T."""
    from edgerec.trainer.data import Interactions
    from edgerec.trainer.sequence import spectral_item_factors

    rng = np.random.default_rng(3)  # three groups of users, each buying mostly its 20 items
    users = rng.integers(0, 200, 3000)
    items = np.where(rng.random(3000) < 0.8, 20 * (users % 3) + rng.integers(0, 20, 3000),
                     rng.integers(0, 60, 3000))
    data = Interactions(np.arange(200).astype(str), np.arange(60).astype(str), users, items,
                        np.zeros(len(users)))
    factors = spectral_item_factors(data, 60, 3, seed=0)
    dense = np.zeros((200, 60))
    np.add.at(dense, (users, items), 1.0)
    dense /= np.sqrt(np.outer(dense.sum(1).clip(1), dense.sum(0).clip(1)))
    _, s, vt = np.linalg.svd(dense, full_matrices=False)
    want = (vt[:3].T * s[:3]) @ vt[:3]
    np.testing.assert_allclose(factors @ factors.T, want, atol=1e-2 * np.abs(want).max())


def test_epoch_cost_follows_the_softmax_width():
    """``auto`` plans seq by the items its softmax spans: the sampled one (above
    ``full_softmax_items``) costs a fraction of the full catalogue, and more negatives more."""
    from edgerec.trainer.sequence import SelfAttentionSequence as Seq

    shop = (30_000, 24_000, 290_000)
    sampled = Seq.epoch_seconds(*shop, Seq.defaults)
    full = Seq.epoch_seconds(*shop, {**Seq.defaults, "full_softmax_items": 30_000})
    more = Seq.epoch_seconds(*shop, {**Seq.defaults, "sampled_negatives": 2048})
    assert sampled < more < full and full > 5 * sampled


def test_each_position_targets_the_items_that_followed_it():
    """``future_window`` F: position p of a window (p items before its end) is trained on
    the next F items of the timeline, the next one first; the future past the end is padding."""
    from edgerec.trainer.sequence import SelfAttentionSequence as Seq

    net = Seq(1, 10, history_length=4, future_window=3)
    net.timelines = [np.arange(7)]  # items 0..6 in time order
    inputs, targets, context = net.windows(np.random.default_rng(0))
    assert inputs.shape == (2, 4) and targets.shape == (2, 4, 3) and context.shape == (2, 0)
    np.testing.assert_array_equal(inputs[0], [5, 4, 3, 2])  # newest first
    np.testing.assert_array_equal(targets[0], [[6, 10, 10], [5, 6, 10], [4, 5, 6], [3, 4, 5]])
    # An older window's positions look past its own end, into the newer window.
    np.testing.assert_array_equal(inputs[1], [2, 1, 0, 10])
    np.testing.assert_array_equal(targets[1, :3], [[3, 4, 5], [2, 3, 4], [1, 2, 3]])
    assert (targets[1, 3] == 10).all()
    # With a bag that reads 6 items, each window also gets the 2 before its oldest input.
    net.history_length = 6
    again, _, context = net.windows(np.random.default_rng(0))
    np.testing.assert_array_equal(again, inputs)
    np.testing.assert_array_equal(context, [[1, 0], [10, 10]])


def test_future_window_trains_with_the_sampled_softmax(demo_store):
    from edgerec.trainer import fit

    result = fit(demo_store, "seq", epochs=4, seed=1, refit=False, future_window=4,
                 full_softmax_items=50, sampled_negatives=64)
    losses = [row["loss"] for row in result.epochs]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert result.metrics["holdout"]["ndcg@10"] > 2 * result.metrics["popularity"]["ndcg@10"]


def test_weight_average_is_what_the_model_holds_and_training_goes_on_from_the_steps():
    """``WeightAverage``: after an epoch the variables hold the moving average of every
    step's weights (momentum warmed up as (1 + t) / (10 + t)); the next epoch starts from
    the last step's weights, not from their average."""
    from edgerec.trainer.sequence import WeightAverage

    variable = tf.Variable([1.0])
    averaging = WeightAverage([variable], momentum=0.6)
    average, t, last = 1.0, 0, 1.0
    for epoch in range(3):
        with averaging.training():
            assert float(variable[0]) == pytest.approx(last)  # the steps' own weights
            for _ in range(5):
                last = float(variable[0]) * 0.5 + 3.0  # an "optimizer step": towards 6
                variable.assign([last])
                averaging.update()
                t += 1
                momentum = min(0.6, (1 + t) / (10 + t))
                average = momentum * average + (1 - momentum) * last
        assert float(variable[0]) == pytest.approx(average, rel=1e-6)
        assert float(variable[0]) < last  # the average trails the steps' climb to 6


def test_seq_is_exported_with_averaged_weights_and_ema_0_turns_averaging_off(demo_store):
    from edgerec.errors import InputError
    from edgerec.trainer import fit

    averaged = fit(demo_store, "seq", epochs=2, seed=1, refit=False, patience=5)
    plain = fit(demo_store, "seq", epochs=2, seed=1, refit=False, patience=5, ema=0)
    assert averaged.params["ema"] == 0.99 and plain.params["ema"] == 0
    tables = [r.model.item_embedding.numpy() for r in (averaged, plain)]
    assert not np.allclose(*tables)
    # Measured after 2 epochs: 0.256, popularity 0.134.
    assert averaged.metrics["holdout"]["ndcg@10"] > 1.5 * averaged.metrics["popularity"]["ndcg@10"]
    with pytest.raises(InputError, match="seq: ema must be in"):
        fit(demo_store, "seq", epochs=1, ema=1.0)


@pytest.fixture(scope="module")
def with_bag(demo_store, tmp_path_factory):
    """``seq`` whose attention reads 8 items and whose bag 32 (the demo's users have ~30)."""
    from edgerec.pipelines import train_bundle

    out = tmp_path_factory.mktemp("bag") / "seq"
    return train_bundle(demo_store, out, model="seq", epochs=2, seed=3, refit=False,
                        history_length=8, bag_length=32)


def test_the_bag_reads_items_older_than_the_attention_does(with_bag, demo_store):
    path, result = with_bag
    net, data = result.model, result.data
    assert (net.attention_length, net.history_length, net.params["bag_length"]) == (8, 32, 32)
    with Recommender.open(path, demo_store) as rec:
        manifest = rec.bundle.manifest
        user = rec.store.user_ids()[5]
        explained = rec.explain(user, rec.recommend(user, n=1)[0].item_id)
    assert explained.method == "leave-one-out" and explained.because
    assert manifest["dims"]["history_length"] == 32
    assert manifest["onnx"]["parity"]["max_abs_diff"] <= 1e-5
    assert np.abs(net.bag_dense.kernel.numpy()).max() > 0  # zero at first: it learned
    users = np.arange(16, dtype=np.int64)
    history = data.recent_items(users, 40)
    scores = net.score_all(tf.constant(users), tf.constant(history)).numpy()
    for position, changes in ((20, True), (35, False)):  # in the bag; past it
        changed = history.copy()
        changed[:, position] = (changed[:, position] + 1) % net.n_items
        other = net.score_all(tf.constant(users), tf.constant(changed)).numpy()
        assert bool(np.abs(other - scores).max() > 1e-4) == changes


def test_short_timelines_leave_the_bag_out(seq, demo_store):
    from edgerec.errors import InputError
    from edgerec.trainer import fit

    net = seq.result.model  # the demo's timelines fit in the attention: nothing to add
    assert net.bag_dense is None and net.history_length == net.attention_length
    with pytest.raises(InputError, match="seq: bag_length must be at least 0"):
        fit(demo_store, "seq", epochs=1, bag_length=-1)


def test_warm_start_from_a_bundle_saved_before_the_bag_keeps_it_bagless(seq, tmp_path):
    """A bundle saved before the bag has no ``bag_length`` in its settings. Where users now
    have more items than its attention reads, the default would add a bag, a weight the
    bundle lacks (an error); ``settings_before`` rebuilds the model it holds."""
    from edgerec.pipelines import train_bundle
    from edgerec.trainer import MODEL_KINDS, load_interactions
    from edgerec.trainer.train import build_model

    old = tmp_path / "old"
    shutil.copytree(seq.bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["trainer_state"]["params"]["bag_length"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    store_path = tmp_path / "s.db"
    shutil.copy(seq.store, store_path)
    store = Store.open(store_path)
    users, items = store.user_ids()[:40], [i for i, _ in store.popular(60)]
    store.add_events([(u, i, "view", 1.0, 2e9 + t) for u in users for t, i in enumerate(items)])
    store.close()  # 40 of 300 users now have ~90 items, over the attention's 40
    path, result = train_bundle(store_path, tmp_path / "next", warm_start=old, epochs=1)
    assert result.model.bag_dense is None and result.params["bag_length"] == 0
    with Recommender.open(path, store_path) as rec:
        assert rec.bundle.manifest["dims"]["history_length"] == seq.result.model.attention_length
    with Store.open(store_path, create=False) as store:
        data = load_interactions(store)
    fresh = build_model(MODEL_KINDS["seq"], data, 0, MODEL_KINDS["seq"].defaults, data)
    assert fresh.bag_dense is not None  # what the defaults build on this data


@pytest.mark.parametrize("softmax", [{}, {"full_softmax_items": 6, "sampled_negatives": 8}],
                         ids=["full", "sampled"])
def test_earlier_items_are_not_negatives_unless_exclude_seen_is_false(softmax):
    """A request leaves the user's earlier items out of its answer, so the loss does not
    push them down either: item 0 opens every timeline and is never anyone's next item.
    With ``exclude_seen`` (the default) it is masked out of every position's softmax and
    its bias is never trained; with ``exclude_seen=False`` it is a negative everywhere
    (or, with the sampled softmax, wherever it is drawn)."""
    from edgerec.errors import InputError
    from edgerec.trainer import fit
    from edgerec.trainer.data import Interactions

    rng = np.random.default_rng(5)
    later = [rng.choice(np.arange(1, 12), 5, replace=False) for _ in range(80)]
    items = np.concatenate([[0, *rest] for rest in later])
    users = np.repeat(np.arange(80), 6)
    data = Interactions(np.arange(80).astype(str), np.arange(12).astype(str), users, items,
                        np.tile(np.arange(6.0), 80), summary={"interactions": len(users)})
    settings = dict(epochs=2, seed=0, refit=False, ema=0, history_length=8, **softmax)
    bias = {flag: fit(data, "seq", exclude_seen=flag, **settings).model.item_bias.numpy()
            for flag in (True, False)}
    assert bias[False][0] < bias[True][0] - 0.01  # pushed down only as a negative
    with pytest.raises(InputError, match="seq: exclude_seen must be true or false"):
        fit(data, "seq", epochs=1, exclude_seen="yes")
