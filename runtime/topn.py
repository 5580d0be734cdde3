"""Top-n for a group of users: the steps every serving path shares.

``Recommender.recommend``/``recommend_many`` and the offline ``BatchScorer`` (Ray, Spark,
local batch) all build the scoring core's inputs with ``edgerec.inputs.model_inputs``,
run it through ``top_k`` and give users the model cannot score ``popular_unseen``. So id
mapping, padding, fold-in, exclusion and the fallback exist once, and a list computed on a
cluster is the list the embedded recommender serves.
"""

from __future__ import annotations

import math

from .inputs import ModelInputs

# Default users per chunk: up to BATCH_USERS, fewer for large catalogues, so that each of
# the few [users, n_items] score buffers ONNX Runtime allocates per call stays near
# BATCH_SCORES floats (64 MiB; 167 users at 100K items, as fast per user as 512, measured);
# small chunks also pipeline better.
BATCH_USERS = 256
BATCH_SCORES = 1 << 24


def chunk_users(n_items: int) -> int:
    """Users per ONNX call in batch work over a catalogue of ``n_items``."""
    return max(16, min(BATCH_USERS, BATCH_SCORES // n_items))


def ranked(items: list, scores: list[float]) -> tuple[list, list[float]]:
    """A top-k row without its excluded slots, which score -inf and so come last.

    They appear only when fewer than k items are eligible.
    """
    if scores and scores[-1] == -math.inf:
        cut = scores.index(-math.inf)
        return items[:cut], scores[:cut]
    return items, scores


def top_k(bundle, scorer, inputs: ModelInputs, k: int, as_ids: bool = True) -> list[tuple[list, list[float]]]:
    """(items, scores) best first for each of ``inputs.users``: one ONNX call.

    Items are the bundle's item ids, or dense indices when ``as_ids`` is false (for
    re-ranking over the item vectors).
    """
    return rows_of(bundle, *core_top_k(bundle, scorer, inputs, k), as_ids)


def core_top_k(bundle, scorer, inputs: ModelInputs, k: int) -> tuple:
    """The scoring core's own [B, k'] (item indices, scores) outputs, k' at most the
    catalogue's size."""
    return scorer.top_k(inputs.user_index, inputs.history, inputs.exclude,
                        min(k, bundle.n_items), inputs.mask)


def rows_of(bundle, items, scores, as_ids: bool = True) -> list[tuple[list, list[float]]]:
    """The scoring core's [B, k] outputs as one (items, scores) row per user, excluded slots
    cut (``ranked``); items as ids unless ``as_ids`` is false."""
    if as_ids:
        items = bundle.item_ids[items]
    return [ranked(i, s) for i, s in zip(items.tolist(), scores.tolist())]


def popular_unseen(ranking: list[tuple[str, float]], n: int, skip: set,
                   allowed: frozenset | None) -> list[tuple[str, float]]:
    """The first n of a popularity ranking not in ``skip`` and (if given) in ``allowed``."""
    return [(i, s) for i, s in ranking if i not in skip and (allowed is None or i in allowed)][:n]
