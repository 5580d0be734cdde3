"""Settings chosen from the data's statistics, for kinds where no single default suits.

``data_statistics`` says what shape the data has (density, events per user and item, how
the event weights are spread); ``data_defaults`` turns it into a kind's settings.
"""

from __future__ import annotations

import numpy as np

from .data import Interactions


def data_statistics(data: Interactions) -> dict:
    """Size, density, median events per user and item, and the spread of the weights
    (share of interactions weighted above 1, and the mean log1p weight)."""
    n = len(data.users)
    per_user = np.bincount(data.users, minlength=data.n_users)
    per_item = np.bincount(data.items, minlength=data.n_items)
    weights = np.ones(n) if data.weights is None else np.maximum(data.weights, 0.0)
    return {"users": int(data.n_users), "items": int(data.n_items), "interactions": int(n),
            "density": n / max(data.n_users * data.n_items, 1),
            "median_per_user": float(np.median(per_user)) if n else 0.0,
            "median_per_item": float(np.median(per_item)) if n else 0.0,
            "weighted_share": float(np.mean(weights > 1.0)) if n else 0.0,
            "mean_log1p_weight": float(np.mean(np.log1p(weights))) if n else 0.0}
