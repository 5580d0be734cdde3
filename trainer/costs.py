"""Rough training costs of the kinds that do not train like Keras models, for ``auto``'s plan.

``auto`` orders kinds by expected value per second and skips one whose epoch cannot fit
(``train.plan_auto``), so an estimate that is 10x off either starves a strong kind or lets a
slow one eat the budget. The rates below were measured on this project's 2-core CPU with
other jobs beside them (benchmarks/README.md, "What auto plans with"); they aim at the
right order of magnitude, not at a forecast.
"""

from __future__ import annotations

import math

# Co-occurring (item, item) pairs per second in scipy's sparse products.
PAIRS_PER_SECOND = 3e7
# Distinct pairs (``distinct_pairs``'s estimate) per second through a table's top-K
# ranking (``neighbourhood._top_k``). CPU seconds of a whole symmetric itemknn table
# (products / ranking): 30K x 30K shop of 3M purchases 5.7 / 10.0 s (5.1e8 pairs, 2.3e8
# distinct, 4.3e8 estimated), 100K x 100K of 10M 23 / 64 s (1.7e9 pairs, 1.05e9 distinct,
# 1.6e9 estimated): ~3.5e7 estimated pairs a CPU second; on a shared machine wall time has
# been up to 2-3x CPU time, hence 2e7 (1.2e7 priced itemknn's refit with a taste table at
# 354 s, ~200 s measured, and `auto` at 100K dropped it). Before the ranking was priced a
# symmetric table at 10M was planned at ~70 s, and took several hundred (its ranking was
# then 5x slower: a two-key lexsort of every non-zero).
RANKED_PER_SECOND = 2e7
# gan's step (TensorFlow): Keras's Adam on the four [items x hidden] tables (their gathered
# gradients made dense), in table cells a second, and the sampled rows each sample set
# gathers, forward and backward, in floats a second. Measured at load 8-10: demo:shop (472
# users in 59 sample sets, 512 samples, hidden 128, 23K items) 48-66 s a pass of 64 steps;
# ML-100K (64 users, per-user samples, hidden 256) 14.4 s a pass of 16 steps.
GAN_TABLE_CELLS = 5e6
GAN_GATHERED = 1e7
# Seconds per item of a table beyond its pairs (demo:shop: 24K items, ~1.5 s a table
# against 0.2 s of pairs, measured beside validations at load ~11; benchmarks/README.md).
SECONDS_PER_ITEM = 5e-5
# Scoring holdout users.
VALIDATION_FLOPS = 2e9
# Seconds per history-slot x neighbour entry gathered and scattered in a neighbour score.
SECONDS_PER_ENTRY = 2e-8
# Batched small solves (numpy).
SOLVE_FLOPS = 2e8  # LAPACK on [100, 100] systems, one BLAS thread: 8 s for ML-100K's 1,613 items


def neighbour_seconds(n_users: int, n_items: int, n_interactions: int, symmetric: bool = True,
                      ordered_pairs: int = 0) -> float:
    """An item-neighbourhood table: X^T X-like sparse products, whose work is the number of
    co-occurring pairs (sum over users of their count squared, here ~2 nnz^2 / users for a
    long-tailed spread of counts; none where ``symmetric`` is False), ``ordered_pairs``
    (itemknn's ``forward``: gathered by position, ~10x a product's pair), the ranking of
    the distinct pairs the products leave (``distinct_pairs``) for each row's top K, and a
    fixed cost per item (slicing, per-block bookkeeping)."""
    pairs = 2.0 * n_interactions ** 2 / max(n_users, 1) if symmetric else 0.0
    return ((pairs + 10.0 * ordered_pairs) / PAIRS_PER_SECOND
            + distinct_pairs(pairs, n_items) / RANKED_PER_SECOND + n_items * SECONDS_PER_ITEM)


def distinct_pairs(pairs: float, n_items: int) -> float:
    """The distinct (item, item) cells that ``pairs`` co-occurrences fill, as if they fell
    uniformly on the n_items^2 cells: an overestimate on skewed data (100K x 100K shop:
    1.59e9 against 1.05e9 measured), the right order where the cells saturate."""
    cells = float(n_items) ** 2
    return cells * -math.expm1(-pairs / cells) if cells else 0.0


def validation_seconds(users: int, n_items: int, width: int) -> float:
    """One holdout validation (``validation.holdout_metrics``): every validation user's
    full score row, ``width`` multiply-adds per cell, and its ranking."""
    return users * n_items * width / VALIDATION_FLOPS


def neighbour_validation_seconds(users: int, n_items: int, entries: int) -> float:
    """One validation of a neighbourhood kind: ``entries`` (history slots x K) gathered and
    scattered per user, and a score row of every item made, ranked and read per user
    (TensorFlow segment sums: twice the per-cell cost of a factor kind's row)."""
    return users * (entries * SECONDS_PER_ENTRY + n_items * 2 * 64 / VALIDATION_FLOPS)


def local_solve_seconds(n_items: int, candidates: int) -> float:
    """One [m, m] ridge system per item (``sparse_ease``): m^3 / 3 for the factorisation and
    about 20 m^2 for gathering each system out of the block's dense sub-Gram."""
    m = float(min(candidates, max(n_items - 1, 1)))
    return n_items * (2.0 * m ** 3 / 3.0 + 20.0 * m ** 2) / SOLVE_FLOPS


def gan_seconds(steps: int, sample_sets: int, n_items: int, hidden: int, samples: int) -> float:
    """CFGAN's epoch: every step updates the whole [n_items x hidden] tables (dense Adam)
    and gathers ``samples`` rows of ``hidden`` for each of its ``sample_sets``."""
    return steps * (n_items * hidden / GAN_TABLE_CELLS + sample_sets * samples * hidden / GAN_GATHERED)
