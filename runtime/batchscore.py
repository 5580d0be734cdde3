"""``BatchScorer``: one engine-independent map step, histories in, top-n lists out.

Ray Data, Spark and the local ``batch`` all run this one callable: an Arrow record batch
(or table) of histories (``edgerec.histories.HISTORY_SCHEMA``) becomes one of results
(``RESULT_SCHEMA``). It builds the scoring core's inputs with ``model_inputs`` and ranks
with ``edgerec.topn``, the code ``Recommender.recommend_many`` runs, so a list computed
on a cluster is the list the embedded recommender would serve.

It pickles as its options only: ONNX Runtime sessions do not pickle, and each worker
opens its own on first use, with as many intra-op threads as the engine gave the worker
(no oversubscription when W workers of t CPUs share a machine). The session is kept per
process (Spark re-unpickles the function for every task; its Python workers live on).
"""

from __future__ import annotations

import os
import threading
from itertools import chain
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Sequence

from . import contract as C
from . import filters, serving
from .errors import InputError
from .filters import Filter
from .inputs import model_inputs
from .topn import chunk_users, popular_unseen, top_k

# Set to a file path, the first call in any worker that finds no such file creates it and
# kills its own process: a worker dying mid-job, for testing the engines' retries.
FAIL_ONCE_ENV = "EDGEREC_TEST_FAIL_ONCE"

_LOADED: dict[tuple, "_Model"] = {}
_LOAD_LOCK = threading.Lock()


class Scored(NamedTuple):
    """Results for a batch of users, column by column, in input order."""

    users: list[str]
    items: list[list[str]]
    scores: list[list[float]]
    fallback: list[bool]


@dataclass(frozen=True, eq=False)
class _Model:
    """What a worker derives once from the bundle and options."""

    served: serving.Served
    extra: list[int]  # retired and excluded item indices
    mask: object  # item_mask for ``include``, or None
    allowed: frozenset | None
    skip: frozenset  # ids a fallback list never holds (retired, excluded)
    name: str


def worker_cpus() -> int:
    """CPUs this worker may use: what the engine set (Ray sets OMP_NUM_THREADS to the
    actor's num_cpus), else the CPUs this process is allowed to run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def model_name(bundle) -> str:
    """The ``model`` column: the bundle's kind and ONNX checksum (which model made a list)."""
    return f"{bundle.kind}:{bundle.manifest.onnx.sha256[:16]}"


@dataclass
class BatchScorer:
    """Top-``n`` for record batches of histories; options as ``Recommender.recommend``.

    ``retired``: item ids never returned. ``include``/``exclude``: only / never these
    item ids. ``popular``: the popularity ranking [(item_id, score), ...] that users the
    model cannot score (unknown to a model that does not fold in, or no known item in the
    history) get, minus what they saw; empty: such users get an empty list. Their rows
    have ``fallback`` true. ``exclude_seen=False`` lets seen items come back. ``threads``:
    ONNX Runtime intra-op threads (default ``worker_cpus()``).
    """

    bundle: str
    n: int = 10
    exclude_seen: bool = True
    retired: Sequence[str] = ()
    include: Sequence[str] | None = None
    exclude: Sequence[str] | None = None
    popular: Sequence[tuple[str, float]] = ()
    threads: int | None = None
    provider: str = "cpu"
    fail_once: str | None = field(default_factory=lambda: os.environ.get(FAIL_ONCE_ENV))

    def __post_init__(self):
        if int(self.n) < 1:
            raise InputError(f"n must be at least 1, not {self.n}")
        self.bundle = str(self.bundle)
        self._model_cache: _Model | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_model_cache"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _model_cache=None)

    def at(self, bundle: str, threads: int | None = None) -> "BatchScorer":
        """The same scorer over a copy of the bundle elsewhere (an executor's local copy)."""
        return replace(self, bundle=str(bundle), threads=threads or self.threads)

    def __call__(self, batch):
        """Histories (``pyarrow.RecordBatch`` or ``Table``) -> results of the same kind."""
        from .histories import check_columns, results_batch

        check_columns(batch.schema, "record batch")
        users = batch.column("user_id").to_pylist()
        if None in users:
            raise InputError(f"user_id is null in row {users.index(None)} of a record batch")
        histories = [h or [] for h in batch.column("history").to_pylist()]
        rows = chunk_users(self.model().served.bundle.n_items)  # bounded score buffers
        parts = [self.score_rows(users[i:i + rows], histories[i:i + rows])
                 for i in range(0, len(users), rows)]
        out = results_batch(Scored(*(list(chain.from_iterable(col)) for col in zip(*parts)))
                            if parts else Scored([], [], [], []), self.model().name)
        if hasattr(batch, "to_batches"):  # a Table in (Ray), a Table out
            import pyarrow as pa

            return pa.Table.from_batches([out])
        return out

    def score_rows(self, users: list[str], histories: list[list[str]]) -> Scored:
        """Top-n for ``users`` with these histories (item ids, newest first), in order."""
        self._maybe_fail()
        m = self.model()
        bundle = m.served.bundle
        by_user = dict(zip(users, histories))
        inputs = model_inputs(bundle, by_user, users, m.extra, m.mask, self.exclude_seen)
        ranked = dict(zip(inputs.users, top_k(bundle, m.served.scorer, inputs, self.n)))
        out = Scored([], [], [], [])
        for user in users:
            found = ranked.get(user)
            if found is None:
                seen = set(by_user[user]) if self.exclude_seen else set()
                picks = popular_unseen(self.popular, self.n, seen | m.skip, m.allowed)
                found = [i for i, _ in picks], [float(s) for _, s in picks]
            out.users.append(user)
            out.items.append(found[0])
            out.scores.append(found[1])
            out.fallback.append(user not in ranked)
        return out

    def over(self, served: serving.Served) -> "BatchScorer":
        """This scorer on a model already loaded in this process (``Recommender.batch``)."""
        self._model_cache = self._load(served)
        return self

    def model(self) -> _Model:
        """The bundle, session and eligibility, loaded on first use in this process."""
        if self._model_cache is None:
            threads = self.threads or worker_cpus()
            key = (self.bundle, threads, self.provider, serving.stamp(self.bundle),
                   frozenset(self.retired), self.include and frozenset(self.include),
                   frozenset(self.exclude or ()))
            with _LOAD_LOCK:
                if key not in _LOADED:
                    _LOADED.clear()  # one model per worker process
                    _LOADED[key] = self._load(serving.load(self.bundle, self.provider, threads))
                self._model_cache = _LOADED[key]
        return self._model_cache

    def _load(self, served: serving.Served) -> _Model:
        bundle = served.bundle
        retired = frozenset(map(str, self.retired))
        flt = Filter.of(self.include, self.exclude)
        allowed = flt.allowed(None, retired) if flt is not None else None
        extra, mask = filters.eligibility(
            flt, bundle.item_index, C.known_indices(bundle.item_index, retired),
            lambda f: filters.mask(allowed, bundle.item_index, bundle.n_items) if f.restricts else None)
        skip = retired | (flt.exclude if flt is not None else frozenset())
        return _Model(served, extra, mask, allowed, skip, model_name(bundle))

    def _maybe_fail(self) -> None:
        if not self.fail_once:
            return
        try:
            os.close(os.open(self.fail_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(17)  # noqa: SLF001 - the test hook: this worker dies mid-job
