"""The public API: ``Recommender.open(bundle, store)`` and top-N for one, many or all users.

Ids in and out are the application's own strings; dense indices stay inside. The scoring
core (ONNX) does scores, seen-item exclusion and top-k in one call, so the Python side only
reads histories, maps ids and pads arrays.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np

from . import contract as C
from .bundle import Bundle
from .session import Scorer
from .store import Store


# Item weights (n_items * dim floats) up to which one thread scores fastest.
SMALL_MODEL_WEIGHTS = 1 << 22
HISTORY_CACHE_USERS = 100_000


class Recommendation(NamedTuple):
    item_id: str
    score: float


class Recommendations(list):
    """A ranked list of ``Recommendation`` (item_id, score) for one user.

    ``fallback`` is true when the model does not know the user and the list is the store's
    most popular items instead of a personalised one.
    """

    def __init__(self, user_id: str, items: Iterable[Recommendation], fallback: bool = False):
        super().__init__(items)
        self.user_id = user_id
        self.fallback = fallback

    def to_dict(self) -> dict:
        return {"user_id": self.user_id, "fallback": self.fallback,
                "items": [{"item_id": r.item_id, "score": r.score} for r in self]}


class Recommender:
    """A bundle served with ONNX Runtime over a store of user histories."""

    def __init__(self, bundle: Bundle, store: Store, scorer: Scorer):
        self.bundle, self.store, self.scorer = bundle, store, scorer
        self._version = None
        self._histories: dict[str, list[str]] = {}
        self._popular: list[tuple[str, int]] = []
        self._popular_limit = 0

    @classmethod
    def open(cls, bundle: str | Path, store: str | Path, provider: str | None = None,
             threads: int | None = None) -> "Recommender":
        """Open a bundle (checksum verified) and an existing store.

        ``provider`` is "auto" (CUDA when really usable, else CPU), "cpu" or "cuda";
        unset, ``$EDGEREC_PROVIDER`` decides. ``threads`` defaults to one for models whose
        item weights fit in cache (a thread pool only adds hand-off time there) and to
        ONNX Runtime's choice (all cores) for larger ones.
        """
        opened = Bundle.open(bundle)
        if threads is None:
            dims = opened.manifest["dims"]
            threads = 1 if dims["n_items"] * dims["dim"] <= SMALL_MODEL_WEIGHTS else 0
        return cls(opened, Store.open(store, create=False), Scorer(opened.onnx_path, provider, threads))

    @property
    def provider(self) -> str:
        """The execution provider that runs the scoring core: "cpu" or "cuda"."""
        return self.scorer.provider

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Recommender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- top-N ------------------------------------------------------------------------------

    def recommend(self, user_id: str, n: int = 10) -> Recommendations:
        """Top-n unseen items for one user (popular items when the model lacks the user)."""
        user_id = str(user_id)
        self._drop_stale_caches()
        history = self._histories.get(user_id)
        if history is None:
            if len(self._histories) >= HISTORY_CACHE_USERS:
                self._histories.clear()
            history = self._histories[user_id] = self.store.history(user_id)
        return self._recommend({user_id: history}, n)[0]

    def recommend_many(self, user_ids: Sequence[str], n: int = 10,
                       chunk_size: int = 512) -> list[Recommendations]:
        """Top-n for each user, in order; one history query and one ONNX call per chunk."""
        ids = [str(u) for u in user_ids]
        out: list[Recommendations] = []
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start:start + chunk_size]
            out += self._recommend(self.store.histories(chunk), n, order=chunk)
        return out

    def batch(self, out: str | Path, n: int = 10, users: Sequence[str] | None = None,
              chunk_size: int = 512, progress: Callable[[int], None] | None = None) -> int:
        """Write top-n of every user (or ``users``) to a CSV file; returns rows written.

        Columns: user_id, rank, item_id, score. Memory stays bounded by the chunk size, and
        the file appears only when complete (written aside, then renamed).
        """
        ids = [str(u) for u in users] if users is not None else self.store.user_ids()
        out = Path(out)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or ".")
        rows = 0
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["user_id", "rank", "item_id", "score"])
                for start in range(0, len(ids), chunk_size):
                    chunk = ids[start:start + chunk_size]
                    for recs in self._recommend(self.store.histories(chunk), n, order=chunk):
                        writer.writerows((recs.user_id, rank, r.item_id, f"{r.score:.6g}")
                                         for rank, r in enumerate(recs, 1))
                        rows += len(recs)
                    if progress:
                        progress(len(chunk))
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return rows

    # -- internals --------------------------------------------------------------------------

    def _recommend(self, histories: dict[str, list[str]], n: int,
                   order: Sequence[str] | None = None) -> list[Recommendations]:
        order = list(histories) if order is None else order
        b = self.bundle
        known = [u for u in order if u in b.user_index
                 or (b.folds_in and any(i in b.item_index for i in histories[u]))]
        results = dict(zip(known, self._score(known, histories, n))) if known else {}
        return [results[u] if u in results else self._fallback(u, histories[u], n) for u in order]

    def _score(self, users: list[str], histories: dict[str, list[str]], n: int) -> list[Recommendations]:
        """One ONNX call for users the model knows or, for kinds that fold in, can place."""
        b = self.bundle
        index = b.item_index.get
        seen = [[j for j in map(index, histories[u]) if j is not None] for u in users]
        exclude = C.padded(seen, b.n_items)
        history = C.padded([s[:b.history_length] for s in seen], b.n_items, b.history_length)
        user_idx = np.array([b.user_index.get(u, C.UNKNOWN_USER) for u in users], dtype=np.int64)
        top_items, top_scores = self.scorer.top_k(user_idx, history, exclude, min(n, b.n_items))
        item_ids = b.item_ids
        return [Recommendations(u, [Recommendation(item_ids[i], s)
                                    for i, s in zip(items, scores) if s != -np.inf])
                for u, items, scores in zip(users, top_items.tolist(), top_scores.tolist())]

    def _drop_stale_caches(self) -> None:
        """Histories and popularity are cached until anyone writes to the store."""
        version = self.store.version()
        if version != self._version:
            self._version = version
            self._histories = {}
            self._popular_limit = 0

    def _fallback(self, user_id: str, history: list[str], n: int) -> Recommendations:
        """Most popular items in the store that the user has not seen."""
        self._drop_stale_caches()
        seen = set(history)
        if n + len(seen) > self._popular_limit:
            self._popular_limit = max(n + len(seen), 100)
            self._popular = self.store.popular(self._popular_limit)
        picks = [Recommendation(i, float(c)) for i, c in self._popular if i not in seen][:n]
        return Recommendations(user_id, picks, fallback=True)

