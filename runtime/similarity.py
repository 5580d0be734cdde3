"""Item-vector arithmetic in numpy: similar items and diversity re-ranking.

The bundle's ``item_vectors.npy`` holds the model's item embeddings; cosine similarity
between them is what "similar" means here, for every feature that needs it. This runs
without ONNX Runtime because it is one matrix-vector product over the catalogue, which
numpy does as fast, and without TensorFlow because the vectors were exported as data.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (all-zero rows stay zero), plus one zero row for padding.

    The extra row lets index ``n_items`` (and "unknown item" lookups mapped to it) have
    similarity 0 with everything.
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float32), where=norms > 0)
    return np.vstack([unit, np.zeros((1, vectors.shape[1]), np.float32)])


def most_similar(unit: np.ndarray, item: int, n: int, mask: np.ndarray | None = None,
                 exclude: Sequence[int] = ()) -> list[tuple[int, float]]:
    """The n items with the highest cosine to ``item`` (itself excluded), best first.

    ``mask`` is a filter's [1, n_items] 0/-inf row; ``exclude`` more indices to skip.
    Fewer than n come back only when fewer than n items are eligible.
    """
    n_items = unit.shape[0] - 1
    scores = unit[:n_items] @ unit[item]
    if mask is not None:
        scores = scores + mask[0]
    scores[[item, *exclude]] = -np.inf
    n = min(n, n_items)
    top = np.argpartition(-scores, n - 1)[:n] if n < n_items else np.arange(n_items)
    top = top[np.lexsort((top, -scores[top]))]  # best first; ties: lower index
    return [(int(i), float(scores[i])) for i in top if scores[i] != -np.inf]


def mmr(items: Sequence[int], relevance: Sequence[float], unit: np.ndarray, n: int,
        diversity: float) -> list[int]:
    """Maximal marginal relevance: positions into ``items``, in the re-ranked order.

    Greedily picks the candidate maximising (1 - diversity) * relevance - diversity *
    (highest cosine to an item already picked), relevance min-max scaled to [0, 1] over the
    candidates so ``diversity`` means the same for every model's score scale. Items
    without a vector (index ``n_items``: unknown to the model) are similar to nothing.
    ``diversity`` 0 keeps the given order.
    """
    count = min(n, len(items))
    if diversity <= 0 or count <= 1:
        return list(range(count))
    rel = np.asarray(relevance, dtype=np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    vectors = unit[np.asarray(items, dtype=np.int64)]
    closest = np.full(len(items), -np.inf)  # highest similarity to anything picked so far
    picked: list[int] = []
    available = np.ones(len(items), dtype=bool)
    for _ in range(count):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        objective = np.where(available, (1 - diversity) * rel - diversity * penalty, -np.inf)
        best = int(np.argmax(objective))
        picked.append(best)
        available[best] = False
        closest = np.maximum(closest, vectors @ vectors[best])
    return picked
