"""The model interface every kind implements, and the bases several kinds share.

Every kind has two faces. Training (``prepare`` once, then ``train_epoch`` per epoch) is
the kind's own business. ``score_all(users, history)`` gives the scores of every catalogue
item for a batch of users, written in plain TensorFlow ops: it is the network part of the
ONNX scoring core, and evaluation calls the same function, so both see one computation.

What a kind can do is declared, not discovered: each kind states every capability in
``CAPABILITIES`` (a class attribute, True or False), and defining a kind that leaves one
out fails at import. The exporter, the warm start and validation branch on these flags
only, never on a kind's name. ``history_length`` (how many recent items ``score_all``
reads; 0: none) is a size, set per instance where it depends on the data.

The kinds themselves live one per module (``mf``, ``als``, ...); ``registry`` lists them.
"""

from __future__ import annotations

import numpy as np

from . import costs
from .backend import keras, tf
from .data import Interactions, NegativeSampler
from .validation import MIN_VALIDATION_USERS, VALIDATION_USERS

# reads_history: a trained user's scores depend on their recent items (False: they come
#   from the user's table row, and the history only places users without a row);
# folds_in: a user the model was not trained on (sent as index -1) is scored from their
#   history (an instance may turn it off, e.g. factors exported without a fold-in map);
# has_item_vectors: ``item_vectors()`` gives item embeddings whose cosine means "similar";
# warm_starts: a bundle keeps the weights to continue from (False: solved afresh each time).
CAPABILITIES = ("reads_history", "folds_in", "has_item_vectors", "warm_starts")


def once_each(history, n_items: int):
    """[B, L] history -> [B, L] float32: 1 / how often each slot's item occurs in its row,
    0 for padding (``n_items``). The kinds that read a history as a set (gan, the
    neighbour kinds) count a repeated item once, as their exported graphs do."""
    width = n_items + 1
    batch = tf.shape(history, out_type=tf.int64)[0]
    slots = tf.reshape(history + tf.range(batch)[:, None] * width, [-1])
    counts = tf.math.unsorted_segment_sum(tf.ones_like(slots, tf.float32), slots, batch * width)
    valid = tf.cast(history < n_items, tf.float32)
    return valid / tf.reshape(tf.gather(counts, slots), tf.shape(history))


