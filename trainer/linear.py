"""Closed-form and least-squares kinds: ``als`` (implicit-feedback ALS) and ``ease``.

Both train outside Keras (numpy, and numba for the ALS inner loop; no gradient descent) and keep their Keras face only for
``score_all``, the function the exporter converts to ONNX and evaluation calls.

``als``: weighted matrix factorisation of Hu, Koren & Volinsky (2008). Every (user, item)
cell has preference p = 1 for observed pairs and 0 otherwise, with confidence
c = 1 + alpha * f(w) (w the summed event weight, f = log1p by default) for observed pairs
and 1 elsewhere; the loss is sum c (p - x_u . y_i)^2 + reg (|x_u|^2 + |y_i|^2). One
``train_epoch`` is one sweep: every user vector solved with the items fixed, then every
item vector with the users fixed. Each solve uses the Y^T Y trick (only observed cells
add to the d x d system) and a few conjugate-gradient steps warm-started from the previous
sweep (Takacs et al. 2011), row by row in compiled code over a hand-built CSR layout
(``trainer/cg.py``). Unknown users are folded in from their history inside the
graph: the same least-squares problem, solved by preconditioned CG with the constant
(Y^T Y + reg I)^-1 as preconditioner (see ``AlternatingLeastSquares.fold_in``).

``ease``: EASE of Steck (2019). B = I - P / diag(P) with P = (X^T X + reg I)^-1 and
diag(B) = 0; a user's scores are multi-hot(history) @ B. Dense N x N, so catalogues are
limited to ``EASE.MAX_ITEMS`` items.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from threadpoolctl import threadpool_limits

from ..errors import InputError
from .cg import cg_sweep, observed_loss
from .data import Interactions, history_length_for
from .models import FactorTables, ScoringModel

WEIGHTINGS = ("log1p", "linear", "binary")

def confidence_weights(data: Interactions, weighting: str) -> np.ndarray:
    """f(w) per interaction: log1p(w), w, or 1 (``weighting``); w = 1 when there are none."""
    w = np.ones(len(data.users)) if data.weights is None or weighting == "binary" else data.weights
    w = np.maximum(w, 0.0)  # a negative weight (a dislike) gives no extra confidence
    return np.log1p(w) if weighting == "log1p" else w.astype(np.float64)


class _CSR:
    """Rows of a sparse matrix, sorted by row: ``indptr``, column ``cols`` and ``vals``."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int):
        order = np.lexsort((cols, rows))
        self.n_rows = n_rows
        self.indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n_rows))].astype(np.int64)
        self.cols = cols[order].astype(np.int64)
        self.vals = vals[order].astype(np.float32)


def als_half_sweep(csr: _CSR, solve_for: np.ndarray, fixed: np.ndarray, reg: float,
                   cg_steps: int) -> None:
    """Update every row of ``solve_for`` (float32, in place) with ``fixed`` held constant.

    Row u solves (F^T F + reg I + F_u^T (C_u - I) F_u) x = F_u^T C_u 1, where F_u are the
    ``fixed`` rows of u's observed columns and C_u their confidences (``csr.vals``), by
    ``cg_steps`` conjugate-gradient steps from the current value of x (``cg.cg_sweep``).
    """
    gram = fixed.T @ fixed + np.float32(reg) * np.eye(fixed.shape[1], dtype=np.float32)
    cg_sweep(csr.indptr, csr.cols, csr.vals, solve_for, np.ascontiguousarray(fixed),
             np.ascontiguousarray(gram, dtype=np.float32), cg_steps)


