"""User histories and batch results as Parquet: what offline jobs on any engine read and write.

Histories (``HISTORY_SCHEMA``), one row per user::

    user_id  string         not null
    history  list<string>   the user's item ids, newest first, one per event (repeats
                            kept): the model reads the newest ``history_length`` of them,
                            and every one is excluded from the user's list as seen

Optional file metadata (what ``export_histories`` writes; a job without it still runs):
``edgerec.retired`` (a JSON list of item ids never to return) and ``edgerec.popular``
(a JSON list of [item_id, score], most popular first: what users the model cannot score
get, minus what they saw). A data lake can write this schema with its own Spark or SQL
job and skip SQLite entirely (``collect_list`` ordered by time, newest first).

Results (``RESULT_SCHEMA``), one row per user::

    user_id   string          not null
    items     list<string>    the top-n item ids, best first
    scores    list<float32>   their scores (popularity counts for fallback rows)
    fallback  bool            true: the model could not score the user (popular items)
    model     string          which bundle made the list: "<kind>:<onnx sha256[:16]>"

pyarrow is an extra (``pip install 'edgerec[arrow]'``): the embedded runtime never needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import EdgerecError, InputError
from .staging import staged_file
from .store import Store

RETIRED_KEY = b"edgerec.retired"
POPULAR_KEY = b"edgerec.popular"
# Popular items kept in an export's metadata beyond the longest history: fallback lists
# are exact for any n up to this.
EXPORT_POPULAR = 1000
PAGE_USERS = 10_000


def pyarrow():
    """The pyarrow module, or a one-line error saying how to install it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401 - loads pa.parquet
    except ImportError:
        raise EdgerecError("Parquet needs pyarrow: pip install 'edgerec[arrow]'") from None
    return pa


def history_schema():
    """The Arrow schema of histories: user_id, history (item ids, newest first)."""
    pa = pyarrow()
    return pa.schema([pa.field("user_id", pa.string(), nullable=False),
                      pa.field("history", pa.list_(pa.string()))])


def result_schema():
    """The Arrow schema of batch results (see the module docstring)."""
    pa = pyarrow()
    return pa.schema([pa.field("user_id", pa.string(), nullable=False),
                      pa.field("items", pa.list_(pa.string())),
                      pa.field("scores", pa.list_(pa.float32())),
                      pa.field("fallback", pa.bool_()),
                      pa.field("model", pa.string())])


def check_columns(schema, where: str) -> None:
    """Raise ``InputError`` naming ``where`` and the field unless ``schema`` holds histories.

    Large strings and lists (what some engines write) are accepted; extra columns are ignored.
    """
    pa = pyarrow()
    strings = (pa.types.is_string, pa.types.is_large_string)
    expected = {"user_id": "string", "history": "list<string>"}
    for name, wanted in expected.items():
        if schema.get_field_index(name) < 0:
            raise InputError(f"{where}: no column {name!r} (histories need user_id: string, "
                             "history: list<string>)")
        typ = schema.field(name).type
        ok = any(t(typ) for t in strings) if name == "user_id" else (
            (pa.types.is_list(typ) or pa.types.is_large_list(typ))
            and any(t(typ.value_type) for t in strings))
        if not ok:
            raise InputError(f"{where}: column {name!r} is {typ}, expected {wanted}")


def results_batch(scored, model: str):
    """A ``Scored`` (see ``edgerec.batchscore``) as a record batch of ``result_schema()``."""
    pa = pyarrow()
    return pa.RecordBatch.from_arrays(
        [pa.array(scored.users, pa.string()), pa.array(scored.items, pa.list_(pa.string())),
         pa.array(scored.scores, pa.list_(pa.float32())), pa.array(scored.fallback, pa.bool_()),
         pa.array([model] * len(scored.users), pa.string())], schema=result_schema())


# -- reading --------------------------------------------------------------------------------