class ScoringModel(keras.Model):
    """Base of every kind. ``defaults`` lists the hyper-parameters ``fit`` accepts."""

    kind = ""
    # Capabilities (see ``CAPABILITIES``): deliberately without defaults here.
    reads_history: bool
    folds_in: bool
    has_item_vectors: bool
    warm_starts: bool
    history_length = 0
    defaults: dict = {"epochs": 30}
    # Values of settings added after bundles were saved without them: a warm start from
    # such a bundle rebuilds the model it holds (``seq``'s bag: 0, none), where the
    # defaults would add weights it lacks.
    settings_before: dict = {}
    # Parameters chosen on the holdout when the caller leaves them unset: each value is
    # trained and the best kept (``fit``). For what no single default suits across data.
    search: dict[str, tuple] = {}
    # Searched parameters whose values share one trained model and are only validated
    # again (the neighbourhood kinds' ``recency``): ``auto``'s plan prices them so.
    search_shared: tuple[str, ...] = ()
    # ``auto`` plans with these (see ``train.plan_auto``): how strong the kind tends to be on
    # implicit-feedback data beside the others (a prior from our benchmarks, not a promise)
    # and ``epoch_seconds``, a rough cost. Kinds with more value per second go first.
    auto_prior = 1.0
    # Seconds per million (example x dim) of one epoch: sampled-negative Keras training.
    seconds_per_mega_op = 0.25
    # Holdout scoring in (user x item) cells per validation, for kinds whose every cell costs
    # a network pass (neumf's MLP: 2,000 users x 23K items took 150-180 s, more than its
    # epoch): fewer users are validated on a large catalogue. None: ``VALIDATION_USERS``.
    validation_cells: int | None = None

    def __init_subclass__(cls, **kwargs):
        """A class that names a ``kind`` must have declared every capability by then."""
        super().__init_subclass__(**kwargs)
        missing = [c for c in CAPABILITIES if not isinstance(getattr(cls, c, None), bool)]
        if "kind" in cls.__dict__ and missing:
            raise TypeError(f"model kind {cls.kind!r} ({cls.__name__}) must declare "
                            f"{', '.join(missing)} as True or False (see ScoringModel)")

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """A rough cost of one training epoch on data of this size (validation not included).

        The default prices an epoch of pointwise training: every interaction and its
        negatives through the network, ``dim`` wide. Kinds with other costs override it.
        """
        examples = n_interactions * (1 + params.get("negatives", 0))
        return cls.seconds_per_mega_op * examples * params.get("dim", 32) / 1e6

    @classmethod
    def validation_users(cls, n_users: int, n_items: int) -> int:
        """How many holdout users each validation ranks: ``VALIDATION_USERS``, or fewer
        (never under ``MIN_VALIDATION_USERS``) when ``validation_cells`` caps the work."""
        users = VALIDATION_USERS
        if cls.validation_cells is not None:
            users = min(users, max(MIN_VALIDATION_USERS, cls.validation_cells // max(n_items, 1)))
        return min(users, n_users)

    @classmethod
    def validation_seconds(cls, users: int, n_items: int, params: dict) -> float:
        """A rough cost of one holdout validation of ``users`` (every item scored, ranked)."""
        return costs.validation_seconds(users, n_items, params.get("dim", 64))

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

    def score_known(self, users):
        """[B] indices of users the model has a table row for -> [B, n_items]: what
        ``score_all`` gives them, without the fold-in.

        Kinds whose trained users' scores do not read the history (``folds_in`` and not
        ``reads_history``) implement it; the exporter writes it as the known-user core
        (``contract.M_ONNX_KNOWN``), which the runtime serves such users from.
        """
        raise NotImplementedError(f"{self.kind} has no known-user scores")

    def indexed_weights(self) -> dict[str, list]:
        """The weights whose rows are users ("users") or items ("items").

        A warm start copies these row by row, by id, into the tables of a model built for
        today's users and items; every other weight is copied whole. A kind without any
        is copied whole (its shapes must not depend on the catalogue).
        """
        return {"users": [], "items": []}

    def item_vectors(self) -> np.ndarray:
        """[n_items, d] item embeddings whose cosine means "similar items" (``has_item_vectors``).

        The exporter stores them in the bundle (``item_vectors.npy``), where the runtime
        reads them with numpy, without TensorFlow: similar items, the similarity
        explanation and diversity re-ranking need them. A kind without them still
        exports and serves; those features then say the bundle lacks vectors.
        """
        raise NotImplementedError(f"{self.kind} has no item vectors")

    def history_item_rows(self) -> np.ndarray | None:
        """[n_items + 1, n_items] dense item-item weights (last row: padding, zeros), or
        None: for kinds whose scores are the sum of the distinct history items' rows, which
        the exporter writes as a gather and a weighted sum (``item_rows_graph``) instead of
        converting ``score_all``'s multi-hot matrix product."""
        return None

    def generator_layers(self) -> tuple[np.ndarray, ...] | None:
        """(input table [n_items + 1, H] (last row: padding), hidden bias [H], output table
        [n_items, H], output bias [n_items]), or None: for kinds whose scores are
        sigmoid(the distinct history items' input rows summed + bias) x output table^T +
        bias, which the exporter writes directly (``generator_graph``): converted, the
        distinct-item count alone took dozens of index-building nodes."""
        return None

    def neighbour_tables(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """([n_items + 1, K] neighbour indices, weights, history recency), or None: the flag of the
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

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        dim = self.dim
        # Named: a warm start matches weights by name (``warm.weight_names``).
        self.user_embedding = keras.layers.Embedding(
            n_users, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
            name="user_embedding")
        self.item_embedding = keras.layers.Embedding(
            n_items, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1),
            name="item_embedding")
        self.user_bias = keras.layers.Embedding(n_users, 1, embeddings_initializer="zeros",
                                                name="user_bias")
        self.item_bias = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros",
                                                name="item_bias")
        for layer in (self.user_embedding, self.item_embedding, self.user_bias, self.item_bias):
            layer.build((None,))  # the tables exist before first use: scoring reads them whole

    def indexed_weights(self) -> dict[str, list]:
        return {"users": [self.user_embedding.embeddings, self.user_bias.embeddings],
                "items": [self.item_embedding.embeddings, self.item_bias.embeddings]}

    def item_vectors(self) -> np.ndarray:
        """The item embedding table: what the dot product compares users with."""
        return self.item_embedding.embeddings.numpy()
