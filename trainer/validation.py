"""Scoring a model in training and measuring it on a holdout, against "most popular".

Early stopping, ``auto``'s choice and the bundle's recorded metrics all rank the whole
catalogue through the model's own ``score_all``; the pipelines' offline evaluation reuses
the popularity baseline and the ranking here, so both report one definition of each.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..metrics import ranking_metrics, top_k_excluding
from .backend import tf
from .data import Interactions

# Validation ranks the whole catalogue for every holdout user after every epoch; beyond
# this many users it ranks a seeded sample instead. Epochs and kinds are compared on the
# same users (paired), so the comparison stays steady (at NDCG@10 ~0.1 the standard error
# is ~0.007, the paired differences vary less), and a 30K-user shop no longer spends most
# of its training time validating.
VALIDATION_USERS = 2_000
# The fewest a kind with costly cells (``ScoringModel.validation_cells``) validates on: at
# NDCG@10 ~0.05 the standard error is then ~0.01, still below the gaps auto decides on.
MIN_VALIDATION_USERS = 500
# Score cells per validation chunk (``chunk_rows``): 64 MB of float32 scores.
CHUNK_CELLS = 1 << 24


def score_users(net, users: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
    """All-item logits for ``users`` through the model's scoring function, ``chunk_rows``
    users at a time."""
    chunk = chunk_rows(net.n_items)
    if history is None:
        history = np.zeros((len(users), 0), dtype=np.int64)
    parts = [net.score_all(tf.constant(users[i:i + chunk]), tf.constant(history[i:i + chunk])).numpy()
             for i in range(0, len(users), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, net.n_items), np.float32)


def holdout_users(holdout: Interactions, max_users: int | None = None, seed: int = 0) -> np.ndarray:
    """The users with held-out interactions, sorted; a seeded sample of ``max_users`` if more."""
    users = np.flatnonzero(np.bincount(holdout.users, minlength=holdout.n_users))
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    return users


def holdout_metrics(net, train: Interactions, holdout: Interactions, k: int = 10,
                    max_users: int | None = VALIDATION_USERS, seed: int = 0) -> dict:
    """Full-ranking metrics on the holdout (``holdout_users``), training items excluded.

    A kind that scores its trained users from their table row alone (``reads_history``
    False) is sent no history: reading it would only compute a fold-in that the graph then
    discards.
    """
    users = holdout_users(holdout, max_users, seed)
    length = net.history_length if net.reads_history else 0
    history = train.recent_items(users, length)
    seen, relevant = _rows(train, holdout, users)
    return ranked_metrics(lambda part: score_users(net, users[part], history[part]), seen,
                          relevant, k, train.n_items)


def popularity(data: Interactions) -> np.ndarray:
    """Interactions per item, float32 [n_items]: the scores of "most popular", the baseline
    every model must beat (and the order of the sampled protocol's popularity ranking)."""
    return np.bincount(data.items, minlength=data.n_items).astype(np.float32)


def popularity_metrics(counts: np.ndarray, seen: Sequence[np.ndarray],
                       relevant: Sequence[np.ndarray], k: int, n_items: int) -> dict:
    """The metrics of "most popular unseen items" (``counts`` from ``popularity``), per row
    of ``seen``/``relevant`` (item indices per user): each user's first k unseen items of
    one ranking, as ``top_k_excluding`` ranks (ties: the lower index). Not a score row per
    user: 2,000 of them over 100K items took 27-94 s to rank, this well under a second."""
    order = np.argsort(-counts, kind="stable")

    def first_unseen(exclude: np.ndarray) -> np.ndarray:
        head = order[:k + len(exclude)]
        head = head[~np.isin(head, exclude)][:k]
        return head if len(head) == k else top_k_excluding(counts[None], [exclude], k)[0]

    top = np.array([first_unseen(ex) for ex in seen], np.int64) if len(seen) else \
        np.zeros((0, k), np.int64)
    return ranking_metrics(top, relevant, k, n_items)


def popularity_baseline(train: Interactions, holdout: Interactions, k: int = 10,
                        max_users: int | None = None, seed: int = 0) -> dict:
    """``holdout_metrics`` for "most popular unseen items": what a model must beat."""
    users = holdout_users(holdout, max_users, seed)
    return popularity_metrics(popularity(train), *_rows(train, holdout, users), k, train.n_items)


def ranked_metrics(scores_of: Callable[[slice], np.ndarray], seen: Sequence[np.ndarray],
                   relevant: Sequence[np.ndarray], k: int, n_items: int) -> dict:
    """Metrics of each row's top-k items outside ``seen[row]``, scored ``chunk_rows`` rows
    at a time by ``scores_of(slice)``, so that memory stays bounded on a large catalogue."""
    chunk = chunk_rows(n_items)
    top = [top_k_excluding(scores_of(slice(i, i + chunk)), seen[i:i + chunk], k)
           for i in range(0, len(seen), chunk)]
    top = np.concatenate(top) if top else np.zeros((0, k), np.int64)
    return ranking_metrics(top, relevant, k, n_items)


def chunk_rows(n_items: int) -> int:
    """Users scored at once: up to 1,024, and rows of at most ``CHUNK_CELLS`` scores. A
    model's intermediates are several times its score rows (a neighbour kind's gathered
    [users, history, K] slots, two tables with a taste table): at 100K items 1,024 users a
    chunk took ``auto`` to a 6.7 GB peak (itemknn's validations with a taste table), 335
    (2^25 cells) to 4.0-5.0 GB, the rest of the run staying under 3.6 GB."""
    return max(1, min(1024, CHUNK_CELLS // max(n_items, 1)))


def _rows(train: Interactions, holdout: Interactions, users: np.ndarray) -> tuple[list, list]:
    """(seen, relevant) item indices of each of ``users``: their train and holdout items."""
    seen, relevant = train.items_by_user(), holdout.items_by_user()
    return [seen[u] for u in users], [relevant[u] for u in users]
