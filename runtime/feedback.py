"""Live feedback: what people do in the app, written to the store as events.

An app records views, clicks and purchases as they happen; the next recommendation reads
them (the runtime's caches are keyed on the store's commit counter, so the write is seen at
once, from this process or any other). Event types map to weights so that a purchase can
count for more than a view wherever weights are used (ALS confidence at training time,
recency-weighted popularity at request time); the mapping is configurable per
``Recommender`` and an explicit ``weight`` always wins.
"""

from __future__ import annotations

import time
from typing import Iterable, Mapping

from . import validate
from .errors import InputError
from .store import EventRow, Store

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0, "click": 2.0, "like": 3.0, "add_to_cart": 3.0, "share": 3.0, "purchase": 5.0,
}


def event_row(user_id, item_id, event: str = "click", weight: float | None = None,
              ts: float | None = None, weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
              ) -> EventRow:
    """One validated event (``edgerec.validate``); ``weight`` defaults to the event type's,
    ``ts`` to now; a bad field raises ``InputError`` naming it.

    An event type without a configured weight and no explicit ``weight`` is an error: a
    typo ("purchse") would otherwise silently count as something.
    """
    try:
        event = validate.identifier(event, "event")
        if weight is None:
            if event not in weights:
                raise InputError(f"event type {event!r} has no weight; give one or use "
                                 f"{', '.join(sorted(weights))}")
            weight = weights[event]
        return validate.event((user_id, item_id, event, weight, time.time() if ts is None else ts))
    except validate.Invalid as bad:
        raise InputError(str(bad)) from None


def record(store: Store, user_id, item_id, event: str = "click", weight: float | None = None,
           ts: float | None = None, weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS) -> bool:
    """Write one event; False when the same event (user, item, type, ts) was already stored."""
    return store.add_events([event_row(user_id, item_id, event, weight, ts, weights)]) == 1


def record_many(store: Store, events: Iterable, weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
                ) -> int:
    """Write many events in one transaction (all or none); returns how many were new.

    Each event is a tuple ``(user_id, item_id[, event[, weight[, ts]]])`` or a dict with
    those keys. Events are validated before anything is written; the first bad one raises
    ``InputError`` naming its position and field.
    """
    if isinstance(events, (str, bytes, Mapping)):
        raise InputError("events must be a list of events (tuples or dicts)")
    return store.add_events(list(validate.rows(events, lambda e: _event(e, weights), "event")))


def _event(e, weights: Mapping[str, float]) -> EventRow:
    try:
        if isinstance(e, Mapping):
            return event_row(**e, weights=weights)
        if isinstance(e, (tuple, list)) and 2 <= len(e) <= 5:
            return event_row(*e, weights=weights)
    except TypeError as exc:  # unknown keys or missing ids in a dict
        raise validate.Invalid(f"not an event ({str(exc).split(') ', 1)[-1]})") from None
    except InputError as exc:
        raise validate.Invalid(str(exc)) from None
    raise validate.Invalid("an event is (user_id, item_id[, event[, weight[, ts]]]) or a dict")


def event_weights(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The default event weights with ``overrides`` applied (what ``Recorder`` uses)."""
    return {**DEFAULT_EVENT_WEIGHTS, **(overrides or {})}


class Recorder:
    """``record``/``record_many`` for a class that holds ``store`` and ``event_weights``.

    ``Recommender`` and ``Experiment`` both take live feedback the same way (an experiment's
    outcomes are ordinary events), so the one implementation lives here.
    """

    store: Store
    event_weights: dict[str, float]

    def record(self, user_id: str, item_id: str, event: str = "click",
               weight: float | None = None, ts: float | None = None) -> bool:
        """Store one event (weight from ``event_weights`` unless given; ts: now).

        The next recommendation for the user sees it: the item is excluded as seen and, for
        models that read the history, the user's representation changes; an experiment's
        report attributes it. Returns False when the identical event (user, item, type, ts)
        was already stored.
        """
        return record(self.store, user_id, item_id, event, weight, ts, self.event_weights)

    def record_many(self, events: Iterable) -> int:
        """Store many events in one transaction; see ``edgerec.feedback.record_many``."""
        return record_many(self.store, events, self.event_weights)
