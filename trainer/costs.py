"""Rough training costs of the kinds that do not train like Keras models, for ``auto``'s plan.

``auto`` orders kinds by expected value per second and skips one whose epoch cannot fit
(``train.plan_auto``), so an estimate that is 10x off either starves a strong kind or lets a
slow one eat the budget. The rates below were measured on this project's 2-core CPU with
other jobs beside them (benchmarks/README.md, "What auto plans with"); they aim at the
right order of magnitude, not at a forecast.
"""

from __future__ import annotations

# Co-occurring (item, item) pairs per second in scipy's sparse products.
PAIRS_PER_SECOND = 3e7
# Seconds per cell of a dense [block, n_items] similarity slab: the division or weighting,
# the top-K partition and the gathers (several passes over float32 memory).
SECONDS_PER_CELL = 6e-9
# gan's step (TensorFlow): Keras's Adam on the four [items x hidden] tables (their gathered
# gradients made dense), in table cells a second, and the sampled rows each sample set
# gathers, forward and backward, in floats a second. Measured at load 8-10: demo:shop (472
# users in 59 sample sets, 512 samples, hidden 128, 23K items) 48-66 s a pass of 64 steps;
# ML-100K (64 users, per-user samples, hidden 256) 14.4 s a pass of 16 steps.
GAN_TABLE_CELLS = 5e6
GAN_GATHERED = 1e7
# Batched small solves (numpy).
SOLVE_FLOPS = 2e8  # LAPACK on [100, 100] systems, one BLAS thread: 8 s for ML-100K's 1,613 items


def neighbour_seconds(n_users: int, n_items: int, n_interactions: int) -> float:
    """An item-neighbourhood table: X^T X-like sparse products, whose work is the number of
    co-occurring pairs (sum over users of their count squared, here ~2 nnz^2 / users for a
    long-tailed spread of counts), then the dense slabs of every item's row."""
    pairs = 2.0 * n_interactions ** 2 / max(n_users, 1)
    return pairs / PAIRS_PER_SECOND + float(n_items) ** 2 * SECONDS_PER_CELL


def local_solve_seconds(n_items: int, candidates: int) -> float:
    """One [m, m] ridge system per item (``sparse_ease``): m^3 / 3 for the factorisation and
    about 20 m^2 for gathering each system out of the block's dense sub-Gram."""
    m = float(min(candidates, max(n_items - 1, 1)))
    return n_items * (2.0 * m ** 3 / 3.0 + 20.0 * m ** 2) / SOLVE_FLOPS


def gan_seconds(steps: int, sample_sets: int, n_items: int, hidden: int, samples: int) -> float:
    """CFGAN's epoch: every step updates the whole [n_items x hidden] tables (dense Adam)
    and gathers ``samples`` rows of ``hidden`` for each of its ``sample_sets``."""
    return steps * (n_items * hidden / GAN_TABLE_CELLS + sample_sets * samples * hidden / GAN_GATHERED)
