"""The als, ease and neumf kinds: known answers, fold-in, limits, and the shared export path.

The trained bundles come from conftest's ``train_once`` (one training per kind per
session, shared with the behaviour suite in test_models.py).
"""

import shutil

import numpy as np
import pytest

from edgerec import Recommender
from edgerec.errors import InputError
from edgerec.store import Store

KINDS = ["als", "ease", "neumf"]


@pytest.mark.parametrize("kind", KINDS)
def test_trains_and_exports_a_bundle_that_folds_in(train_once, kind):
    """Quality and ONNX parity of every kind are measured in test_models.py (the quality
    floor, the core's scores against Keras)."""
    trained = train_once(kind)
    with Recommender.open(trained.bundle, trained.store) as rec:
        manifest = rec.bundle.manifest
        assert manifest["model_kind"] == kind
        assert manifest["dims"]["folds_in"] is True
        recs = rec.recommend(trained.result.data.user_ids[0], n=10)
    assert len(recs) == 10 and not recs.fallback


def _interactions(matrix: np.ndarray, weights: np.ndarray | None = None):
    from edgerec.trainer.data import Interactions

    users, items = np.nonzero(matrix)
    return Interactions(np.array([f"u{u}" for u in range(matrix.shape[0])], dtype=object),
                        np.array([f"i{i}" for i in range(matrix.shape[1])], dtype=object),
                        users.astype(np.int64), items.astype(np.int64),
                        np.arange(len(users), dtype=np.float64), {"interactions": len(users)},
                        None if weights is None else weights[users, items])


def test_ease_matches_closed_form_on_known_matrix(monkeypatch):
    import tensorflow as tf

    from edgerec.trainer import ease
    from edgerec.trainer.ease import EASE

    x = np.array([[1, 1, 0, 0, 1],
                  [1, 0, 1, 0, 0],
                  [0, 1, 1, 1, 0],
                  [1, 1, 1, 0, 1],
                  [0, 0, 1, 1, 0],
                  [1, 0, 0, 1, 1]], dtype=np.float64)
    reg = 2.0
    # Steck (2019), eq. 8: B = I - P diagMat(1 / diag(P)), P = (X^T X + reg I)^-1.
    p = np.linalg.inv(x.T @ x + reg * np.eye(5))
    expected = np.eye(5) - p @ np.diag(1.0 / np.diag(p))
    np.testing.assert_allclose(np.diag(expected), 0.0, atol=1e-12)
    # And the optimality condition it comes from: off the diagonal, the gradient of
    # |X - XB|^2 + reg |B|^2 vanishes ((X^T X + reg I) B - X^T X is diagonal).
    gradient = (x.T @ x + reg * np.eye(5)) @ expected - x.T @ x
    np.testing.assert_allclose(gradient - np.diag(np.diag(gradient)), 0.0, atol=1e-10)

    data = _interactions(x)
    net = EASE(data.n_users, data.n_items, reg=reg)
    net.prepare(data)
    net.train_epoch(data, 0)
    weights = net.item_weights.numpy()
    np.testing.assert_allclose(weights[:5], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(weights[5], 0.0)  # the padding row
    # The float32 solve used for large catalogues gives the same B.
    monkeypatch.setattr(ease, "_EASE_FLOAT64_ITEMS", 0)
    np.testing.assert_allclose(ease.ease_weights(data, reg), expected, rtol=1e-4, atol=1e-6)
    assert net.history_length == 4  # the most items any user has

    users = np.arange(6)
    history = data.recent_items(users, net.history_length)
    scores = net.score_all(tf.constant(users), tf.constant(history)).numpy()
    np.testing.assert_allclose(scores, x @ expected, rtol=1e-5, atol=1e-6)
    # Repeated history entries and padding change nothing (multi-hot, not counts).
    doubled = np.concatenate([history, history], axis=1)
    np.testing.assert_allclose(net.score_all(tf.constant(users), tf.constant(doubled)).numpy(),
                               scores, rtol=1e-6, atol=1e-7)


def test_ease_refuses_catalogue_over_limit():
    from edgerec.trainer import fit
    from edgerec.trainer.ease import EASE

    matrix = np.zeros((6, EASE.MAX_ITEMS + 1))
    matrix[:, :8] = np.random.default_rng(0).random((6, 8)) < 0.7
    with pytest.raises(InputError, match=rf"ease .*{EASE.MAX_ITEMS + 1} items.*--model sparse_ease"):
        fit(_interactions(matrix), "ease")


def test_als_sweeps_lower_the_weighted_loss():
    from edgerec.trainer.als import AlternatingLeastSquares

    rng = np.random.default_rng(1)
    x = (rng.random((40, 30)) < 0.2).astype(np.float64)
    data = _interactions(x, rng.integers(1, 6, size=x.shape).astype(np.float64))
    net = AlternatingLeastSquares(data.n_users, data.n_items, seed=0, dim=8, reg=1.0, alpha=4.0)
    net.prepare(data)
    losses = [net.train_epoch(data, e) for e in range(6)]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])), losses
    # The loss is the Hu et al. objective, recomputed here densely.
    users = net.user_embedding.embeddings.numpy().astype(np.float64)
    items = net.item_embedding.embeddings.numpy().astype(np.float64)
    conf = 1.0 + 4.0 * np.log1p(_dense_weights(data))  # 1 where unobserved
    dense = np.sum(conf * (x - users @ items.T) ** 2) + 1.0 * (np.sum(users ** 2) + np.sum(items ** 2))
    assert losses[-1] == pytest.approx(dense / data.n_users, rel=1e-4)


