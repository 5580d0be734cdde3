"""Training examples from the store: dense indices, a temporal holdout, sampled negatives."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..store import Store, snapshots


@dataclass
class Interactions:
    """Unique (user, item) interactions in dense indices, with the id maps that name them.

    A pair seen several times counts once, at its latest timestamp: the models learn
    *whether* a user interacts with an item, and recency decides what is held out.
    ``weights`` is the sum of the pair's event weights (ratings, play counts) for kinds
    that use confidence (``als``); ``None`` means every pair weighs 1.
    """

    user_ids: np.ndarray  # dense index -> user id (str)
    item_ids: np.ndarray  # dense index -> item id (str)
    users: np.ndarray     # int64 per interaction
    items: np.ndarray     # int64 per interaction
    ts: np.ndarray        # float64 per interaction (NaN when unknown)
    summary: dict = field(default_factory=dict)
    weights: np.ndarray | None = None  # float64 per interaction: summed event weights
    # ``timeline()``'s order, computed once: at 10M interactions the sort took 14-20 s, and
    # the split, every validation and itemknn's ordered pairs each sorted again.
    _timeline: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def subset(self, mask: np.ndarray) -> "Interactions":
        """The same id maps with only the interactions selected by ``mask`` (a boolean
        array); a timeline order already computed is carried over, not sorted again."""
        part = Interactions(self.user_ids, self.item_ids, self.users[mask], self.items[mask],
                            self.ts[mask], self.summary,
                            None if self.weights is None else self.weights[mask])
        if self._timeline is not None:
            position = np.cumsum(mask) - 1  # each kept interaction's index in the subset
            part._timeline = position[self._timeline[mask[self._timeline]]]
        return part

    def timeline(self) -> np.ndarray:
        """Indices of the interactions by user, then timestamp, then ``tie_break_key``:
        each user's history oldest first, the order the temporal holdout and every
        history-reading model share."""
        if self._timeline is None:
            self._timeline = np.lexsort((tie_break_key(self.users, self.items), self.ts, self.users))
        return self._timeline

    def recent_items(self, users: np.ndarray, length: int) -> np.ndarray:
        """[len(users), length] item indices, newest first, padded with ``n_items``.

        Newest means latest timestamp, ties broken by the same key as ``temporal_split``:
        the order a history-based model sees at request time.
        """
        out = np.full((len(users), length), self.n_items, dtype=np.int64)
        if length == 0 or len(self.users) == 0:
            return out
        order = self.timeline()[::-1]
        users_sorted = self.users[order]
        starts = np.searchsorted(-users_sorted, -np.asarray(users), side="left")
        ends = np.searchsorted(-users_sorted, -np.asarray(users), side="right")
        items = self.items[order]
        for row, (s, e) in enumerate(zip(starts, ends)):
            recent = items[s:min(e, s + length)]
            out[row, :len(recent)] = recent
        return out

    def items_by_user(self) -> list[np.ndarray]:
        """Each user's item indices (any order); users without interactions get empty arrays."""
        order = np.argsort(self.users, kind="stable")
        bounds = np.searchsorted(self.users[order], np.arange(self.n_users + 1))
        items = self.items[order]
        return [items[bounds[u]:bounds[u + 1]] for u in range(self.n_users)]


def history_length_for(train: Interactions, cap: int) -> int:
    """How many recent items a kind that scores from history reads: the most any user has,
    capped at ``cap`` (a longer history costs every request more)."""
    counts = np.bincount(train.users, minlength=train.n_users)
    return int(min(cap, max(1, counts.max(initial=0))))


