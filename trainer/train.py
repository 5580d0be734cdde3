"""Fitting: sampled-negative cross-entropy, early stopping on the temporal holdout, refit.

The holdout is each user's most recent interactions (see ``temporal_split``): the task a
deployed recommender faces. Training stops when holdout NDCG@10 stops improving; the model
is then refit on *all* interactions for the best number of epochs, so what is exported has
also learned the newest behaviour, and the holdout metrics of the early-stopped fit are the
ones recorded in the bundle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..errors import InputError
from ..metrics import ranking_metrics, top_k_excluding
from ..store import Store
from .data import Interactions, NegativeSampler, load_interactions, temporal_split
from .models import MODEL_KINDS

Progress = Callable[[str], None]


@dataclass
class FitResult:
    """A fitted model with everything the exporter needs to describe it."""

    model: keras.Model
    data: Interactions
    metrics: dict
    params: dict
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _quiet(_: str) -> None:
    pass


def fit(source: Store | str | Path | Interactions, model: str = "mf", *,
        epochs: int = 30, dim: int = 32, negatives: int = 4, seed: int = 0,
        batch_size: int = 1024, learning_rate: float = 0.003, l2: float = 0.005, patience: int = 3, refit: bool = True, k: int = 10,
        progress: Progress = _quiet) -> FitResult:
    """Train a model of kind ``model`` on every event in a store (or on ``Interactions``).

    Seeded and repeatable: the same data and arguments give the same weights.
    """
    if model not in MODEL_KINDS:
        raise InputError(f"unknown model kind {model!r}; choose from {', '.join(MODEL_KINDS)}")
    if epochs < 1 or dim < 1 or negatives < 1:
        raise InputError("--epochs, --dim and --negatives must be at least 1")
    started = time.perf_counter()
    if isinstance(source, Interactions):
        data = source
    else:
        store = source if isinstance(source, Store) else Store.open(source, create=False)
        data = load_interactions(store)
    params = {"model": model, "epochs": epochs, "dim": dim, "negatives": negatives, "seed": seed,
              "batch_size": batch_size, "learning_rate": learning_rate, "l2": l2, "patience": patience}
    train_mask, holdout_mask = temporal_split(data)
    train, holdout = data.subset(train_mask), data.subset(holdout_mask)
    progress(f"{data.summary['interactions']} interactions, {data.n_users} users, "
             f"{data.n_items} items; holdout {int(holdout_mask.sum())} interactions")

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    net = _compile(model, data, params)
    # Negatives come from the data being fitted: sampling them from all data would never
    # draw a holdout item as a negative, and so leak the holdout into training.
    sampler = NegativeSampler(train, seed)
    log: list[dict] = []
    best, best_weights = None, None
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss = _fit_epoch(net, train, sampler, negatives, batch_size, seed + epoch)
        scores = evaluate(net, train, holdout, k) if len(holdout.users) else {}
        row = {"epoch": epoch, "loss": loss, **scores, "seconds": time.perf_counter() - t0}
        log.append(row)
        progress(f"epoch {epoch:3d}  loss {loss:.4f}  " + "  ".join(
            f"{name} {value:.4f}" for name, value in scores.items() if "@" in name)
            + f"  ({row['seconds']:.1f}s)")
        if best is None or scores.get(f"ndcg@{k}", 0.0) > best.get(f"ndcg@{k}", 0.0):
            best, best_weights = row, net.get_weights()
        elif epoch - best["epoch"] >= patience:
            progress(f"early stop: best holdout ndcg@{k} at epoch {best['epoch']}")
            break
    net.set_weights(best_weights)
    metrics = {"holdout": {m: v for m, v in best.items() if m not in ("loss", "seconds")},
               "popularity": popularity_baseline(train, holdout, k)}
    if refit and len(holdout.users):
        progress(f"refit on all interactions for {best['epoch']} epochs")
        keras.utils.set_random_seed(seed)
        net = _compile(model, data, params)
        sampler = NegativeSampler(data, seed)
        for epoch in range(1, best["epoch"] + 1):
            _fit_epoch(net, data, sampler, negatives, batch_size, seed + epoch)
    params["trained_epochs"] = best["epoch"]
    params["refit"] = bool(refit and len(holdout.users))
    return FitResult(net, data, metrics, params, log, time.perf_counter() - started)


def _compile(kind: str, data: Interactions, params: dict) -> keras.Model:
    net = MODEL_KINDS[kind](data.n_users, data.n_items, dim=params["dim"], l2=params["l2"],
                            seed=params["seed"])
    net.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return net


def _fit_epoch(net: keras.Model, data: Interactions, sampler: NegativeSampler,
               negatives: int, batch_size: int, seed: int) -> float:
    """One pass over every positive, each with ``negatives`` fresh uniform negatives."""
    users = np.repeat(data.users, negatives + 1)
    items = np.repeat(data.items, negatives + 1)
    labels = np.zeros(len(users), dtype=np.float32)
    labels[::negatives + 1] = 1.0
    neg = labels == 0
    items[neg] = sampler.sample(users[neg])
    order = np.random.default_rng(seed).permutation(len(users))
    hist = net.fit((users[order], items[order]), labels[order], batch_size=batch_size,
                   epochs=1, shuffle=False, verbose=0)
    return float(hist.history["loss"][-1])


def score_users(net: keras.Model, users: np.ndarray, history: np.ndarray | None = None,
                chunk: int = 1024) -> np.ndarray:
    """All-item logits for ``users`` through the model's scoring function, in chunks."""
    if history is None:
        history = np.zeros((len(users), 0), dtype=np.int64)
    parts = [net.score_all(tf.constant(users[i:i + chunk]), tf.constant(history[i:i + chunk])).numpy()
             for i in range(0, len(users), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, net.n_items), np.float32)


def evaluate(net: keras.Model, train: Interactions, holdout: Interactions, k: int = 10) -> dict:
    """Full-ranking metrics on the holdout, the user's training items excluded."""
    seen = train.items_by_user()
    relevant = holdout.items_by_user()
    users = np.array([u for u in range(holdout.n_users) if len(relevant[u])], dtype=np.int64)
    scores = score_users(net, users)
    top = top_k_excluding(scores, [seen[u] for u in users], k)
    return ranking_metrics(top, [relevant[u] for u in users], k, train.n_items)


def popularity_baseline(train: Interactions, holdout: Interactions, k: int = 10) -> dict:
    """The same metrics for "most popular unseen items": what a model must beat."""
    counts = np.bincount(train.items, minlength=train.n_items).astype(np.float32)
    seen = train.items_by_user()
    relevant = holdout.items_by_user()
    users = [u for u in range(holdout.n_users) if len(relevant[u])]
    top = top_k_excluding(np.tile(counts, (len(users), 1)), [seen[u] for u in users], k)
    return ranking_metrics(top, [relevant[u] for u in users], k, train.n_items)
