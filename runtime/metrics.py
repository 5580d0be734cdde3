"""Ranking metrics over full-catalogue top-K lists, shared by the trainer and evaluation.

Kept in the runtime (numpy only) so that what training reports and what an evaluation of
the served model reports are computed by the same code.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def id_rows(lists: Sequence[Sequence[str]], index: dict[str, int], k: int) -> np.ndarray:
    """[len(lists), k] indices of each list's first k ids, -1 padding a short list: served
    id lists as ``ranking_metrics`` takes them. An id ``index`` lacks is added to it, with
    the next free index (so relevant ids can be mapped through the same ``index`` after)."""
    top = np.full((len(lists), k), -1, dtype=np.int64)
    for row, ids in zip(top, lists):
        row[:min(len(ids), k)] = [index.setdefault(i, len(index)) for i in ids[:k]]
    return top


def ranking_metrics(top_items: np.ndarray, relevant: Sequence[np.ndarray], k: int,
                    n_items: int) -> dict[str, float]:
    """NDCG, Recall, HR and MAP at ``k`` (binary gains), plus catalogue coverage.

    ``top_items[u]`` is user u's ranked list (at least k long, -1 for empty slots) and
    ``relevant[u]`` the items held out for u. Recall and the ideal DCG use
    min(k, |relevant|) so that a user with more held-out items than k can still score 1.
    """
    top = np.asarray(top_items)[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg = recall = hr = ap = 0.0
    for row, rel in zip(top, relevant):
        hits = np.isin(row, rel)
        n_ideal = min(k, len(rel))
        n_hits = hits.sum()
        ndcg += (discounts[hits]).sum() / discounts[:n_ideal].sum()
        recall += n_hits / n_ideal
        hr += float(n_hits > 0)
        precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        ap += precision_at_hits.sum() / n_ideal
    n = max(len(relevant), 1)
    shown = np.unique(top[top >= 0])
    return {f"ndcg@{k}": ndcg / n, f"recall@{k}": recall / n, f"hr@{k}": hr / n,
            f"map@{k}": ap / n, f"coverage@{k}": len(shown) / max(n_items, 1),
            "users": len(relevant)}


def top_k_excluding(scores: np.ndarray, exclude: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Top-k item indices per row of ``scores`` after removing each row's ``exclude``.

    The numpy reference for the ONNX scoring core: ties go to the lower index, as ONNX
    TopK does.
    """
    scores = np.array(scores, dtype=np.float32, copy=True)
    for row, ex in zip(scores, exclude):
        row[np.asarray(ex, dtype=np.int64)] = -np.inf
    k = min(k, scores.shape[1])
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    out = np.empty((len(scores), k), dtype=np.int64)
    for r, row in enumerate(scores):
        above = np.flatnonzero(row > kth[r])
        # Of the items tied with the k-th, the lowest indices: a sparse score row ties most
        # of a 100K catalogue at 0, and sorting them all took most of a validation.
        tied = np.flatnonzero(row == kth[r])[:k - len(above)]
        cand = np.concatenate([above, tied])
        out[r] = cand[np.lexsort((cand, -row[cand]))]
    return out
