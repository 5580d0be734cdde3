"""Checking a ``manifest.json`` against its schema (``edgerec.contract.MANIFEST_SCHEMA``).

Why a schema: bundles arrive over USB sticks and networks and are untrusted input. Every
value the runtime later indexes, sizes an array with or joins to a path is checked here,
so a wrong type, a missing key, an absurd size or a file name that leaves the bundle
directory is one ``BundleError`` line at open (or publish, or reload), never a traceback
later. What the ONNX graph itself accepts is checked against these values when a session
is started (``edgerec.serving.load``), by one test inference.

The schema is the single statement of the rules; this module walks the part of JSON
Schema it uses (type, const, required, properties, minimum/maximum, pattern, items,
minItems/maxItems, uniqueItems), so the runtime needs no ``jsonschema`` package, then
checks what JSON Schema cannot say: the id lists are as long as ``dims`` says and the
item vectors have one row per item.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from . import contract as C
from .errors import BundleError

_WORDS = {"object": "a JSON object", "string": "a JSON string", "array": "a list",
          "integer": "an integer", "number": "a number", "boolean": "true or false",
          "null": "null"}


class _Bad(Exception):
    """One schema violation; the message names the key."""


def check_manifest(manifest, file: Path) -> C.Manifest:
    """The typed ``Manifest``, or ``BundleError`` naming ``file`` and the key at fault."""
    try:
        _check(manifest)
    except _Bad as bad:
        raise BundleError(f"{file}: {bad}") from None
    return C.Manifest.of(manifest)


def _check(m) -> None:
    if not isinstance(m, dict):
        raise _Bad("manifest is not a JSON object")
    version = m.get(C.M_FORMAT_VERSION)  # first: a newer format may differ in anything
    if version != C.FORMAT_VERSION or isinstance(version, bool):
        raise _Bad(f"bundle format version {version!r}, this edgerec reads version {C.FORMAT_VERSION}")
    walk(C.MANIFEST_SCHEMA, m, "")
    dims = m[C.M_DIMS]
    for key, count in ((C.M_ITEM_IDS, dims["n_items"]), (C.M_USER_IDS, dims["n_users"])):
        if len(m[key]) != count:
            raise _Bad(f"{key} must be a list of {count} ids (dims), not {_show(m[key])}")
    shape = m.get(C.M_VECTORS, {}).get("shape")
    if shape is not None and shape[0] != dims["n_items"]:
        raise _Bad(f"{C.M_VECTORS}.shape must be [{dims['n_items']}, d], not {_show(shape)}")


def walk(schema: dict, value, path: str) -> None:
    """Raise ``_Bad`` unless ``value`` fits ``schema``; a ``description`` that starts with
    "must" is the message for any fault at or below its key."""
    try:
        _walk(schema, value, path)
    except _Bad:
        described = schema.get("description", "")
        if described.startswith("must"):
            raise _Bad(f"{path} {described}, not {_show(value)}") from None
        raise


def _walk(schema: dict, value, path: str) -> None:
    if "const" in schema and (value != schema["const"] or isinstance(value, bool)):
        raise _Bad(f"{path} must be {schema['const']!r}, not {_show(value)}")
    if not _typed(value, schema.get("type")) or not _bounded(value, schema):
        raise _Bad(f"{path} must be {_expected(schema)}, not {_show(value)}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise _Bad(f"{path} must match {schema['pattern']!r}, not {_show(value)}")
    if isinstance(value, dict):
        missing = [key for key in schema.get("required", ()) if key not in value]
        if missing:
            raise _Bad(f"{path or 'manifest'} lacks {', '.join(missing)}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                walk(sub, value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        _walk_list(schema, value, path)


def _walk_list(schema: dict, value: list, path: str) -> None:
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", math.inf):
        raise _Bad(f"{path} must hold {schema.get('minItems')} to {schema.get('maxItems')} "
                   f"entries, not {_show(value)}")
    items = schema.get("items", {})
    pattern = re.compile(items.get("pattern", ""))
    for entry in value:  # faults are reported under the list's own name
        if not (items.get("type") == "string" and type(entry) is str and pattern.search(entry)):
            walk(items, entry, path)  # the plain string case, inline: ids can be millions
    if schema.get("uniqueItems") and len(set(map(repr, value))) != len(value):
        raise _Bad(f"{path} holds the same id twice")  # the schema's unique lists are ids


def _typed(value, kinds) -> bool:
    if kinds is None:
        return True
    return any(_is(value, kind) for kind in (kinds if isinstance(kinds, list) else [kinds]))


def _is(value, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, {"object": dict, "string": str, "array": list, "integer": int,
                              "number": (int, float), "boolean": bool,
                              "null": type(None)}[kind])


def _bounded(value, schema: dict) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    return schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf)


def _expected(schema: dict) -> str:
    if "minimum" in schema and "maximum" in schema:
        return f"an integer from {schema['minimum']} to {schema['maximum']}"
    kinds = schema.get("type")
    return " or ".join(_WORDS[k] for k in (kinds if isinstance(kinds, list) else [kinds]))


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
