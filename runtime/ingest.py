"""Reading interaction logs and item catalogues from files into the store.

Why one reader for both kinds of file: events and catalogues come in the same containers
(MovieLens dumps, CSV/TSV with a header, JSON lines), so opening, decoding, format
detection, column guessing and bad-row bookkeeping are shared; only the conversion of one
record into a store row differs (``_EventSpec.row`` / ``_ItemSpec.row``).

Why streaming: a MovieLens 25M file must not become 25 million Python dicts. Rows flow
from the file through a generator straight into one ``Store.add_events`` / ``add_items``
call (one transaction), and the report's counters are updated as the rows pass by.

Why bad rows are skipped rather than fatal: real logs contain a few broken lines; dropping
them with their line number and reason lets the user see and fix them. ``strict=True``
turns the first one into an error, and because it is raised inside the write transaction
nothing of the file lands in the store.

No SQL here: the store owns the schema and the dedupe rule (see ``store.py``).
"""

from __future__ import annotations

import csv
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain, islice
from pathlib import Path
from typing import Any, Callable, Iterator

from . import validate
from .errors import InputError
from .store import EventRow, ItemRow, Store

FORMATS = ("auto", "csv", "tsv", "jsonl", "movielens")

# Candidate column names, best first; compared after lower-casing and dropping everything
# but letters and digits, so "userId", "user_id" and "User ID" are the same name.
USER_COLUMNS = ("user_id", "user", "customer_id", "customer", "client_id", "visitor_id",
                "member_id", "account_id", "uid")
ITEM_COLUMNS = ("item_id", "item", "movie_id", "movie", "product_id", "product", "sku",
                "asin", "track_id", "song_id", "article_id", "content_id", "iid")
TIME_COLUMNS = ("timestamp", "ts", "time", "datetime", "date", "event_time",
                "event_timestamp", "created_at", "unix_timestamp")
WEIGHT_COLUMNS = ("weight", "rating", "value", "count", "plays", "play_count", "score",
                  "quantity", "qty", "clicks")
EVENT_COLUMNS = ("event", "event_type", "type", "action", "interaction", "interaction_type",
                 "behavior", "behaviour")
ITEM_ID_COLUMNS = ("item_id", "id", "movie_id", "product_id", "sku", "asin", "item",
                   "movie", "product")
TITLE_COLUMNS = ("title", "name", "item_name", "product_name", "movie_title")
CATEGORY_COLUMNS = ("categories", "genres", "category", "genre")

# MovieLens files without a header get these column names, so that they go through the
# same column guessing (and the same column options) as any file with a header.
_ML_RATINGS = ("user_id", "item_id", "rating", "timestamp")
ML_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western")
_ML_UITEM = ("item_id", "title", "release_date", "video_release_date", "url") + ML_GENRES
_ML_MOVIES_DAT = ("item_id", "title", "genres")
_NO_GENRES = "(no genres listed)"
_JSON_SAMPLE = 100  # JSON lines whose keys name the columns


@dataclass
class IngestReport:
    """What one ingest did; ``summary()`` is what the CLI prints."""

    path: str
    format: str
    rows: int
    added: int
    duplicates: int
    malformed: list[tuple[int, str]]

    def summary(self, show: int = 5) -> str:
        """One line: file, format, rows, added, duplicates, malformed."""
        text = (f"{self.path} ({self.format}): {self.rows} rows, {self.added} added, "
                f"{self.duplicates} duplicates, {len(self.malformed)} malformed")
        if self.malformed:
            shown = "; ".join(f"line {n}: {why}" for n, why in self.malformed[:show])
            more = f"; ...first {show} shown" if len(self.malformed) > show else ""
            text += f" ({shown}{more})"
        return text


@dataclass(frozen=True)
class _Layout:
    """How a file is laid out; ``columns`` is None when the first row is the header."""

    format: str                    # reported as IngestReport.format
    kind: str                      # "delimited" (csv module), "split" (str.split) or "jsonl"
    delimiter: str = ","
    columns: tuple[str, ...] | None = None
    movielens: bool = False
    flags: tuple[str, ...] = ()    # 0/1 columns whose names are categories (u.item genres)


class _BadRow(Exception):
    """One record cannot be used; the message is the reason shown to the user."""