def open_histories(path: str | Path):
    """A ``pyarrow.dataset`` of a histories file or directory, schema checked."""
    pa = pyarrow()
    import pyarrow.dataset as ds

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such histories file or directory")
    try:
        dataset = ds.dataset(str(path), format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    check_columns(dataset.schema, str(path))
    return dataset


def file_metadata(dataset) -> tuple[list[str], list[tuple[str, float]]]:
    """(retired item ids, popularity ranking) from the histories' metadata, if written."""
    meta = dataset.schema.metadata or {}
    retired = json.loads(meta[RETIRED_KEY]) if RETIRED_KEY in meta else []
    popular = [(str(i), float(s)) for i, s in json.loads(meta[POPULAR_KEY])] if POPULAR_KEY in meta else []
    return retired, popular


def parquet_chunks(dataset, rows: int) -> Iterator[tuple[list[str], list[list[str]]]]:
    """(user ids, histories) of up to ``rows`` users at a time, streamed from the files."""
    for batch in dataset.to_batches(columns=["user_id", "history"], batch_size=rows):
        if batch.num_rows:
            users = batch.column("user_id").to_pylist()
            if None in users:
                raise InputError(f"{dataset.files[0] if dataset.files else 'histories'}: "
                                 "user_id is null")
            yield users, [h or [] for h in batch.column("history").to_pylist()]


def store_chunks(store: Store, users: Iterable[str] | None, rows: int,
                 since: float | None = None) -> Iterator[tuple[list[str], list[list[str]]]]:
    """(user ids, histories) from a store: every user (in id order, one index walk) or
    ``users`` (in their order), up to ``rows`` at a time. ``since``: only users with an
    event at or after that time (their whole history, which exclusion needs)."""
    if users is None:
        for page in store.history_pages(rows):
            kept = [(u, h) for u, h, ts in page if since is None or (ts is not None and ts >= since)]
            if kept:
                yield [u for u, _ in kept], [h for _, h in kept]
        return
    for chunk in _batched(users, rows):
        found = store.histories(chunk)
        if since is not None:
            newest = store.newest_event_times(chunk)
            chunk = [u for u in chunk if newest.get(u) is not None and newest[u] >= since]
        if chunk:
            yield chunk, [found[u] for u in chunk]


def _batched(values: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for value in values:
        chunk.append(str(value))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_user_file(path: str | Path) -> Iterator[str]:
    """User ids from a file, one a line (blank lines skipped), streamed."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield line.strip()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the user list ({exc.strerror})") from None


def popularity(store: Store, n: int, exclude: int = 0, everything: bool = False,
               half_life: float | None = None) -> list[tuple[str, float]]:
    """Enough of the store's popularity ranking that n unseen items remain for any user
    (``exclude``: how many more ids a filter removes; ``everything``: the whole ranking,
    for an ``include`` filter)."""
    limit = 1 << 62 if everything else n + store.longest_history() + exclude
    return [(i, float(s)) for i, s in store.popular(limit, half_life=half_life)]


# -- writing --------------------------------------------------------------------------------

def export_histories(store: str | Path | Store, out: str | Path, users: str | Path | None = None,
                     since: float | None = None,
                     progress: Callable[[int], None] | None = None) -> int:
    """Write users' histories from a store to one Parquet file; returns users written.

    ``users``: a file of user ids, one a line (default: every user with events).
    ``since``: only users with an event at or after this time (seconds since the epoch).
    Streams ``PAGE_USERS`` users at a time, so memory stays bounded whatever the store's
    size, and the file appears only when complete. The metadata carries the retired items
    and the popularity ranking (see the module docstring).
    """
    pa = pyarrow()
    own = not isinstance(store, Store)
    db = Store.open(store, create=False) if own else store
    try:
        meta = {RETIRED_KEY: json.dumps(sorted(db.inactive_items())).encode(),
                POPULAR_KEY: json.dumps(popularity(db, EXPORT_POPULAR)).encode()}
        schema = history_schema().with_metadata(meta)
        wanted = read_user_file(users) if users is not None else None
        written = 0
        with staged_file(Path(out)) as tmp, pa.parquet.ParquetWriter(str(tmp), schema) as writer:
            for ids, histories in store_chunks(db, wanted, PAGE_USERS, since):
                writer.write_batch(pa.RecordBatch.from_arrays(
                    [pa.array(ids, pa.string()), pa.array(histories, pa.list_(pa.string()))],
                    schema=schema))
                written += len(ids)
                if progress:
                    progress(len(ids))
        return written
    finally:
        if own:
            db.close()
