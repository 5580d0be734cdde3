"""Settings chosen from the data's statistics, for kinds where no single default suits.

``data_statistics`` says what shape the data has (density, events per user and item, how
the event weights are spread); ``data_defaults`` turns it into a kind's settings.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import svds

from .als import confidence_weights
from .data import Interactions


def data_statistics(data: Interactions) -> dict:
    """Size, density, median events per user and item, and the spread of the weights
    (share of interactions weighted above 1, and the mean log1p weight)."""
    n = len(data.users)
    per_user = np.bincount(data.users, minlength=data.n_users)
    per_item = np.bincount(data.items, minlength=data.n_items)
    weights = np.ones(n) if data.weights is None else np.maximum(data.weights, 0.0)
    return {"users": int(data.n_users), "items": int(data.n_items), "interactions": int(n),
            "density": n / max(data.n_users * data.n_items, 1),
            "median_per_user": float(np.median(per_user)) if n else 0.0,
            "median_per_item": float(np.median(per_item)) if n else 0.0,
            "weighted_share": float(np.mean(weights > 1.0)) if n else 0.0,
            "mean_log1p_weight": float(np.mean(np.log1p(weights))) if n else 0.0}


# ``als`` on validation (``benchmarks/tune_als.py``, the test split never read; NDCG@10):
#
#   data (train part)                  items   alpha 1, best reg   alpha 4, best reg
#   MovieLens 100K (density 0.05)      1,682   0.174 (reg 20)      0.169 (reg 20)
#   demo:plays (counts, 0.012)        10,000   0.236 (reg 20)      0.247 (reg 100)
#   demo:shop-small (binary, 0.0034)   2,324   0.057 (reg 20)      0.073 (reg 20)
#   demo:shop (binary, 0.00034)       23,257                       0.044 (reg 5), 0.021 (reg 60)
#                                             alpha 16: 0.056 (reg 5); alpha 40: 0.060 (reg 5),
#                                             0.059 (reg 20), 0.058 (reg 60)
#
# On dense data the best reg grows with the catalogue: Y^T Y, which every user's system
# carries, sums over all items, so reg ~ n_items / 100 keeps it the same share of the
# system (17, 100, 23 above). But where a user's history is small beside the catalogue,
# those few observed cells are swamped by the Y^T Y of all the others: on demo:shop (8
# purchases a user, 23K items) the catalogue-scaled reg 233 with alpha 1-4 scored 0.027 on
# test where implicit's ALS at alpha 40, reg 10 scored 0.065. ``als_sparsity`` measures
# that swamping (items over 400 x a user's mean summed log1p weight; 10.8 on demo:shop,
# 1.1 on demo:shop-small, 1 - the floor - on MovieLens and plays) and lowers reg by that
# factor and, where it is above 1, sets alpha to 4x it. The holdout then tries alpha at 1x
# and 4x and reg at 1x and 1/4 (dense), or (sparse) the data-driven alpha and reg (tried
# first, as ``auto`` may cut the search after its first setting) and the dense regime's,
# alpha 1 with reg 4x: shops of the same statistics want either. demo:shop (sparsity 10.8,
# 70% of purchases follow the one before): alpha 42.2 / reg 21.6 0.0682, 4 / 86 0.0196;
# demo:shop-loose (30% follow): 0.0208 and 0.0635, alpha 1 / reg 100 0.0635 (implicit's
# tuned ALS 0.0663, at alpha 1, reg 100). Where the search does not fit in
# ``SEARCH_SECONDS`` the data-driven values stand alone, reg lowered to
# ``als_reg_ceiling`` where it would leave only popularity.
ALS_REG_PER_ITEM = 0.01
ALS_REG_RANGE = (10.0, 1000.0)
# Items per unit of a user's mean summed log1p weight above which a history is swamped.
ALS_ITEMS_PER_MASS = 400.0
# Sparse data starts at this multiple of the sparsity (alpha 43 on demo:shop, the likelier
# winner), so that where no search runs the lone setting is the better one: at dim 128 the
# search is priced over ``SEARCH_SECONDS`` there, and alpha 10.8 alone scored 0.0643 on
# the holdout where alpha 42 scored 0.0683. The search goes down from it by the same step.
ALS_SEARCH_ALPHA_STEP = 4.0
# Where the swamping is strong the factors double: on demo:shop (sparsity 10.8) alpha 42,
# reg 21.6 scored validation NDCG@10 0.059 at dim 64 and 0.068 at dim 128 (40 s, 8 epochs;
# implicit's tuned best there, 128 factors: 0.0645). The 100K x 100K shop (sparsity ~3.6,
# where als must train in 10 minutes) and the shapes above (1-1.1) keep 64.
ALS_WIDE_SPARSITY, ALS_WIDE_DIM = 4.0, 128
# A search runs only where its extra fits are expected to take at most this long: on a
# 10M-event shop the data-driven values stand alone.
SEARCH_SECONDS = 120.0
# Regularisation shrinks each direction of the data by about reg (for plain least squares
# exactly: singular values become sigma - reg): once reg passes the second singular value
# of the confidence-weighted matrix sqrt(C) P, only the first - popularity - survives and
# als scores exactly as most-popular. That happened on shops with ~100 purchases per user
# (20K x 20K, 2M purchases: sigma_2 102, reg 200 and 130 gave popularity's NDCG@10 0.067
# with coverage 0.002, reg 60 gave 0.095, reg 20 0.085; implicit's ALS the same at the same
# reg. 100K x 100K, 10M: sigma_2 176, reg 1000, 100 and 88 gave popularity's 0.044, reg 20
# 0.061 after 3 epochs), where the catalogue-scaled reg stands alone. Where no search can
# correct it, reg stays below this share of sigma_2.
ALS_SPECTRAL_SHARE = 0.2


def als_reg(n_items: int) -> float:
    """The catalogue-scaled regularisation: n_items / 100, within ``ALS_REG_RANGE``."""
    return float(np.clip(round(ALS_REG_PER_ITEM * n_items), *ALS_REG_RANGE))


def als_reg_ceiling(data: Interactions, params: dict) -> float:
    """``ALS_SPECTRAL_SHARE`` of the second singular value of sqrt(C) P (C the confidences
    ``params`` give, P the 0/1 interaction matrix): above it als collapses to popularity."""
    if min(data.n_users, data.n_items) < 3 or len(data.users) == 0:
        return float("inf")
    conf = 1.0 + params["alpha"] * confidence_weights(data, params["weighting"])
    matrix = csr_matrix((np.sqrt(conf), (data.users, data.items)), shape=(data.n_users, data.n_items))
    sigma = svds(matrix, k=2, return_singular_vectors=False, random_state=0)
    return ALS_SPECTRAL_SHARE * float(np.min(sigma))


def als_sparsity(data: Interactions) -> float:
    """How far a user's few observed cells are swamped by the catalogue: n_items over
    ``ALS_ITEMS_PER_MASS`` x the mean user's summed log1p weight, at least 1."""
    mass = float(confidence_weights(data, "log1p").sum()) / max(data.n_users, 1)
    return max(1.0, data.n_items / (ALS_ITEMS_PER_MASS * mass)) if mass > 0 else 1.0