# A resolved column: (name as the user sees it, key into the record: index or JSON key).
_Col = tuple[str, Any]


# -- public API ---------------------------------------------------------------------------


def ingest_events(store: Store, path, format: str = "auto", user_col=None, item_col=None,
                  time_col=None, weight_col=None, event_col=None, strict: bool = False,
                  default_event=None) -> IngestReport:
    """Add the interaction events of one file to the store (duplicates are skipped)."""

    def build(table: "_Table") -> Callable[[Any], EventRow]:
        spec = _EventSpec.resolve(table, user_col, item_col, time_col, weight_col, event_col,
                                  default_event)
        return spec.row

    return _ingest(path, format, "events", build, store.add_events, strict)


def ingest_items(store: Store, path, format: str = "auto", id_col=None,
                 title_col=None) -> IngestReport:
    """Add or update catalogue items (title and metadata) from one file.

    A catalogue row replaces what the store had for that item, so ``added`` counts every
    row written (new or updated) and ``duplicates`` is 0.
    """

    def build(table: "_Table") -> Callable[[Any], ItemRow]:
        return _ItemSpec.resolve(table, id_col, title_col).row

    return _ingest(path, format, "items", build, store.add_items, strict=False)


# -- the shared driver --------------------------------------------------------------------


def _ingest(path, format: str, target: str, build, write, strict: bool) -> IngestReport:
    """Open, detect, resolve columns, then stream the valid rows into one ``write`` call."""
    path = os.fspath(path)  # an int would make open() adopt (and close) a file descriptor
    if format not in FORMATS:
        raise InputError(f"{path}: unknown format {format!r} (choose {', '.join(FORMATS)})")
    with _open_lines(path) as lines:
        first, lines = _first_line(lines)
        if first is None:
            raise InputError(f"{path}: file is empty")
        layout = _layout(path, first, format, target)
        table = _Table.read(path, lines, layout)
        convert = build(table)
        report = IngestReport(str(path), layout.format, 0, 0, 0, [])
        report.added = write(_valid_rows(path, table.records, convert, report, strict))
    report.duplicates = report.rows - len(report.malformed) - report.added
    return report


def _valid_rows(path, records, convert, report: IngestReport, strict: bool) -> Iterator:
    """Yield converted rows, counting every record and noting the bad ones as they pass."""
    for lineno, rec in records:
        report.rows += 1
        try:
            if isinstance(rec, str):
                raise _BadRow(rec)
            row = convert(rec)
        except _BadRow as bad:
            if strict:
                raise InputError(f"{path}, line {lineno}: {bad}") from None
            report.malformed.append((lineno, str(bad)))
            continue
        yield row


# -- reading text -------------------------------------------------------------------------


@contextmanager
def _open_lines(path) -> Iterator[Iterator[str]]:
    """The file's lines as text, in UTF-8 or, if its first non-ASCII line is not UTF-8, latin-1.

    Deciding at the first non-ASCII line keeps the read streaming (a latin-1 file such as
    MovieLens u.item is only recognisable there, which may be far into the file). A later
    line that is not UTF-8 in a UTF-8 file (a file mixing encodings) is decoded with
    U+FFFD in place of its bad bytes, which ``edgerec.validate`` refuses: that row is
    reported, never stored garbled.
    """
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    with f:
        try:
            head = f.peek(4096)[:4096]
        except OSError as exc:
            raise InputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
        if b"\x00" in head:
            raise InputError(f"{path}: not a text file (binary data; compressed? unpack it first)")
        yield _decoded(path, f)


def _decoded(path, f) -> Iterator[str]:
    encoding = None  # decided at the first non-ASCII line
    try:
        for n, raw in enumerate(f, 1):
            if encoding is None and not raw.isascii():
                encoding = "utf-8" if _is_utf8(raw) else "latin-1"
            text = raw.decode(encoding or "ascii", "replace")
            if n == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield text
    except OSError as exc:
        raise InputError(f"{path}: read failed ({exc.strerror or exc})") from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_line(lines: Iterator[str]) -> tuple[str | None, Iterator[str]]:
    """The first non-blank line (for sniffing) and an iterator that still yields it."""
    seen = []
    for text in lines:
        seen.append(text)
        if text.strip():
            return text, chain(seen, lines)
    return None, iter(seen)


