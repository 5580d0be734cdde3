"""A/B experiments in the store: configs, impressions (what was shown to whom) and the
attribution query that joins impressions to outcome events.

``edgerec.experiment`` logs every served list here as impressions; outcomes are the
ordinary events. Attribution joins the two in SQL, so a report (``edgerec.abtest``) needs
nothing but the store file (the experiment's config is stored with it). Apart from
``Store`` so that changing attribution never means editing the class everything imports.
Tables: ``schema.EXPERIMENTS`` (schema version 2).
"""

from __future__ import annotations

import json
import time
from typing import Iterable, NamedTuple, Sequence

from .core import Store

# (experiment, variant, request_id, user_id, item_id, position, ts)
ImpressionRow = tuple[str, str, str, str, str, int, float]


class VariantTotals(NamedTuple):
    """One variant's attributed counts, with the per-user sums that variances need.

    ``clicked``: impressions with an attributed click-like outcome; ``converted``: users
    with an attributed conversion. The sums of squares and products run over users
    (n = a user's impressions, c = their clicked impressions), which is what the
    user-level (delta method) variance of a ratio of sums needs.
    """

    variant: str
    users: int
    impressions: int
    clicked: int
    converted: int
    first_ts: float
    last_ts: float
    sum_nn: float
    sum_cc: float
    sum_nc: float


def config(store: Store, name: str) -> dict | None:
    """The config stored for experiment ``name``, or None when it was never opened here."""
    rows = store.read("SELECT config FROM experiments WHERE name = ?", (name,))
    return json.loads(rows[0][0]) if rows else None

def names(store: Store) -> list[str]:
    """The names of the experiments registered in ``store``, sorted."""
    return [r[0] for r in store.read("SELECT name FROM experiments ORDER BY name")]

def save(store: Store, name: str, config: dict) -> None:
    """Store an experiment's config (replacing an older one, keeping its creation time),
    so that reports read shares, control, outcomes and bundles from the store alone."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO experiments (name, config, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET config = excluded.config",
            (name, json.dumps(config, sort_keys=True), time.time()))

def add_impressions(store: Store, rows: Iterable[ImpressionRow]) -> int:
    """Log served items in one transaction (a list is logged whole or not at all)."""
    with store.transaction():
        return store.write_many(
            "INSERT INTO impressions (experiment, variant, request_id, user_id, item_id, "
            "position, ts) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

# One row per impression of the experiment with 0/1 flags ``clicked`` and ``converted``.
# Attribution rule: an outcome event (user, item, type, ts) goes to the most recent
# impression of that item to that user in this experiment with
# impression ts <= event ts <= impression ts + window (latest id on equal times), so
# each outcome is attributed at most once; an impression is flagged once however many
# outcomes of a kind it got. Events without a timestamp are never attributed.
_SCORED = """
WITH imp AS (SELECT id, variant, user_id, ts FROM impressions WHERE experiment = :name),
hits AS (
    SELECT (SELECT i.id FROM impressions i
            WHERE i.experiment = :name AND i.user_id = e.user_id AND i.item_id = e.item_id
              AND i.ts BETWEEN e.ts - :window AND e.ts
            ORDER BY i.ts DESC, i.id DESC LIMIT 1) AS impression,
           e.event IN (SELECT value FROM json_each(:clicks)) AS click,
           e.event IN (SELECT value FROM json_each(:conversions)) AS conversion
    FROM (SELECT DISTINCT user_id, item_id FROM impressions WHERE experiment = :name) p
    JOIN events e ON e.user_id = p.user_id AND e.item_id = p.item_id
    WHERE e.ts IS NOT NULL AND (e.event IN (SELECT value FROM json_each(:clicks))
                                OR e.event IN (SELECT value FROM json_each(:conversions)))),
flags AS (SELECT impression, MAX(click) AS clicked, MAX(conversion) AS converted
          FROM hits WHERE impression IS NOT NULL GROUP BY impression),
scored AS (SELECT imp.variant, imp.user_id, imp.ts, ifnull(f.clicked, 0) AS clicked,
                  ifnull(f.converted, 0) AS converted
           FROM imp LEFT JOIN flags f ON f.impression = imp.id),
per_user AS (SELECT variant, user_id, COUNT(*) AS n, SUM(clicked) AS c, MAX(converted) AS v,
                    MIN(ts) AS first_ts, MAX(ts) AS last_ts,
                    MIN(CASE WHEN converted THEN ts END) AS converted_ts
             FROM scored GROUP BY variant, user_id)
"""

def _scored(store: Store, select: str, name: str, window: float, clicks: Sequence[str],
            conversions: Sequence[str], **params) -> list[tuple]:
    return store.read(_SCORED + select, {
        "name": name, "window": float(window), "clicks": json.dumps(list(clicks)),
        "conversions": json.dumps(list(conversions)), **params})

def totals(store: Store, name: str, window: float, clicks: Sequence[str],
                      conversions: Sequence[str]) -> list[VariantTotals]:
    """Per variant (by name): users, impressions and attributed outcomes.

    ``window`` is the attribution window in seconds; ``clicks``/``conversions`` are
    the event types of each outcome kind (see the attribution rule above).
    """
    rows = _scored(store, 
        "SELECT variant, COUNT(*), SUM(n), SUM(c), SUM(v), MIN(first_ts), MAX(last_ts), "
        "SUM(n * n), SUM(c * c), SUM(n * c) FROM per_user GROUP BY variant ORDER BY variant",
        name, window, clicks, conversions)
    return [VariantTotals(*row) for row in rows]

def series(store: Store, name: str, window: float, clicks: Sequence[str],
                      conversions: Sequence[str], bucket: float) -> list[tuple]:
    """Per (variant, time bucket): impressions, clicked impressions, users first exposed
    and users first converted in it, for plotting cumulative metrics over time.

    Buckets start at multiples of ``bucket`` seconds; outcomes count at the time of
    the impression they are attributed to. Rows are (variant, bucket start,
    impressions, clicked, new users, new converted users), in time order.
    """
    return _scored(store, 
        """SELECT variant, start, SUM(imps), SUM(hits), SUM(users), SUM(convs) FROM (
               SELECT variant, CAST(ts / :bucket AS INTEGER) * :bucket AS start,
                      1 AS imps, clicked AS hits, 0 AS users, 0 AS convs FROM scored
               UNION ALL SELECT variant, CAST(first_ts / :bucket AS INTEGER) * :bucket,
                      0, 0, 1, 0 FROM per_user
               UNION ALL SELECT variant, CAST(converted_ts / :bucket AS INTEGER) * :bucket,
                      0, 0, 0, 1 FROM per_user WHERE converted_ts IS NOT NULL)
           GROUP BY variant, start ORDER BY variant, start""",
        name, window, clicks, conversions, bucket=float(bucket))