def data_defaults(kind: str, data: Interactions, passed: set) -> dict:
    """Settings of ``kind`` chosen from ``data`` for the names the caller left unset
    (``passed``: what they set). ``als``: alpha raised and the catalogue-scaled reg
    lowered by ``als_sparsity``, and ``ALS_WIDE_DIM`` factors where it is large."""
    chosen = {}
    if kind == "als":
        sparsity = als_sparsity(data)
        alpha = ALS_SEARCH_ALPHA_STEP * sparsity if sparsity > 1.0 else 1.0
        chosen = {"alpha": round(alpha, 1), "reg": round(als_reg(data.n_items) / sparsity, 1)}
        if sparsity >= ALS_WIDE_SPARSITY:
            chosen["dim"] = ALS_WIDE_DIM
    return {name: value for name, value in chosen.items() if name not in passed}


def search_grid(kind, data: Interactions, params: dict, passed: set, bounded: bool = False) -> dict:
    """The values to try on the holdout: ``kind.search`` (for ``als``, multiples of the
    data-driven alpha and reg; on sparse data those first, then alpha 1 and reg 4x) without
    the names the caller set; nothing when the extra fits (``epoch_seconds`` x epochs
    each; settings that differ only in ``search_shared`` parameters are one fit) should
    take more than ``SEARCH_SECONDS`` (for ``als`` then the one reg below
    ``als_reg_ceiling``, where the scaled one is above), unless the fit is ``bounded`` by a
    time limit (``auto``), which stops the search between settings, likeliest first:
    without it itemknn at 100K items kept forward 0 and recency 1, its weakest setting
    there. ``als`` keeps the cap: its first setting can collapse."""
    grid = _als_grid(kind, data, params) if kind.kind == "als" else dict(kind.search)
    grid = {name: values for name, values in grid.items() if name not in passed}
    # Values of ``search_shared`` parameters share one trained model (a validation each):
    # counting them as fits dropped sparse_ease's recency search on demo:shop (0.0628
    # at recency 1 against 0.1740 on the holdout at the searched 0.05).
    fits = int(np.prod([len(values) for name, values in grid.items()
                        if name not in kind.search_shared]))
    each = params["epochs"] * kind.epoch_seconds(data.n_users, data.n_items, len(data.users), params)
    if (fits - 1) * each <= SEARCH_SECONDS or (bounded and kind.kind != "als"):
        return grid
    return _collapse_safe_reg(kind, data, params, passed)


def _als_grid(kind, data: Interactions, params: dict) -> dict:
    """``kind.search``'s multiples of the data-driven alpha and reg (dense data), or on
    sparse data that setting first, then the dense regime's: alpha 1, reg / the multiples."""
    alpha, reg = params["alpha"], params["reg"]
    if als_sparsity(data) > 1.0:
        return {"alpha": (alpha, 1.0), "reg": tuple(round(reg / m, 1) for m in kind.search["reg"])}
    return {name: tuple(round(m * params[name], 1) for m in multiples)
            for name, multiples in kind.search.items()}


def _collapse_safe_reg(kind, data: Interactions, params: dict, passed: set) -> dict:
    """Without a search to notice it, a reg that leaves only popularity is replaced."""
    if kind.kind != "als" or "reg" in passed:
        return {}
    ceiling = als_reg_ceiling(data, params)
    return {"reg": (round(ceiling, 1),)} if params["reg"] > ceiling else {}
