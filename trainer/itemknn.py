"""``itemknn``: item-based kNN, the shrunk cosine between item columns of the user x item
matrix (x_i . x_j / (|x_i| |x_j| + shrink)), after BM25 or TF-IDF weighting (items as
documents, users as terms: a user who buys everything says little about any pair), as in
Dacrema et al. (2019). Scored and exported as every neighbourhood kind (``neighbourhood``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from .data import Interactions
from .neighbourhood import NeighbourModel, binary_matrix

WEIGHTINGS = ("bm25", "tfidf", "none")


class ItemKNN(NeighbourModel):
    """Item-based kNN: shrunk cosine of BM25- or TF-IDF-weighted item columns."""

    kind = "itemknn"
    # Tuned on validation (ML-100K temporal, demo:shop-small): no weighting, shrink 10 and
    # 200 neighbours were best or within 1% on both; BM25 and TF-IDF lost 2-20% there,
    # since the request's history is binary, not weighted as the item columns are.
    defaults = {**NeighbourModel.defaults, "neighbours": 200, "shrink": 10.0,
                "weighting": "none", "bm25_k1": 1.2, "bm25_b": 0.75}

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if self.params["weighting"] not in WEIGHTINGS:
            raise InputError(f"itemknn weighting must be one of {', '.join(WEIGHTINGS)}, "
                             f"not {self.params['weighting']!r}")
        if self.params["shrink"] < 0:
            raise InputError("itemknn needs shrink >= 0")

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
        x = self.weighted(binary_matrix(train))
        by_item = x.T.tocsr()
        norms = np.sqrt(np.asarray(by_item.multiply(by_item).sum(1)).ravel())
        shrink = self.params["shrink"]

        def rows(start, stop):
            dots = (by_item[start:stop] @ x).toarray()
            return dots / (norms[start:stop, None] * norms[None, :] + shrink + 1e-12)

        return rows
