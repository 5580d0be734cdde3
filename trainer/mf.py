"""``mf``: matrix factorisation trained on sampled negatives, with fold-in for new users."""

from __future__ import annotations

import numpy as np

from .backend import tf
from .base import FactorTables, SampledNegativesModel
from .foldin import DEFAULT_HISTORY, FoldIn, FoldsIn


class MatrixFactorization(FoldsIn, SampledNegativesModel, FactorTables):
    """Dot product of user and item embeddings plus user and item biases.

    L2 is applied to the embeddings a batch touches, not to the whole tables: the penalty
    then scales with how often a row is used, as in classic SGD matrix factorisation.
    A user the model was not trained on is folded in from their recent items (``FoldIn``
    maps them to a user row and bias).
    """

    kind = "mf"
    reads_history = False  # the history only places users without a row
    folds_in = True        # unless ``fold_in_history`` is 0 (``FoldsIn``)
    has_item_vectors = True
    warm_starts = True
    auto_prior = 0.7
    defaults = {**SampledNegativesModel.defaults, "dim": 32, "l2": 0.005,
                "fold_in_history": DEFAULT_HISTORY, "fold_in_reg": 0.1}

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        dim = self.dim
        self._init_fold_in()
        if self.folds_in:  # maps a history to the user's [embedding, bias] row
            self.fold_in = FoldIn(dim, dim + 1, self.params["fold_in_reg"], name="fold_in")

    def fold_in_maps(self):
        targets = np.hstack([self.user_embedding.embeddings.numpy(), self.user_bias.embeddings.numpy()])
        return [(self.fold_in, self.item_embedding.embeddings.numpy(), targets)]

    def call(self, inputs):
        users, items = inputs
        u = self.user_embedding(users)
        v = self.item_embedding(items)
        if self.params["l2"]:
            self.add_loss(self.params["l2"] * (tf.reduce_mean(tf.reduce_sum(u * u, -1))
                                               + tf.reduce_mean(tf.reduce_sum(v * v, -1))))
        dot = tf.reduce_sum(u * v, axis=-1)
        return dot + tf.squeeze(self.user_bias(users), -1) + tf.squeeze(self.item_bias(items), -1)

    def score_all(self, users, history):
        if not self.folds_in:  # every user has a row: the plain graph, nothing to select
            return self.score_known(users)
        rows = tf.maximum(users, 0)  # -1: the fold-in replaces the row
        known = tf.concat([tf.gather(self.user_embedding.embeddings, rows),
                           tf.gather(self.user_bias.embeddings, rows)], axis=1)
        vectors = self.fold_in.user_vectors(known, self.item_embedding.embeddings, users, history)
        return self._scores(vectors[:, :self.dim], vectors[:, self.dim:])

    def score_known(self, users):
        return self._scores(tf.gather(self.user_embedding.embeddings, users),
                            tf.gather(self.user_bias.embeddings, users))

    def _scores(self, user, bias):
        scores = tf.matmul(user, self.item_embedding.embeddings, transpose_b=True)
        return scores + tf.reshape(self.item_bias.embeddings, [1, -1]) + bias
