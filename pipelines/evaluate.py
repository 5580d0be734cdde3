"""Offline evaluation of what users get: split, fit on train, export, serve, measure.

``evaluate(store, model)`` holds out a test split, fits the model on the train part only
(the trainer's own early stopping carves its validation split out of that train part, never
out of the test set), exports the bundle with the real exporter, writes the train events
into a temporary store and asks the real runtime (``Recommender``, ONNX Runtime on the CPU)
for each test user's recommendations. Seen-item exclusion, id mapping and top-k are
therefore the ones a deployed app gets. The most-popular baseline is measured on the same
split.

Protocols
---------
``temporal`` (default)
    ``temporal_split(data, fraction=0.2, min_interactions=5)``: each user with at least 5
    interactions gives the last ceil(20%) of them (at least one) to the test set, in
    timestamp order with ties broken by the fixed pseudo-random per-(user, item) key. Every
    catalogue item not in the user's train history is ranked; NDCG@K (binary gains, ideal
    DCG over min(K, |test|)), Recall@K (hits / min(K, |test|)), HR@K, MAP@K (normalised by
    min(K, |test|)) and catalogue coverage@K, all from ``edgerec.metrics.ranking_metrics``.
``leave-one-out-sampled`` (the NCF paper's protocol)
    Each user with at least 2 interactions holds out the latest one (same tie rule); the
    rest is train. The held-out item is ranked among 99 items drawn uniformly (seeded,
    without replacement) from the model's catalogue items the user never interacted with
    (all of them if fewer than 99 remain). Ties are pessimistic: a candidate whose score
    equals the held-out item's is ranked above it. HR@K and NDCG@K are then those of this
    100-item list (MAP@K is the reciprocal rank cut at K; coverage@K counts the items shown
    in these short lists).
``random`` (the Microsoft Recommenders benchmark protocol)
    A random 75/25 split stratified by item: each item's interactions are shuffled (seeded)
    and the first round(75%) of them (half to even) go to train, so every item keeps at
    least one train interaction. Every held-out interaction is relevant; each user with
    one is ranked over every catalogue item not in their train part, and measured as in
    ``temporal``. Time plays no part in the split, so a user's "history" at request time
    also holds interactions later than the held-out ones.
``new-users`` (how well a model serves people it was never trained on)
    A seeded 10% of the users with at least 5 interactions are left out of training
    entirely. The served store holds everyone's train events plus these users' earlier
    interactions (all but their most recent 20%, the temporal rule), which the bundle
    sees only as history at request time (fold-in inside the scoring core, or the
    popularity fallback where a kind cannot fold in); their most recent 20% is the test
    set, measured as in ``temporal``. ``fallback_share`` says how many got fallback lists.

Diversity (``diversity`` > 0, temporal protocol): the same runtime lists re-ranked by
maximal marginal relevance over the item vectors (``Recommender.recommend(...,
diversity=)``) are measured too, so the report shows what the re-ranking costs in NDCG and
gains in catalogue coverage (``diversified``: {"diversity", "metrics"}).

The catalogue is what the train part contains: an item seen only in the test part is
unknown to the model and can never be recommended, yet it still counts in the
denominators (a guaranteed miss). A user without train interactions cannot occur under
either rule (5 or 2 interactions at least, some of them in train).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..exporters import export_bundle
from ..metrics import id_rows, ranking_metrics
from ..recommender import Recommender
from ..store import Store
from ..trainer import (AUTO, Interactions, Progress, fit, load_interactions, model_kind, quiet,
                       temporal_split)
from ..trainer.data import item_stratified_split
from ..trainer.validation import popularity, popularity_baseline, popularity_metrics

PROTOCOLS = ("temporal", "leave-one-out-sampled", "random", "new-users")
FULL_RANKING = ("temporal", "random")  # every unseen catalogue item is ranked
TEMPORAL = {"fraction": 0.2, "min_interactions": 5}
RANDOM = {"fraction": 0.25, "stratified_by": "item"}
SAMPLED = {"min_interactions": 2, "negatives": 99}
NEW_USERS = {"fraction": 0.1, "min_interactions": 5, "test_fraction": 0.2}


def split(data: Interactions, protocol: str = "temporal", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) over ``data``'s interactions for ``protocol``.

    For ``new-users`` what is in neither mask is the left-out users' history.
    """
    if protocol == "new-users":
        counts = np.bincount(data.users, minlength=data.n_users)
        eligible = np.flatnonzero(counts >= NEW_USERS["min_interactions"])
        size = min(len(eligible), max(1, round(NEW_USERS["fraction"] * data.n_users)))
        left_out = np.isin(data.users, np.random.default_rng(seed).choice(eligible, size, replace=False))
        _, latest = temporal_split(data, NEW_USERS["test_fraction"], NEW_USERS["min_interactions"])
        return ~left_out, left_out & latest
    if protocol == "temporal":
        return temporal_split(data, **TEMPORAL)
    if protocol == "random":
        return item_stratified_split(data, RANDOM["fraction"], seed)
    if protocol == "leave-one-out-sampled":
        # fraction 0 gives max(1, ceil(0)) = 1: exactly the latest interaction per user.
        return temporal_split(data, fraction=0.0, min_interactions=SAMPLED["min_interactions"])
    raise InputError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def evaluate(store: Store | str | Path, model: str = "mf", protocol: str = "temporal", k: int = 10,
             out: str | Path | None = None, progress: Progress = quiet, diversity: float = 0.0,
             **fit_params) -> dict:
    """Evaluate model kind ``model`` on ``store`` under ``protocol``; see the module docstring.

    ``fit_params`` go to ``edgerec.trainer.fit`` (epochs, dim, negatives, seed, ...); the
    seed also draws the sampled protocol's negatives. Returns (and, with ``out``, writes as
    JSON) {"model", "protocol", "k", "metrics", "popularity", "train_seconds",
    "users_evaluated", "data", "params"}, plus "diversified" when ``diversity`` > 0.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if model != AUTO:
        model_kind(model)  # an unknown kind fails before the data is read
    if k < 1:
        raise InputError("-k must be at least 1")
    if not 0.0 <= diversity <= 1.0:
        raise InputError(f"--diversity must be between 0 and 1, not {diversity}")
    if diversity and protocol not in FULL_RANKING:
        raise InputError("--diversity re-ranks full top-K lists: use it with the temporal or "
                         "random protocol")
    if isinstance(store, Store):
        data, store_path = load_interactions(store), store.path
    else:
        opened = Store.open(store, create=False)
        try:
            data, store_path = load_interactions(opened), opened.path
        finally:
            opened.close()
    train_mask, test_mask = split(data, protocol, fit_params.get("seed", 0))
    # fit's own holdout asks what this test asks (see ``validation_split``).
    fit_params = {"validation": "random" if protocol == "random" else "temporal", **fit_params}
    if protocol == "new-users":
        return _finish(_new_users(data, train_mask, test_mask, model, k, progress, fit_params),
                       out)
    train, test = restrict_to_train(data, train_mask, test_mask)
    eval_users = np.flatnonzero(np.bincount(test.users, minlength=train.n_users))
    if not len(eval_users):
        least = (TEMPORAL if protocol == "temporal" else SAMPLED)["min_interactions"]
        need = ("an item with 3 interactions" if protocol == "random" else
                f"a user with {least} interactions")
        raise InputError(f"{store_path}: the {protocol} protocol needs {need} to hold some out")
    unknown = int((test.items >= train.n_items).sum())
    summary = {**data.summary, "train_interactions": int(len(train.users)),
               "test_interactions": int(len(test.users)), "train_users": train.n_users,
               "train_items": train.n_items, "test_users": int(len(eval_users)),
               "test_interactions_unknown_item": unknown}
    progress(f"{protocol} split: train {len(train.users)} interactions ({train.n_users} users, "
             f"{train.n_items} items), test {len(test.users)} interactions of {len(eval_users)} "
             f"users ({unknown} with items unknown to the model)")

    result = fit(train, model, k=k, progress=progress, **fit_params)
    seed = result.params["seed"]
    with tempfile.TemporaryDirectory(prefix="edgerec-evaluate-") as tmp:
        bundle = export_bundle(result, Path(tmp) / "bundle", progress)
        with Recommender.open(bundle, serving_store(train, Path(tmp) / "train.db"),
                              provider="cpu") as rec:
            if protocol in FULL_RANKING:
                metrics = full_ranking_metrics(rec, train, test, eval_users, k)
                baseline = popularity_baseline(train, test, k)
                if diversity:
                    diversified = _plain(full_ranking_metrics(rec, train, test, eval_users, k,
                                                              diversity))
            else:
                candidates, positives = _sample_candidates(train, test, eval_users, seed)
                metrics = _sampled_metrics(rec.scores(train.user_ids[eval_users].tolist()),
                                           candidates, positives, k, train.n_items)
                counts = popularity(train)
                baseline = _sampled_metrics(np.broadcast_to(counts, (len(eval_users), len(counts))),
                                            candidates, positives, k, train.n_items)
    metrics, baseline = _plain(metrics), _plain(baseline)
    progress(f"{model}: " + "  ".join(f"{m} {v:.4f}" for m, v in metrics.items() if "@" in m))
    progress("popularity: " + "  ".join(f"{m} {v:.4f}" for m, v in baseline.items() if "@" in m))
    report = {
        "model": model, "protocol": protocol, "k": k, "metrics": metrics, "popularity": baseline,
        "train_seconds": round(result.seconds, 2), "users_evaluated": int(len(eval_users)),
        "data": summary,
        "params": {**result.params,
                   "split": {"temporal": TEMPORAL, "random": {**RANDOM, "seed": seed}}.get(
                       protocol, {**SAMPLED, "seed": seed})},
    }
    if diversity:
        report["diversified"] = {"diversity": diversity, "metrics": diversified}
        progress(f"{model} diversity {diversity}: " + "  ".join(
            f"{m} {v:.4f}" for m, v in diversified.items() if "@" in m))
    return _finish(report, out)


def _finish(report: dict, out: str | Path | None) -> dict:
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


def _new_users(data: Interactions, train_mask: np.ndarray, test_mask: np.ndarray, model: str,
               k: int, progress: Progress, fit_params: dict) -> dict:
    """The ``new-users`` protocol: fit without the left-out users, serve them from history."""
    history_mask = ~train_mask & ~test_mask
    train, _ = restrict_to_train(data, train_mask, np.zeros_like(train_mask))
    users = np.unique(data.users[test_mask])
    progress(f"new-users split: train {len(train.users)} interactions ({train.n_users} users); "
             f"{len(users)} users left out, {int(history_mask.sum())} of their interactions "
             f"served as history, {int(test_mask.sum())} to find")
    result = fit(train, model, k=k, progress=progress, **fit_params)
    with tempfile.TemporaryDirectory(prefix="edgerec-evaluate-") as tmp:
        bundle = export_bundle(result, Path(tmp) / "bundle", progress)
        served = serving_store(data.subset(train_mask | history_mask), Path(tmp) / "served.db")
        with Recommender.open(bundle, served, provider="cpu") as rec:
            recs = rec.recommend_many(data.user_ids[users].tolist(), n=k)
    top = _top_rows(recs, {item: j for j, item in enumerate(data.item_ids)}, k)
    by_user = data.subset(test_mask).items_by_user()
    relevant = [by_user[u] for u in users]
    metrics = _plain(ranking_metrics(top, relevant, k, train.n_items))
    seen = data.subset(history_mask).items_by_user()
    baseline = _plain(popularity_metrics(popularity(data.subset(train_mask)), [seen[u] for u in users],
                                         relevant, k, train.n_items))
    metrics["fallback_share"] = float(np.mean([r.fallback for r in recs]))
    progress(f"{model}: " + "  ".join(f"{m} {v:.4f}" for m, v in metrics.items() if "@" in m)
             + f"  (fallback {metrics['fallback_share']:.0%})")
    return {"model": model, "protocol": "new-users", "k": k, "metrics": metrics,
            "popularity": baseline, "train_seconds": round(result.seconds, 2),
            "users_evaluated": int(len(users)),
            "data": {**data.summary, "train_interactions": int(len(train.users)),
                     "history_interactions": int(history_mask.sum()),
                     "test_interactions": int(test_mask.sum())},
            "params": {**result.params, "split": {**NEW_USERS, "seed": result.params["seed"]}}}


def serving_store(data: Interactions, path: Path) -> Path:
    """A new store at ``path`` holding ``data``'s interactions, for the runtime to serve from."""
    store = Store.open(path)
    store.add_events((data.user_ids[u], data.item_ids[i], "interaction", 1.0, float(t))
                     for u, i, t in zip(data.users.tolist(), data.items.tolist(), data.ts.tolist()))
    store.close()
    return path


