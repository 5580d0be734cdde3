"""The scoring core's inputs for a group of users: whom the model scores, and the arrays.

Kept apart from the request logic so a plain single request can cache them: the arrays
depend only on the user's history, the bundle and the retired items, all fixed for one
``Snapshot``, so a repeat request goes from the cache straight to ONNX Runtime instead of
mapping ids and building arrays again.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from . import contract as C


class ModelInputs(NamedTuple):
    """Arrays as described in ``edgerec.contract``, one row per user in ``users``."""

    users: list[str]  # the users the model can score (known, or placed from their history)
    user_index: np.ndarray
    history: np.ndarray
    exclude: np.ndarray
    mask: np.ndarray | None


def model_inputs(bundle, histories: Mapping[str, list[str]], users: Sequence[str],
                 extra: list[int], mask: np.ndarray | None, exclude_seen: bool = True,
                 trim: bool = False) -> ModelInputs:
    """Inputs for the ``users`` the model knows or, for kinds that fold in, can place.

    ``extra`` (item indices excluded for everyone: retired or filtered out) and ``mask``
    come from ``Catalogue.eligibility``. Users left out get the popularity fallback.
    ``exclude_seen=False`` (offline re-ranking jobs) lets seen items come back; the
    history is still read for scoring. ``trim`` (for cores whose history input takes any
    width, ``Scorer.free_history``) sends the history as wide as the longest of these
    users' rather than ``history_length``: padding adds nothing to any score, but each
    padding slot still costs the graph a gather (for ease, a catalogue-wide row).
    """
    known, folds_in = bundle.user_index, bundle.folds_in
    scored, seen = [], []
    for u in users:
        items = C.known_indices(bundle.item_index, histories[u])
        if u in known or (folds_in and items):
            scored.append(u)
            seen.append(items)
    length = bundle.history_length
    recent = [s[:length] for s in seen]
    width = max(1, max(map(len, recent), default=0)) if trim else length  # recent <= length
    excluded = seen if exclude_seen else [[] for _ in seen]
    exclude = C.padded([s + extra for s in excluded] if extra else excluded, bundle.n_items)
    if trim and len(seen) == 1 and exclude_seen and seen[0]:
        history = exclude[:, :width]  # one user: the history is the exclusion row's start
    else:
        history = C.padded(recent, bundle.n_items, width)
    return ModelInputs(
        scored, np.array([known.get(u, C.UNKNOWN_USER) for u in scored], dtype=np.int64),
        history, exclude, mask)
