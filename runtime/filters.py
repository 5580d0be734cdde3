"""Request filters: which items may be recommended, as an allow-set and a score mask.

``include`` (only these ids), ``where`` (metadata matches, see ``Store.matching_items``)
and the catalogue's ``active`` flag restrict the eligible set; ``exclude`` removes ids.
Eligibility is applied *inside* the scoring core, before top-k: restrictions as the
additive ``item_mask`` input (0 keeps, -inf drops) and removals as extra ``exclude``
indices. So a request returns n items whenever n eligible items exist; nothing is fetched
and then filtered short.

Why a mask for restrictions and exclusions for removals: a broad restriction ("Comedy")
removes most of the catalogue, which as exclusions means a scatter of every removed index
on each request, while the mask is built once per filter and catalogue version and costs
one add (measured in the README); removals are short lists, where exclusions are cheapest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import contract as C
from .errors import InputError


@dataclass(frozen=True)
class Filter:
    """A hashable filter: the cache key of its allow-set and mask."""

    include: frozenset | None = None
    exclude: frozenset = frozenset()
    where: tuple = ()  # ((key, (value, ...)), ...), sorted

    @classmethod
    def of(cls, include=None, exclude=None, where=None) -> "Filter | None":
        """The filter for these arguments, or None when they filter nothing."""
        if isinstance(include, str) or isinstance(exclude, str):
            raise InputError("include and exclude take a list of item ids, not one string")
        if where is not None and not isinstance(where, dict):
            raise InputError("where takes a dict of metadata key -> value(s)")
        pairs = tuple(sorted((str(key), _values(value)) for key, value in (where or {}).items()))
        flt = cls(None if include is None else frozenset(map(str, include)),
                  frozenset(map(str, exclude or ())), pairs)
        return flt if flt != cls() else None

    @property
    def restricts(self) -> bool:
        """Whether only some items are eligible (an allow-set and mask are needed)."""
        return self.include is not None or bool(self.where)

    def allowed(self, store, inactive: frozenset) -> frozenset | None:
        """Eligible item ids (active, matching ``where``, in ``include``); None: all."""
        if not self.restricts:
            return None
        ids = None
        if self.where:
            ids = frozenset(store.matching_items({key: list(values) for key, values in self.where}))
        if self.include is not None:
            ids = self.include - inactive if ids is None else ids & self.include
        return ids


def eligibility(flt: Filter | None, item_index: dict[str, int], inactive: list[int],
                mask_of: Callable[[Filter], np.ndarray | None]) -> tuple[list[int], np.ndarray | None]:
    """(indices to exclude, ``item_mask`` or None): the ``inactive`` (retired) indices
    always, plus the filter's removals; ``mask_of(flt)`` gives its mask (cached or not)."""
    if flt is None:
        return inactive, None
    return inactive + C.known_indices(item_index, flt.exclude), mask_of(flt)


def mask(allowed: frozenset, item_index: dict[str, int], n_items: int) -> np.ndarray:
    """The scoring core's ``item_mask`` [1, n_items]: 0 for allowed items, -inf elsewhere."""
    out = np.full((1, n_items), -np.inf, dtype=np.float32)
    out[0, C.known_indices(item_index, allowed)] = 0.0
    return out


def _values(value) -> tuple:
    values = tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else (value,)
    for v in values:
        if not isinstance(v, (str, int, float, bool)):
            raise InputError(f"filter values must be strings or numbers, not {v!r}")
    return tuple(sorted(values, key=repr))