class AlternatingLeastSquares(FactorTables):
    """Implicit-feedback ALS: the factor tables, filled by numpy least squares.

    Biases stay zero. ``folds_in``: a user given as -1 is placed by solving the ALS user
    problem on their history in the graph (``fold_in``), each history slot counting with
    the training data's mean confidence (the runtime sends items, not weights; an item
    repeated in the history counts once per repetition).
    """

    kind = "als"
    history_length = 200
    folds_in = True
    defaults = {**ScoringModel.defaults, "epochs": 15, "dim": 64, "reg": 20.0, "alpha": 1.0,
                "weighting": "log1p", "cg_steps": 3, "fold_in_steps": 3}
    # No single regularisation or confidence scale suits every shape: ``fit`` sets reg from
    # the catalogue's size and tries alpha 1 and 4 with reg at 1/4 and 1x that value on the
    # holdout (``trainer.defaults``; what --reg / --alpha set is not searched). The values
    # here are what ``auto`` counts when planning.
    search = {"alpha": (1.0, 4.0), "reg": (1.0, 0.25)}

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if self.params["reg"] <= 0 or self.params["alpha"] < 0:
            raise InputError("als needs reg > 0 and alpha >= 0")
        if self.params["cg_steps"] < 1 or self.params["fold_in_steps"] < 1:
            raise InputError("als needs cg_steps >= 1 and fold_in_steps >= 1")
        if self.params["weighting"] not in WEIGHTINGS:
            raise InputError(f"als weighting must be one of {', '.join(WEIGHTINGS)}, "
                             f"not {self.params['weighting']!r}")
        dim = self.dim
        # (Y^T Y + reg I) and its inverse, both for the fold-in; scalar: the confidence
        # each history slot gets. Weights, so get/set_weights keep them with the factors.
        self.fold_in_gram = self.add_weight(shape=(dim, dim), initializer="zeros",
                                            trainable=False, name="fold_in_gram")
        self.fold_in_inverse = self.add_weight(shape=(dim, dim), initializer="zeros",
                                               trainable=False, name="fold_in_inverse")
        self.history_confidence = self.add_weight(shape=(), initializer="ones",
                                                  trainable=False, name="history_confidence")

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """Each CG step costs a d x d mat-vec per row and two d-wide passes per cell; about
        a GFLOP/s on a busy 2-core machine (implicit's loop has the same count)."""
        dim, steps = params["dim"], params["cg_steps"] + 1
        flops = 2 * steps * ((n_users + n_items) * dim * dim + 2 * n_interactions * dim)
        return flops / 1e9

    def call(self, inputs):
        """The factor dot product for (user, item) pairs (MF's ``call`` without its L2)."""
        users, items = inputs
        return tf.reduce_sum(self.user_embedding(users) * self.item_embedding(items), axis=-1)

    def prepare(self, train: Interactions) -> None:
        conf = 1.0 + self.params["alpha"] * confidence_weights(train, self.params["weighting"])
        self.by_user = _CSR(train.users, train.items, conf, self.n_users)
        self.by_item = _CSR(train.items, train.users, conf, self.n_items)
        self.history_confidence.assign(float(conf.mean()) if len(conf) else 1.0)
        self._set_fold_in(self.item_embedding.embeddings.numpy())

    def _set_fold_in(self, items: np.ndarray) -> None:
        items = items.astype(np.float64)  # both sides: a mixed-type matmul skips BLAS
        gram = items.T @ items + self.params["reg"] * np.eye(self.dim)
        self.fold_in_gram.assign(gram.astype(np.float32))
        self.fold_in_inverse.assign(np.linalg.inv(gram).astype(np.float32))

    def train_epoch(self, train: Interactions, seed: int) -> float:
        del train, seed  # the CSR layouts come from ``prepare``; ALS draws nothing
        # The BLAS calls here are small (d x d results); a BLAS thread pool beside numba's
        # threads only waits on them: on a loaded 2-core machine it made a sweep 3x slower.
        with threadpool_limits(1, "blas"):
            return self._sweep()

    def _sweep(self) -> float:
        users = self.user_embedding.embeddings.numpy()
        items = self.item_embedding.embeddings.numpy()
        reg, steps = self.params["reg"], self.params["cg_steps"]
        als_half_sweep(self.by_user, users, items, reg, steps)
        als_half_sweep(self.by_item, items, users, reg, steps)
        self.user_embedding.embeddings.assign(users)
        self.item_embedding.embeddings.assign(items)
        self._set_fold_in(items)
        return self.loss_value(users, items)

    def loss_value(self, users: np.ndarray, items: np.ndarray) -> float:
        """The weighted squared loss per user (sum over all cells, via the Gram trick)."""
        csr = self.by_user
        reg = self.params["reg"]
        total = float(np.sum((users @ (items.T @ items)) * users))  # all cells, p = 0
        total += observed_loss(csr.indptr, csr.cols, csr.vals, users, items)
        total += reg * float(np.sum(users ** 2) + np.sum(items ** 2))
        return total / max(self.n_users, 1)

    def fold_in(self, history):
        """[B, L] history (padded with n_items) -> [B, dim] user vectors, in TF ops.

        Solves (Y^T Y + reg I + Y_h^T (c - 1) Y_h) x = c Y_h^T 1 with c the mean training
        confidence, by ``fold_in_steps`` steps of conjugate gradients preconditioned with
        the constant (Y^T Y + reg I)^-1, from x = 0. One step gives x proportional to
        (Y^T Y + reg I)^-1 Y_h^T c (the usual cheap fold-in); each further step moves x
        towards the exact ALS solution. Padding gathers a zero row, so it adds nothing.
        """
        table = tf.concat([self.item_embedding.embeddings,
                           tf.zeros([1, self.dim], self.item_embedding.embeddings.dtype)], 0)
        rows = tf.gather(table, history)                               # [B, L, d]
        c = self.history_confidence
        gram, inverse = self.fold_in_gram, self.fold_in_inverse
        tiny = 1e-30

        def times_a(v):
            dots = tf.reduce_sum(rows * v[:, None, :], axis=-1)       # [B, L]
            return tf.matmul(v, gram) + (c - 1.0) * tf.reduce_sum(rows * dots[..., None], axis=1)

        r = c * tf.reduce_sum(rows, axis=1)                           # b - A 0
        x = tf.zeros_like(r)
        z = tf.matmul(r, inverse)
        p = z
        rz = tf.reduce_sum(r * z, axis=-1, keepdims=True)
        for _ in range(self.params["fold_in_steps"]):
            ap = times_a(p)
            step = rz / (tf.reduce_sum(p * ap, axis=-1, keepdims=True) + tiny)
            x = x + step * p
            r = r - step * ap
            z = tf.matmul(r, inverse)
            rz_new = tf.reduce_sum(r * z, axis=-1, keepdims=True)
            p = z + rz_new / (rz + tiny) * p
            rz = rz_new
        return x

    def score_all(self, users, history):
        known = tf.gather(self.user_embedding.embeddings, tf.maximum(users, 0))
        vectors = tf.where((users >= 0)[:, None], known, self.fold_in(history))
        return tf.matmul(vectors, self.item_embedding.embeddings, transpose_b=True)


class EASE(ScoringModel):
    """EASE: a closed-form item-item model; scores = multi-hot(history) @ B.

    Reads only ``history`` (every user is "folded in"), so ``history_length`` is chosen at
    ``prepare`` from the data: the most items any user has, capped at ``MAX_HISTORY``.
    The N x N weights limit it to catalogues of at most ``MAX_ITEMS`` items.
    """

    kind = "ease"
    folds_in = True
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
