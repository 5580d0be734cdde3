"""Request caches, each valid for one version of what it was derived from.

``Snapshot`` (user histories, popularity) is made for one ``Store.version()``: any commit,
by this process or another, makes a new one. Events are append-only with growing ids, so
the new snapshot carries over the old one's histories of every user without an event
newer than the old snapshot's ``last_id`` (and their model inputs, when model and
catalogue are unchanged): another user's write does not make a cached user cold again.
``Catalogue`` (retired items, filter allow-sets and masks, new arrivals) is valid for one
catalogue version and one served model, so it survives the far more frequent event writes.

Thread safety without locks: a request takes the current snapshot object once and reads
and fills only that object. Each snapshot reads ``last_id`` after the store version it is
made for and before any history is read into it, so every history it holds, read or
carried, contains all the user's events up to ``last_id``:

- a history read into it is read after ``last_id`` was;
- a carried one held them up to the old ``last_id``, and the user had no newer event when
  the changed users were queried, which is after the new ``last_id`` was read.

An event committed later has a larger id and a new store version, so the next snapshot
drops that user; a history read before the commit can never be served after it (which
would serve a seen item again). The old snapshot's dicts are copied in one C call, atomic
under the GIL while other threads still fill them.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, NamedTuple

import numpy as np

from . import contract as C
from . import filters
from .filters import Filter
from .topn import popular_unseen

HISTORY_CACHE_USERS = 100_000
# Carry the caches over only when at most this many events were added since: after a bulk
# ingest, listing the changed users costs more than the cold requests it saves.
CARRY_EVENTS = 10_000
FILTER_CACHE = 256
# Popularity (the cold-start list) is a GROUP BY over every event. Recomputed after every
# commit, other processes writing a few events a second would make every unknown user's
# request pay for it, each thread its own copy. So one ``Popularity`` is shared by the
# snapshots of one catalogue: a ranking is reused while the events added since are few (at
# most 100, or 1% of the store) and it is younger than POPULAR_MAX_AGE seconds, or ten
# times what computing it took (at most a tenth of a core on it); when it is stale, one
# thread recomputes it while the others keep serving the stale one.
POPULAR_MAX_AGE = 1.0
# Answers kept per served model (each ~1 KB for a top-10).
ANSWERS = 10_000
_MISSING = object()


def _cached(cache: dict, key, build: Callable[[], object], limit: int = FILTER_CACHE):
    """``cache[key]``, built on a miss; a full cache is cleared (entries in use come back
    at once).

    Readers only ever ``get`` and keep what they got, so a clear by another thread can
    never make them fail.
    """
    found = cache.get(key, _MISSING)
    if found is _MISSING:
        if len(cache) >= limit:
            cache.clear()
        found = cache[key] = build()
    return found


def _without(cache: dict, users: set) -> dict:
    """A copy of ``cache`` without ``users`` (``dict.copy`` does not fail while others insert)."""
    kept = cache.copy()
    for user in users:
        kept.pop(user, None)
    return kept


class Catalogue:
    """What requests need from the items table, for one catalogue version and bundle."""

    def __init__(self, store, bundle, version: int):
        self.store, self.bundle, self.version = store, bundle, version
        self.inactive = frozenset(store.inactive_items())
        self.inactive_indices = C.known_indices(bundle.item_index, self.inactive)
        self._allowed: dict[Filter, frozenset | None] = {}
        self._masks: dict[Filter, np.ndarray] = {}
        self._new: list[str] | None = None

    def allowed(self, flt: Filter) -> frozenset | None:
        """Item ids the filter allows (None: all active items)."""
        return _cached(self._allowed, flt, lambda: flt.allowed(self.store, self.inactive))

    def mask(self, flt: Filter) -> np.ndarray | None:
        """The scoring core's ``item_mask`` for the filter (None when it restricts nothing)."""
        if not flt.restricts:
            return None
        return _cached(self._masks, flt, lambda: filters.mask(
            self.allowed(flt), self.bundle.item_index, self.bundle.n_items))

    def eligibility(self, flt: Filter | None) -> tuple[list[int], np.ndarray | None]:
        """(indices to exclude, ``item_mask`` or None): retired items always, plus the filter's."""
        return filters.eligibility(flt, self.bundle.item_index, self.inactive_indices, self.mask)

    def new_arrivals(self) -> list[str]:
        """Active catalogue items the model does not know, most recently added first.

        These are items added after training (or never interacted with before it): the
        model cannot score them, so they reach users only through this list and popularity.
        """
        if self._new is None:
            known = self.bundle.item_index
            self._new = [i for i in self.store.newest_items() if i not in known]
        return self._new