def _top_rows(recs, index: dict[str, int], k: int) -> np.ndarray:
    """[users, k] dense item indices of the served lists (-1 pads a short list)."""
    return id_rows([[r.item_id for r in user_recs] for user_recs in recs], index, k)


def _plain(metrics: dict) -> dict:
    """numpy scalars to Python numbers, for JSON."""
    return {name: value.item() if isinstance(value, np.generic) else value
            for name, value in metrics.items()}


def restrict_to_train(data: Interactions, train_mask: np.ndarray,
                       test_mask: np.ndarray) -> tuple[Interactions, Interactions]:
    """(train, test) re-indexed to the users and items present in the train part.

    Test items absent from train get indices n_items, n_items + 1, ... (one per distinct
    item): no model output can ever match them, but they count as relevant. Test users
    absent from train are dropped (neither protocol produces them).
    """
    users_kept = np.unique(data.users[train_mask])
    items_kept = np.unique(data.items[train_mask])
    user_map = np.full(data.n_users, -1, dtype=np.int64)
    user_map[users_kept] = np.arange(len(users_kept))
    item_map = np.full(data.n_items, -1, dtype=np.int64)
    item_map[items_kept] = np.arange(len(items_kept))
    unknown = np.setdiff1d(np.unique(data.items[test_mask]), items_kept)
    item_map[unknown] = len(items_kept) + np.arange(len(unknown))

    summary = {"interactions": int(train_mask.sum()), "users": len(users_kept),
               "items": len(items_kept), "source": "evaluate: train part of the split"}
    user_ids, item_ids = data.user_ids[users_kept], data.item_ids[items_kept]

    def part(mask: np.ndarray) -> Interactions:
        users, items, ts = user_map[data.users[mask]], item_map[data.items[mask]], data.ts[mask]
        known = users >= 0
        weights = None if data.weights is None else data.weights[mask][known]
        return Interactions(user_ids, item_ids, users[known], items[known], ts[known], summary,
                            weights)

    return part(train_mask), part(test_mask)