# -- format detection ---------------------------------------------------------------------

# Header-less MovieLens layouts per target, keyed by delimiter ("::" is checked first).
_MOVIELENS = {
    "events": {"::": _ML_RATINGS, "\t": _ML_RATINGS},
    "items": {"::": _ML_MOVIES_DAT, "|": _ML_UITEM},
}
_MOVIELENS_NAMES = {"events": "u.data", "items": "u.item"}
_HEADERLESS = {"events": "\t", "items": "|"}  # u.data / u.item: the single-char layouts
_BY_EXTENSION = {".dat": "movielens", ".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv",
                 ".csv": "csv"}


def _layout(path, first: str, format: str, target: str) -> _Layout:
    if format == "auto":
        name = Path(path).name.lower()
        if name == _MOVIELENS_NAMES[target]:
            format = "movielens"
        else:
            format = _BY_EXTENSION.get(Path(name).suffix) or _sniff(first, target)
    if format == "movielens":
        return _movielens(path, first, target)
    if format == "jsonl":
        return _Layout("jsonl", "jsonl")
    return _Layout(format, "delimited", "\t" if format == "tsv" else ",")


def _movielens(path, first: str, target: str) -> _Layout:
    """MovieLens ships three layouts ('::', tab or '|', csv with header); the line tells."""
    for delimiter, columns in _MOVIELENS[target].items():
        if delimiter in first:
            return _Layout("movielens", "split" if delimiter == "::" else "delimited",
                           delimiter, columns, movielens=True,
                           flags=ML_GENRES if columns is _ML_UITEM else ())
    if "," in first:  # ratings.csv / movies.csv of the newer MovieLens releases
        return _Layout("movielens", "delimited", ",", movielens=True)
    raise InputError(f"{path}: not a MovieLens {target} file (first line has none of "
                     f"{', '.join(repr(d) for d in _MOVIELENS[target])} or ',')")


def _sniff(first: str, target: str) -> str:
    """Guess from content when the name says nothing: JSON, MovieLens, TSV, else CSV."""
    line = first.strip()
    if line.startswith("{"):
        return "jsonl"
    if "::" in line:
        return "movielens"
    delimiter = _HEADERLESS[target]
    fields = line.split(delimiter)
    if len(fields) == len(_MOVIELENS[target][delimiter]) and _is_number(fields[0]) and (
            target == "items" or all(_is_number(f) for f in fields)):
        return "movielens"
    return "tsv" if "\t" in line else "csv"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- records and columns ------------------------------------------------------------------


@dataclass
class _Table:
    """Column names, the key of each in a record, and the (line number, record) stream.

    A record is a list of strings (delimited files), a dict (JSON lines) or, for a line
    that could not even be split into fields, the reason as a string.
    """

    path: str
    layout: _Layout
    names: list[str]
    keys: dict[str, Any]
    records: Iterator[tuple[int, Any]]

    @classmethod
    def read(cls, path, lines: Iterator[str], layout: _Layout) -> "_Table":
        records = _records(lines, layout)
        if layout.kind == "jsonl":
            # Columns: the keys of the first objects, not just the first one, since JSON
            # lines often leave out a key whose value is null.
            seen = list(islice(records, _JSON_SAMPLE))
            names = list(dict.fromkeys(k for _, rec in seen if isinstance(rec, dict) for k in rec))
            return cls(str(path), layout, names, {n: n for n in names}, chain(seen, records))
        if layout.columns is not None:
            names = list(layout.columns)
        else:
            lineno, header = next(records)
            if isinstance(header, str):
                raise InputError(f"{path}, line {lineno}: bad header row ({header})")
            names = [h.strip() for h in header]
        keys = {name: i for i, name in reversed(list(enumerate(names)))}
        return cls(str(path), layout, names, keys, _checked_width(records, len(names)))

    def column(self, role: str, explicit, candidates, required: bool = False) -> _Col | None:
        """Find the column for ``role``: the one named by the user, else the best guess."""
        if explicit is not None:
            for match in (lambda n: n == explicit, lambda n: n.lower() == str(explicit).lower()):
                found = next((n for n in self.names if match(n)), None)
                if found is not None:
                    return found, self.keys[found]
            raise InputError(f"{self.path}: no column {explicit!r} for the {role} "
                             f"(columns: {self._describe()})")
        by_norm: dict[str, str] = {}
        for name in self.names:
            by_norm.setdefault(_norm(name), name)
        for candidate in candidates:
            found = by_norm.get(_norm(candidate))
            if found is not None:
                return found, self.keys[found]
        if required:
            raise InputError(f"{self.path}: cannot find the {role} column (looked for "
                             f"{', '.join(candidates[:6])}, ...; columns: {self._describe()}); "
                             f"name it explicitly")
        return None

    def _describe(self) -> str:
        if not self.names:
            return "none found"
        shown = ", ".join(self.names[:20]) + (", ..." if len(self.names) > 20 else "")
        if all(_is_number(n) for n in self.names):
            shown += " - the first line looks like data; is it a header-less MovieLens file?"
        return shown


