"""Offline top-n for every user, on this machine or on a cluster: ``edgerec batch``.

One driver for three engines. Everything that can be wrong is checked before any work
starts (the bundle is opened and verified with an ONNX Runtime session, a Parquet source's
schema is read), so a bad input costs one clear line, not a half-run cluster job. Every
engine maps the same ``BatchScorer`` over record batches of histories (map-only: the
item table lives in the ONNX model, so there is no shuffle):

``local``  this process: histories streamed from the store or Parquet, chunks scored on
           ``workers`` threads, written as CSV (``--out x.csv``, as before) or Parquet.
``ray``    Ray Data: ``read_parquet`` -> ``map_batches`` (one actor, one session, per
           worker) -> ``write_parquet`` (``edgerec.ray_engine``).
``spark``  Spark: ``mapInArrow`` over the Parquet histories -> Parquet
           (``edgerec.spark_engine``).

A store source is first exported to Parquet (``export_histories``) for the cluster
engines. Output is written to a sibling temporary path and moved into place only when
the job completed, so ``out`` holds the previous complete result or the new one, never a
mix; re-running overwrites it cleanly.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import serving
from .batchscore import BatchScorer, Scored, worker_cpus
from .errors import InputError
from .filters import Filter
from .histories import (export_histories, file_metadata, open_histories, parquet_chunks,
                        popularity, pyarrow, read_user_file, result_schema, results_batch,
                        store_chunks)
from .pipeline import ordered_map
from .staging import staged_dir, staged_file
from .store import Store
from .topn import chunk_users

ENGINES = ("local", "ray", "spark")
Progress = Callable[[int, int], None]  # (users done, users in all)


# -- sinks ----------------------------------------------------------------------------------

class CsvSink:
    """user_id,rank,item_id,score rows, the format ``batch`` has always written."""

    def __init__(self, path: Path):
        self.fh = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["user_id", "rank", "item_id", "score"])
        self.rows = 0

    def write(self, scored: Scored, model: str) -> None:
        """Append one chunk's ranked rows."""
        for user, items, scores in zip(scored.users, scored.items, scored.scores):
            self.writer.writerows((user, rank, i, f"{s:.6g}")
                                  for rank, (i, s) in enumerate(zip(items, scores), 1))
            self.rows += len(items)

    def close(self) -> None:
        """Flush and close the file (the caller moves it into place)."""
        self.fh.close()


class ParquetSink:
    """``result_schema()`` rows into one Parquet file, a row group per chunk."""

    def __init__(self, path: Path):
        pa = pyarrow()
        path.mkdir(parents=True, exist_ok=True)
        self.writer = pa.parquet.ParquetWriter(str(path / "part-00000.parquet"), result_schema())
        self.rows = 0

    def write(self, scored: Scored, model: str) -> None:
        """Append one chunk as a row group."""
        self.writer.write_batch(results_batch(scored, model))
        self.rows += sum(map(len, scored.items))

    def close(self) -> None:
        """Finish the Parquet file (footer written; the caller moves it into place)."""
        self.writer.close()


def run_local(scorer: BatchScorer, chunks: Iterable[tuple[list[str], list[list[str]]]], sink,
              workers: int, progress: Callable[[int], None] | None = None) -> int:
    """Score ``chunks`` of (users, histories) on ``workers`` threads into ``sink``;
    returns users written. The sink is closed (complete) when this returns."""
    model = scorer.model().name
    users = 0
    try:
        for scored in ordered_map(lambda chunk: scorer.score_rows(*chunk), chunks, workers):
            sink.write(scored, model)
            users += len(scored.users)
            if progress:
                progress(len(scored.users))
    finally:
        sink.close()
    return users


# -- the driver -----------------------------------------------------------------------------

