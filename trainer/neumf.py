"""``neumf``: Neural Collaborative Filtering (He et al. 2017), the NeuMF model.

Two branches with separate embeddings: GMF (the elementwise product of a user and an item
embedding) and an MLP tower over the concatenated user and item embeddings (2d -> d ->
d/2 with ReLU, i.e. 64-32-16 at dim 32). Their outputs are concatenated and projected to
one logit, trained with binary cross-entropy on sampled negatives (``SampledNegativesModel``).

``score_all`` scores the whole catalogue for a batch of users without materialising the
[B, N, 2d] concatenation: the first MLP layer is split into its user and item halves,
so it is one [B, h] and one [h, N] matmul broadcast to [B, h, N]; the tower's remaining
layers then run on [B, h, N] tensors. Memory is therefore about B * N * (d + d/2) floats
per call (512 users x 20K items x 48 x 4 bytes ~ 2 GB): fine for catalogues of a few
thousand items, heavy beyond ~10K.

Unknown users (index -1) are folded in from their history by one ``FoldIn`` map per
branch (see ``edgerec.trainer.foldin``): on MovieLens 100K validation, users scored
through the maps reach NDCG@10 0.183, their trained rows 0.163.
"""

from __future__ import annotations

import numpy as np

from .backend import keras, tf
from .base import SampledNegativesModel
from .foldin import DEFAULT_HISTORY, FoldIn, FoldsIn


