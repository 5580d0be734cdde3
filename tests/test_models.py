"""Behaviour suite run against every model kind: quality, parity, serving, repeatability."""

import numpy as np
import pytest

from conftest import genre_precision, quality_floor
from edgerec import Recommender
from edgerec.metrics import top_k_excluding


def test_holdout_quality_reaches_the_kinds_floor(trained, genre_rule):
    """Not just "beats popularity": within 10% of what this kind reaches on the fixture and
    within 15% of a rule that learns nothing (each user's two favourite genres, popular
    first). The popularity baseline the trainer reports is recomputed independently."""
    metrics = trained.result.metrics
    ndcg = metrics["holdout"]["ndcg@10"]
    assert metrics["popularity"]["ndcg@10"] == pytest.approx(genre_rule["popularity_ndcg@10"], abs=1e-9)
    assert ndcg >= quality_floor(trained.kind, genre_rule["ndcg@10"]), (ndcg, genre_rule)
    assert ndcg > 2 * genre_rule["popularity_ndcg@10"]
    # The bundle carries the same numbers.
    with Recommender.open(trained.bundle, trained.store) as rec:
        assert rec.bundle.manifest["metrics"]["holdout"]["ndcg@10"] == ndcg


def test_onnx_core_scores_equal_the_keras_model(trained):
    """Parity measured here, not read from what the exporter wrote about itself: every
    item's score from the ONNX core (k = all items) against the Keras model, for known
    users and for the same histories as visitors the model never saw (fold-in)."""
    from edgerec.session import Scorer
    from edgerec.trainer.validation import score_users

    data, net = trained.result.data, trained.result.model
    users = np.arange(0, data.n_users, 5)
    history = data.recent_items(users, net.history_length)
    scorer = Scorer(trained.bundle / "model.onnx", provider="cpu")
    nothing = np.full((len(users), 1), data.n_items, np.int64)
    for ids in (users, np.full_like(users, -1)):
        want = score_users(net, ids, history)
        items, scores = scorer.top_k(ids.astype(np.int64), history, nothing, data.n_items)
        got = np.full_like(want, np.nan)
        np.put_along_axis(got, items, scores, axis=1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    with Recommender.open(trained.bundle, trained.store) as rec:
        parity = rec.bundle.manifest["onnx"]["parity"]
    assert parity["users"] > 0 and parity["max_abs_diff"] <= 1e-4


# Measured on the fixture's bundles (all users, served by the runtime); the same bundles
# with shuffled item ids get 0.15-0.19. gan: 0.728 with its earlier, slower schedule.
MEASURED_GENRE_PRECISION = {"als": 0.762, "ease": 0.650, "mf": 0.853, "neumf": 0.887, "seq": 0.953,
                            "itemknn": 0.647, "rp3beta": 0.616, "sparse_ease": 0.630, "gan": 0.629}


def test_served_lists_follow_each_users_genres(trained, tmp_path):
    """What the runtime serves from the bundle, judged by the data's known structure; the
    same bundle with its item ids shuffled (a broken export) must fail the same floor."""
    import json

    from edgerec import bundle as bundles

    floor = 0.9 * MEASURED_GENRE_PRECISION[trained.kind]
    got = genre_precision(trained.bundle, trained.store)
    manifest = json.loads((trained.bundle / "manifest.json").read_text())
    manifest["item_ids"] = list(np.random.default_rng(0).permutation(manifest["item_ids"]))
    shuffled = bundles.write(tmp_path / "shuffled", (trained.bundle / "model.onnx").read_bytes(),
                             manifest)
    broken = genre_precision(shuffled, trained.store)
    assert broken < floor, broken
    assert got >= floor, got


def test_runtime_top_n_equals_reference_from_weights(trained):
    """What the runtime serves equals the model's own scores ranked in numpy."""
    from edgerec.trainer.validation import score_users

    data, net = trained.result.data, trained.result.model
    seen = data.items_by_user()
    users = np.arange(0, data.n_users, 7)
    history = data.recent_items(users, net.history_length)  # what the runtime sends too
    expected = top_k_excluding(score_users(net, users, history), [seen[u] for u in users], 10)
    with Recommender.open(trained.bundle, trained.store, provider="cpu") as rec:
        got = rec.recommend_many([data.user_ids[u] for u in users], n=10)
    for u, recs, ref in zip(users, got, expected):
        assert not recs.fallback
        assert [r.item_id for r in recs] == [data.item_ids[i] for i in ref], data.user_ids[u]


def test_unseen_user_with_history_gets_personalised_results(trained, tmp_path):
    """A visitor the model never saw, with a trained user's history, is placed near that user."""
    import shutil

    from edgerec.store import Store

    store_path = tmp_path / "store.db"
    shutil.copy(trained.store, store_path)
    store = Store.open(store_path)
    twins = {}
    for user in store.user_ids()[:40:4]:
        history = store.history(user)
        store.add_events((f"twin-of-{user}", item, "view", 1.0, 2e9 - t)
                         for t, item in enumerate(history))
        twins[user] = f"twin-of-{user}"
    store.close()
    overlaps = []
    with Recommender.open(trained.bundle, store_path) as rec:
        for user, twin in twins.items():
            original, visitor = rec.recommend(user, n=10), rec.recommend(twin, n=10)
            assert not visitor.fallback and len(visitor) == 10
            assert not {r.item_id for r in visitor} & set(rec.store.history(twin))
            overlaps.append(len({r.item_id for r in original} & {r.item_id for r in visitor}))
    assert np.mean(overlaps) >= 5, overlaps


def test_mf_scores_match_numpy_on_raw_weights(trained):
    if trained.kind != "mf":
        pytest.skip("dot-product form is specific to mf")
    net = trained.result.model
    data = trained.result.data
    user_emb = net.user_embedding.embeddings.numpy()
    item_emb = net.item_embedding.embeddings.numpy()
    scores = (user_emb @ item_emb.T + net.item_bias.embeddings.numpy().T
              + net.user_bias.embeddings.numpy())
    user = data.user_ids[5]
    with Recommender.open(trained.bundle, trained.store) as rec:
        recs = rec.recommend(user, n=5)
    got = np.array([r.score for r in recs])
    want = np.array([scores[5, np.flatnonzero(data.item_ids == r.item_id)[0]] for r in recs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_seen_items_never_recommended(trained):
    with Recommender.open(trained.bundle, trained.store) as rec:
        users = rec.store.user_ids()
        results = rec.recommend_many(users, n=20, chunk_size=64)
        histories = rec.store.histories(users)
    assert len(results) == len(users)
    for recs in results:
        items = [r.item_id for r in recs]
        assert len(items) == 20 and len(set(items)) == 20
        assert not set(items) & set(histories[recs.user_id])
        assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_user_who_has_seen_almost_everything_gets_what_is_left(trained, tmp_path):
    import shutil

    from edgerec.store import Store

    store_path = tmp_path / "store.db"
    shutil.copy(trained.store, store_path)
    data = trained.result.data
    user = data.user_ids[0]
    store = Store.open(store_path)
    left = sorted(set(data.item_ids[:3]) - set(store.history(user)))
    store.add_events((user, item, "view", 1.0, 2e9) for item in data.item_ids[3:])
    store.close()
    with Recommender.open(trained.bundle, store_path) as rec:
        recs = rec.recommend(user, n=10)
    assert left and sorted(r.item_id for r in recs) == left


def test_training_is_repeatable(demo_store, trained, genre_rule):
    from edgerec.trainer import fit

    a = fit(demo_store, trained.kind, epochs=2, seed=11, refit=False)
    b = fit(demo_store, trained.kind, epochs=2, seed=11, refit=False)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # Negative control of the quality floor: stopped after 2 epochs, the kinds trained by
    # gradient steps fall below it (als converges in two sweeps, ease is solved outright).
    if trained.kind in DEGRADED_AFTER_2_EPOCHS:
        assert a.metrics["holdout"]["ndcg@10"] < quality_floor(trained.kind, genre_rule["ndcg@10"])


DEGRADED_AFTER_2_EPOCHS = {"mf", "neumf", "seq"}


def test_auto_tries_every_kind_and_keeps_the_best(demo_store, tmp_path):
    from edgerec.pipelines import train_bundle
    from edgerec.trainer import MODEL_KINDS

    path, result = train_bundle(demo_store, tmp_path / "auto", model="auto", epochs=3)
    auto = result.metrics["auto"]
    assert sorted(t["model"] for t in auto["tried"]) == sorted(MODEL_KINDS)
    scored = [t for t in auto["tried"] if "ndcg@10" in t]
    best = max(scored, key=lambda t: t["ndcg@10"])
    assert auto["chosen"] == best["model"] == result.model.kind
    with Recommender.open(path, demo_store) as rec:
        assert rec.bundle.kind == best["model"]
        assert rec.bundle.manifest["metrics"]["auto"]["chosen"] == best["model"]
        assert len(rec.recommend(rec.store.user_ids()[0], n=5)) == 5


def test_time_limit_ends_training_at_the_best_epoch_so_far(demo_store):
    """What keeps auto within its budget: a spent limit stops after the current epoch."""
    from edgerec.trainer import fit

    result = fit(demo_store, "mf", epochs=10, refit=False, time_limit=0.0)
    assert len(result.epochs) == 1 and result.params["trained_epochs"] == 1
    unlimited = fit(demo_store, "mf", epochs=2, refit=False)
    assert len(unlimited.epochs) == 2


def test_auto_plans_by_value_per_second_and_says_why_it_skips(demo_store):
    """A budget too small for more than one try: the plan's first kind runs (auto always
    returns a model), every other kind is recorded as skipped with the reason."""
    from edgerec.trainer import fit
    from edgerec.trainer.data import load_interactions
    from edgerec.trainer.train import plan_auto
    from edgerec.store import Store

    store = Store.open(demo_store, create=False)
    plan = plan_auto(load_interactions(store), epochs=2)
    store.close()
    values = [entry["value_per_s"] for entry in plan]
    assert values == sorted(values, reverse=True) and len(plan) > 1
    lines = []
    result = fit(demo_store, "auto", epochs=2, budget_seconds=0.01, progress=lines.append)
    tried = result.metrics["auto"]["tried"]
    assert [t["model"] for t in tried] == [entry["model"] for entry in plan]
    assert result.metrics["auto"]["chosen"] == plan[0]["model"] == result.model.kind
    assert all("available" in t["skipped"] for t in tried[1:])
    assert any(line.startswith("[auto] stopped after") for line in lines)
    # the budget is spent: the winner is not refitted past it, and says so
    assert result.params["refit"] is False
    assert any(line.startswith("[auto] no refit:") for line in lines)


def test_every_kind_declares_its_capabilities(trained):
    """Each kind states every capability as True or False, and they say what the bundle
    holds: fold-in in the manifest, item vectors in the bundle, a trainer state or not."""
    from edgerec.trainer.base import CAPABILITIES

    net = trained.result.model
    assert all(isinstance(getattr(type(net), name), bool) for name in CAPABILITIES)
    with Recommender.open(trained.bundle, trained.store) as rec:
        assert rec.bundle.folds_in is net.folds_in
        assert rec.bundle.has_vectors is net.has_item_vectors
        assert ("trainer_state" in rec.bundle.manifest) is net.warm_starts


def test_a_kind_that_leaves_a_capability_out_cannot_be_defined():
    from edgerec.trainer.base import ScoringModel

    with pytest.raises(TypeError, match="'half' .* must declare has_item_vectors, warm_starts"):
        class Half(ScoringModel):  # noqa: F841 - defining it is the test
            kind = "half"
            reads_history = True
            folds_in = False


def test_unknown_kind_is_one_line_listing_the_choices(demo_store):
    from edgerec.errors import InputError
    from edgerec.trainer import MODEL_KINDS, fit

    with pytest.raises(InputError) as error:
        fit(demo_store, "svd")
    assert str(error.value) == f"unknown model kind 'svd'; choose from {', '.join(MODEL_KINDS)}, auto"
