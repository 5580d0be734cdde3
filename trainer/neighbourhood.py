"""What the item-neighbourhood kinds share: ``itemknn``, ``rp3beta`` and ``sparse_ease``.

Each keeps, for every item, its ``neighbours`` strongest item-to-item weights: a table of
neighbour indices and one of weights, [n_items + 1, K] (the extra row is the history's
padding index, with no neighbours). A user's score for item j is the sum, over the distinct
items i of their history, of the weight i gives j. The exporter writes that as a gather of
the history's rows and a scatter-add into the score row (``exporters.onnx.neighbour_graph``),
so the bundle grows with items x K, never items^2, and the history is read at request time:
a new purchase changes the next answer, and a user the model never saw is served.

Similarities are computed with scipy sparse products, a block of items at a time, and only
the top K of each block's rows are kept (sorting the block's non-zeros): memory stays
O(a block's non-zeros + items x K). Each
kind (one module each) supplies only its item-to-item weights.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from . import costs
from .backend import tf
from .base import ScoringModel, once_each
from .data import Interactions, history_length_for

# The lightest history slot a model with recency < 1 reads, relative to the newest.
MIN_SLOT_WEIGHT = 1e-4
# Items per block of similarity rows: at most this many cells (83 rows at 100K items: the
# most popular items' blocks hold millions of non-zeros, and a deadline is checked per block).
_BLOCK_CELLS = 1 << 23
# Ranked as a dense array above this share of non-zeros (``_top_k``).
DENSE_FILL = 0.15
# Below this a score row's largest value counts as 0 (``combined``): a row of zeros stays.
MIN_ROW_MAX = 1e-30


def binary_matrix(data: Interactions) -> sp.csr_matrix:
    """The user x item matrix with a 1 for every interaction, float32 CSR."""
    ones = np.ones(len(data.users), np.float32)
    return sp.csr_matrix((ones, (data.users, data.items)), shape=(data.n_users, data.n_items))


def top_k_rows(rows, n_items: int, k: int, blocks: list | None = None,
               deadline: float | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep each row's ``k`` largest off-diagonal weights (positive ones only).

    ``rows(items)`` gives the sparse [len(items), n_items] weights of those items, for each
    of ``blocks`` (item index arrays; default ``item_blocks`` in item order). With
    ``deadline`` (a ``time.perf_counter`` time) the loop stops before a block as long as
    the last one would pass it, so a caller's budget is overrun by at most one block.
    Returns (indices int32 [n_items, k], weights float32 [n_items, k], rows built);
    a row with fewer than k positive weights, or not built, has index n_items and weight 0.
    """
    k = min(k, max(n_items - 1, 1))
    index = np.full((n_items, k), n_items, np.int32)
    weight = np.zeros((n_items, k), np.float32)
    built = 0
    for items in item_blocks(n_items) if blocks is None else blocks:
        t0 = time.perf_counter()
        rank, row, col, value = _top_k(rows(items), items, k)
        index[items[row], rank] = col
        weight[items[row], rank] = value
        built += len(items)
        if built < n_items and another_block_passes(deadline, t0):
            return index, weight, built
    return index, weight, n_items


