"""``gan``: CFGAN (Chae et al. 2018), a generator of purchase vectors trained against a critic.

Why this one and not IRGAN: CFGAN's generator maps a user's whole purchase vector to a
real-valued score for every item, which is exactly a scoring core that reads the history
(nothing per user to store, new users and fresh events served at request time); IRGAN's
generator samples discrete items with policy gradients, trains far more slowly, and
Chae et al. report CFGAN ahead of it on the same data.

Generator G: the user's purchase vector (multi-hot of their items; the history at request
time) -> one hidden layer -> a logit per item; r = sigmoid(logit). The input layer is an
[n_items + 1, hidden] table (row n_items is the padding), summed over the history items,
so a request costs O(history x hidden) there and O(n_items x hidden) for the output layer;
the bundle grows with items x hidden, never items^2. An item repeated in the history
counts once, as in training (each slot is weighted 1 / its count in the row).

Discriminator D: [purchase vector, condition (the same user's purchase vector)] -> hidden
-> real/fake logit. Real: the user's true vector (1 on purchases, 0 elsewhere). Fake: the
generated vector r masked to the purchases plus a sample of unpurchased items ("partial
masking", PM), so D sees the generator's values there and G learns to keep them low.
G's loss also has the "zero reconstruction" (ZR) term alpha * sum of r^2 over another
sample of unpurchased items. Everything outside the sampled sets is zero in both the real
and the fake vector. The samples are ``zr_ratio`` / ``pm_ratio`` of the unpurchased items,
capped at ``max_samples`` per user; the ZR sum is rescaled to the uncapped count, so
alpha means what it means in the paper.

The defaults (hidden 128 at most, 128 samples, batches of 32 users, learning rate 0.005)
were chosen on validation (fit's holdout of the train part) for time to the best epoch:
a step's gathers are [batch, samples, hidden] floats, and at 64 x 256 x 256 (16 MB, the
earlier defaults) a MovieLens 100K epoch took 6x as long as at 32 x 128 x 128, which also
takes twice the steps a pass. ML-100K holdout NDCG@10: 0.1679 at epoch 18 against 0.1692
at epoch 25 before; per-epoch seconds 2.2 against 13.4 in the same run (load ~6); the
whole fit with its refit 6.7x als's in one run (23.8x before). demo:plays validation lost
7-13% for it (benchmarks/README.md). Hidden 128 also halves what a request reads (the
[hidden, n_items] output table): request p50 1.46x als's in a quiet run, 2.12x before.

One addition to the paper: G's loss also has ``purchase_weight`` * sum of (1 - r)^2 over
the user's purchases, the ZR term's mirror image. Without it (``purchase_weight=0``, plain
CFGAN_ZP) the adversarial signal alone did not hold on our data: on the test fixture and on
MovieLens 100K validation, NDCG@10 peaked within two epochs and fell back to popularity's
level as the discriminator won (0.090 against popularity's 0.091 on ML-100K validation).

Training reads the generated vector only at the purchases and the sampled items, so each
product is a gather over those (the same losses and updates as the dense [users, items]
products it replaced). Two departures from the paper keep a pass over a large catalogue
short: beyond ``max_steps`` (64) steps a pass the batches grow with the users, since every
step pays Adam's dense update of the four [items x hidden] tables (on demo:shop, 30K users
x 24K items, that update was ~70% of a step), and in a grown batch users in groups share
their sampled items (``sample_share``; by default as many as the batch grew by: 8 on
demo:shop), so a step gathers [groups, samples, hidden] rows, what a batch of 64 gathers.
Each user still gets its own weights (0 where a sample is one of its purchases). Sharing
across a whole batch of 64 lost 40% of ML-100K validation NDCG@10 (0.098 against 0.162);
groups of 8 there: 0.1608 and 0.1557 in two runs against 0.1618. A demo:shop pass went
from ~4 minutes to under one at load ~10. Data with under 64 x 32 users (ML-100K) trains
with per-user samples.

Published replications (Ferrari Dacrema et al. 2019/2021) found CFGAN not competitive
with tuned simple baselines; benchmarks/README.md says how it does here.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from . import costs
from .backend import keras, tf
from .base import ScoringModel, once_each
from .data import Interactions

# Floats of [n_items x hidden] tables the bundle may hold: the generator's two tables plus
# the item vectors, 3 x n_items x hidden x 4 bytes <= ~40 MB at any catalogue size.
_BUNDLE_FLOATS = 10_000_000


def auto_hidden(n_items: int, largest: int = 128) -> int:
    """The hidden width: ``largest``, or the largest power of two that keeps the bundle in
    budget and stays below the number of items (a wider layer could just copy its input)."""
    fits = max(8, min(_BUNDLE_FLOATS // (3 * max(n_items, 1)), n_items - 1))
    return min(largest, 2 ** int(math.log2(fits)))


def sample_counts(unseen: float, params: dict) -> tuple[int, int]:
    """Items sampled a user for the ZR and the PM terms: their ratios of the ``unseen``
    items (a user's unpurchased ones), capped at ``max_samples``."""
    return tuple(max(1, min(params["max_samples"], round(params[ratio] * unseen)))
                 for ratio in ("zr_ratio", "pm_ratio"))


def bag(table, indices, weights):
    """sum_l weights[b, l] * table[indices[b, l]]: [B, L] -> [B, d] (a multi-hot product)."""
    return tf.einsum("bl,bld->bd", weights, tf.gather(table, indices))


def _dense(gradients):
    """The gathers' sparse gradients as dense tensors: Keras's Adam updates only the touched
    rows of a sparse gradient (its moments of the other rows do not decay), which trained
    differently from the dense products this step replaced; dense, the two agree."""
    return [tf.convert_to_tensor(g) for g in gradients]


class CollaborativeGAN(ScoringModel):
    """CFGAN with zero reconstruction and partial masking (CFGAN_ZP); scores are G's logits."""

    kind = "gan"
    reads_history = True  # the purchase vector is the history
    # It lost to als on every shape measured (5-16%, benchmarks/README.md) at 4x the time.
    auto_prior = 0.6
    folds_in = True
    has_item_vectors = True
    warm_starts = False  # trained afresh: the discriminator would double the bundle's size
    history_length = 0   # set by ``prepare``: the most items a user has, up to MAX_HISTORY
    MAX_HISTORY = 1000
    defaults = {**ScoringModel.defaults, "epochs": 40, "hidden": 0, "zr_ratio": 0.7,
                "pm_ratio": 0.7, "zr_weight": 0.1, "purchase_weight": 1.0, "max_samples": 128,
                "learning_rate": 0.005, "batch_size": 32, "steps_per_epoch": 16,
                "sample_share": 0, "max_steps": 64}

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        p = self.params
        if min(p["hidden"], p["sample_share"]) < 0 or min(p["max_samples"], p["batch_size"],
                                                           p["max_steps"]) < 1:
            raise InputError("gan needs hidden >= 0 (0: sized by the catalogue), sample_share >= 0 "
                             "(0: by the batch), and max_samples, batch_size and max_steps >= 1")
        if not (0 <= p["zr_ratio"] <= 1 and 0 <= p["pm_ratio"] <= 1) or min(p["zr_weight"],
                                                                            p["purchase_weight"]) < 0:
            raise InputError("gan needs zr_ratio and pm_ratio in [0, 1], zr_weight >= 0 and "
                             "purchase_weight >= 0")
        self.params["hidden"] = hidden = p["hidden"] or auto_hidden(n_items)

        def table(name, rows, cols, offset, scale):
            return self.add_weight(shape=(rows, cols), name=name, initializer=keras.initializers.RandomNormal(
                stddev=scale, seed=seed + offset))

        # Generator: input table (with the padding row), hidden bias, output item table and bias.
        self.g_in = table("g_in", n_items + 1, hidden, 1, 0.01)
        self.g_bias = self.add_weight(shape=(hidden,), initializer="zeros", name="g_bias")
        self.g_out = table("g_out", n_items, hidden, 2, 1.0 / math.sqrt(hidden))
        self.g_out_bias = self.add_weight(shape=(n_items,), initializer="zeros", name="g_out_bias")
        # Discriminator: tables for the judged vector and the condition, hidden bias, output.
        self.d_x = table("d_x", n_items + 1, hidden, 3, 0.01)
        self.d_c = table("d_c", n_items + 1, hidden, 4, 0.01)
        self.d_bias = self.add_weight(shape=(hidden,), initializer="zeros", name="d_bias")
        self.d_out = table("d_out", hidden, 1, 5, 1.0 / math.sqrt(hidden))
        self.generator = [self.g_in, self.g_bias, self.g_out, self.g_out_bias]
        self.discriminator = [self.d_x, self.d_c, self.d_bias, self.d_out]

    @property
    def dim(self) -> int:
        return self.params["hidden"]

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """One pass over the users: per step the dense table updates and the rows each
        sample set gathers (``costs.gan_seconds``)."""
        hidden = params["hidden"] or auto_hidden(n_items)
        size, steps, share = cls.batching(n_users, params)
        n_zr, n_pm = sample_counts(n_items - n_interactions / max(n_users, 1), params)
        return costs.gan_seconds(steps, size // share, n_items, hidden, n_zr + n_pm)

    @staticmethod
    def batching(n_users: int, params: dict) -> tuple[int, int, int]:
        """(users a step, steps a pass, users sharing a sample): at least ``steps_per_epoch``
        steps of ``batch_size`` users, and batches that grow with the users beyond
        ``max_steps`` steps a pass, since each step pays Adam's dense update of the four
        [items x hidden] tables. ``sample_share`` 0 shares samples only in a grown batch,
        among as many users as it grew by, so a step gathers what ``batch_size`` would."""
        size = max(params["batch_size"], math.ceil(n_users / params["max_steps"]))
        share = params["sample_share"] or math.ceil(size / params["batch_size"])
        size = share * math.ceil(size / share)
        return size, max(params["steps_per_epoch"], math.ceil(n_users / size)), share

    # -- the generator: what is exported ---------------------------------------------------

    def score_all(self, users, history):
        """G's logits for every item, from the history alone (``users`` is not read)."""
        del users
        hidden = tf.sigmoid(bag(self.g_in, history, once_each(history, self.n_items)) + self.g_bias)
        return tf.matmul(hidden, self.g_out, transpose_b=True) + self.g_out_bias

    def generator_layers(self) -> tuple[np.ndarray, ...]:
        return tuple(w.numpy() for w in self.generator)

    def item_vectors(self) -> np.ndarray:
        """The output table: a user's score for an item is their hidden vector dotted with its row."""
        return self.g_out.numpy()

    # -- training ------------------------------------------------------------------------------

    def prepare(self, train: Interactions) -> None:
        counts = np.bincount(train.users, minlength=self.n_users)
        self.history_length = int(min(self.MAX_HISTORY, max(1, counts.max(initial=0))))
        self._users = np.flatnonzero(counts)
        # Each training user's items as the runtime sends them (newest first, capped), as
        # CSR rows: the condition and the "real" vector.
        recent = train.recent_items(self._users, self.history_length)
        kept = recent < self.n_items
        self._indptr = np.r_[0, np.cumsum(kept.sum(1))]
        self._flat = recent[kept]
        unseen = self.n_items - kept.sum(1).mean() if len(self._users) else 0
        p = self.params
        self._n_zr, self._n_pm = sample_counts(unseen, p)
        self._zr_scale = p["zr_ratio"] * unseen / self._n_zr  # the sampled sum -> the paper's sum
        self.g_opt = keras.optimizers.Adam(p["learning_rate"])
        self.d_opt = keras.optimizers.Adam(p["learning_rate"])
        self._step = tf.function(self._train_step, input_signature=[
            tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([None, None], tf.int64),
            tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.int64),
            tf.TensorSpec([None, None], tf.float32)])

    def train_epoch(self, train: Interactions, seed: int) -> float:
        """At least one pass over the users and ``steps_per_epoch`` steps (one D, one G update each)."""
        del train
        rng = np.random.default_rng(seed)
        size, steps, self._share = self.batching(len(self._users), self.params)
        order = np.concatenate([rng.permutation(len(self._users))
                                for _ in range(math.ceil(steps * size / max(len(self._users), 1)))])
        losses = [self._batch_step(order[s * size:(s + 1) * size], rng) for s in range(steps)]
        return float(np.mean(losses)) if losses else 0.0

    def _batch_step(self, rows: np.ndarray, rng: np.random.Generator) -> float:
        """One step on the users at ``rows``: their purchases (flat) and one uniform sample
        of items shared by the batch, a sample that is one of a user's purchases weighing 0
        for that user."""
        lengths = self._indptr[rows + 1] - self._indptr[rows]
        starts = np.repeat(self._indptr[rows] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        items = self._flat[starts + np.arange(lengths.sum())]
        batch = np.repeat(np.arange(len(rows)), lengths)
        share = self._share
        samples = rng.integers(0, self.n_items, (len(rows) // share, self._n_zr + self._n_pm))
        bought = np.isin(np.arange(len(rows))[:, None] * self.n_items + np.repeat(samples, share, 0),
                         batch * self.n_items + items)
        weight = (~bought).astype(np.float32)
        zr, pm = np.split(samples, [self._n_zr], axis=1)
        zr_w, pm_w = np.split(weight, [self._n_zr], axis=1)
        _, g_loss = self._step(np.stack([batch, items], 1), zr, zr_w, pm, pm_w)
        return float(g_loss)

    def _train_step(self, purchases, zr, zr_w, pm, pm_w):
        """One discriminator and one generator update on a batch of users.

        ``purchases`` [P, 2] (row in the batch, item); ``zr``/``pm`` [B, M] sampled items
        with weights ``zr_w``/``pm_w`` (0 where the sample is a purchase). The real vector
        and the masked fake one are zero outside the purchases and the samples, and the
        losses read r only there, so every product is a gather over those items: a step
        costs O(B x (history + samples) x hidden), not O(B x n_items x hidden), which is
        what lets the kind train on a 24K-item shop (the dense products took ~2 TFLOP a pass).
        """
        batch = tf.shape(zr_w, out_type=tf.int64)[0]
        rows, items = purchases[:, 0], purchases[:, 1]
        bce = keras.losses.BinaryCrossentropy(from_logits=True)

        def bag_of(table, weights):                       # vector @ table over the purchases
            return tf.math.unsorted_segment_sum(tf.gather(table, items) * weights[:, None],
                                                rows, batch)

        ones = tf.ones(tf.shape(items), tf.float32)
        groups = tf.shape(zr, out_type=tf.int64)[0]

        def grouped(x):                                   # [B, k] -> [groups, users in a group, k]
            return tf.reshape(x, tf.stack([groups, batch // groups, -1]))

        def ungrouped(x):
            return tf.reshape(x, tf.stack([batch, -1]))

        def per_user(x):                                  # [groups, M] -> [B, M]
            return tf.repeat(x, batch // groups, axis=0)

        def fake():                                       # r at the purchases and the samples
            hidden = tf.sigmoid(bag_of(self.g_in, ones) + self.g_bias)

            def r_at(sampled):                            # [B, M] generated values
                logits = tf.einsum("gsd,gmd->gsm", grouped(hidden), tf.gather(self.g_out, sampled))
                return tf.sigmoid(ungrouped(logits) + per_user(tf.gather(self.g_out_bias, sampled)))

            r_bought = tf.sigmoid(tf.reduce_sum(tf.gather(hidden, rows) * tf.gather(self.g_out, items),
                                                1) + tf.gather(self.g_out_bias, items))
            zero = tf.reduce_sum(tf.square(r_at(zr)) * zr_w, axis=1)
            bought = tf.reduce_sum(tf.square(1.0 - r_bought))
            batch_size = tf.cast(batch, tf.float32)
            return (r_bought, r_at(pm) * pm_w), tf.reduce_mean(zero), bought / batch_size

        def critic(on_bought, on_pm=None):                # the vector: these values there, 0 elsewhere
            hidden = bag_of(self.d_x, on_bought) + bag_of(self.d_c, ones) + self.d_bias
            if on_pm is not None:
                hidden += ungrouped(tf.einsum("gsm,gmd->gsd", grouped(on_pm), tf.gather(self.d_x, pm)))
            return tf.matmul(tf.nn.relu(hidden), self.d_out)

        with tf.GradientTape() as tape:
            r_bought, r_pm = (tf.stop_gradient(v) for v in fake()[0])
            d_real, d_fake = critic(ones), critic(r_bought, r_pm)
            d_loss = bce(tf.ones_like(d_real), d_real) + bce(tf.zeros_like(d_fake), d_fake)
        self.d_opt.apply_gradients(zip(_dense(tape.gradient(d_loss, self.discriminator)),
                                       self.discriminator))
        with tf.GradientTape() as tape:
            (r_bought, r_pm), zero, bought = fake()
            d_fake = critic(r_bought, r_pm)
            g_loss = (bce(tf.ones_like(d_fake), d_fake) + self.params["zr_weight"] * self._zr_scale * zero
                      + self.params["purchase_weight"] * bought)
        self.g_opt.apply_gradients(zip(_dense(tape.gradient(g_loss, self.generator)), self.generator))
        return d_loss, g_loss
