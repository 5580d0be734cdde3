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
