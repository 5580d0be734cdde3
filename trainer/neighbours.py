"""Item-neighbourhood kinds: ``itemknn``, ``rp3beta`` and ``sparse_ease``.

Each keeps, for every item, its ``neighbours`` strongest item-to-item weights: a table of
neighbour indices and one of weights, [n_items + 1, K] (the extra row is the history's
padding index, with no neighbours). A user's score for item j is the sum, over the distinct
items i of their history, of the weight i gives j. The exporter writes that as a gather of
the history's rows and a scatter-add into the score row (``exporters.onnx.neighbour_graph``),
so the bundle grows with items x K, never items^2, and the history is read at request time:
a new purchase changes the next answer, and a user the model never saw is served.

Similarities are computed with scipy sparse products, a block of items at a time, and only
the top K of each block's rows are kept: memory stays O(block x items + items x K).

``itemknn``: cosine between item columns of the user x item matrix, with shrinkage
(x_i . x_j / (|x_i| |x_j| + shrink)), after BM25 or TF-IDF weighting (items as documents,
users as terms: a user who buys everything says little about any pair), as in Dacrema et al.
(2019). ``rp3beta``: three-step random walks item -> user -> item with transition
probabilities raised to ``alpha``, divided by the target's popularity^``beta`` (Paudel et
al. 2017). ``sparse_ease``: EASE (Steck 2019) solved per item on its ``candidates`` most
co-occurring items only, the ridge regression of its column on theirs: a catalogue of any
size, where ``ease`` solves the whole items x items system.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from threadpoolctl import threadpool_limits

from ..errors import InputError
from . import costs
from .data import Interactions, history_length_for
from .models import ScoringModel

WEIGHTINGS = ("bm25", "tfidf", "none")
# Items per block of similarity rows: a dense [block, n_items] float32 slab (~100 MB at 100K items).
_BLOCK_CELLS = 1 << 25


def binary_matrix(data: Interactions) -> sp.csr_matrix:
    """The user x item matrix with a 1 for every interaction, float32 CSR."""
    ones = np.ones(len(data.users), np.float32)
    return sp.csr_matrix((ones, (data.users, data.items)), shape=(data.n_users, data.n_items))


def top_k_rows(rows, n_items: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each row's ``k`` largest off-diagonal weights (positive ones only).

    ``rows(start, stop)`` gives the dense [stop - start, n_items] weights of those items.
    Returns (indices int32 [n_items, k], weights float32 [n_items, k]); a row with fewer
    than k positive weights is padded with index n_items and weight 0.
    """
    k = min(k, max(n_items - 1, 1))
    index = np.full((n_items, k), n_items, np.int32)
    weight = np.zeros((n_items, k), np.float32)
    step = max(1, _BLOCK_CELLS // max(n_items, 1))
    for start in range(0, n_items, step):
        stop = min(n_items, start + step)
        block = np.asarray(rows(start, stop), np.float32)
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0  # no item is its own neighbour
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n_items else \
            np.tile(np.arange(n_items), (stop - start, 1))
        values = np.take_along_axis(block, top, 1)
        keep = values > 0
        index[start:stop] = np.where(keep, top, n_items)
        weight[start:stop] = np.where(keep, values, 0.0)
    return index, weight


class NeighbourModel(ScoringModel):
    """Base of the item-neighbourhood kinds: top-K neighbour tables, scored from history.

    A kind supplies ``item_weights(train)`` (a function of item blocks, see ``top_k_rows``).
    Closed form: one "epoch" computes the tables; later ones have nothing to do.
    """

    folds_in = True
    warm_starts = False  # recomputed from the data every time
    history_length = 0   # set by ``prepare`` from the data
    MAX_HISTORY = 200
    defaults = {"epochs": 1, "neighbours": 100}

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if self.params["neighbours"] < 1:
            raise InputError(f"{self.kind} needs neighbours >= 1")
        k = self.dim
        self.neighbour_index = self.add_weight(
            shape=(n_items + 1, k), initializer=tf.keras.initializers.Constant(n_items),
            dtype="int32", trainable=False, name="neighbour_index")
        self.neighbour_weight = self.add_weight(shape=(n_items + 1, k), initializer="zeros",
                                                trainable=False, name="neighbour_weight")
        self._solved_on = None

    @property
    def dim(self) -> int:
        return int(min(self.params["neighbours"], max(self.n_items - 1, 1)))

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """The one real epoch (``auto`` plans one: later ones do nothing): the sparse
        item-item products (co-occurring pairs, ~2 nnz^2 / users with a long tail of heavy
        users) and a few dense passes over every [block, n_items] slab (top-K selection)."""
        return costs.neighbour_seconds(n_users, n_items, n_interactions)

    def prepare(self, train: Interactions) -> None:
        self.history_length = history_length_for(train, self.MAX_HISTORY)

    def item_weights(self, train: Interactions):
        """``rows(start, stop)`` -> dense [stop - start, n_items] item-to-item weights."""
        raise NotImplementedError

    def neighbour_rows(self, train: Interactions) -> tuple[np.ndarray, np.ndarray]:
        """The top-K tables (without the padding row) of the data's item weights."""
        return top_k_rows(self.item_weights(train), self.n_items, self.dim)

    def train_epoch(self, train: Interactions, seed: int) -> float:
        del seed
        if self._solved_on is not train:
            index, weight = self.neighbour_rows(train)
            pad = np.full((1, index.shape[1]), self.n_items, np.int32)
            self.neighbour_index.assign(np.vstack([index, pad]))
            self.neighbour_weight.assign(np.vstack([weight, np.zeros_like(pad, np.float32)]))
            self._solved_on = train
        return 0.0

    def neighbour_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """([n_items + 1, K] int32 indices, float32 weights), padding row last: what the
        exporter writes into the graph."""
        return self.neighbour_index.numpy(), self.neighbour_weight.numpy()

    def score_all(self, users, history):
        """The sum of the distinct history items' neighbour rows, as the exported graph
        computes it: gather the rows, weigh each history slot by 1 / how often its item
        occurs in the history, scatter-add into the score row (one flat segment sum).
        O(batch x history x K): a multi-hot times the sparse matrix would cost its
        non-zeros times the batch."""
        del users  # scores come from the history alone
        width = self.n_items + 1
        batch = tf.shape(history, out_type=tf.int64)[0]
        offset = tf.range(batch)[:, None] * width                     # row b starts at b * width
        slots = tf.reshape(history + offset, [-1])
        counts = tf.math.unsorted_segment_sum(tf.ones_like(slots, tf.float32), slots, batch * width)
        share = 1.0 / tf.reshape(tf.gather(counts, slots), tf.shape(history))
        index = tf.cast(tf.gather(self.neighbour_index, history), tf.int64)  # [B, L, K]
        weight = tf.gather(self.neighbour_weight, history) * share[..., None]
        targets = tf.reshape(index + offset[..., None], [-1])
        scores = tf.math.unsorted_segment_sum(tf.reshape(weight, [-1]), targets, batch * width)
        return tf.reshape(scores, tf.stack([batch, width]))[:, :self.n_items]


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


class RP3beta(NeighbourModel):
    """Random walks item -> user -> item, penalised by the target's popularity."""

    kind = "rp3beta"
    # Tuned on validation: alpha 0.5 beat 1.0 on ML-100K (0.179 against 0.140) and on
    # demo:shop-small; beta 0.4 sits between ML-100K's best (0.6) and the shop's (0-0.3).
    defaults = {**NeighbourModel.defaults, "neighbours": 200, "alpha": 0.5, "beta": 0.4}

    def item_weights(self, train: Interactions):
        x = binary_matrix(train)
        alpha, beta = self.params["alpha"], self.params["beta"]
        user_to_item = _row_normalised(x).power(alpha).tocsr()
        item_to_user = _row_normalised(x.T.tocsr()).power(alpha).tocsr()
        popularity = np.asarray(x.sum(0)).ravel()
        penalty = np.where(popularity > 0, np.maximum(popularity, 1.0) ** -beta, 0.0)

        def rows(start, stop):
            return (item_to_user[start:stop] @ user_to_item).toarray() * penalty[None, :]

        return rows


class SparseEASE(NeighbourModel):
    """EASE solved per item on a neighbourhood: O(items x candidates^2) work, O(items x K) size.

    Item j's column of B solves the ridge regression of j's user column on the columns of
    its ``candidates`` most co-occurring items: (G_CC + reg I) w = G_Cj, with G = X^T X.
    Full EASE solves the same regression on every other item at once (B = I - P / diag(P),
    P = (G + reg I)^-1); restricted to the items that share users with j, it keeps most of
    the weight mass, as fsSLIM did for SLIM (Ning & Karypis 2011). Each source item then
    keeps its K largest weights, as the other neighbourhood kinds do.
    """

    kind = "sparse_ease"
    defaults = {**NeighbourModel.defaults, "neighbours": 100, "candidates": 100, "reg": 500.0}

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """The neighbourhood kinds' cost plus a batched [m, m] solve per item (m candidates)."""
        return (costs.neighbour_seconds(n_users, n_items, n_interactions)
                + costs.local_solve_seconds(n_items, params["candidates"]))

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if self.params["reg"] <= 0 or self.params["candidates"] < 1:
            raise InputError("sparse_ease needs reg > 0 and candidates >= 1")

    def neighbour_rows(self, train: Interactions) -> tuple[np.ndarray, np.ndarray]:
        # Thousands of small [m, m] solves: a BLAS thread pool only adds its hand-offs to
        # each; on the busy 2-core machine it made them 40x slower (150 s for ML-100K).
        with threadpool_limits(1, "blas"):
            columns = local_ease_columns(binary_matrix(train), self.params["candidates"],
                                         self.params["reg"])
        matrix = columns.T.tocsr()  # columns[i, j]: weight of source i for target j

        def rows(start, stop):
            return matrix[start:stop].toarray()

        return top_k_rows(rows, self.n_items, self.dim)


def local_ease_columns(x: sp.csr_matrix, candidates: int, reg: float) -> sp.csr_matrix:
    """[n_items targets, n_items sources]: each target's ridge weights on its candidates.

    Targets go in blocks small enough that their candidates together (at most 4,096 items)
    give a dense sub-Gram, from which every target's [m, m] system is gathered."""
    gram = (x.T @ x).tocsr()
    n = gram.shape[0]
    m = min(candidates, n - 1) if n > 1 else 1
    step = max(1, (1 << 12) // m)
    rows, cols, weights = [], [], []
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = gram[start:stop].toarray()
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        chosen = np.argpartition(-block, m - 1, axis=1)[:, :m] if m < n else \
            np.tile(np.arange(n), (stop - start, 1))
        real = np.take_along_axis(block, chosen, 1) > 0       # candidates that share users
        union, local = np.unique(chosen.ravel(), return_inverse=True)
        local = local.reshape(chosen.shape)
        dense = gram[union][:, union].toarray().astype(np.float64)
        both = real[:, :, None] & real[:, None, :]
        sub = np.where(both, dense[local[:, :, None], local[:, None, :]], 0.0)
        sub += np.eye(m) * np.where(real, reg, 1.0)[:, None, :]  # a padded candidate gets w = 0
        rhs = np.where(real, np.take_along_axis(block, chosen, 1), 0.0)
        w = np.linalg.solve(sub, rhs[:, :, None])[:, :, 0]
        targets = np.repeat(np.arange(start, stop), m).reshape(-1, m)
        rows.append(targets[real]), cols.append(chosen[real]), weights.append(w[real])
    return sp.csr_matrix((np.concatenate(weights).astype(np.float32),
                          (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _row_normalised(x: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its sum (rows summing to 0 stay 0): transition probabilities."""
    sums = np.asarray(x.sum(1)).ravel()
    return sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64),
                              where=sums > 0)) @ x
