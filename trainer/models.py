"""Model kinds, each a small Keras model with two faces.

``call((users, items))`` gives one logit per (user, item) pair: what training fits with
binary cross-entropy over sampled negatives. ``score_all(users, history)`` gives the logits
of every catalogue item for a batch of users, written in plain TensorFlow ops: the network
part of the ONNX scoring core, shared by evaluation and export so both see one function.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class MatrixFactorization(keras.Model):
    """Dot product of user and item embeddings plus user and item biases.

    L2 is applied to the embeddings a batch touches, not to the whole tables: the penalty
    then scales with how often a row is used, as in classic SGD matrix factorisation.
    """

    kind = "mf"
    history_length = 0  # scores come from the user table alone

    def __init__(self, n_users: int, n_items: int, dim: int = 64, l2: float = 1e-5,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_items, self.dim, self.l2 = n_users, n_items, dim, l2
        normal = keras.initializers.RandomNormal(stddev=0.1, seed=seed)
        self.user_embedding = keras.layers.Embedding(n_users, dim, embeddings_initializer=normal)
        self.item_embedding = keras.layers.Embedding(
            n_items, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1))
        self.user_bias = keras.layers.Embedding(n_users, 1, embeddings_initializer="zeros")
        self.item_bias = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros")

    def call(self, inputs):
        users, items = inputs
        u = self.user_embedding(users)
        v = self.item_embedding(items)
        if self.l2:
            self.add_loss(self.l2 * (tf.reduce_mean(tf.reduce_sum(u * u, -1))
                                     + tf.reduce_mean(tf.reduce_sum(v * v, -1))))
        dot = tf.reduce_sum(u * v, axis=-1)
        return dot + tf.squeeze(self.user_bias(users), -1) + tf.squeeze(self.item_bias(items), -1)

    def score_all(self, users, history):
        del history  # MF reads only the user table
        u = tf.gather(self.user_embedding.embeddings, users)
        scores = tf.matmul(u, self.item_embedding.embeddings, transpose_b=True)
        return (scores + tf.reshape(self.item_bias.embeddings, [1, -1])
                + tf.gather(self.user_bias.embeddings, users))


MODEL_KINDS: dict[str, type[keras.Model]] = {"mf": MatrixFactorization}
