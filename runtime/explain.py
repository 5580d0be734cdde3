"""Explanations: which of the user's history items a recommendation is owed to.

Two methods, chosen by what the model reads:

``leave-one-out`` (kinds that read the history: ``history_length`` > 0)
    The target is scored through the scoring core itself with the user's recent history,
    then once more with each recent item removed (older items move up, exactly as if
    that interaction had never happened). An item's contribution is how much the
    score drops without it. Faithful by construction: the explanation *is* the model's
    behaviour, and removing the top item lowers the score by its reported contribution.
    One ONNX call per explanation (1 + L rows), for all targets of a list at once.
``similarity`` (kinds that read only the user id, e.g. ``mf``; and any user whose score
the history does not move, e.g. a known ``als`` user: ``als`` folds in only strangers)
    A known user's score does not change when one history item is removed (the user's
    embedding was learnt at training time), so leave-one-out would explain nothing. The
    contribution of a recent history item is instead its cosine similarity with the target
    in the model's item-embedding space (negative similarities count 0): the item-based
    reading of the same embeddings, "you liked X, and the model places this item near X".
    It is faithful to that item-based score (sum of similarities over the recent history):
    removing the top item lowers it the most. It is not a decomposition of the MF score.

Shares are the positive contributions normalised to sum to 1 over the reported items'
pool (every recent item), so "because of X (60%) and Y (25%)" reads directly.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from . import contract as C

TOP_REASONS = 3
SIMILARITY_HISTORY = 50  # recent items considered by the similarity method
LEAVE_ONE_OUT = "leave-one-out"
SIMILARITY = "similarity"
POPULARITY = "popularity"   # the user got the popularity fallback: no history to point to
NOT_MODELLED = "not-modelled"  # the item is unknown to the model (e.g. a new arrival)


class Reason(NamedTuple):
    """A history item and its share of an item's positive contributions."""

    item_id: str
    share: float


class Explanation(NamedTuple):
    """Why ``item_id`` is recommended to ``user_id``: ``because`` is best reason first."""

    user_id: str
    item_id: str
    score: float
    method: str
    because: list[Reason]

    def to_dict(self) -> dict:
        """Plain JSON-ready data (what ``edgerec explain --json`` prints)."""
        return {"user_id": self.user_id, "item_id": self.item_id,
                "score": None if np.isnan(self.score) else self.score, "method": self.method,
                "because": [{"item_id": r.item_id, "share": r.share} for r in self.because]}


def target_scores(scorer, user: int, histories: np.ndarray, targets: Sequence[int],
                  n_items: int) -> np.ndarray:
    """[rows, len(targets)] scores of distinct ``targets`` for one user under several histories.

    The core returns only top-k, so every other item is masked out and k = the targets.
    """
    column = {int(t): c for c, t in enumerate(targets)}
    mask = np.full((1, n_items), -np.inf, dtype=np.float32)
    mask[0, list(column)] = 0.0
    rows = len(histories)
    exclude = np.full((rows, 1), n_items, dtype=np.int64)  # nothing excluded: padding only
    users = np.full(rows, user, dtype=np.int64)
    items, scores = scorer.top_k(users, histories, exclude, len(column), mask)
    out = np.full((rows, len(column)), np.nan)
    for r, (row_items, row_scores) in enumerate(zip(items.tolist(), scores.tolist())):
        for item, score in zip(row_items, row_scores):
            if item in column:
                out[r, column[item]] = score
    return out


def leave_one_out(scorer, user: int, seen: list[int], targets: Sequence[int], n_items: int,
                  length: int) -> tuple[np.ndarray, list[int], np.ndarray]:
    """(base scores [T], the distinct recent items considered, their contributions [T, R]).

    Removing an item removes every occurrence of it (a view and a later purchase of the
    same item are one reason, "had you never interacted with it").
    """
    recent = list(dict.fromkeys(seen[:length]))
    rows = [seen[:length]] + [[j for j in seen if j != item][:length] for item in recent]
    histories = C.padded(rows, n_items, length)
    scores = target_scores(scorer, user, histories, targets, n_items)
    return scores[0], recent, (scores[0][None, :] - scores[1:]).T


def reads_history(contributions: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether removing history items moved any score: if not, the model ignored them."""
    return bool(np.any(np.abs(contributions) > tol))


def similarity(unit: np.ndarray, seen: list[int], targets: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """(the distinct recent items considered, their cosine with each target, negatives 0 [T, R])."""
    recent = list(dict.fromkeys(seen))[:SIMILARITY_HISTORY]
    if not recent:
        return recent, np.zeros((len(targets), 0))
    return recent, np.maximum(unit[np.asarray(targets)] @ unit[np.asarray(recent)].T, 0.0)


def reasons(contributions: np.ndarray, recent_ids: Sequence[str], top: int = TOP_REASONS) -> list[Reason]:
    """The ``top`` items with the largest positive contributions, with their shares."""
    positive = np.maximum(np.asarray(contributions, dtype=np.float64), 0.0)
    total = positive.sum()
    if total <= 0:
        return []
    order = np.lexsort((np.arange(len(positive)), -positive))[:top]  # ties: more recent first
    return [Reason(recent_ids[j], float(positive[j] / total)) for j in order if positive[j] > 0]


def explain_items(served, user_id: str, history: list[str], item_ids: list[str],
                  top: int = TOP_REASONS) -> dict[str, Explanation]:
    """Explanations of several of the model's items for one user (one scoring call).

    ``served`` is the (bundle, scorer) pair serving the request; ``history`` the user's
    item ids, newest first. The method follows the module docstring: leave-one-out when
    the model reads the history and the history moves this user's scores, similarity
    otherwise (when the bundle has vectors), popularity for users the model cannot place.
    """
    b = served.bundle
    seen = C.known_indices(b.item_index, history)
    targets = [b.item_index[i] for i in item_ids]
    user = b.user_index.get(user_id, C.UNKNOWN_USER)
    if user == C.UNKNOWN_USER and not (b.folds_in and seen):
        return {i: Explanation(user_id, i, math.nan, POPULARITY, []) for i in item_ids}
    method = LEAVE_ONE_OUT
    if b.history_length > 0:
        base, recent, contributions = leave_one_out(served.scorer, user, seen, targets,
                                                    b.n_items, b.history_length)
        if not reads_history(contributions) and b.has_vectors:
            method = SIMILARITY  # e.g. a known user of a kind that folds in only strangers
    else:
        no_history = np.zeros((1, 0), dtype=np.int64)
        base = target_scores(served.scorer, user, no_history, targets, b.n_items)[0]
        method = SIMILARITY
    if method == SIMILARITY:
        recent, contributions = similarity(served.unit_vectors, seen, targets)
    recent_ids = [b.item_ids[j] for j in recent]
    return {item_id: Explanation(user_id, item_id, float(base[t]), method,
                                 reasons(contributions[t], recent_ids, top))
            for t, item_id in enumerate(item_ids)}