def load_interactions(store: Store) -> Interactions:
    """Read every event from the store and collapse it to unique (user, item) pairs."""
    ev = snapshots.events_array(store)
    if len(ev["user_id"]) == 0:
        raise InputError(f"{store.path}: the store has no events to train on (run `edgerec ingest`)")
    user_ids, users = np.unique(ev["user_id"].astype(str), return_inverse=True)
    item_ids, items = np.unique(ev["item_id"].astype(str), return_inverse=True)
    ts = np.where(np.isnan(ev["ts"]), np.arange(len(ev["ts"]), dtype=np.float64), ev["ts"])
    # Latest timestamp per pair: sort by (pair, ts) and keep each pair's last row.
    pair = users.astype(np.int64) * len(item_ids) + items
    order = np.lexsort((ts, pair))
    last = np.r_[pair[order][1:] != pair[order][:-1], True]
    keep = order[last]
    first = np.flatnonzero(np.r_[True, last[:-1]])  # each pair's first row in ``order``
    weights = np.add.reduceat(ev["weight"][order], first) if len(order) else np.zeros(0)
    summary = {"events": int(len(pair)), "interactions": int(len(keep)),
               "users": int(len(user_ids)), "items": int(len(item_ids)),
               "event_types": sorted(set(ev["event"].tolist())),
               "first_ts": float(np.nanmin(ev["ts"])) if np.isfinite(ev["ts"]).any() else None,
               "last_ts": float(np.nanmax(ev["ts"])) if np.isfinite(ev["ts"]).any() else None}
    return Interactions(user_ids.astype(object), item_ids.astype(object),
                        users[keep].astype(np.int64), items[keep].astype(np.int64), ts[keep], summary,
                        weights)


def tie_break_key(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random key per (user, item) to order events with equal timestamps.

    Never the item id: ids often follow release order, and a model would learn the split.
    """
    x = (users.astype(np.uint64) << np.uint64(32)) ^ items.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def temporal_split(data: Interactions, fraction: float = 0.2,
                   min_interactions: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, holdout): each eligible user's most recent ``fraction``.

    Users with at least ``min_interactions`` give their last ceil(fraction * n) (at least
    one) interactions, in (timestamp, tie key) order; everyone else stays in train.
    """
    order = data.timeline()
    users_sorted = data.users[order]
    counts = np.bincount(data.users, minlength=data.n_users)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(len(order)) - starts[users_sorted]  # position within the user's timeline
    n = counts[users_sorted]
    n_test = np.maximum(1, np.ceil(fraction * n - 1e-9)).astype(np.int64)
    is_test_sorted = (n >= min_interactions) & (rank >= n - n_test)
    holdout = np.zeros(len(order), dtype=bool)
    holdout[order] = is_test_sorted
    return ~holdout, holdout


def item_stratified_split(data: Interactions, fraction: float,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test): a seeded random ``fraction`` of each item's interactions
    (round-half-even of its count, as Python's ``round``) is held out."""
    order = np.lexsort((np.random.default_rng(seed).random(len(data.items)), data.items))
    items_sorted = data.items[order]
    counts = np.bincount(data.items, minlength=data.n_items)
    rank = np.arange(len(order)) - np.r_[0, np.cumsum(counts)[:-1]][items_sorted]
    test = np.zeros(len(order), dtype=bool)
    test[order] = rank >= np.rint((1.0 - fraction) * counts)[items_sorted]
    return ~test, test


# The holdouts ``fit`` can judge epochs, searches and ``auto`` by (``validation_split``).
VALIDATIONS = ("temporal", "random")
VALIDATION_FRACTION = 0.2


def validation_split(data: Interactions, validation: str = "temporal",
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, holdout) of ``fit``'s holdout.

    The holdout must ask what the final test asks, or the search tunes for another task:
    ``temporal`` (each user's newest 20%, the default) rewards order-aware settings, which a
    random split (``evaluate --protocol random``) punishes; ``random`` holds out a seeded
    20% of each item's interactions instead.
    """
    if validation == "temporal":
        return temporal_split(data, VALIDATION_FRACTION)
    if validation == "random":
        return item_stratified_split(data, VALIDATION_FRACTION, seed)
    raise InputError(f"unknown validation {validation!r}; choose from {', '.join(VALIDATIONS)}")


class NegativeSampler:
    """Uniform negatives per positive, resampled until none is one of the user's positives."""

    def __init__(self, data: Interactions, seed: int):
        self.n_items = data.n_items
        self.known = np.unique(data.users * data.n_items + data.items)
        self.rng = np.random.default_rng(seed)

    def sample(self, users: np.ndarray) -> np.ndarray:
        items = self.rng.integers(0, self.n_items, size=len(users))
        for _ in range(20):  # each round fixes all but ~density of the clashes
            clash = np.isin(users * self.n_items + items, self.known, assume_unique=False)
            if not clash.any():
                break
            items[clash] = self.rng.integers(0, self.n_items, size=int(clash.sum()))
        return items

