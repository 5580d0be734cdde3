"""Built-in synthetic interaction data with real latent structure, for the demo and tests.

Users belong to taste clusters and items to genres; a user mostly picks items of the genres
their cluster likes, weighted by a Zipf popularity skew, at increasing timestamps. A model
that learns the clusters therefore beats "most popular" clearly, which makes the data a
known-answer check as well as a demo that needs no download.
"""

from __future__ import annotations

import numpy as np

from .store import EventRow, ItemRow, Store

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Documentary", "Animation"]


def generate(n_users: int = 600, n_items: int = 400, n_clusters: int = 8,
             mean_events: int = 30, taste: float = 0.85, seed: int = 0,
             ) -> tuple[list[EventRow], list[ItemRow]]:
    """Events and catalogue rows; ``taste`` is the share of picks from the user's genres."""
    rng = np.random.default_rng(seed)
    item_genre = rng.integers(0, n_clusters, size=n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rng.shuffle(popularity)
    # Each user cluster likes two genres: its own and a neighbour.
    liked = np.stack([np.arange(n_clusters), (np.arange(n_clusters) + 1) % n_clusters], 1)
    user_cluster = rng.integers(0, n_clusters, size=n_users)
    start = 1_600_000_000 + rng.integers(0, 30 * 86_400, size=n_users)
    events: list[EventRow] = []
    for u in range(n_users):
        in_taste = np.isin(item_genre, liked[user_cluster[u]])
        p = popularity * np.where(in_taste, taste / max(in_taste.mean(), 1e-9),
                                  (1 - taste) / max(1 - in_taste.mean(), 1e-9))
        n = min(n_items // 2, max(5, int(rng.poisson(mean_events))))
        picks = rng.choice(n_items, size=n, replace=False, p=p / p.sum())
        times = start[u] + np.cumsum(rng.integers(60, 86_400, size=n))
        ratings = rng.integers(3, 6, size=n)
        events += [(f"u{u}", f"i{i}", "rating", float(r), float(t))
                   for i, r, t in zip(picks, ratings, times)]
    items = [(f"i{i}", f"Item {i} ({GENRES[g % len(GENRES)]})",
              {"categories": [GENRES[g % len(GENRES)]]}) for i, g in enumerate(item_genre)]
    return events, items


def write_demo(store: Store, **kwargs) -> dict:
    """Generate demo data into ``store``; returns how many events and items were added."""
    events, items = generate(**kwargs)
    return {"events": store.add_events(events), "items": store.add_items(items)}


# How likely a transition is to take an item's first, second, ... successor.
SUCCESSOR_ODDS = (0.35, 0.25, 0.15, 0.1, 0.15)


def shop(n_users: int = 30_000, n_items: int = 24_000, mean_events: float = 10,
         n_categories: int | None = None, follow: float = 0.5, stay: float = 0.25, seed: int = 0,
         ) -> tuple[list[EventRow], list[ItemRow]]:
    """Sparse shop purchases, unlike MovieLens: few events per user, a long-tailed catalogue,
    and an order that matters. Each purchase follows an item-to-item transition from the
    previous one with probability ``follow`` (every item has a few likely successors, mostly
    in its own category: accessories after a camera), else comes from one of the user's two
    favourite categories with probability ``stay``, else from global popularity (Zipf ~1.1,
    so most items are rarely bought). Categories hold about 120 items unless ``n_categories``
    says otherwise. Users are simulated side by side, one step at a time."""
    rng = np.random.default_rng(seed)
    n_categories = n_categories or max(1, n_items // 120)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 1.1
    rng.shuffle(popularity)
    category = np.sort(rng.integers(0, n_categories, size=n_items))  # items grouped by category
    successors = _successors(rng, category, popularity)
    # Lognormal basket counts (sigma 0.8, so mean = exp(mu + 0.32)): many users with 2-5
    # purchases, a few with dozens.
    lengths = np.clip(np.round(rng.lognormal(np.log(mean_events) - 0.32, 0.8, n_users)), 2, 60)
    favourite = rng.integers(0, n_categories, size=(n_users, 2))
    picks = np.full((n_users, int(lengths.max())), -1, dtype=np.int64)
    picks[:, 0] = last = _by_popularity(rng, popularity, n_users)  # last: the latest kept pick
    for step in range(1, picks.shape[1]):
        active = np.flatnonzero(lengths > step)
        picked = _next_items(rng, last[active], favourite[active], successors, category,
                             popularity, follow, stay)
        picks[active, step] = picked = _unless_seen(rng, picks[active, :step], picked, popularity)
        last[active] = np.where(picked >= 0, picked, last[active])
    return _shop_rows(rng, picks, category)


def _by_popularity(rng, popularity: np.ndarray, n: int, low=None, high=None) -> np.ndarray:
    """``n`` items drawn by popularity, each from the index range [low, high) when given
    (a category's block of the catalogue, which is sorted by category)."""
    cum = np.cumsum(popularity)
    lo = 0.0 if low is None else np.where(low > 0, cum[np.maximum(low - 1, 0)], 0.0)
    hi = cum[-1] if high is None else cum[high - 1]
    return np.minimum(np.searchsorted(cum, lo + rng.random(n) * (hi - lo), side="right"),
                      len(popularity) - 1)


def _successors(rng, category: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Each item's likely next purchases (one per ``SUCCESSOR_ODDS``): the last from
    anywhere, the others from its own category, all drawn by popularity."""
    width = len(SUCCESSOR_ODDS)
    starts = np.searchsorted(category, category, side="left")
    ends = np.searchsorted(category, category, side="right")
    n = len(category)
    own = [_by_popularity(rng, popularity, n, starts, ends) for _ in range(width - 1)]
    return np.stack(own + [_by_popularity(rng, popularity, n)], 1)


def _next_items(rng, previous, favourite, successors, category, popularity, follow, stay):
    """One purchase per active user: a successor of the previous item (the first successors
    likelier), a popular item of a favourite category, or a popular item anywhere."""
    n = len(previous)
    rank = rng.choice(len(SUCCESSOR_ODDS), size=n, p=SUCCESSOR_ODDS)
    chosen_category = favourite[np.arange(n), rng.integers(0, 2, size=n)]
    low = np.searchsorted(category, chosen_category, side="left")
    high = np.maximum(np.searchsorted(category, chosen_category, side="right"), low + 1)
    from_category = _by_popularity(rng, popularity, n, low, np.minimum(high, len(category)))
    roll = rng.random(n)
    anywhere = _by_popularity(rng, popularity, n)
    return np.where(roll < follow, successors[previous, rank],
                    np.where(roll < follow + stay, from_category, anywhere))


def _unless_seen(rng, history: np.ndarray, picked: np.ndarray,
                 popularity: np.ndarray) -> np.ndarray:
    """A repeat purchase is redrawn once by popularity, then dropped (-1) if still a repeat:
    a shop's purchase log rarely holds the same product twice."""
    seen = (history == picked[:, None]).any(1)
    redrawn = np.where(seen, _by_popularity(rng, popularity, len(picked)), picked)
    return np.where((history == redrawn[:, None]).any(1), -1, redrawn)


def _shop_rows(rng, picks: np.ndarray,
               category: np.ndarray) -> tuple[list[EventRow], list[ItemRow]]:
    """Store rows: purchases (weight 1) at increasing times from each user's start."""
    start = 1_600_000_000 + rng.integers(0, 180 * 86_400, size=len(picks))
    times = start[:, None] + np.cumsum(rng.integers(600, 14 * 86_400, size=picks.shape), 1)
    users, steps = np.nonzero(picks >= 0)
    events = [(f"u{u}", f"p{i}", "purchase", 1.0, float(t))
              for u, i, t in zip(users.tolist(), picks[users, steps].tolist(),
                                 times[users, steps].tolist())]
    items = [(f"p{i}", f"Product {i} (category {c})", {"categories": [f"c{c}"]})
             for i, c in enumerate(category.tolist())]
    return events, items