def test_als_half_sweep_solves_each_rows_least_squares_problem():
    """The compiled CG sweep, given as many steps as dimensions, lands on numpy's exact
    solution of every row's weighted ridge problem (rows without entries go to zero)."""
    from edgerec.trainer.als import _CSR, als_half_sweep

    rng = np.random.default_rng(3)
    rows, cols = np.nonzero(rng.random((25, 18)) < 0.3)
    conf = 1.0 + 5.0 * rng.random(len(rows))
    fixed = rng.normal(size=(18, 6)).astype(np.float32)
    solve_for = rng.normal(size=(26, 6)).astype(np.float32)  # row 25 has no entries
    als_half_sweep(_CSR(rows, cols, conf, 26), solve_for, fixed, reg=0.5, cg_steps=12)
    f = fixed.astype(np.float64)
    for u in range(26):
        mine = rows == u
        y, c = f[cols[mine]], conf[mine]
        a = f.T @ f + 0.5 * np.eye(6) + y.T @ ((c - 1.0)[:, None] * y)
        np.testing.assert_allclose(solve_for[u], np.linalg.solve(a, y.T @ c), atol=2e-4)


def test_validation_ranks_a_seeded_sample_of_holdout_users():
    from edgerec.trainer.validation import holdout_users

    rng = np.random.default_rng(4)
    data = _interactions((rng.random((300, 20)) < 0.3).astype(np.float64))
    with_holdout = np.unique(data.users[data.users % 3 > 0])
    holdout = data.subset(data.users % 3 > 0)
    np.testing.assert_array_equal(holdout_users(holdout), with_holdout)
    sample = holdout_users(holdout, 50, seed=1)
    assert len(sample) == 50 and np.all(np.diff(sample) > 0) and np.isin(sample, with_holdout).all()
    np.testing.assert_array_equal(sample, holdout_users(holdout, 50, seed=1))
    assert not np.array_equal(sample, holdout_users(holdout, 50, seed=2))


def test_neumf_validates_fewer_users_on_a_wide_catalogue():
    """Its MLP runs per (user, item) cell: on a 24K-item shop 2,000 validation users cost
    more than an epoch, so it ranks fewer (never under 500); other kinds keep 2,000."""
    from edgerec.trainer.registry import model_kind

    neumf, mf = model_kind("neumf"), model_kind("mf")
    assert neumf.validation_users(30_000, 24_000) == 500
    assert neumf.validation_users(30_000, 8_000) == 1_500
    assert neumf.validation_users(943, 1_682) == 943
    assert mf.validation_users(30_000, 24_000) == 2_000
    assert mf.validation_users(300, 24_000) == 300


def _dense_weights(data) -> np.ndarray:
    out = np.zeros((data.n_users, data.n_items))
    out[data.users, data.items] = data.weights
    return out


