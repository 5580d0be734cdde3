"""``als``: implicit-feedback ALS, the factor tables filled by least squares.

It trains outside Keras (numpy, and numba for the inner loop; no gradient descent) and keeps
its Keras face only for ``score_all``, the function the exporter converts to ONNX and
evaluation calls.

Weighted matrix factorisation of Hu, Koren & Volinsky (2008). Every (user, item)
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
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import InputError
from .backend import tf
from .base import FactorTables, ScoringModel
from .cg import cg_sweep, observed_loss
from .data import Interactions

WEIGHTINGS = ("log1p", "linear", "binary")

def confidence_weights(data: Interactions, weighting: str) -> np.ndarray:
    """f(w) per interaction: log1p(w), w, or 1 (``weighting``); w = 1 when there are none."""
    w = np.ones(len(data.users)) if data.weights is None or weighting == "binary" else data.weights
    w = np.maximum(w, 0.0)  # a negative weight (a dislike) gives no extra confidence
    return np.log1p(w) if weighting == "log1p" else w.astype(np.float64)


# The numba CG's speed by that count, measured on the shared 2-core CPU: demo:shop at dim
# 128 trained an epoch in 0.22 s, quiet (7.4 GFLOP: ~34 GFLOP/s, its d x d products in
# cache); the 100K x 100K shop at dim 64 ~14 s at load ~10 (16.8 GFLOP: ~1.2 GFLOP/s,
# memory-bound). 1 GFLOP/s, the old figure, priced demo:shop's four-setting search at
# ~340 s and skipped it; at 4 the search runs there (~80 s priced, ~60 s measured) and is
# still skipped at 100K x 100K (~190 s), where auto still runs itemknn first (then als).
FLOPS_PER_SECOND = 4e9


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
    reads_history = False  # the history only places users without a row
    folds_in = True
    has_item_vectors = True
    warm_starts = True
    history_length = 200
    defaults = {**ScoringModel.defaults, "epochs": 15, "dim": 64, "reg": 20.0, "alpha": 1.0,
                "weighting": "log1p", "cg_steps": 3, "fold_in_steps": 3}
    # No single regularisation or confidence scale suits every shape: ``fit`` sets alpha and
    # reg from the data (catalogue size, history mass: ``trainer.defaults``) and tries these
    # multiples of them on the holdout (what --reg / --alpha set is not searched).
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
        """Each CG step costs a d x d mat-vec per row and two d-wide passes per cell
        (implicit's loop has the same count), at ``FLOPS_PER_SECOND``."""
        dim, steps = params["dim"], params["cg_steps"] + 1
        flops = 2 * steps * ((n_users + n_items) * dim * dim + 2 * n_interactions * dim)
        return flops / FLOPS_PER_SECOND

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

    def score_known(self, users):
        known = tf.gather(self.user_embedding.embeddings, users)
        return tf.matmul(known, self.item_embedding.embeddings, transpose_b=True)