def _records(lines: Iterator[str], layout: _Layout) -> Iterator[tuple[int, Any]]:
    """(line number, record) for every non-blank line; numbers count every physical line."""
    if layout.kind == "jsonl":
        return _json_records(lines)
    if layout.kind == "split":
        return ((n, text.rstrip("\r\n").split(layout.delimiter))
                for n, text in enumerate(lines, 1) if text.strip())
    return _csv_records(lines, layout)


def _json_records(lines: Iterator[str]) -> Iterator[tuple[int, Any]]:
    for lineno, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except RecursionError:
            yield lineno, "invalid JSON (nested too deeply)"
            continue
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            yield lineno, f"invalid JSON ({reason} at column {getattr(exc, 'colno', '?')})"
            continue
        yield lineno, obj if isinstance(obj, dict) else "not a JSON object"


def _csv_records(lines: Iterator[str], layout: _Layout) -> Iterator[tuple[int, Any]]:
    """csv.reader handles quoting (titles with commas); line_num tracks multi-line fields.

    Header-less MovieLens files are read with quoting off: their fields are never quoted
    and a title starting with a quote must stay as it is.
    """
    quoting = csv.QUOTE_NONE if layout.movielens and layout.columns else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=layout.delimiter, quoting=quoting)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"unreadable line ({exc})"
        else:
            if len(fields) > 1 or (fields and fields[0].strip()):
                yield start, fields
        start = reader.line_num + 1


def _checked_width(records, width: int) -> Iterator[tuple[int, Any]]:
    for lineno, rec in records:
        if isinstance(rec, list) and len(rec) != width:
            rec = f"wrong number of fields: expected {width}, found {len(rec)}"
        yield lineno, rec


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


# -- field values -------------------------------------------------------------------------


def _value(rec, col: _Col):
    """The column's value in a record, None when absent or empty."""
    value = rec[col[1]] if isinstance(rec, list) else rec.get(col[1])
    if isinstance(value, str):
        value = value.strip()
    return None if value is None or value == "" else value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _checked(check, value, col: _Col, *args):
    """``check`` (from ``edgerec.validate``) on a field; a failure is a bad row naming the column."""
    try:
        return check(value, *args)
    except validate.Invalid as bad:
        raise _BadRow(f"{bad} in column {col[0]!r}") from None