def full_ranking_metrics(rec: Recommender, train: Interactions, test: Interactions,
                         eval_users: np.ndarray, k: int, diversity: float = 0.0) -> dict:
    """Metrics of the runtime's top-k for every test user (``eval_users``: dense indices of
    ``train``), ranked over the whole catalogue as a deployed app gets it."""
    recs = rec.recommend_many(train.user_ids[eval_users].tolist(), n=k, diversity=diversity)
    if any(r.fallback for r in recs):  # every test user has train events: cannot happen
        raise RuntimeError("evaluation: the bundle does not know a test user")
    top = _top_rows(recs, dict(rec.bundle.item_index), k)
    relevant = test.items_by_user()
    return ranking_metrics(top, [relevant[u] for u in eval_users], k, train.n_items)


def _sample_candidates(train: Interactions, test: Interactions, eval_users: np.ndarray,
                       seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per user: the held-out item followed by up to 99 never-interacted catalogue items."""
    rng = np.random.default_rng(seed)
    seen = train.items_by_user()
    held = test.items_by_user()
    candidates, positives = [], np.empty(len(eval_users), dtype=np.int64)
    for row, u in enumerate(eval_users):
        positive = held[u][0]
        interacted = np.append(seen[u], positive)
        pool = np.setdiff1d(np.arange(train.n_items), interacted)
        negatives = rng.choice(pool, size=min(SAMPLED["negatives"], len(pool)), replace=False)
        candidates.append(np.r_[positive, np.sort(negatives)])
        positives[row] = positive
    return candidates, positives


def _sampled_metrics(scores: np.ndarray, candidates: list[np.ndarray], positives: np.ndarray,
                     k: int, n_items: int) -> dict:
    """Rank each user's candidates by score, ties pessimistic, and measure at k.

    ``scores[row]`` covers the catalogue (indices < n_items); a positive outside it (an item
    unknown to the model) scores -inf and ends up last.
    """
    width = max(k, max(map(len, candidates), default=0))
    top = np.full((len(candidates), width), -1, dtype=np.int64)
    for row, (cand, positive) in enumerate(zip(candidates, positives)):
        known = cand < n_items
        cand_scores = np.full(len(cand), -np.inf, dtype=np.float64)
        cand_scores[known] = scores[row][cand[known]]
        is_positive = cand == positive
        order = np.lexsort((is_positive, -cand_scores))  # equal scores: negatives first
        top[row, :len(cand)] = cand[order]
    return ranking_metrics(top, [np.array([p]) for p in positives], k, n_items)


__all__ = ["PROTOCOLS", "evaluate", "full_ranking_metrics", "restrict_to_train", "serving_store",
           "split"]
