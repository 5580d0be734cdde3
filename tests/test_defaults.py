"""Settings chosen from the data (``edgerec.trainer.defaults``) and ``auto``'s cost estimates."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def shop_like(n_users: int, n_items: int, per_user: int, seed: int = 0):
    """Interactions in dense indices: each user buys ``per_user`` items of a Zipf catalogue."""
    from edgerec.trainer import Interactions

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    pairs = np.unique(np.repeat(np.arange(n_users), per_user) * n_items
                      + rng.choice(n_items, n_users * per_user, p=pop / pop.sum()))
    return Interactions(np.array([f"u{u}" for u in range(n_users)], object),
                        np.array([f"i{i}" for i in range(n_items)], object),
                        pairs // n_items, pairs % n_items, rng.random(len(pairs)),
                        {"interactions": len(pairs)})


def test_als_searches_confidence_and_catalogue_scaled_regularisation():
    """Where histories are not small beside the catalogue (sparsity 1), alpha 1 and 4 and
    reg around n_items / 100 (at least 10) are tried on the holdout; what the caller sets is
    kept and not searched."""
    from edgerec.trainer import fit
    from edgerec.trainer.defaults import als_sparsity

    data = shop_like(120, 1_500, 30)
    assert als_sparsity(data) == 1.0
    result = fit(data, "als", epochs=1, refit=False)
    assert result.params["dim"] == 64
    assert result.params["searched"] == {"alpha": [1.0, 4.0], "reg": [15.0, 3.8]}
    assert result.params["alpha"] in (1.0, 4.0) and result.params["reg"] in (15.0, 3.8)
    kept = fit(data, "als", epochs=1, refit=False, reg=3.0)
    assert kept.params["reg"] == 3.0 and kept.params["searched"] == {"alpha": [1.0, 4.0]}
    small = fit(shop_like(60, 200, 8), "als", epochs=1, refit=False, alpha=2.0)
    assert small.params["alpha"] == 2.0 and small.params["searched"] == {"reg": [10.0, 2.5]}


def test_als_on_sparse_histories_raises_confidence_and_lowers_reg():
    """6 purchases of a 9,000-item catalogue: a user's few observed cells are swamped by
    the other items' Y^T Y, so reg is lowered by that factor and alpha set to 4x it (the
    demo:shop lesson: reg 233 at alpha 1-4 scored 0.027 where alpha 40 scored 0.06); the
    search tries that setting first, then the dense regime (alpha 1, reg 4x: what a shop
    whose purchases follow each other less wants)."""
    from edgerec.trainer import fit
    from edgerec.trainer.defaults import als_sparsity

    data = shop_like(120, 9_000, 6)
    sparsity = als_sparsity(data)
    mass = np.log(2.0) * len(data.users) / data.n_users  # no weights: each pair weighs 1
    assert sparsity == pytest.approx(9_000 / (400 * mass)) and sparsity > 2
    searched = fit(data, "als", epochs=1, refit=False).params["searched"]
    alpha, reg = round(4 * sparsity, 1), round(90.0 / sparsity, 1)
    assert searched == {"alpha": [alpha, 1.0], "reg": [reg, round(reg * 4, 1)]}


def test_als_skips_a_search_that_would_not_fit_and_keeps_the_data_driven_values(monkeypatch):
    """Where the extra fits are expected to take too long (a 10M-event shop), the
    data-driven alpha (the larger, likelier one) and reg stand alone (while reg is below ``als_reg_ceiling``, here
    raised out of the way)."""
    from edgerec.trainer import defaults, fit

    monkeypatch.setattr(defaults, "SEARCH_SECONDS", 0.0)
    monkeypatch.setattr(defaults, "ALS_SPECTRAL_SHARE", 1e6)
    data = shop_like(120, 9_000, 6)
    sparsity = defaults.als_sparsity(data)
    result = fit(data, "als", epochs=1, refit=False)
    assert "searched" not in result.params
    assert (result.params["reg"], result.params["alpha"]) == (round(90.0 / sparsity, 1),
                                                              round(4 * sparsity, 1))
    assert sparsity >= 4 and result.params["dim"] == 128  # strongly swamped: wider factors
    assert fit(data, "als", epochs=1, refit=False, dim=16).params["dim"] == 16  # set: kept


def test_auto_prices_neighbourhood_kinds_and_gan_by_their_own_work():
    """The shop shape (30K users x 24K items, 290K purchases): the neighbourhood kinds are
    one closed-form pass of seconds (itemknn's whole search, 3 tables and 24 validations,
    ~107 s priced, 43 s measured on a quiet machine), gan a dense pass per epoch that
    costs more than als;
    on a 100K-item catalogue the neighbourhood tables grow with items and co-occurring pairs."""
    from edgerec.trainer import MODEL_KINDS, Interactions
    from edgerec.trainer.base import ScoringModel
    from edgerec.trainer.train import plan_auto

    def shaped(n_users, n_items, n_events):
        users = np.arange(n_events) % n_users
        return Interactions(np.arange(n_users).astype(object), np.arange(n_items).astype(object),
                            users, np.arange(n_events) % n_items, np.zeros(n_events), {})

    plan = {entry["model"]: entry for entry in plan_auto(shaped(30_000, 24_000, 290_000))}
    for kind in ("itemknn", "rp3beta"):
        assert 1.0 < plan[kind]["estimate_s"] < 150.0, (kind, plan[kind])
    assert plan["sparse_ease"]["epoch_s"] > 5 * plan["itemknn"]["epoch_s"]  # 24K local solves
    assert plan["gan"]["epoch_s"] > 5 * plan["als"]["epoch_s"]
    for kind in ("itemknn", "sparse_ease", "gan"):  # not the sampled-negative Keras estimate
        params = MODEL_KINDS[kind].defaults
        assert plan[kind]["epoch_s"] != ScoringModel.epoch_seconds(30_000, 24_000, 290_000, params)
    knn = MODEL_KINDS["itemknn"]  # sparse tables: linear in items, following the pairs
    small = knn.epoch_seconds(100_000, 10_000, 100_000, knn.defaults)
    large = knn.epoch_seconds(100_000, 100_000, 100_000, knn.defaults)
    assert 5 * small < large < 20 * small
    assert knn.epoch_seconds(10_000, 10_000, 1_000_000, knn.defaults) > 10 * small


def clustered_shop(n_users: int = 600, n_items: int = 6_000, groups: int = 6, per_user: int = 40,
                   seed: int = 0):
    """Each user buys from their group's slice of the catalogue, by Zipf popularity within
    it, and a fifth of their purchases from the whole catalogue's Zipf head: taste that
    most-popular cannot see, beside a strong popularity direction."""
    from edgerec.trainer import Interactions

    rng = np.random.default_rng(seed)
    size = n_items // groups
    within = 1.0 / np.arange(1, size + 1) ** 0.9
    overall = 1.0 / np.arange(1, n_items + 1) ** 1.1
    users = np.repeat(np.arange(n_users), per_user)
    items = (users % groups) * size + rng.choice(size, len(users), p=within / within.sum())
    popular = rng.random(len(users)) < 0.2
    items[popular] = rng.choice(n_items, int(popular.sum()), p=overall / overall.sum())
    pairs, first = np.unique(users * n_items + items, return_index=True)
    return Interactions(np.array([f"u{u}" for u in range(n_users)], object),
                        np.array([f"i{i}" for i in range(n_items)], object),
                        pairs // n_items, pairs % n_items, first.astype(float),
                        {"interactions": len(pairs)}, np.ones(len(pairs)))


def test_als_without_a_search_keeps_reg_below_the_popularity_collapse(monkeypatch):
    """A catalogue-scaled reg above the data's second singular value leaves only the
    popularity direction (als = most-popular); without a search to catch it, reg is
    lowered below ``als_reg_ceiling`` and als beats most-popular clearly."""
    from edgerec.trainer import defaults, fit

    monkeypatch.setattr(defaults, "SEARCH_SECONDS", 0.0)
    data = clustered_shop()
    ceiling = defaults.als_reg_ceiling(data, {"alpha": 1.0, "weighting": "log1p"})
    assert ceiling < defaults.als_reg(data.n_items)
    result = fit(data, "als", epochs=4, refit=False)
    assert result.params["reg"] <= ceiling
    assert result.metrics["holdout"]["ndcg@10"] > 1.6 * result.metrics["popularity"]["ndcg@10"]
