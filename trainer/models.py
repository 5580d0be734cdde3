"""Model kinds: small Keras models that share one interface with the exporter.

Every kind has two faces. Training (``prepare`` once, then ``train_epoch`` per epoch) is
the kind's own business. ``score_all(users, history)`` gives the scores of every catalogue
item for a batch of users, written in plain TensorFlow ops: it is the network part of the
ONNX scoring core, and evaluation calls the same function, so both see one computation.

Class attributes tell the exporter and runtime what a kind needs:
``history_length`` (how many recent items ``score_all`` reads; 0: none), ``folds_in``
(whether it can score a user it was not trained on, passed as user index -1, from history)
and ``known_users_read_history`` (whether the history changes a trained user's scores).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .data import Interactions, NegativeSampler
from .foldin import DEFAULT_HISTORY, FoldIn, FoldsIn


class ScoringModel(keras.Model):
    """Base of every kind. ``defaults`` lists the hyper-parameters ``fit`` accepts."""

    kind = ""
    history_length = 0
    folds_in = False
    known_users_read_history = True  # False: a trained user's scores ignore ``history``
    warm_starts = True  # False: solved afresh every time, so a bundle keeps no trainer state
    defaults: dict = {"epochs": 30}
    # Parameters chosen on the holdout when the caller leaves them unset: each value is
    # trained and the best kept (``fit``). For what no single default suits across data.
    search: dict[str, tuple] = {}
    # ``auto`` plans with these (see ``train.plan_auto``): how strong the kind tends to be on
    # implicit-feedback data beside the others (a prior from our benchmarks, not a promise)
    # and ``epoch_seconds``, a rough cost. Kinds with more value per second go first.
    auto_prior = 1.0
    # Seconds per million (example x dim) of one epoch: sampled-negative Keras training.
    seconds_per_mega_op = 0.25

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """A rough cost of one training epoch on data of this size (validation not included).

        The default prices an epoch of pointwise training: every interaction and its
        negatives through the network, ``dim`` wide. Kinds with other costs override it.
        """
        examples = n_interactions * (1 + params.get("negatives", 0))
        return cls.seconds_per_mega_op * examples * params.get("dim", 32) / 1e6

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__()
        self.n_users, self.n_items, self.seed = n_users, n_items, seed
        self.params = {**self.defaults, **params}

    @property
    def dim(self) -> int:
        return self.params["dim"]

    def prepare(self, train: Interactions) -> None:
        """Set up what training on ``train`` needs (samplers, optimiser)."""

    def train_epoch(self, train: Interactions, seed: int) -> float:
        """One pass over ``train``; returns the mean loss."""
        raise NotImplementedError

    def score_all(self, users, history):
        """[B] user indices and [B, L] recent item indices -> [B, n_items] scores."""
        raise NotImplementedError

    def indexed_weights(self) -> dict[str, list]:
        """The weights whose rows are users ("users") or items ("items").

        A warm start copies these row by row, by id, into the tables of a model built for
        today's users and items; every other weight is copied whole. A kind without any
        is copied whole (its shapes must not depend on the catalogue).
        """
        return {"users": [], "items": []}

    def item_vectors(self) -> np.ndarray | None:
        """[n_items, d] item embeddings whose cosine means "similar items", or None.

        The exporter stores them in the bundle (``item_vectors.npy``), where the runtime
        reads them with numpy, without TensorFlow: similar items, the similarity
        explanation and diversity re-ranking need them. A kind returning None still
        exports and serves; those features then say the bundle lacks vectors.
        """
        return None

    def neighbour_tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        """([n_items + 1, K] neighbour indices, weights), or None: the capability flag of the
        item-neighbourhood kinds, whose scoring core the exporter writes as gather and
        scatter-add over these tables instead of converting ``score_all``."""
        return None


class SampledNegativesModel(ScoringModel):
    """Pointwise training: binary cross-entropy on each positive and fresh negatives.

    Negatives are drawn uniformly per epoch from items the user never interacted with in
    the data being fitted (see ``NegativeSampler``).
    """

    defaults = {**ScoringModel.defaults, "negatives": 4, "learning_rate": 0.003,
                "batch_size": 1024}

    def prepare(self, train: Interactions) -> None:
        self.sampler = NegativeSampler(train, self.seed)
        self.compile(optimizer=keras.optimizers.Adam(self.params["learning_rate"]),
                     loss=keras.losses.BinaryCrossentropy(from_logits=True))

    def train_epoch(self, train: Interactions, seed: int) -> float:
        negatives = self.params["negatives"]
        users = np.repeat(train.users, negatives + 1)
        items = np.repeat(train.items, negatives + 1)
        labels = np.zeros(len(users), dtype=np.float32)
        labels[::negatives + 1] = 1.0
        neg = labels == 0
        items[neg] = self.sampler.sample(users[neg])
        order = np.random.default_rng(seed).permutation(len(users))
        hist = self.fit((users[order], items[order]), labels[order],
                        batch_size=self.params["batch_size"], epochs=1, shuffle=False, verbose=0)
        return float(hist.history["loss"][-1])


class FactorTables(ScoringModel):
    """User and item embedding tables with biases: what every factor model scores with.

    ``mf`` fills them by gradient descent, ``als`` by least squares; the exporter and
    the runtime's item vectors see the same tables either way.
    """

    known_users_read_history = False  # the history only places users without a row

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        dim = self.dim
        self.user_embedding = keras.layers.Embedding(
            n_users, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed))
        self.item_embedding = keras.layers.Embedding(
            n_items, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1))
        self.user_bias = keras.layers.Embedding(n_users, 1, embeddings_initializer="zeros")
        self.item_bias = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros")
        for layer in (self.user_embedding, self.item_embedding, self.user_bias, self.item_bias):
            layer.build((None,))  # the tables exist before first use: scoring reads them whole

    def indexed_weights(self) -> dict[str, list]:
        return {"users": [self.user_embedding.embeddings, self.user_bias.embeddings],
                "items": [self.item_embedding.embeddings, self.item_bias.embeddings]}

    def item_vectors(self) -> np.ndarray:
        """The item embedding table: what the dot product compares users with."""
        return self.item_embedding.embeddings.numpy()


class MatrixFactorization(FoldsIn, SampledNegativesModel, FactorTables):
    """Dot product of user and item embeddings plus user and item biases.

    L2 is applied to the embeddings a batch touches, not to the whole tables: the penalty
    then scales with how often a row is used, as in classic SGD matrix factorisation.
    A user the model was not trained on is folded in from their recent items (``FoldIn``
    maps them to a user row and bias).
    """

    kind = "mf"
    auto_prior = 0.7
    defaults = {**SampledNegativesModel.defaults, "dim": 32, "l2": 0.005,
                "fold_in_history": DEFAULT_HISTORY, "fold_in_reg": 0.1}

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        dim = self.dim
        self._init_fold_in()
        if self.folds_in:  # maps a history to the user's [embedding, bias] row
            self.fold_in = FoldIn(dim, dim + 1, self.params["fold_in_reg"])

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
        items = self.item_embedding.embeddings
        if self.folds_in:
            rows = tf.maximum(users, 0)  # -1: the fold-in replaces the row
            known = tf.concat([tf.gather(self.user_embedding.embeddings, rows),
                               tf.gather(self.user_bias.embeddings, rows)], axis=1)
            vectors = self.fold_in.user_vectors(known, items, users, history)
            user, bias = vectors[:, :self.dim], vectors[:, self.dim:]
        else:  # every user has a row: the plain graph, with nothing to slice or select
            user = tf.gather(self.user_embedding.embeddings, users)
            bias = tf.gather(self.user_bias.embeddings, users)
        scores = tf.matmul(user, items, transpose_b=True)
        return scores + tf.reshape(self.item_bias.embeddings, [1, -1]) + bias


from .sequence import SelfAttentionSequence  # noqa: E402 - needs ScoringModel above
from .linear import EASE, AlternatingLeastSquares  # noqa: E402 - need the classes above
from .neumf import NeuralCollaborativeFiltering  # noqa: E402 - needs SampledNegativesModel
from .neighbours import ItemKNN, RP3beta, SparseEASE  # noqa: E402 - need ScoringModel
from .gan import CollaborativeGAN  # noqa: E402 - needs ScoringModel

# In the order ``auto`` tries them: the fast ones first (seconds for als and ease), so that
# its time budget can only ever cut the slow ones short.
MODEL_KINDS: dict[str, type[ScoringModel]] = {
    AlternatingLeastSquares.kind: AlternatingLeastSquares,
    EASE.kind: EASE,
    ItemKNN.kind: ItemKNN,
    RP3beta.kind: RP3beta,
    SparseEASE.kind: SparseEASE,
    MatrixFactorization.kind: MatrixFactorization,
    NeuralCollaborativeFiltering.kind: NeuralCollaborativeFiltering,
    SelfAttentionSequence.kind: SelfAttentionSequence,
    CollaborativeGAN.kind: CollaborativeGAN,
}
