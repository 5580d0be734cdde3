"""Offline replay: how well bundles rank what users did after all of them were trained.

Why a replay and not ``edgerec evaluate``: evaluate measures a *recipe* (it trains on a
split), while an A/B comparison and a model update must judge *given bundles*, each
trained on whatever it saw. The only fair test set for several bundles is the events
newer than every one of them: each bundle ranks from the store as it was at that cut-off
(through the real ``Recommender``, with its runtime options), and the lists are scored
against the items each user went on to interact with.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from .bundle import read_manifest
from .errors import InputError
from .metrics import id_rows, ranking_metrics
from .recommender import Recommender
from .store import Store, snapshots


def check_gate(holdout: float, tolerance: float) -> None:
    """``update``'s gate settings: the newest share of the unseen events held out for the
    replay, and how much lower (relative) the candidate may rank them. Here, not in the
    pipeline, so that ``edgerec update`` refuses a bad value before it loads TensorFlow."""
    if not 0.0 < holdout < 1.0:
        raise InputError(f"--holdout must be between 0 and 1, not {holdout}")
    if tolerance < 0:
        raise InputError(f"--tolerance must be at least 0, not {tolerance}")


def training_end(bundle: str | Path) -> float | None:
    """When the bundle's training data ends (its newest event's timestamp), if recorded."""
    return read_manifest(Path(bundle)).trained_until


def replay(store: Store, bundles: Mapping[str, tuple[str | Path, dict]], k: int = 10,
           provider: str = "cpu") -> dict:
    """Rank the events after every bundle's training data with each (bundle, options).

    Returns {"cutoff", "users", "k", "variants": {name: {ndcg@k, recall@k, hr@k, bundle}}}
    plus a "note" (and no metrics) when there is nothing to replay. Caveat for logged
    experiments: events a variant caused favour the variant that showed them.
    """
    ends = {name: training_end(path) for name, (path, _) in bundles.items()}
    unknown = [name for name, end in ends.items() if end is None]
    if unknown:
        return {"cutoff": None, "users": 0, "k": k, "variants": {},
                "note": f"bundle(s) of {', '.join(unknown)} do not record when their training "
                        "data ends: no replay"}
    cutoff = max(ends.values())
    truth = snapshots.new_items_after(store, cutoff)
    if not truth:
        return {"cutoff": cutoff, "users": 0, "k": k, "variants": {},
                "note": f"no events after {iso(cutoff)}, the end of the newest bundle's "
                        "training data: nothing to replay yet"}
    users = sorted(truth)
    variants = {}
    with tempfile.TemporaryDirectory(prefix="edgerec-replay-") as tmp:
        snapshot = snapshots.snapshot_before(store, Path(tmp) / "before.db", cutoff)
        try:
            for name, (path, options) in bundles.items():
                rec = Recommender.over(path, snapshot, provider)
                lists = rec.recommend_many(users, n=k, **options)
                variants[name] = {**_list_metrics([[r.item_id for r in recs] for recs in lists],
                                                  [truth[u] for u in users], k),
                                  "bundle": str(path)}
        finally:
            snapshot.close()
    return {"cutoff": cutoff, "users": len(users), "k": k, "variants": variants}


def _list_metrics(lists: list[list[str]], relevant: list[list[str]], k: int) -> dict:
    """NDCG, recall and HR at k of id lists, through ``ranking_metrics`` (ids as indices)."""
    index: dict[str, int] = {}
    top = id_rows(lists, index, k)
    truth = [np.array([index.setdefault(i, len(index)) for i in items]) for items in relevant]
    metrics = ranking_metrics(top, truth, k, len(index))
    return {name: float(metrics[name]) for name in (f"ndcg@{k}", f"recall@{k}", f"hr@{k}")}


def iso(ts: float) -> str:
    """``ts`` (seconds since the epoch) as a UTC date and time, for reports."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))