def is_store(path: Path) -> bool:
    """Whether ``path`` is a SQLite file (else it is taken for Parquet histories)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return False


def batch(source: str | Path, bundle: str | Path, out: str | Path, n: int = 10, *,
          engine: str = "local", workers: int | None = None, cpus_per_worker: int = 1,
          address: str | None = None, users: str | Path | None = None,
          include: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
          where: dict | None = None, exclude_seen: bool = True, provider: str = "cpu",
          progress: Progress | None = None) -> dict:
    """Top-n of every user in ``source`` (a store, or Parquet histories) into ``out``.

    ``out``: a directory of Parquet files (``result_schema()``), or for the local engine
    a ``.csv`` file (user_id,rank,item_id,score). ``engine``: local, ray or spark, with
    ``workers`` of ``cpus_per_worker`` CPUs each (ONNX Runtime gets that many threads);
    ``address``: a Ray cluster address or Spark master URL (default: a local one).
    ``users``: a file of user ids (store sources only). ``include``/``exclude``: only /
    never these item ids; ``where``: catalogue metadata to match, as in
    ``Recommender.recommend`` (store sources only: Parquet histories carry no catalogue).
    ``progress(done, total)`` is called as local chunks finish.
    Returns a summary: users, engine, workers, out, cluster (where it ran: the Ray
    address or Spark master), seconds.
    """
    started = time.perf_counter()
    out, source = Path(out), Path(source)
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if int(cpus_per_worker) < 1 or (workers is not None and int(workers) < 1):
        raise InputError("--workers and --cpus-per-worker must be at least 1")
    as_csv = out.suffix.lower() == ".csv"
    if as_csv and engine != "local":
        raise InputError(f"{out}: the {engine} engine writes Parquet; give --out a directory")
    served = serving.load(bundle, provider, threads=cpus_per_worker)  # a bad bundle fails here
    workers = workers or max(1, worker_cpus() // cpus_per_worker)
    options = dict(n=n, exclude_seen=exclude_seen, exclude=exclude, threads=cpus_per_worker,
                   provider=provider)
    if is_store(source):
        with contextlib.closing(Store.open(source, create=False)) as store:
            include = allowed_items(store, include, where)
            scorer = BatchScorer(str(bundle), include=include, retired=sorted(store.inactive_items()),
                                 popular=popularity(store, n, len(exclude or ()), include is not None),
                                 **options)
            done = _run(scorer, served, store, None, users, out, engine, workers, address, progress)
    else:
        if users is not None:
            raise InputError("--users applies to a store source; filter the Parquet histories instead")
        if where:
            raise InputError("--where matches the catalogue of a store source; Parquet histories "
                             "carry none: give --include item ids instead")
        dataset = open_histories(source)
        retired, popular = file_metadata(dataset)
        scorer = BatchScorer(str(bundle), include=include, retired=retired, popular=popular,
                             **options)
        done = _run(scorer, served, None, dataset, None, out, engine, workers, address, progress)
    return {"users": done, "engine": engine, "workers": workers, "out": str(out),
            "cluster": _cluster(engine), "seconds": time.perf_counter() - started}


def allowed_items(store: Store, include: Sequence[str] | None,
                  where: dict | None) -> list[str] | None:
    """``include`` narrowed to the catalogue items matching ``where`` (None: no limit).

    Batch scorers take item ids, not a store, so a metadata filter becomes the ids it
    allows here, once per job, as ``Recommender.recommend`` does per request.
    """
    if not where:
        return include
    return sorted(Filter.of(include, None, where).allowed(store, frozenset()))


def _run(scorer: BatchScorer, served, store: Store | None, dataset, users, out: Path, engine: str,
         workers: int, address: str | None, progress: Progress | None) -> int:
    """Stage the output, run the engine, move the output into place; returns users."""
    rows = chunk_users(served.bundle.n_items)
    if engine == "local":
        total = _count(store, dataset, users)
        counted = _counter(progress, total)
        chunks = (store_chunks(store, None if users is None else read_user_file(users), rows)
                  if store is not None else parquet_chunks(dataset, rows))
        scorer.over(served)
        if out.suffix.lower() == ".csv":
            with staged_file(out) as tmp:
                return run_local(scorer, chunks, CsvSink(tmp), workers, counted)
        with staged_dir(out) as stage:
            return run_local(scorer, chunks, ParquetSink(stage / "result"), workers, counted)
    with staged_dir(out) as stage:
        if store is not None:
            histories = stage / "histories.parquet"
            export_histories(store, histories, users)
        else:
            histories = Path(dataset.files[0]) if len(dataset.files) == 1 else None
            histories = str(histories or _dataset_root(dataset))
        if engine == "ray":
            from .ray_engine import run
        else:
            from .spark_engine import run
        return run(str(histories), scorer, str(stage / "result"), workers, scorer.threads,
                   address, rows)


def _cluster(engine: str) -> str:
    """Where the job ran: "local", the Ray cluster's address, or the Spark master URL."""
    if engine == "ray":
        from .ray_engine import cluster
    elif engine == "spark":
        from .spark_engine import cluster
    else:
        return "local"
    return cluster()


def _dataset_root(dataset) -> str:
    """The common directory of a multi-file dataset."""
    return os.path.commonpath(dataset.files)


def _count(store: Store | None, dataset, users) -> int:
    if store is None:
        return dataset.count_rows()
    if users is not None:
        return sum(1 for _ in read_user_file(users))
    return store.user_count()


def _counter(progress: Progress | None, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    done = [0]

    def step(count: int) -> None:
        done[0] += count
        progress(done[0], total)

    return step