def _id(rec, col: _Col, role: str) -> str:
    """Ids are strings: JSON 123 (or 123.0) and CSV "123" name the same user."""
    value = _value(rec, col)
    if value is None:
        raise _BadRow(f"missing {role} id in column {col[0]!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _checked(validate.identifier, value, col, f"{role} id")


def _weight(rec, col: _Col | None) -> float:
    value = None if col is None else _value(rec, col)
    return 1.0 if value is None else _checked(validate.weight, value, col)


def _timestamp(rec, col: _Col | None) -> float | None:
    value = None if col is None else _value(rec, col)
    if value is None:
        return None
    try:
        return validate.timestamp(_seconds(value))
    except validate.Invalid:
        raise _BadRow(f"bad timestamp {_show(value)} in column {col[0]!r} (outside "
                      "1970-01-01..2100-01-01)") from None
    except (TypeError, ValueError, OverflowError):
        raise _BadRow(f"bad timestamp {_show(value)} in column {col[0]!r}") from None


def _seconds(value) -> float:
    """Seconds since the epoch from a number (ms when > 1e11) or an ISO-8601 string.

    1e11 s is the year 5138, while 1e11 ms is 1973: no real log is ambiguous.
    """
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return _iso_seconds(value)
    ts = float(value)
    return ts / 1000.0 if abs(ts) > 1e11 else ts


def _iso_seconds(text: str) -> float:
    """A naive time is taken as UTC: logs rarely say, and UTC keeps order across machines."""
    if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not accept "Z"
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _categories(value) -> list[str]:
    """'Action|Comedy', 'a, b' or a JSON list; MovieLens' "(no genres listed)" is none."""
    if isinstance(value, list):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        if value == _NO_GENRES:
            return []
        parts = value.split("|" if "|" in value else ",")
    else:
        parts = [str(value)]
    return [p.strip() for p in parts if p.strip()]


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EventSpec:
    user: _Col
    item: _Col
    time: _Col | None
    weight: _Col | None
    event: _Col | None
    default_event: str

    @classmethod
    def resolve(cls, table: _Table, user_col, item_col, time_col, weight_col, event_col,
                default_event) -> "_EventSpec":
        # The candidate lists do not overlap, so one column never gets two roles by guess.
        user = table.column("user", user_col, USER_COLUMNS, required=True)
        item = table.column("item", item_col, ITEM_COLUMNS, required=True)
        time = table.column("time", time_col, TIME_COLUMNS)
        weight = table.column("weight", weight_col, WEIGHT_COLUMNS)
        event = table.column("event", event_col, EVENT_COLUMNS)
        if not default_event:
            # A rating column means the events are ratings (header-less MovieLens files get
            # one by name); anything else is a generic interaction.
            rated = weight is not None and _norm(weight[0]) == "rating"
            default_event = "rating" if rated else "interaction"
        return cls(user, item, time, weight, event, default_event)

    def row(self, rec) -> EventRow:
        event = _value(rec, self.event) if self.event is not None else None
        return (_id(rec, self.user, "user"), _id(rec, self.item, "item"),
                self.default_event if event is None
                else _checked(validate.identifier, event, self.event, "event type"),
                _weight(rec, self.weight), _timestamp(rec, self.time))


# -- items --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ItemSpec:
    id: _Col
    title: _Col | None
    categories: _Col | None
    flags: tuple[_Col, ...]     # u.item genre flags: the column name is the category
    others: tuple[_Col, ...]    # every other column goes into metadata under its name
    reserved: frozenset         # JSON keys not copied into metadata

    @classmethod
    def resolve(cls, table: _Table, id_col, title_col) -> "_ItemSpec":
        item = table.column("item id", id_col, ITEM_ID_COLUMNS, required=True)
        title = table.column("title", title_col, TITLE_COLUMNS)
        categories = table.column("categories", None, CATEGORY_COLUMNS)
        flags = tuple((n, table.keys[n]) for n in table.layout.flags)
        used = {c[0] for c in (item, title, categories) if c} | set(table.layout.flags)
        others = tuple((n, table.keys[n]) for n in table.names if n not in used and n)
        return cls(item, title, categories, flags, others, frozenset(used))

    def row(self, rec) -> ItemRow:
        title = _value(rec, self.title) if self.title is not None else None
        meta = self.metadata(rec)
        try:
            validate.metadata(meta)
        except validate.Invalid as bad:
            raise _BadRow(str(bad)) from None
        return (_id(rec, self.id, "item"),
                None if title is None else _checked(validate.title, title, self.title), meta)

    def metadata(self, rec) -> dict:
        """Other non-empty fields (strings from text files, JSON values kept as they are)."""
        if isinstance(rec, dict):
            meta = {k: v for k, v in rec.items()
                    if k not in self.reserved and v is not None and v != ""}
        else:
            meta = {name: rec[i].strip() for name, i in self.others if rec[i].strip()}
        if self.categories is not None:
            value = _value(rec, self.categories)
            meta["categories"] = [] if value is None else _categories(value)
        elif self.flags:
            meta["categories"] = [name for name, i in self.flags if rec[i].strip() == "1"]
        return meta