def item_blocks(n_items: int, counts: np.ndarray | None = None,
                order: np.ndarray | None = None) -> list[np.ndarray]:
    """Items (in ``order``) in blocks of at most ``_BLOCK_CELLS`` cells; with ``counts``
    (interactions per item) also of at most ~1/256 of the total count each: a block's
    co-occurring pairs grow with its items' counts, and equal blocks keep a deadline's
    overrun small (83 of the most popular items in one block took 190 s of a 120 s limit
    on the 100K x 100K shop)."""
    order = np.arange(n_items) if order is None else order
    most = max(1, _BLOCK_CELLS // max(n_items, 1))
    parts = [order]
    if counts is not None:
        before = np.cumsum(counts[order]) - counts[order]
        group = np.floor(before / max(counts.sum(), 1e-12) * 256)
        parts = np.split(order, np.flatnonzero(np.diff(group)) + 1)
    return [part[i:i + most] for part in parts for i in range(0, len(part), most)]


def _top_k(block, items: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """(rank within its row, row, column, value) of each row's ``k`` largest positive
    off-diagonal entries, largest first. A block filled beyond ``DENSE_FILL`` is ranked as
    a dense array (a partition per row, ~1e8 cells a second), a sparser one by sorting its
    non-zeros (~2e7 a second): at 100K items the ordered pairs fill ~1% of a block, while
    the symmetric products of the popular items fill most of theirs."""
    block = sp.csr_matrix(block, dtype=np.float32)
    block.sum_duplicates()
    if block.nnz > DENSE_FILL * block.shape[0] * block.shape[1]:
        return _top_k_dense(block.toarray(), items, k)
    return _top_k_sparse(block, items, k)


def _top_k_dense(dense: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    dense[np.arange(len(items)), items] = 0.0  # no item is its own neighbour
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(dense, cols, 1)
    order = np.argsort(-values, axis=1, kind="stable")
    cols, values = np.take_along_axis(cols, order, 1), np.take_along_axis(values, order, 1)
    row, rank = np.nonzero(values > 0)  # positives come first in each sorted row
    return rank, row, cols[row, rank], values[row, rank]


def _top_k_sparse(block: sp.csr_matrix, items: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    row = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    keep = (block.data > 0) & (block.indices != items[row])
    row, col, value = row[keep], block.indices[keep], block.data[keep]
    ranked = np.argsort(_row_then_largest(row, value), kind="stable")
    row, col, value = row[ranked], col[ranked], value[ranked]
    counts = np.bincount(row, minlength=block.shape[0])
    rank = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    top = rank < k
    return rank[top], row[top], col[top], value[top]


def _row_then_largest(row: np.ndarray, value: np.ndarray) -> np.ndarray:
    """One uint64 sort key per entry: its row in the high 32 bits, its value's float32 bits
    inverted in the low 32 (a positive float's bits order as the float does), so that one
    stable sort orders by row, then largest value first, ties in column order: the order of
    ``lexsort((-value, row))``, which it replaced at 4x the speed (ranking, not the products,
    was ~85% of a symmetric table at 3M interactions: 31 of 37 s)."""
    inverted = ~np.asarray(value, np.float32).view(np.uint32)
    return (row.astype(np.uint64) << np.uint64(32)) | inverted.astype(np.uint64)


def another_block_passes(deadline: float | None, block_started: float) -> bool:
    """Whether a block as long as the one started at ``block_started`` would end after
    ``deadline`` (perf_counter times; None: no deadline)."""
    now = time.perf_counter()
    return deadline is not None and now + (now - block_started) > deadline


def slots_read(recency: float) -> int:
    """History slots a model with ``recency`` < 1 reads: up to the first weighing under
    ``MIN_SLOT_WEIGHT`` (recency^p)."""
    return 1 + int(np.log(MIN_SLOT_WEIGHT) / np.log(recency)) if recency > 0 else 1


def popular_blocks(train: Interactions) -> list[np.ndarray]:
    """``item_blocks`` with the most bought items first: tables cut at a deadline hold the
    rows that most histories read."""
    counts = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
    return item_blocks(train.n_items, counts, np.argsort(-counts, kind="stable"))


class NeighbourModel(ScoringModel):
    """Base of the item-neighbourhood kinds: top-K neighbour tables, scored from history.

    A kind supplies ``item_weights(train)`` (a function of item blocks, see ``top_k_rows``).
    Closed form: one "epoch" computes the tables; later ones have nothing to do.

    A kind with a ``taste`` parameter (itemknn) may add a second table, ``taste_weights``,
    read over the whole history with every item alike: scores are then the recency-weighted
    score row over its largest value plus ``taste`` x the whole-history row over its
    largest (``combined``). Why: where purchases follow one another the newest item says
    what comes next, and the whole history says which corners of the catalogue the user
    keeps to; one table weighed one way cannot say both (100K x 100K shop, validation
    NDCG@10: 2.78x popularity with itemknn's ordered table at recency 0.05, 3.12x with a
    symmetric taste table at 0.5; ML-100K +2.8% at 0.3 with that kind's best table and
    recency, nothing at its best; demo:shop lost 1-4%, so it is searched).
    """

    reads_history = True   # scores come from the history alone
    folds_in = True
    has_item_vectors = False
    warm_starts = False  # recomputed from the data every time
    history_length = 0   # set by ``prepare`` from the data
    MAX_HISTORY = 200
    # ``recency`` r weighs the history slot p places from the newest by r^p: 1 weighs every
    # item alike (the classic item-kNN), smaller values let the latest purchases decide,
    # which is what a shop whose purchases follow one another needs (demo:shop: the next
    # purchase mostly follows the last one). Data without a meaningful order wants 1, so it
    # is chosen on the holdout (``search``); the tables do not depend on it, so trying a
    # value costs one validation, not a new table (``_tables_for``).
    defaults = {"epochs": 1, "neighbours": 100, "recency": 1.0}
    # Likeliest first (0.3 won on demo:shop and ML-100K), and the cheapest to validate (8
    # history slots): a search cut by ``auto``'s time limit has tried it. 0.05 (the newest
    # item nearly alone) next: it won where long timelines follow transitions (the 100K x
    # 100K shop: 2.67x popularity against 2.51x at 0.3; demo:shop-small 0.2125 against
    # 0.1953 with itemknn's ordered table), and costs a validation of 2 slots.
    search = {"recency": (0.3, 0.05, 0.6, 1.0)}
    search_shared = ("recency",)

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if self.params["neighbours"] < 1:
            raise InputError(f"{self.kind} needs neighbours >= 1")
        if not 0.0 <= self.params["recency"] <= 1.0:
            raise InputError(f"{self.kind} needs 0 <= recency <= 1 (1: every history item "
                             f"weighs the same)")
        if self.taste < 0:
            raise InputError(f"{self.kind} needs taste >= 0 (0: no whole-history table)")
        self.neighbour_index, self.neighbour_weight = self._table_weights("neighbour", self.dim)
        self.taste_index, self.taste_weight = (self._table_weights("taste", self.taste_dim)
                                               if self.taste else (None, None))
        self._solved_on = None
        # ``fit`` sets ``deadline`` (a time.perf_counter time) where it has a time limit:
        # the table build stops between blocks before passing it, and ``cut_short`` says so.
        self.deadline, self.cut_short = None, None

    def _table_weights(self, name: str, k: int) -> tuple:
        """A [n_items + 1, k] index and weight table, every slot at the padding item."""
        shape = (self.n_items + 1, k)
        return (self.add_weight(shape=shape, initializer=tf.keras.initializers.Constant(self.n_items),
                                dtype="int32", trainable=False, name=f"{name}_index"),
                self.add_weight(shape=shape, initializer="zeros", trainable=False,
                                name=f"{name}_weight"))

    @property
    def dim(self) -> int:
        return int(min(self.params["neighbours"], max(self.n_items - 1, 1)))

    @property
    def taste(self) -> float:
        """The whole-history table's share of the score (0: none, or a kind without one)."""
        return float(self.params.get("taste", 0.0))

    @property
    def taste_dim(self) -> int:
        """Neighbours per item in the taste table (kinds with a ``taste`` parameter)."""
        return int(min(self.params["taste_neighbours"], max(self.n_items - 1, 1)))

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """The one real epoch (``auto`` plans one: later ones do nothing): the sparse
        item-item products (co-occurring pairs, ~2 nnz^2 / users with a long tail of heavy
        users) and a few dense passes over every [block, n_items] slab (top-K selection)."""
        return costs.neighbour_seconds(n_users, n_items, n_interactions)

    @classmethod
    def validation_seconds(cls, users: int, n_items: int, params: dict) -> float:
        """Scoring reads history x K neighbour entries per user (the longest history at
        recency 1, ``slots_read`` below it) and scatters them into a full score row."""
        whole = params["recency"] == 1.0 or params.get("taste", 0.0) > 0
        slots = cls.MAX_HISTORY if whole else slots_read(params["recency"])
        return costs.neighbour_validation_seconds(users, n_items, slots * params["neighbours"])

    def prepare(self, train: Interactions) -> None:
        """Read the longest training history (at most ``MAX_HISTORY``), and with recency r < 1
        no slot beyond the one weighing under ``MIN_SLOT_WEIGHT`` (r^p), which would add
        less to any score than that share of the newest item's weight, and costs every
        request (and validation) history x K work; a taste table reads the whole history."""
        length = history_length_for(train, self.MAX_HISTORY)
        r = self.params["recency"]
        self.history_length = min(length, slots_read(r)) if r < 1.0 and not self.taste else length

    def item_weights(self, train: Interactions):
        """``rows(items)`` -> sparse [len(items), n_items] item-to-item weights."""
        raise NotImplementedError

    def taste_weights(self, train: Interactions):
        """``item_weights`` of the whole-history table (kinds with a ``taste`` parameter)."""
        raise NotImplementedError

    def taste_settings(self) -> dict:
        """The settings the taste table depends on (its cache key)."""
        raise NotImplementedError

    def neighbour_rows(self, train: Interactions, deadline: float | None = None):
        """The top-K tables (without the padding row) of the data's item weights, and how
        many items' rows were built before ``deadline`` (``top_k_rows``)."""
        return top_k_rows(self.item_weights(train), self.n_items, self.dim,
                          popular_blocks(train), deadline)

    def taste_rows(self, train: Interactions, deadline: float | None = None):
        """``neighbour_rows`` of the taste table."""
        return top_k_rows(self.taste_weights(train), self.n_items, self.taste_dim,
                          popular_blocks(train), deadline)

    def train_epoch(self, train: Interactions, seed: int) -> float:
        del seed
        if self._solved_on is not train:
            _assign(self.neighbour_index, self.neighbour_weight, self._tables_for(train))
            if self.taste:
                _assign(self.taste_index, self.taste_weight,
                        self._tables_for(train, self.taste_settings(), self.taste_rows))
            self._solved_on = train
        return 0.0

    # The last complete tables, newest last: ((kind, data, settings), tables). ``fit``'s
    # search builds a model per value of ``recency`` and ``taste`` on the same data, and
    # their tables are equal; two are kept, so that a taste table outlives the next
    # setting's main table.
    _cached_tables: list = []
    CACHED_TABLES = 2

    def _tables_for(self, train: Interactions, settings: dict | None = None,
                    build=None) -> tuple[np.ndarray, np.ndarray]:
        """The cached tables of ``settings`` (default: this model's, bar the searched
        values that share tables), or new ones from ``build`` (default ``neighbour_rows``)
        until ``deadline``; tables cut short are kept as they are (``cut_short`` says so)
        but never cached."""
        if settings is None:
            settings = {n: v for n, v in self.params.items() if n not in ("epochs", *self.search_shared)}
        key = (self.kind, sorted(settings.items()))
        for (kind, data, table_settings), tables in NeighbourModel._cached_tables:
            if (kind, table_settings) == key and data is train:
                return tables
        *tables, built = (build or self.neighbour_rows)(train, self.deadline)
        if built < self.n_items:
            self.cut_short = (f"tables cut at the time limit: rows of the {built:,} most "
                              f"popular of {self.n_items:,} items")
        else:
            entry = ((self.kind, train, key[1]), tables)
            NeighbourModel._cached_tables = [*NeighbourModel._cached_tables, entry][-self.CACHED_TABLES:]
        return tables

    def neighbour_tables(self) -> tuple | None:
        """([n_items + 1, K] int32 indices, float32 weights), padding row last, and the
        ``recency`` decay of the history slots, then, with a taste table, its indices,
        weights and ``taste``: what the exporter writes into the graph."""
        tables = (self.neighbour_index.numpy(), self.neighbour_weight.numpy(),
                  float(self.params["recency"]))
        if self.taste:
            tables += (self.taste_index.numpy(), self.taste_weight.numpy(), self.taste)
        return tables

    def _decayed(self, shares):
        """``shares`` [B, L] times recency^(the slot's position from the newest, slot 0): a
        repeated item then counts once, at the mean of its slots' decays."""
        recency = float(self.params["recency"])
        if recency == 1.0:
            return shares
        positions = tf.cast(tf.range(tf.shape(shares)[1]), tf.float32)
        return shares * tf.pow(recency, positions)[None, :]

    def score_all(self, users, history):
        """The weighted sum of the distinct history items' neighbour rows, as the exported
        graph computes it: gather the rows, weigh each history slot (``once_each``,
        ``_decayed``), scatter-add into the score row (one flat segment sum). O(batch x
        history x K): a multi-hot times the sparse matrix would cost its non-zeros times the
        batch. With a taste table, ``combined`` with the whole-history row; the request then
        sends the whole history, of which the recency-weighted pass reads its ``slots_read`` slots
        (their shares counted over the whole history), as a model without one would."""
        del users  # scores come from the history alone
        once = once_each(history, self.n_items)  # both passes' counts, as the graph's "slot_counts"
        recent, shares = history, self._decayed(once)
        if self.taste and self.params["recency"] < 1.0:  # the recent pass: its own slots only
            slots = slots_read(self.params["recency"])
            recent, shares = history[:, :slots], shares[:, :slots]
        scores = self._summed(self.neighbour_index, self.neighbour_weight, recent, shares)
        if not self.taste:
            return scores
        return combined(scores, self._summed(self.taste_index, self.taste_weight, history, once),
                        self.taste)

    def _summed(self, table_index, table_weight, history, shares):
        """The history items' rows of one table, weighed by ``shares`` and summed."""
        width = self.n_items + 1
        batch = tf.shape(history, out_type=tf.int64)[0]
        offset = tf.range(batch)[:, None] * width                     # row b starts at b * width
        index = tf.cast(tf.gather(table_index, history), tf.int64)    # [B, L, K]
        weight = tf.gather(table_weight, history) * shares[..., None]
        targets = tf.reshape(index + offset[..., None], [-1])
        scores = tf.math.unsorted_segment_sum(tf.reshape(weight, [-1]), targets, batch * width)
        return tf.reshape(scores, tf.stack([batch, width]))[:, :self.n_items]


def combined(recent, whole, taste: float):
    """recent / its row's largest value + taste x whole / its row's: both rows on one scale,
    whatever the history's length (the whole-history row grows with it); rows of
    non-negative weights, so the largest value is 0 only for a row of zeros. The
    exporter's graph computes the same (``exporters.onnx``)."""
    def scaled(row):
        return row / tf.maximum(tf.reduce_max(row, axis=1, keepdims=True), MIN_ROW_MAX)
    return scaled(recent) + taste * scaled(whole)


def _assign(index_var, weight_var, tables) -> None:
    """Write (index, weight) tables into the model's two variables, with the padding row."""
    index, weight = tables
    pad = np.full((1, index.shape[1]), index_var.shape[0] - 1, np.int32)
    index_var.assign(np.vstack([index, pad]))
    weight_var.assign(np.vstack([weight, np.zeros_like(pad, np.float32)]))