def test_als_folds_in_unknown_user_with_the_als_solution(train_once, tmp_path):
    """A user the model never saw, with two items in the store, gets personalised results
    equal to numpy's ALS fold-in from the exported factors: x solves
    (Y^T Y + reg I + (c - 1) Y_h^T Y_h) x = c Y_h^T 1, c the mean training confidence.
    (Three preconditioned CG steps are exact for a two-item history: rank-2 update.)"""
    trained = train_once("als")
    net, data = trained.result.model, trained.result.data
    params = trained.result.params
    store_path = tmp_path / "store.db"
    shutil.copy(trained.store, store_path)
    picked = [data.item_ids[3], data.item_ids[17]]
    store = Store.open(store_path)
    store.add_events(("newcomer", item, "view", 1.0, 2e9 + n) for n, item in enumerate(picked))
    store.close()

    with Recommender.open(trained.bundle, store_path, provider="cpu") as rec:
        assert "newcomer" not in rec.bundle.user_index
        recs = rec.recommend("newcomer", n=10)
        popular = [i for i, _ in rec.store.popular(12) if i not in picked][:10]
    assert not recs.fallback and len(recs) == 10
    assert [r.item_id for r in recs] != popular

    y = net.item_embedding.embeddings.numpy().astype(np.float64)
    c = 1.0 + params["alpha"] * np.mean(np.log1p(data.weights))
    rows = y[[3, 17]]
    a = y.T @ y + params["reg"] * np.eye(y.shape[1]) + (c - 1.0) * rows.T @ rows
    x = np.linalg.solve(a, c * rows.sum(0))
    scores = y @ x
    scores[[3, 17]] = -np.inf
    expected = np.argsort(-scores, kind="stable")[:10]
    assert [r.item_id for r in recs] == [data.item_ids[i] for i in expected]
    np.testing.assert_allclose([r.score for r in recs], scores[expected], rtol=1e-3, atol=1e-4)


def test_neumf_all_item_scores_equal_the_training_network(train_once):
    """score_all splits the first tower layer into user and item halves; it must compute
    exactly what the pairwise network trained."""
    import tensorflow as tf

    net = train_once("neumf").result.model
    users = np.arange(0, net.n_users, 37)
    all_scores = net.score_all(tf.constant(users), tf.zeros((len(users), 0), tf.int64)).numpy()
    items = np.arange(net.n_items)
    for row, u in enumerate(users):
        pair = net((np.full(net.n_items, u), items)).numpy()
        np.testing.assert_allclose(all_scores[row], pair, rtol=1e-5, atol=1e-5)


def test_neumf_folds_in_unknown_user(train_once, tmp_path):
    trained = train_once("neumf")
    data = trained.result.data
    store_path = tmp_path / "store.db"
    shutil.copy(trained.store, store_path)
    picked = list(data.item_ids[[5, 9, 40]])
    store = Store.open(store_path)
    store.add_events(("newcomer", item, "view", 1.0, 2e9 + n) for n, item in enumerate(picked))
    store.close()
    with Recommender.open(trained.bundle, store_path, provider="cpu") as rec:
        recs = rec.recommend("newcomer", n=10)
    assert not recs.fallback and len(recs) == 10
    assert not set(r.item_id for r in recs) & set(picked)

    # The folded-in user is the ridge map of the mean history embedding, per branch: the
    # same scores as a known user whose table rows hold those vectors.
    import tensorflow as tf

    net = trained.result.model
    history = np.array([[40, 9, 5]])
    vectors = []
    for fold_in, items in ((net.fold_in_gmf, net.gmf_item), (net.fold_in_mlp, net.mlp_item)):
        w = fold_in.map.numpy()
        vectors.append(items.embeddings.numpy()[history[0]].mean(0) @ w[:-1] + w[-1])
    folded = net.score_all(tf.constant([-1]), tf.constant(history)).numpy()[0]
    saved = [net.gmf_user.embeddings.numpy(), net.mlp_user.embeddings.numpy()]
    try:
        for table, vector, old in zip((net.gmf_user, net.mlp_user), vectors, saved):
            table.embeddings.assign(np.vstack([vector[None, :], old[1:]]))
        as_known = net.score_all(tf.constant([0]), tf.constant(history)).numpy()[0]
    finally:
        net.gmf_user.embeddings.assign(saved[0])
        net.mlp_user.embeddings.assign(saved[1])
    np.testing.assert_allclose(folded, as_known, rtol=1e-4, atol=1e-5)
    order = [i for i in np.argsort(-folded, kind="stable") if i not in (5, 9, 40)][:10]
    assert [r.item_id for r in recs] == [data.item_ids[i] for i in order]