class NeuralCollaborativeFiltering(FoldsIn, SampledNegativesModel):
    """NeuMF: GMF + MLP branches, one logit; sampled-negative cross-entropy."""

    kind = "neumf"
    reads_history = False  # the history only places users without a row
    folds_in = True        # unless ``fold_in_history`` is 0 (``FoldsIn``)
    has_item_vectors = True
    warm_starts = True
    auto_prior = 0.6
    seconds_per_mega_op = 0.5  # two towers and an MLP per example
    validation_cells = 12_000_000  # every user on ML-100K; 520 users at 23K items
    defaults = {**SampledNegativesModel.defaults, "dim": 32, "l2": 0.0, "negatives": 8,
                "learning_rate": 0.003, "batch_size": 4096,
                "fold_in_history": DEFAULT_HISTORY, "fold_in_reg": 0.1}

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        dim = self.dim
        hidden = (dim, max(1, dim // 2))

        def embedding(rows, offset, name):  # named: a warm start matches weights by name
            return keras.layers.Embedding(rows, dim, embeddings_initializer=keras.initializers.RandomNormal(
                stddev=0.01, seed=seed + offset), name=name)

        self.gmf_user, self.gmf_item = embedding(n_users, 1, "gmf_user"), embedding(n_items, 2, "gmf_item")
        self.mlp_user, self.mlp_item = embedding(n_users, 3, "mlp_user"), embedding(n_items, 4, "mlp_item")
        self.tower = [keras.layers.Dense(h, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(
            seed=seed + 5 + i), name=f"tower{i}") for i, h in enumerate(hidden)]
        self.output_layer = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(
            seed=seed + 9), name="output")
        for layer in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            layer.build((None,))
        width = 2 * dim
        for layer in self.tower:
            layer.build((None, width))
            width = layer.units
        self.output_layer.build((None, dim + width))
        self._init_fold_in()
        if self.folds_in:  # one map per branch: history -> that branch's user embedding
            self.fold_in_gmf = FoldIn(dim, dim, self.params["fold_in_reg"], name="fold_in_gmf")
            self.fold_in_mlp = FoldIn(dim, dim, self.params["fold_in_reg"], name="fold_in_mlp")

    def indexed_weights(self) -> dict[str, list]:
        return {"users": [self.gmf_user.embeddings, self.mlp_user.embeddings],
                "items": [self.gmf_item.embeddings, self.mlp_item.embeddings]}

    def fold_in_maps(self):
        return [(self.fold_in_gmf, self.gmf_item.embeddings.numpy(), self.gmf_user.embeddings.numpy()),
                (self.fold_in_mlp, self.mlp_item.embeddings.numpy(), self.mlp_user.embeddings.numpy())]

    def call(self, inputs):
        users, items = inputs
        gu, gi = self.gmf_user(users), self.gmf_item(items)
        mu, mi = self.mlp_user(users), self.mlp_item(items)
        if self.params["l2"]:
            self.add_loss(self.params["l2"] * sum(
                tf.reduce_mean(tf.reduce_sum(t * t, -1)) for t in (gu, gi, mu, mi)))
        h = tf.concat([mu, mi], axis=-1)
        for layer in self.tower:
            h = layer(h)
        return tf.squeeze(self.output_layer(tf.concat([gu * gi, h], axis=-1)), -1)

    def _user_vectors(self, branch: str, users, history):
        """A branch's user rows, folded in from the history for users sent as -1."""
        table = getattr(self, f"{branch}_user").embeddings
        known = tf.gather(table, tf.maximum(users, 0))
        if not self.folds_in:
            return known
        item_table = getattr(self, f"{branch}_item").embeddings
        return getattr(self, f"fold_in_{branch}").user_vectors(known, item_table, users, history)

    def score_all(self, users, history):
        return self._scores(self._user_vectors("gmf", users, history) * self._gmf_weights(),
                            self._first_layer_columns(self._user_vectors("mlp", users, history)))

    def score_known(self, users):
        """The trained users' products with the GMF output weights and the first layer's
        user half are per-user constants: tables the converter folds, so a request gathers
        its rows and columns and multiplies nothing before the item side."""
        gmf_rows = self.gmf_user.embeddings * self._gmf_weights()
        mlp_columns = self._first_layer_columns(self.mlp_user.embeddings)
        return self._scores(tf.gather(gmf_rows, users), tf.gather(mlp_columns, users, axis=1))

    def _gmf_weights(self):
        return tf.reshape(self.output_layer.kernel[:self.dim], [1, self.dim])

    def _first_layer_columns(self, user_vectors):
        """[B, d] MLP user embeddings through the first layer's user half, as [h1, B] columns."""
        return tf.matmul(self.tower[0].kernel[:self.dim], user_vectors, transpose_a=True,
                         transpose_b=True)

    def _scores(self, gmf_user, mlp_first):
        """[B, N] scores from the users' GMF embeddings times the GMF output weights and
        their MLP embeddings through the first layer's user half, [h1, B] (columns: as
        rows, the converter moved the [h1, B, N] sum's axes by a Transpose per request).

        The tower runs item-major, [h, B x N]: the first add puts a per-user value on
        every row of N items, and each later layer is one 2-D [h', h] x [h, B x N] product
        whose bias and ReLU ONNX Runtime fuses into it; in the [B, N, h] layout the adds
        broadcast 32-float rows and the last layer was an [N, h] x [h, 1] product
        (measured on MovieLens 100K: see benchmarks/README.md). The item half of the first
        layer, plus its bias, is a constant [h1, N] table.
        """
        first, rest = self.tower[0], self.tower[1:]
        w_out = self.output_layer.kernel                              # [d + h_last, 1]
        gmf = tf.matmul(gmf_user, self.gmf_item.embeddings, transpose_b=True)  # [B, N]
        items = tf.transpose(tf.matmul(self.mlp_item.embeddings, first.kernel[self.dim:])
                             + first.bias)                            # [h1, N]
        h = tf.nn.relu(tf.expand_dims(mlp_first, 2) + tf.expand_dims(items, 1))  # [h1, B, N]
        h = tf.reshape(h, [first.units, -1])                          # [h1, B * N]
        for layer in rest:
            h = tf.nn.relu(tf.matmul(tf.transpose(layer.kernel), h)
                           + tf.expand_dims(layer.bias, 1))           # [h, B * N]
        mlp = tf.reshape(tf.matmul(tf.transpose(w_out[self.dim:]), h), [-1, self.n_items])
        return gmf + mlp + self.output_layer.bias[0]

    def item_vectors(self) -> np.ndarray:
        """GMF item embeddings scaled by the output weights: the space in which the GMF
        branch's score is a plain dot product with the user vector."""
        weights = self.output_layer.kernel.numpy()[:self.dim, 0]
        return self.gmf_item.embeddings.numpy() * weights[None, :]
