"""``itemknn``: item-based kNN, the shrunk cosine between item columns of the user x item
matrix (x_i . x_j / (|x_i| |x_j| + shrink)), after BM25 or TF-IDF weighting (items as
documents, users as terms: a user who buys everything says little about any pair), as in
Dacrema et al. (2019). Scored and exported as every neighbourhood kind (``neighbourhood``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from . import costs
from .data import Interactions
from .neighbourhood import NeighbourModel, binary_matrix

WEIGHTINGS = ("bm25", "tfidf", "none")
# ``forward`` counts the pairs where j comes after i in a user's timeline, up to this many
# interactions later, a pair g apart weighing GAP_DECAY^(g - 1): what comes right after i
# says most about what follows i (0.5 and 0.8 scored alike on demo:shop-small).
FORWARD_WINDOW = 20
GAP_DECAY = 0.8
# ``shrink`` "auto": 10 where the table holds symmetric co-occurrences (forward < 1), 1,000
# where it holds ordered pairs alone. The ordered row of i estimates what follows i, whose
# best guess is the count itself; a small shrink divides it by the follower's own norm and
# favours rare followers seen once or twice. Validation NDCG@10 (fit's holdout of the
# train part; shrink 10 / 200 / 1,000, forward 1): demo:shop-small 0.2057 / 0.2129 / 0.2125
# (recency 0.05), ML-100K 0.1670 / 0.1934 / 0.2011 (its best, forward 0.5, keeps 10:
# 0.2194, 50 0.2200, 200 0.2114), a 30K x 30K shop of 100 purchases a user 2.21x / - /
# 2.34x popularity (4,000: 2.38x); with symmetric counts 50 or more lost on demo:plays
# (forward 0, recency 1: 0.2516 at 10, 0.2459 at 50, 0.2288 at 200).
SHRINK = 10.0
ORDERED_SHRINK = 1000.0
# Neighbours per item in the ``taste`` table: a whole history sums many rows, and their
# strongest few say most (validation NDCG@10 at taste 0.3 / 0.5, 200 / 50 / 20 neighbours:
# 30K x 30K shop 0.1433 / 0.1445, 0.1449 / 0.1487, 0.1475 / 0.1516; 100K x 100K shop
# 0.1366 / 0.1381, 0.1371 / 0.1377, 0.1354 / 0.1377; ML-100K and demo:shop, where the
# search keeps taste 0, within 0.002); the bundle grows by items x 20, not x 200 (at 24K
# items 3.8 MB, where a second 200-neighbour table would take it from 38 to 77 MB).
TASTE_NEIGHBOURS = 20


class ItemKNN(NeighbourModel):
    """Item-based kNN: shrunk cosine of BM25- or TF-IDF-weighted item columns."""

    kind = "itemknn"
    # With ``forward`` and ``recency`` searched it beat every other kind on the holdout on
    # ML-100K, demo:shop (0.2065 against rp3beta's 0.1608) and the 100K x 100K shop (2.5x
    # popularity against 1.7x): first in ``auto``'s plan where the costs are alike.
    auto_prior = 1.3
    # Tuned on validation (ML-100K temporal, demo:shop-small): no weighting, shrink 10 and
    # 200 neighbours were best or within 1% on both; BM25 and TF-IDF lost 2-20% there,
    # since the request's history is binary, not weighted as the item columns are.
    # ``forward`` f makes the co-occurrence directional: (1 - f) x the symmetric count plus
    # f x the ordered count (``ForwardPairs``), over the same cosine denominator. Where
    # purchases follow one another it wins (validation NDCG@10, recency 0.2 and 0.8:
    # demo:shop-small 0.161 -> 0.204 at f = 1; ML-100K 0.229 -> 0.238 at f = 0.5); where
    # order means nothing the holdout keeps f = 0 (searched with ``recency``).
    # ``taste`` t adds the symmetric table (forward 0, shrink 10, ``taste_neighbours``)
    # over the whole history (``NeighbourModel``): validation NDCG@10 at t 0 / 0.3 / 0.5
    # with 200 neighbours there, each with the best table and recency: 100K x 100K shop
    # 0.1225 / 0.1366 / 0.1381 (2.78x -> 3.13x popularity; 0.8: 0.1362 with 20), a 30K x
    # 30K shop of 3M purchases 0.1307 / 0.1433 / 0.1445, ML-100K 0.2169 / 0.2229 / 0.2226,
    # demo:shop 0.2190 / 0.2166 / 0.2113 (0.1: 0.2199).
    defaults = {**NeighbourModel.defaults, "neighbours": 200, "shrink": "auto",
                "weighting": "none", "bm25_k1": 1.2, "bm25_b": 0.75, "forward": 0.0,
                "taste": 0.0, "taste_neighbours": TASTE_NEIGHBOURS}
    # A table per forward value, cheapest first on a large catalogue (1: no symmetric
    # products), which a search cut by ``auto``'s time limit has tried; the taste table is
    # one symmetric table for every forward value, built once and cached.
    search = {"forward": (1.0, 0.5, 0.0), "taste": (0.0, 0.5), **NeighbourModel.search}
    search_shared = ("taste", *NeighbourModel.search_shared)

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """The symmetric products where ``forward`` < 1 or a taste table is wanted, the
        ordered pairs (FORWARD_WINDOW per interaction) where it is > 0."""
        f = params["forward"]
        return costs.neighbour_seconds(n_users, n_items, n_interactions,
                                       symmetric=f < 1 or params["taste"] > 0,
                                       ordered_pairs=FORWARD_WINDOW * n_interactions if f > 0 else 0)

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if self.params["weighting"] not in WEIGHTINGS:
            raise InputError(f"itemknn weighting must be one of {', '.join(WEIGHTINGS)}, "
                             f"not {self.params['weighting']!r}")
        if not 0.0 <= self.params["forward"] <= 1.0:
            raise InputError("itemknn needs 0 <= forward <= 1")
        shrink = self.params["shrink"]
        if shrink == "auto":
            shrink = ORDERED_SHRINK if self.params["forward"] == 1.0 else SHRINK
        self.params["shrink"] = float(shrink)  # resolved once: item_weights reads a number
        if self.params["shrink"] < 0:
            raise InputError("itemknn needs shrink \"auto\" or >= 0")
        if self.params["taste_neighbours"] < 1:
            raise InputError("itemknn needs taste_neighbours >= 1")

    def weighted(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """The user x item matrix reweighted with items as documents and users as terms."""
        by_item = x.T.tocoo()
        users_items = np.bincount(by_item.col, minlength=x.shape[0])
        idf = np.maximum(np.log(x.shape[1] / (1.0 + users_items)), 0.0)
        data = by_item.data.astype(np.float32)
        if self.params["weighting"] == "bm25":
            k1, b = self.params["bm25_k1"], self.params["bm25_b"]
            length = np.asarray(x.sum(0)).ravel()
            norm = (1.0 - b) + b * length / max(length.mean(), 1e-12)
            data = data * (k1 + 1.0) / (k1 * norm[by_item.row] + data) * idf[by_item.col]
        elif self.params["weighting"] == "tfidf":
            data = np.sqrt(data) * idf[by_item.col]
        return sp.csr_matrix((data.astype(np.float32), (by_item.col, by_item.row)), shape=x.shape)

    def item_weights(self, train: Interactions):
        return self._cosines(train, self.params["forward"], self.params["shrink"])

    def taste_weights(self, train: Interactions):
        """The symmetric table (forward 0) at its own shrink, whatever ``forward`` is."""
        return self._cosines(train, 0.0, SHRINK)

    def taste_settings(self) -> dict:
        """The symmetric table's settings (its cache key): forward 0, shrink "auto"'s 10,
        ``taste_neighbours`` neighbours."""
        shared = ("epochs", *self.search_shared)
        return {**{n: v for n, v in self.params.items() if n not in shared},
                "forward": 0.0, "shrink": SHRINK, "neighbours": self.params["taste_neighbours"]}

    def _cosines(self, train: Interactions, f: float, shrink: float):
        x = self.weighted(binary_matrix(train))
        by_item = x.T.tocsr()
        norms = np.sqrt(np.asarray(by_item.multiply(by_item).sum(1)).ravel())
        ordered = ForwardPairs(train) if f > 0 else None

        def rows(items):
            dots = (by_item[items] @ x) * (1.0 - f) if f < 1 else None
            if ordered is not None:
                dots = f * ordered.rows(items) + (0.0 if dots is None else dots)
            dots = sp.csr_matrix(dots)  # kept CSR: the ranking reads it without a conversion
            row = np.repeat(np.arange(len(items)), np.diff(dots.indptr))
            dots.data = dots.data / (norms[items][row] * norms[dots.indices] + shrink + 1e-12)
            return dots

        return rows


class ForwardPairs:
    """The ordered co-occurrences: entry (i, j) sums GAP_DECAY^(g - 1) over users where j
    came g interactions after i (g <= FORWARD_WINDOW), in the timeline order the holdout
    uses. Dense rows for a block of source items at a time (``rows``), never the whole
    matrix: that had ~10 entries per interaction and took 8.8 GB at 10M interactions."""

    def __init__(self, train: Interactions):
        order = train.timeline()
        self.users, self.items = train.users[order], train.items[order]
        self.n_items = train.n_items
        self.by_item = np.argsort(self.items, kind="stable")  # timeline positions, by item
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(self.items, minlength=self.n_items))])

    def rows(self, sources: np.ndarray) -> sp.csr_matrix:
        """[len(sources), n_items]: the ordered pairs from those items."""
        counts = self.starts[sources + 1] - self.starts[sources]
        row = np.repeat(np.arange(len(sources)), counts)
        skip = np.repeat(self.starts[sources] - np.cumsum(counts) + counts, counts)
        at = self.by_item[skip + np.arange(len(row))]    # every position of every source
        rows, cols, decays = [], [], []
        for gap in range(1, FORWARD_WINDOW + 1):  # the block's pairs, gap by gap
            later = at + gap
            same = later < len(self.items)
            same[same] = self.users[later[same]] == self.users[at[same]]
            rows.append(row[same])
            cols.append(self.items[later[same]])
            decays.append(np.full(len(rows[-1]), GAP_DECAY ** (gap - 1), np.float32))
            at, row = at[same], row[same]  # a user's timeline that ended stays ended
        # One conversion sums the duplicates: adding 20 sparse matrices re-merged the
        # growing sum every time.
        return sp.csr_matrix((np.concatenate(decays), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(len(sources), self.n_items))