class Answers:
    """Result tuples of the plain requests of one served model, by the scoring core's output.

    Building ten ``Recommendation`` tuples costs more than the rest of the result path
    (a tuple subclass is made one Python-visible call at a time); a repeat request gets
    the same output bytes from the scoring core, so it reuses the tuples, which are
    immutable. The key is the output itself, so an entry can never be wrong: a changed
    answer is a new key. The scoring core still runs on every request.
    """

    def __init__(self):
        self._found: dict[bytes, tuple] = {}

    def of(self, items: np.ndarray, scores: np.ndarray, build: Callable[[], object]) -> tuple:
        """``tuple(build())`` for this output, built on its first appearance."""
        return _cached(self._found, items.tobytes() + scores.tobytes(), lambda: tuple(build()),
                       ANSWERS)


class Snapshot:
    """Histories and popularity at one store version (plus the catalogue valid then)."""

    def __init__(self, store, version, served, catalogue: Catalogue,
                 previous: Snapshot | None = None):
        """``previous``: the snapshot this one replaces, whose unchanged users it keeps."""
        self.version, self.served, self.catalogue = version, served, catalogue
        self.last_id = store.max_event_id()  # first: see the module docstring
        self.histories: dict[str, list[str]] = {}
        self._inputs: dict[str, object] = {}
        # A smaller last_id means events were deleted outside edgerec: carry nothing.
        if previous is not None and 0 <= self.last_id - previous.last_id <= CARRY_EVENTS:
            changed = store.users_with_events_after(previous.last_id)
            self.histories = _without(previous.histories, changed)
            if served is previous.served and catalogue is previous.catalogue:
                self._inputs = _without(previous._inputs, changed)
        # Popularity depends on the events and retired items, not on the model served.
        same = previous is not None and catalogue.version == previous.catalogue.version
        self.popularity = previous.popularity if same else Popularity()
        # Keyed by the model's output, valid for as long as the model serves.
        self.answers = previous.answers if previous is not None and served is previous.served else Answers()

    def history(self, store, user_id: str) -> list[str]:
        """The user's history, newest first, cached for this store version."""
        return _cached(self.histories, user_id, lambda: store.history(user_id), HISTORY_CACHE_USERS)

    def plain_inputs(self, user_id: str, build: Callable[[], object]):
        """``build()``: the scoring core's inputs for a request without options, kept per user.

        They depend only on the history, the served model and the retired items, which
        this snapshot fixes; callers must not modify what they get (it is shared).
        """
        return _cached(self._inputs, user_id, build, HISTORY_CACHE_USERS)

    def popular(self, store, n: int, skip: set, allowed: frozenset | None,
                half_life: float | None) -> list[tuple[str, float]]:
        """The n most popular items not in ``skip`` and (if given) in ``allowed``.

        Reads a longer ranking until n qualify or the ranking is exhausted, so a filter
        never returns fewer than n items while n eligible popular items exist.
        """
        need = max(100, 2 * (n + len(skip)))
        while True:
            limit, ranked = self.popularity.ranking(store, self.last_id, half_life, need)
            picks = popular_unseen(ranked, n, skip, allowed)
            if len(picks) == n or len(ranked) < limit:
                return picks
            need = limit * 4


class _Ranking(NamedTuple):
    rows: int  # rows asked of the store (fewer come back when fewer items exist)
    ranked: list
    last_id: int  # the store's newest event when it was computed
    when: float
    took: float

    def fresh(self, last_id: int) -> bool:
        return (time.monotonic() - self.when < max(POPULAR_MAX_AGE, 10 * self.took)
                and last_id - self.last_id <= max(100, self.last_id // 100))


class Popularity:
    """Popularity rankings shared by successive snapshots (see ``POPULAR_MAX_AGE``)."""

    def __init__(self):
        self._rankings: dict[float | None, _Ranking] = {}
        self._refreshing = threading.Lock()

    def ranking(self, store, last_id: int, half_life: float | None, need: int) -> tuple[int, list]:
        """(rows ranked, ranking) with at least ``need`` rows (or every item) for ``last_id``.

        A long enough ranking is served while fresh, or while another thread refreshes it;
        a too short one makes this thread wait for the lock and compute it."""
        found = self._rankings.get(half_life)
        enough = found is not None and found.rows >= need
        if enough and (found.fresh(last_id) or not self._refreshing.acquire(blocking=False)):
            return found.rows, found.ranked
        if not enough:
            self._refreshing.acquire()
        try:
            started = time.monotonic()
            ranked = store.popular(need, half_life=half_life)
            now = time.monotonic()
            self._rankings[half_life] = _Ranking(need, ranked, last_id, now, now - started)
            return need, ranked
        finally:
            self._refreshing.release()
