"""``ease``: EASE of Steck (2019), a closed-form item-item model.

B = I - P / diag(P) with P = (X^T X + reg I)^-1 and diag(B) = 0; a user's scores are
multi-hot(history) @ B. Dense N x N, so catalogues are limited to ``EASE.MAX_ITEMS`` items
(``sparse_ease`` solves it on item neighbourhoods for larger ones). Solved in numpy; the
Keras face is only ``score_all``, what the exporter converts and evaluation calls.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .backend import tf
from .base import ScoringModel
from .data import Interactions, history_length_for


class EASE(ScoringModel):
    """EASE: a closed-form item-item model; scores = multi-hot(history) @ B.

    Reads only ``history`` (every user is "folded in"), so ``history_length`` is chosen at
    ``prepare`` from the data: the most items any user has, capped at ``MAX_HISTORY``.
    The N x N weights limit it to catalogues of at most ``MAX_ITEMS`` items.
    """

    kind = "ease"
    reads_history = True   # scores come from the history alone
    folds_in = True
    has_item_vectors = False
    warm_starts = False  # closed form: nothing to continue from, and B is n_items^2
    history_length = 0
    # The N x N weights travel in the bundle (100 MB at 5,000 items) and exporting them takes
    # several copies: a 10,000-item EASE exhausted 24 GB while converting.
    MAX_ITEMS = 5_000
    MAX_HISTORY = 1000
    defaults = {**ScoringModel.defaults, "epochs": 1, "reg": 500.0}

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """The N x N Gram matrix and its inverse (N^3), at a few GFLOP/s."""
        return (n_items ** 3 + n_interactions * n_items) / 3e9

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if n_items > self.MAX_ITEMS:
            raise InputError(f"ease keeps an items x items matrix: {n_items} items is more than "
                             f"its limit of {self.MAX_ITEMS}; use --model sparse_ease (EASE on "
                             f"item neighbourhoods), itemknn or als for large catalogues")
        if self.params["reg"] <= 0:
            raise InputError("ease needs reg > 0")
        # B with one extra zero row for the padding index n_items.
        self.item_weights = self.add_weight(shape=(n_items + 1, n_items), initializer="zeros",
                                            trainable=False, name="item_weights")
        self._solved_on = None

    @property
    def dim(self) -> int:
        return self.n_items  # weights per item: what the runtime sizes its thread pool by

    def prepare(self, train: Interactions) -> None:
        self.history_length = history_length_for(train, self.MAX_HISTORY)

    def train_epoch(self, train: Interactions, seed: int) -> float:
        """The closed form; later epochs on the same data have nothing left to do."""
        del seed
        if self._solved_on is not train:
            self.item_weights.assign(np.vstack([ease_weights(train, self.params["reg"]),
                                                np.zeros((1, self.n_items), np.float32)]))
            self._solved_on = train
        return 0.0

    def score_all(self, users, history):
        del users  # EASE scores from the history alone
        batch = tf.shape(history, out_type=tf.int64)[0]
        rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(history, out_type=tf.int64))
        indices = tf.stack([rows, history], axis=-1)                  # [B, L, 2]
        # Scatter (not add): an item repeated in the history still counts once.
        multi_hot = tf.tensor_scatter_nd_update(
            tf.zeros(tf.stack([batch, self.n_items + 1]), tf.float32), indices,
            tf.ones(tf.shape(history), tf.float32))
        return tf.matmul(multi_hot, self.item_weights)

    def history_item_rows(self) -> np.ndarray:
        return self.item_weights.numpy()


def item_gram(data: Interactions, dtype=np.float64) -> np.ndarray:
    """X^T X of the binary user x item matrix, from users in dense float32 chunks."""
    n = data.n_items
    gram = np.zeros((n, n), dtype)
    order = np.argsort(data.users, kind="stable")
    users, items = data.users[order], data.items[order]
    bounds = np.searchsorted(users, np.arange(0, data.n_users + 1))
    step = max(1, (1 << 26) // max(n, 1))  # dense [step, n] float32 blocks, ~256 MB
    for u0 in range(0, data.n_users, step):
        u1 = min(data.n_users, u0 + step)
        s, e = bounds[u0], bounds[u1]
        if s == e:
            continue
        block = np.zeros((u1 - u0, n), np.float32)
        block[users[s:e] - u0, items[s:e]] = 1.0
        gram += block.T @ block
    return gram


# Above this many items EASE solves in float32: half the memory (2 x 1.6 GB at 20K items
# instead of 2 x 3.2 GB); B then differs from the float64 solution by ~1e-8 of its scale.
_EASE_FLOAT64_ITEMS = 8192


def ease_weights(data: Interactions, reg: float) -> np.ndarray:
    """B = I - P / diag(P), P = (X^T X + reg I)^-1, zero diagonal; float32 [N, N]."""
    dtype = np.float64 if data.n_items <= _EASE_FLOAT64_ITEMS else np.float32
    g = item_gram(data, dtype)
    g[np.diag_indices_from(g)] += reg
    p = np.linalg.inv(g)
    del g
    p /= -np.diag(p)[None, :]
    np.fill_diagonal(p, 0.0)
    return p.astype(np.float32, copy=False)
