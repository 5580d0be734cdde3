"""The one validation layer for everything that enters the store.

Why one layer: the CLI, ``ingest_*``, ``Store.add_*`` and ``record*`` all write the same
tables, and a value that one entry point accepts and another refuses is a value that
eventually breaks training or serving (a NaN in metadata breaks every ``--where`` query,
a timestamp in the year 10,000 breaks ``update``). Each check here raises ``Invalid``
naming the field; the caller adds the row (a line of a file, an index into a list) and
turns it into a skipped row (ingest) or an ``InputError`` (the Python API).

The rules:
- ids (users, items) and event types: a string or an integer (not a bool), non-empty, not
  only whitespace, at most ``MAX_ID_LENGTH`` characters, no NUL, valid Unicode (no lone
  surrogates, no U+FFFD from undecodable bytes);
- weights: finite numbers with ``abs(weight) <= MAX_WEIGHT``;
- timestamps: seconds since the epoch from ``MIN_TS`` (1970-01-01) to ``MAX_TS``
  (2100-01-01 UTC), or None for "unknown";
- titles: a string (or number) of at most ``MAX_TITLE_LENGTH`` characters, no NUL;
- metadata: a JSON object of finite values (no NaN or infinity), at most
  ``MAX_METADATA_BYTES`` once serialised.
"""

from __future__ import annotations

import json
import math
from numbers import Integral, Real
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import InputError

MAX_ID_LENGTH = 256
MAX_WEIGHT = 1e9
MIN_TS = 0.0                # 1970-01-01T00:00:00Z
MAX_TS = 4_102_444_800.0    # 2100-01-01T00:00:00Z
MAX_TITLE_LENGTH = 2_000
MAX_METADATA_BYTES = 65_536

Row = TypeVar("Row")


class Invalid(ValueError):
    """One value breaks a rule; the message names the field."""


def identifier(value, field: str) -> str:
    """An id or event type as the store keeps it: a string (integers become their digits)."""
    if type(value) is str:  # the common case, before the slower abstract-class checks
        return _id_text(value, field)
    if isinstance(value, Integral) and not isinstance(value, bool):
        try:
            value = str(int(value))
        except ValueError:  # more digits than Python will print
            raise Invalid(f"{field} is an integer of more than {MAX_ID_LENGTH} digits") from None
    if not isinstance(value, str):
        raise Invalid(f"bad {field} {_show(value)} (not a string or an integer)")
    return _id_text(value, field)


def _id_text(value: str, field: str) -> str:
    if not value.strip():
        raise Invalid(f"{field} is empty")
    return _bounded_text(value, field, MAX_ID_LENGTH)


def weight(value, field: str = "weight") -> float:
    """A finite event weight (numbers or numeric strings); ``Invalid`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        raise Invalid(f"{field} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise Invalid(f"bad {field} {_show(value)}") from None
    if not math.isfinite(number) or abs(number) > MAX_WEIGHT:
        raise Invalid(f"bad {field} {_show(value)} (not finite, or beyond +-{MAX_WEIGHT:g})")
    return number


def timestamp(value, field: str = "ts") -> float | None:
    """Seconds since the epoch within [MIN_TS, MAX_TS), or None (unknown)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise Invalid(f"{field} must be seconds since the epoch, not {type(value).__name__}")
    try:
        ts = float(value)
    except OverflowError:
        ts = math.inf
    if not MIN_TS <= ts < MAX_TS:  # NaN fails too
        hint = "; milliseconds? give seconds" if MAX_TS * 1000 > ts >= MAX_TS else ""
        raise Invalid(f"bad {field} {_show(value)} (outside 1970-01-01..2100-01-01 in seconds "
                      f"since the epoch{hint})")
    return ts


def title(value, field: str = "title") -> str | None:
    """A title of bounded length, or None; ``Invalid`` otherwise."""
    if value is None:
        return None
    if isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value):
        value = str(value)
    if not isinstance(value, str):
        raise Invalid(f"{field} must be text, not {type(value).__name__}")
    return _bounded_text(value, field, MAX_TITLE_LENGTH)


def _bounded_text(value: str, field: str, limit: int) -> str:
    """Ids and titles share one rule: at most ``limit`` characters of clean text."""
    if len(value) > limit:
        raise Invalid(f"{field} is {len(value)} characters long (at most {limit})")
    _text(value, field)
    return value


def metadata(value, field: str = "metadata") -> str:
    """The metadata as the JSON text the store keeps (finite values only, keys sorted)."""
    if not isinstance(value, dict):
        raise Invalid(f"{field} must be a JSON object (dict), not {type(value).__name__}")
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:
        bad = next((k for k, v in value.items() if not _finite_json(v)), "?")
        raise Invalid(f"{field} field {_show(bad)} holds NaN or infinity (not valid JSON)") from None
    except (TypeError, RecursionError) as exc:
        raise Invalid(f"{field} is not plain JSON ({str(exc)[:80]})") from None
    if len(text) > MAX_METADATA_BYTES:  # ASCII: non-ASCII characters are escaped
        raise Invalid(f"{field} is over {MAX_METADATA_BYTES} bytes as JSON")
    return text


def count(value, name: str, low: int = 1, high: int = 1_000_000) -> int:
    """An option that counts something (n, top, chunk sizes): an integer in [low, high].

    Raises ``InputError`` directly: options are not rows."""
    if type(value) is int and low <= value <= high:  # the common case, no abstract-class check
        return value
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
        raise InputError(f"{name} must be an integer from {low} to {high}, not {_show(value)}")
    return int(value)


def event(row) -> tuple[str, str, str, float, float | None]:
    """A (user_id, item_id, event, weight, ts) row, checked and normalised."""
    if not isinstance(row, (tuple, list)) or len(row) != 5:
        raise Invalid("an event row is (user_id, item_id, event, weight, ts)")
    user, item, kind, w, ts = row
    return (identifier(user, "user_id"), identifier(item, "item_id"), identifier(kind, "event"),
            weight(w), timestamp(ts))


def item(row) -> tuple[str, str | None, str]:
    """An (item_id, title, metadata) row, checked; metadata comes back as JSON text."""
    if not isinstance(row, (tuple, list)) or len(row) != 3:
        raise Invalid("an item row is (item_id, title, metadata)")
    item_id, name, meta = row
    return identifier(item_id, "item_id"), title(name), metadata(meta)


def rows(values: Iterable, check: Callable[[object], Row], what: str = "row") -> Iterator[Row]:
    """``check`` every value as it streams past; the first bad one is an ``InputError``
    naming its position (counted from 0) and field. Raised inside a write transaction,
    it rolls the whole write back."""
    for n, value in enumerate(values):
        try:
            yield check(value)
        except Invalid as bad:
            raise InputError(f"{what} {n}: {bad}") from None


def requested(value, field: str) -> str:
    """An id that a request names (``recommend``, ``explain``): the store's rule, so None,
    bytes or a list is one ``InputError`` instead of a string like "None" that serves the
    popularity list (or a raw ``UnicodeEncodeError`` for a lone surrogate)."""
    try:
        return identifier(value, field)
    except Invalid as bad:
        raise InputError(str(bad)) from None


def _text(value: str, field: str) -> None:
    if "\x00" in value:
        raise Invalid(f"{field} contains a NUL character")
    if "\ufffd" in value:
        raise Invalid(f"{field} contains undecodable bytes (a file mixing text encodings?)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{field} is not valid Unicode (lone surrogate)") from None


def _finite_json(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
