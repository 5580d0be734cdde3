"""The public API: ``Recommender.open(bundle, store)``, an embeddable recommender.

Ids in and out are the application's own strings; dense indices stay inside. The scoring
core (ONNX) does scores, filtering, seen-item exclusion and top-k in one call, so the
Python side only reads histories, maps ids and pads arrays. Around it: live feedback
(``record``), similar items, explanations, filters, cold start (popularity, new
arrivals), diversity re-ranking and hot model swap (``reload``, ``watch``).

One ``Recommender`` may be shared by many threads: the store serialises its connection,
caches are immutable-by-version snapshots (``edgerec.cache``), and the served model is one
attribute swapped atomically (``edgerec.serving``). A plain ``recommend(user, n)`` does no
more work than before these features: one version check, then, for a repeat request, the
cached model inputs (``edgerec.inputs``) go straight to one ONNX call.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from . import explain as X
from . import feedback, serving, validate
from .bundle import Bundle
from .cache import Catalogue, Snapshot
from .errors import EdgerecError, InputError, UnknownItemError
from .filters import Filter
from .inputs import ModelInputs, model_inputs
from .results import Explained, Recommendation, Recommendations, recommendations
from .session import Scorer
from .similarity import mmr, most_similar
from .store import Store
from .pipeline import ordered_map
from .topn import chunk_users, core_top_k, rows_of, top_k

SECONDS_PER_DAY = 86_400.0
# Chunks of a batch in flight at once: enough to overlap SQLite reads with scoring and to
# keep two cores busy with one-thread sessions, few enough to bound memory.
BATCH_WORKERS = 2

@dataclass(frozen=True)
class _Options:
    """Everything a request may ask beyond top-n; None stands for "nothing extra"."""

    filter: Filter | None = None
    diversity: float = 0.0
    explain: bool = False
    new_arrivals: int = 0

    @classmethod
    def of(cls, include=None, exclude=None, where=None, diversity: float = 0.0,
           explain: bool = False, new_arrivals: int = 0) -> "_Options | None":
        if not 0.0 <= float(diversity) <= 1.0:
            raise InputError(f"diversity must be between 0 and 1, not {diversity}")
        if int(new_arrivals) < 0:
            raise InputError(f"new_arrivals must be >= 0, not {new_arrivals}")
        options = cls(Filter.of(include, exclude, where), float(diversity), bool(explain),
                      int(new_arrivals))
        return None if options == cls() else options


def _outside_core(snap: Snapshot, skip: set, options: _Options | None) -> tuple[set, frozenset | None]:
    """(ids to skip, ids allowed or None) for lists built outside the scoring core.

    Popularity and new arrivals are lists of ids, not model scores, so the filter applies
    to them as sets; retired items are already absent from both.
    """
    if options is None or options.filter is None:
        return skip, None
    return skip | options.filter.exclude, snap.catalogue.allowed(options.filter)


def _inputs(snap: Snapshot, served: serving.Served, histories: Mapping[str, list[str]],
            users: Sequence[str], options: _Options | None) -> ModelInputs:
    """The scoring core's inputs for ``users``, with the retired and filtered-out items."""
    extra, mask = snap.catalogue.eligibility(None if options is None else options.filter)
    return model_inputs(served.bundle, histories, users, extra, mask,
                        trim=served.scorer.free_history)


def _plain_results(bundle: Bundle, snap: Snapshot, inputs: ModelInputs, raw) -> Recommendations:
    """The one user's list of the scoring core's ``raw`` output (item indices, scores),
    reusing the result tuples of an answer given before (``edgerec.cache.Answers``)."""
    items, scores = raw
    return Recommendations(inputs.users[0], snap.answers.of(
        items, scores, lambda: recommendations(*rows_of(bundle, items, scores)[0])))


def _pool(n: int) -> int:
    """Candidates fetched for diversity re-ranking: enough to choose from, still small."""
    return max(3 * n, n + 20)


