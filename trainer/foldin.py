"""Folding in users a user-table model was not trained on, from their recent items.

``mf`` and ``neumf`` place a user by a table row learned from that user's interactions. A
visitor who arrives after training has no row but does have a history in the store, and
should get personalised results without retraining. Plugging the mean of the history's
item embeddings into the user slot does not work: the user and item tables live in
different spaces (for neumf on MovieLens 100K validation, NDCG@10 0.073, below "most
popular" at 0.091). Instead, after every epoch a ridge regression maps a user's mean
history item embedding (plus a constant) to that user's trained row. It is fitted on every
user with training interactions, over the same ``history_length`` most recent items the
runtime sends, so a folded-in visitor is placed the way a trained user with that history
would be. The ridge is ``reg`` times the mean diagonal of the features' Gram matrix, so it
means the same at any embedding scale. The map is a graph weight: fold-in happens inside
the exported scoring core, for users sent as index -1.
"""

from __future__ import annotations

import numpy as np

from .backend import keras, tf
from .data import Interactions

DEFAULT_HISTORY = 50
# Rows of the user x history gather per chunk when fitting the maps (bounds memory).
_CHUNK = 8192


class FoldIn(keras.layers.Layer):
    """A ridge map [mean history item embedding, 1] -> user vector (``dim_out`` wide)."""

    def __init__(self, dim_in: int, dim_out: int, reg: float, **kwargs):
        super().__init__(**kwargs)
        self.dim_in, self.reg = dim_in, reg
        self.map = self.add_weight(shape=(dim_in + 1, dim_out), initializer="zeros",
                                   trainable=False, name="map")
        self.built = True  # the weight exists from the start; there is nothing to build

    def fit(self, item_table: np.ndarray, targets: np.ndarray, users: np.ndarray,
            history: np.ndarray) -> None:
        """Solve the ridge regression from ``users``' histories to their ``targets`` rows."""
        padded = np.vstack([item_table.astype(np.float64), np.zeros((1, self.dim_in))])
        targets = targets.astype(np.float64)
        gram = np.zeros((self.dim_in + 1, self.dim_in + 1))
        cross = np.zeros((self.dim_in + 1, targets.shape[1]))
        for start in range(0, len(users), _CHUNK):
            x = _features(padded, history[start:start + _CHUNK])
            gram += x.T @ x
            cross += x.T @ targets[users[start:start + _CHUNK]]
        ridge = self.reg * np.trace(gram) / (self.dim_in + 1)
        self.map.assign(np.linalg.solve(gram + ridge * np.eye(self.dim_in + 1), cross).astype(np.float32))

    def user_vectors(self, known, item_table, users, history):
        """``known`` ([B, dim_out], the table rows) where users >= 0, the map of the history where -1."""
        padded = tf.concat([item_table, tf.zeros([1, self.dim_in], item_table.dtype)], 0)
        summed = tf.reduce_sum(tf.gather(padded, history), axis=1)
        count = tf.reduce_sum(tf.cast(history < item_table.shape[0], item_table.dtype), axis=1,
                              keepdims=True)
        folded = tf.matmul(summed / tf.maximum(count, 1.0), self.map[:self.dim_in]) + self.map[self.dim_in]
        return tf.where((users >= 0)[:, None], known, folded)


def _features(padded_items: np.ndarray, history: np.ndarray) -> np.ndarray:
    """[mean of the non-padding history rows, 1] per user (padding is the last row)."""
    count = np.maximum((history < len(padded_items) - 1).sum(1, keepdims=True), 1)
    return np.hstack([padded_items[history].sum(1) / count, np.ones((len(history), 1))])


class FoldsIn:
    """Mixin for user-table kinds: refit their ``FoldIn`` maps after every epoch.

    A kind lists its maps in ``fold_in_maps()`` as (map, item table, user targets) and
    reads ``history_length`` recent items (``params["fold_in_history"]``; 0 turns fold-in
    off, e.g. for factors computed elsewhere that no map was fitted for).
    """

    def _init_fold_in(self) -> None:
        self.history_length = int(self.params["fold_in_history"])
        self.folds_in = self.history_length > 0

    def fold_in_maps(self) -> list[tuple[FoldIn, np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def prepare(self, train: Interactions) -> None:
        super().prepare(train)
        self._fold_in_users = np.flatnonzero(np.bincount(train.users, minlength=self.n_users))
        self._fold_in_history = train.recent_items(self._fold_in_users, self.history_length)

    def train_epoch(self, train: Interactions, seed: int) -> float:
        loss = super().train_epoch(train, seed)
        if self.folds_in:
            for fold_in, items, targets in self.fold_in_maps():
                fold_in.fit(items, targets, self._fold_in_users, self._fold_in_history)
        return loss
