"""What the recommender returns: ranked lists of (item_id, score) pairs and their annotations.

Plain tuples and lists, so an app can unpack, compare and serialise them without knowing
edgerec; explanations and new-arrival slots ride along as attributes, never as extra tuple
fields (``for item, score in recs`` keeps working whatever was asked for).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Iterable, Iterator, NamedTuple, Sequence

from .explain import Reason


class Recommendation(NamedTuple):
    """One recommended item and its score (NaN for a new-arrival slot)."""

    item_id: str
    score: float


class Explained(Recommendation):
    """A ``Recommendation`` (still an (item_id, score) pair) with ``because``: its reasons."""

    def __new__(cls, item_id: str, score: float, because: Sequence[Reason] = ()):
        self = super().__new__(cls, item_id, score)
        self.because = list(because)
        return self


def recommendations(ids: Iterable[str], scores: Iterable[float]) -> Iterator[Recommendation]:
    """``Recommendation`` pairs of parallel id and score lists, made by ``tuple.__new__``
    in C: the namedtuple's own constructor is a Python call per item (measured: about 2 us
    of a top-10 request's result building)."""
    return map(_new_recommendation, zip(ids, scores))


_new_recommendation = partial(tuple.__new__, Recommendation)


class Recommendations(list):
    """A ranked list of ``Recommendation`` (item_id, score) for one user.

    ``fallback`` is true when the model does not know the user and the list is the store's
    most popular items instead of a personalised one. ``new_arrivals`` lists the items in
    new-arrival slots (their score is NaN: the model cannot score them).
    """

    def __init__(self, user_id: str, items: Iterable[Recommendation], fallback: bool = False):
        super().__init__(items)
        self.user_id = user_id
        self.fallback = fallback
        self.new_arrivals: list[str] = []

    def to_dict(self) -> dict:
        """Plain JSON-ready data (what ``--json`` prints): NaN scores become null."""
        fresh = set(self.new_arrivals)

        def item(r: Recommendation) -> dict:
            out = {"item_id": r.item_id, "score": None if math.isnan(r.score) else r.score}
            if r.item_id in fresh:
                out["new_arrival"] = True
            if isinstance(r, Explained):
                out["because"] = [{"item_id": i, "share": s} for i, s in r.because]
            return out

        return {"user_id": self.user_id, "fallback": self.fallback, "items": [item(r) for r in self]}