class Recommender(feedback.Recorder):
    """A bundle served with ONNX Runtime over a store of user histories.

    ``event_weights`` overrides the weights of event types for ``record``/``record_many``
    (``edgerec.feedback.Recorder``; defaults in ``edgerec.feedback.DEFAULT_EVENT_WEIGHTS``). ``half_life_days`` makes the popularity
    used for cold start recency-weighted (see ``Store.popular``).
    """

    def __init__(self, bundle: Bundle, store: Store, scorer: Scorer, *,
                 event_weights: Mapping[str, float] | None = None,
                 half_life_days: float | None = None, provider: str | None = None,
                 threads: int | None = None):
        if half_life_days is not None and not half_life_days > 0:
            raise InputError(f"half_life_days must be positive, not {half_life_days}")
        self.store = store
        self.event_weights = feedback.event_weights(event_weights)
        self.half_life_days = half_life_days
        self.reload_error: str | None = None
        self._served = serving.Served(bundle, scorer, serving.identity(bundle.manifest))
        self._load_args = (provider, threads)
        self._snapshot: Snapshot | None = None
        self._reload_lock = threading.Lock()
        self._watcher: serving.Watcher | None = None

    @classmethod
    def open(cls, bundle: str | Path, store: str | Path, provider: str | None = None,
             threads: int | None = None, *, event_weights: Mapping[str, float] | None = None,
             half_life_days: float | None = None, watch: float | None = None) -> "Recommender":
        """Open a bundle (checksum verified) and an existing store.

        ``provider`` is "auto" (CUDA when really usable, else CPU), "cpu" or "cuda";
        unset, ``$EDGEREC_PROVIDER`` decides. ``threads`` defaults to one for models whose
        item weights fit in cache and to ONNX Runtime's choice for larger ones. ``watch``
        (seconds) starts a watcher that reloads the bundle when a new one is published.
        """
        rec = cls.over(bundle, Store.open(store, create=False), provider, threads,
                       event_weights=event_weights, half_life_days=half_life_days)
        if watch:
            rec.watch(watch)
        return rec

    @classmethod
    def over(cls, bundle: str | Path, store: Store, provider: str | None = None,
             threads: int | None = None, **options) -> "Recommender":
        """A bundle served over an already open ``store`` (``options`` as for ``open``).

        For several recommenders on one store (an experiment's variants, an offline
        replay): they share its connection, and whoever opened the store closes it.
        """
        served = serving.load(bundle, provider, threads)
        return cls(served.bundle, store, served.scorer, provider=provider, threads=threads,
                   **options)

    @property
    def bundle(self) -> Bundle:
        """The bundle being served now (changes on reload)."""
        return self._served.bundle

    @property
    def scorer(self) -> Scorer:
        """The ONNX Runtime session serving now (changes on reload)."""
        return self._served.scorer

    @property
    def provider(self) -> str:
        """The execution provider that runs the scoring core: "cpu" or "cuda"."""
        return self._served.scorer.provider

    def close(self) -> None:
        """Stop the watcher and close the store this recommender opened."""
        self.unwatch()
        self.store.close()

    def __enter__(self) -> "Recommender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- top-N ------------------------------------------------------------------------------

    def recommend(self, user_id: str, n: int = 10, *, include: Iterable[str] | None = None,
                  exclude: Iterable[str] | None = None, where: dict | None = None,
                  diversity: float = 0.0, explain: bool = False,
                  new_arrivals: int = 0) -> Recommendations:
        """Top-n unseen, active items for one user (popular items when the model lacks the user).

        ``include`` / ``exclude``: only / never these item ids. ``where``: catalogue
        metadata to match, e.g. {"category": "Comedy"} (see ``Store.matching_items``).
        Filters apply inside the scoring core, so n items come back whenever n eligible
        items exist. ``diversity`` (0..1) re-ranks by maximal marginal relevance over the
        item vectors. ``explain`` attaches ``because`` to each item (see ``explain``).
        ``new_arrivals`` reserves up to that many of the last slots for catalogue items the
        model does not know yet, most recently added first.
        """
        user_id = validate.requested(user_id, "user_id")
        if (include is None and exclude is None and where is None and not diversity
                and not explain and not new_arrivals):
            options = None  # the plain path builds nothing
        else:
            options = _Options.of(include, exclude, where, diversity, explain, new_arrivals)
        served = self._served
        snap = self._current(served)
        histories = {user_id: snap.history(self.store, user_id)}
        inputs = None
        if options is None:  # the common request: its model inputs are cached with the history
            inputs = snap.plain_inputs(user_id, lambda: _inputs(snap, served, histories, [user_id], None))
            if inputs.users:
                return self._plain(served, snap, inputs, n)
        return self._recommend(served, snap, histories, n, options, inputs=inputs)[0]

    def recommend_many(self, user_ids: Sequence[str], n: int = 10, chunk_size: int | None = None,
                       **options) -> list[Recommendations]:
        """Top-n for each user, in order; one history query and one ONNX call per chunk.

        Takes the same keyword options as ``recommend``, and gives the same lists.
        ``chunk_size`` (users) defaults to what suits the catalogue's size.
        """
        ids = list(validate.rows(user_ids, lambda u: validate.identifier(u, "user_id"), "user"))
        return [recs for chunk in self._chunks(ids, n, chunk_size, _Options.of(**options))
                for recs in chunk]

    def scores(self, user_ids: Sequence[str], chunk_size: int = 256) -> np.ndarray:
        """[len(user_ids), n_items] float32: the model's score of every catalogue item (in
        ``bundle.item_ids`` order) for each user, their seen items -inf.

        For offline protocols that rank candidates of their own (``edgerec.pipelines``'
        sampled evaluation): no filters, no fallback; a user the model cannot score gets
        a row of -inf. The scoring core is asked for all of its items at once.
        """
        served = self._served
        b = served.bundle
        ids = [str(u) for u in user_ids]
        out = np.full((len(ids), b.n_items + 1), -np.inf, dtype=np.float32)  # + the padding
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start:start + chunk_size]
            inputs = model_inputs(b, self.store.histories(chunk), chunk, [], None)
            if inputs.users:
                rows = np.full((len(inputs.users), b.n_items + 1), -np.inf, dtype=np.float32)
                items, values = served.scorer.top_k(inputs.user_index, inputs.history,
                                                    inputs.exclude, b.n_items)
                np.put_along_axis(rows, items, values, axis=1)
                where = {u: start + n for n, u in enumerate(chunk)}
                out[[where[u] for u in inputs.users]] = rows
        return out[:, :b.n_items]

    def batch(self, out: str | Path, n: int = 10, users: Sequence[str] | None = None,
              chunk_size: int | None = None, progress: Callable[[int], None] | None = None, *,
              include: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
              where: dict | None = None) -> int:
        """Write top-n of every user (or ``users``) to a CSV file; returns rows written.

        Columns: user_id, rank, item_id, score. The local engine of ``edgerec.batch`` over
        this recommender's model and store: memory stays bounded by the chunk size, and
        the file appears only when complete (written aside, then renamed). ``include``,
        ``exclude`` and ``where`` filter as in ``recommend``.
        """
        from .batch import CsvSink, allowed_items, run_local
        from .batchscore import BatchScorer
        from .histories import popularity, store_chunks
        from .staging import staged_file

        Filter.of(include, exclude, where)  # the same argument checks as recommend's
        include = allowed_items(self.store, None if include is None else list(include), where)
        exclude = None if exclude is None else list(exclude)
        scorer = BatchScorer(str(self.bundle.path), n, retired=sorted(self.store.inactive_items()),
                             include=include, exclude=exclude,
                             popular=popularity(self.store, n, len(exclude or ()), include is not None,
                                                half_life=self._half_life))
        chunks = store_chunks(self.store, users, chunk_size or chunk_users(self.bundle.n_items))
        with staged_file(Path(out)) as tmp:
            sink = CsvSink(tmp)
            run_local(scorer.over(self._served), chunks, sink, BATCH_WORKERS, progress)
        return sink.rows

    # -- catalogue (live feedback: ``record``/``record_many`` from ``feedback.Recorder``) ------

    def retire(self, item_ids: Iterable[str]) -> int:
        """Never recommend these items again (until ``restore``); from any process."""
        return self.store.set_active(item_ids, False)

    def restore(self, item_ids: Iterable[str]) -> int:
        """Make retired items eligible again."""
        return self.store.set_active(item_ids, True)

    # -- similar items and explanations -----------------------------------------------------

    def similar_items(self, item_id: str, n: int = 10, *, include: Iterable[str] | None = None,
                      exclude: Iterable[str] | None = None,
                      where: dict | None = None) -> list[Recommendation]:
        """The n items closest to ``item_id`` by cosine of the model's item vectors.

        Scores are cosines; retired items never appear; filters as in ``recommend``.
        """
        n = validate.count(n, "n")
        served = self._served
        b = served.bundle
        j = self._item_index(b, item_id)
        unit = served.unit_vectors
        skip, mask = self._current(served).catalogue.eligibility(Filter.of(include, exclude, where))
        return [Recommendation(b.item_ids[i], score) for i, score in most_similar(unit, j, n, mask, skip)]

    def explain(self, user_id: str, item_id: str, top: int = X.TOP_REASONS) -> X.Explanation:
        """Which of the user's recent history items ``item_id``'s score is owed to.

        ``because`` lists up to ``top`` items with their share of the positive
        contributions; the method (leave-one-out through the scoring core, or item
        similarity for kinds that do not read the history) is in ``edgerec.explain``.
        """
        user_id, item_id = validate.requested(user_id, "user_id"), validate.requested(item_id, "item_id")
        top = validate.count(top, "top")
        served = self._served
        self._item_index(served.bundle, item_id)
        history = self._current(served).history(self.store, user_id)
        return X.explain_items(served, user_id, history, [item_id], top)[item_id]

    # -- hot model swap ---------------------------------------------------------------------

    def reload(self) -> bool:
        """Switch to the bundle now published at the bundle path, if it is a new one.

        The new bundle is fully verified (checksums, an ONNX Runtime session) before the
        switch; if that fails, ``BundleError`` is raised (and kept in ``reload_error``) and
        the old model keeps serving. Requests in flight finish on the model they started
        with. Returns True when it switched, False when the bundle is unchanged.
        """
        with self._reload_lock:
            current = self._served
            if serving.current_identity(current.bundle.path) == current.identity:
                return False
            try:
                fresh = serving.load(current.bundle.path, *self._load_args, verify_vectors=True)
            except EdgerecError as exc:
                self.reload_error = str(exc)
                raise
            self.reload_error = None
            if fresh.identity == current.identity:
                return False
            self._served = fresh
            return True

    def watch(self, interval: float = 2.0) -> None:
        """Reload automatically (from a daemon thread) when a new bundle is published."""
        if self._watcher is None:
            self._watcher = serving.Watcher(self._served.bundle.path, self.reload, interval)
            self._watcher.start()

    def unwatch(self) -> None:
        """Stop the watcher (waiting for a reload in progress to finish)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            if watcher is not threading.current_thread():
                watcher.join()

    # -- internals --------------------------------------------------------------------------

    def _current(self, served: serving.Served) -> Snapshot:
        """The cache snapshot for the store's current version and this model.

        A new one keeps what the one it replaces cached for users without new events.
        """
        version = self.store.version()
        snap = self._snapshot
        if snap is None or snap.version != version or snap.served is not served:
            catalogue = snap.catalogue if snap is not None else None
            items_version = self.store.items_version()
            if (catalogue is None or catalogue.version != items_version
                    or catalogue.bundle is not served.bundle):
                catalogue = Catalogue(self.store, served.bundle, items_version)
            snap = self._snapshot = Snapshot(self.store, version, served, catalogue, snap)
        return snap

    @property
    def _half_life(self) -> float | None:
        return None if self.half_life_days is None else self.half_life_days * SECONDS_PER_DAY

    def _chunks(self, ids: list[str], n: int, chunk_size: int | None,
                options: _Options | None) -> Iterator[list[Recommendations]]:
        """Top-n for each chunk of users, in order, ``BATCH_WORKERS`` chunks at a time
        (``edgerec.pipeline``: reads overlap scoring, memory bounded by the chunk size)."""
        def one(chunk: list[str]) -> list[Recommendations]:
            served = self._served
            snap = self._current(served)
            return self._recommend(served, snap, self.store.histories(chunk), n, options, order=chunk)

        if chunk_size is None:
            chunk_size = chunk_users(self.bundle.n_items)
        chunk_size = validate.count(chunk_size, "chunk_size")
        chunks = [ids[start:start + chunk_size] for start in range(0, len(ids), chunk_size)]
        return ordered_map(one, chunks, BATCH_WORKERS if len(chunks) > 1 else 1)

    def _recommend(self, served: serving.Served, snap: Snapshot, histories: dict[str, list[str]],
                   n: int, options: _Options | None, order: Sequence[str] | None = None,
                   inputs: ModelInputs | None = None) -> list[Recommendations]:
        n = validate.count(n, "n")
        order = list(histories) if order is None else order
        if inputs is None:
            inputs = _inputs(snap, served, histories, order, options)
        results = dict(zip(inputs.users, self._score(served, inputs, n, options))) if inputs.users else {}
        out = [results[u] if u in results else self._fallback(served, snap, u, histories[u], n, options)
               for u in order]
        if options is not None and options.new_arrivals:
            for recs in out:
                self._add_new_arrivals(snap, recs, histories[recs.user_id], n, options)
        if options is not None and options.explain:
            for recs in out:
                self._attach_explanations(served, recs, histories[recs.user_id])
        return out

    def _plain(self, served: serving.Served, snap: Snapshot, inputs: ModelInputs,
               n: int) -> Recommendations:
        """A request without options of one user the model scores: one ONNX call."""
        raw = core_top_k(served.bundle, served.scorer, inputs, validate.count(n, "n"))
        return _plain_results(served.bundle, snap, inputs, raw)

    def _score(self, served: serving.Served, inputs: ModelInputs, n: int,
               options: _Options | None) -> list[Recommendations]:
        """One ONNX call for the users in ``inputs``."""
        b = served.bundle
        diversify = options is not None and bool(options.diversity)
        rows = top_k(b, served.scorer, inputs, _pool(n) if diversify else n, as_ids=not diversify)
        if not diversify:
            return [Recommendations(u, recommendations(ids, scores))
                    for u, (ids, scores) in zip(inputs.users, rows)]
        out = []
        for u, (items, scores) in zip(inputs.users, rows):
            picked = mmr(items, scores, served.unit_vectors, n, options.diversity)
            out.append(Recommendations(u, [Recommendation(b.item_ids[items[p]], scores[p])
                                           for p in picked]))
        return out

    def _fallback(self, served: serving.Served, snap: Snapshot, user_id: str, history: list[str],
                  n: int, options: _Options | None) -> Recommendations:
        """Most popular active items in the store that the user has not seen (and the filter allows)."""
        skip, allowed = _outside_core(snap, set(history), options)
        pool = _pool(n) if options is not None and options.diversity else n
        picks = snap.popular(self.store, pool, skip, allowed, self._half_life)
        if pool > n:
            b = served.bundle
            positions = mmr([b.item_index.get(i, b.n_items) for i, _ in picks],
                            [s for _, s in picks], served.unit_vectors, n, options.diversity)
            picks = [picks[p] for p in positions]
        return Recommendations(user_id, [Recommendation(i, float(s)) for i, s in picks], fallback=True)

    def _add_new_arrivals(self, snap: Snapshot, recs: Recommendations, history: list[str], n: int,
                          options: _Options) -> None:
        """Put up to ``options.new_arrivals`` unseen, eligible new items in the last slots."""
        skip, allowed = _outside_core(snap, set(history) | {r.item_id for r in recs}, options)
        fresh = [i for i in snap.catalogue.new_arrivals()
                 if i not in skip and (allowed is None or i in allowed)][:min(options.new_arrivals, n)]
        if fresh:
            recs[:] = recs[:n - len(fresh)] + [Recommendation(i, math.nan) for i in fresh]
            recs.new_arrivals = fresh

    def _attach_explanations(self, served: serving.Served, recs: Recommendations,
                             history: list[str]) -> None:
        known = [r.item_id for r in recs if r.item_id in served.bundle.item_index]
        found = X.explain_items(served, recs.user_id, history, known) if known else {}
        recs[:] = [Explained(r.item_id, r.score, found[r.item_id].because if r.item_id in found else ())
                   for r in recs]

    @staticmethod
    def _item_index(bundle: Bundle, item_id: str) -> int:
        j = bundle.item_index.get(str(item_id))
        if j is None:
            raise UnknownItemError(f"item {item_id!r} is not in the model (unknown id, or added "
                                   "after training)")
        return j
