"""``sparse_ease``: EASE (Steck 2019) solved per item on its ``candidates`` most
co-occurring items only, the ridge regression of its column on theirs: a catalogue of any
size, where ``ease`` solves the whole items x items system. Scored and exported as every
neighbourhood kind (``neighbourhood``).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ..errors import InputError
from . import costs
from .data import Interactions
from .neighbourhood import (NeighbourModel, another_block_passes, binary_matrix, popular_blocks,
                            top_k_rows)


class SparseEASE(NeighbourModel):
    """EASE solved per item on a neighbourhood: O(items x candidates^2) work, O(items x K) size.

    Item j's column of B solves the ridge regression of j's user column on the columns of
    its ``candidates`` most co-occurring items: (G_CC + reg I) w = G_Cj, with G = X^T X.
    Full EASE solves the same regression on every other item at once (B = I - P / diag(P),
    P = (G + reg I)^-1); restricted to the items that share users with j, it keeps most of
    the weight mass, as fsSLIM did for SLIM (Ning & Karypis 2011). Each source item then
    keeps its K largest weights, as the other neighbourhood kinds do.
    """

    kind = "sparse_ease"
    defaults = {**NeighbourModel.defaults, "neighbours": 100, "candidates": 100, "reg": 500.0}

    @classmethod
    def epoch_seconds(cls, n_users: int, n_items: int, n_interactions: int, params: dict) -> float:
        """The neighbourhood kinds' cost plus a batched [m, m] solve per item (m candidates)."""
        return (costs.neighbour_seconds(n_users, n_items, n_interactions)
                + costs.local_solve_seconds(n_items, params["candidates"]))

    def __init__(self, n_users: int, n_items: int, seed: int = 0, **params):
        super().__init__(n_users, n_items, seed, **params)
        if self.params["reg"] <= 0 or self.params["candidates"] < 1:
            raise InputError("sparse_ease needs reg > 0 and candidates >= 1")

    def neighbour_rows(self, train: Interactions, deadline: float | None = None):
        # Thousands of small [m, m] solves: a BLAS thread pool only adds its hand-offs to
        # each; on the busy 2-core machine it made them 40x slower (150 s for ML-100K).
        blocks = popular_blocks(train)
        with threadpool_limits(1, "blas"):
            columns, solved = local_ease_columns(binary_matrix(train), self.params["candidates"],
                                                 self.params["reg"], np.concatenate(blocks), deadline)
        matrix = columns.T.tocsr()  # columns[i, j]: weight of source i for target j
        index, weight, built = top_k_rows(lambda items: matrix[items], self.n_items,
                                          self.dim, blocks, deadline)
        return index, weight, min(solved, built)


def local_ease_columns(x: sp.csr_matrix, candidates: int, reg: float,
                       order: np.ndarray | None = None,
                       deadline: float | None = None) -> tuple[sp.csr_matrix, int]:
    """[n_items targets, n_items sources]: each target's ridge weights on its candidates,
    and how many targets were solved (in ``order``, stopping before ``deadline`` as
    ``top_k_rows`` does; the others keep no weights).

    Targets go in blocks small enough that their candidates together (at most 4,096 items)
    give a dense sub-Gram, from which every target's [m, m] system is gathered."""
    gram = (x.T @ x).tocsr()
    n = gram.shape[0]
    order = np.arange(n) if order is None else order
    m = min(candidates, n - 1) if n > 1 else 1
    step = max(1, (1 << 12) // m)
    rows, cols, weights = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for start in range(0, n, step):
        t0 = time.perf_counter()
        targets = order[start:start + step]
        block = gram[targets].toarray()
        block[np.arange(len(targets)), targets] = 0.0
        chosen = np.argpartition(-block, m - 1, axis=1)[:, :m] if m < n else \
            np.tile(np.arange(n), (len(targets), 1))
        real = np.take_along_axis(block, chosen, 1) > 0       # candidates that share users
        union, local = np.unique(chosen.ravel(), return_inverse=True)
        local = local.reshape(chosen.shape)
        dense = gram[union][:, union].toarray().astype(np.float64)
        both = real[:, :, None] & real[:, None, :]
        sub = np.where(both, dense[local[:, :, None], local[:, None, :]], 0.0)
        sub += np.eye(m) * np.where(real, reg, 1.0)[:, None, :]  # a padded candidate gets w = 0
        rhs = np.where(real, np.take_along_axis(block, chosen, 1), 0.0)
        w = np.linalg.solve(sub, rhs[:, :, None])[:, :, 0]
        rows.append(np.repeat(targets, m).reshape(-1, m)[real])
        cols.append(chosen[real]), weights.append(w[real])
        solved = start + len(targets)
        if solved < n and another_block_passes(deadline, t0):
            break
    else:
        solved = n
    return sp.csr_matrix((np.concatenate(weights).astype(np.float32),
                          (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)), solved
