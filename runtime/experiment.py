"""A/B experiments: which variant serves each user, and a log of what each list showed.

An experiment is a small declarative file (JSON, or TOML on Python 3.11+)::

    {"name": "home-v2", "window_hours": 24, "control": "A",
     "outcomes": {"click": ["click"], "conversion": ["purchase"]},
     "variants": [{"name": "A", "bundle": "models/mf", "share": 0.5},
                  {"name": "B", "bundle": "models/seq", "share": 0.5,
                   "options": {"diversity": 0.3}}]}

Bundle paths are relative to the file's folder; ``options`` are ``Recommender.recommend``
keywords; shares must sum to 1. ``salt`` defaults to the name and ``control`` to the first
variant.

Assignment: sha256("{salt}:{user_id}") read as a number in [0, 1) picks the variant whose
cumulative share interval holds it. It depends on nothing but the salt and the id, so it
is the same after a restart and on every machine, and two experiments (different salts)
assign independently of each other.

``Experiment.open(config, store)`` stores the config in the store (so a report needs only
the store) and serves each user through their variant's ``Recommender`` (one per bundle,
opened on first use, all sharing one ``Store``); every served list is logged as
impressions in one transaction. Outcomes are ordinary events (``record``); the report
(``edgerec.abtest``) attributes them to impressions.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from . import contract as C
from . import feedback
from .bundle import read_manifest
from .errors import EdgerecError, InputError
from .recommender import Recommender, _Options
from .results import Recommendations
from .store import Store

DEFAULT_WINDOW_HOURS = 24.0
DEFAULT_OUTCOMES = {"click": ("click",), "conversion": ("purchase",)}
SHARE_TOLERANCE = 1e-6
CONFIG_KEYS = {"name", "salt", "description", "window_hours", "control", "outcomes", "variants"}
VARIANT_KEYS = {"name", "bundle", "share", "options"}
# What a variant may set: exactly the per-request keywords of Recommender.recommend.
OPTION_KEYS = frozenset(name for name, p in inspect.signature(Recommender.recommend).parameters.items()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY)


def unit_hash(salt: str, user_id: str) -> float:
    """sha256("{salt}:{user_id}") as a uniform number in [0, 1) (its first 64 bits)."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


@dataclass(frozen=True)
class Variant:
    name: str
    bundle: Path
    share: float
    options: dict


@dataclass(frozen=True)
class Config:
    """A validated experiment definition (see the module docstring for the file format)."""

    name: str
    salt: str
    window_hours: float
    control: str
    outcomes: dict[str, tuple[str, ...]]
    variants: tuple[Variant, ...]
    source: str  # where it came from, for error messages

    def variant_for(self, user_id: str) -> Variant:
        """The user's variant: the cumulative share interval holding ``unit_hash``."""
        u = unit_hash(self.salt, str(user_id))
        total = 0.0
        for variant in self.variants:
            total += variant.share
            if u < total:
                return variant
        return self.variants[-1]  # shares sum to 1 within rounding

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    @property
    def assignment(self) -> tuple:
        """What decides who gets which variant: changing it mid-experiment moves users."""
        return self.salt, tuple((v.name, v.share) for v in self.variants)

    def to_dict(self) -> dict:
        """The config as stored (bundle paths absolute, defaults filled in)."""
        return {"name": self.name, "salt": self.salt, "window_hours": self.window_hours,
                "control": self.control, "outcomes": {k: list(v) for k, v in self.outcomes.items()},
                "variants": [{"name": v.name, "bundle": str(v.bundle), "share": v.share,
                              "options": v.options} for v in self.variants]}


def load_config(source: str | Path | Mapping) -> Config:
    """Read and validate a config file (.toml as TOML, anything else as JSON) or a dict.

    A dict's relative bundle paths are taken from the working directory. Every problem is
    an ``InputError`` of one line naming the file and the field.
    """
    if isinstance(source, Mapping):
        return parse_config(source, "experiment config", Path.cwd())
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the experiment config ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:
            raise InputError(f"{path}: TOML configs need Python 3.11 or newer; write it as JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
    return parse_config(data, str(path), path.resolve().parent)


def parse_config(data, source: str, base: Path) -> Config:
    """Validate a parsed config; ``source`` names it in errors, ``base`` anchors bundle paths."""
    def fail(field: str, message: str):
        raise InputError(f"{source}: {field}: {message}")

    if not isinstance(data, Mapping):
        fail("(top level)", "must be a table/object of settings")
    for key in set(data) - CONFIG_KEYS:
        fail(key, f"unknown setting; use {', '.join(sorted(CONFIG_KEYS))}")
    name = _text(data.get("name"), "name", fail)
    salt = _text(data.get("salt", name), "salt", fail)
    window = data.get("window_hours", DEFAULT_WINDOW_HOURS)
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
        fail("window_hours", f"must be a positive number of hours, not {window!r}")
    outcomes = _outcomes(data.get("outcomes", {}), fail)
    raw = data.get("variants")
    if not isinstance(raw, list) or len(raw) < 2:
        fail("variants", "must be a list of at least two variants")
    variants = tuple(_variant(v, f"variants[{i}]", base, fail) for i, v in enumerate(raw))
    names = [v.name for v in variants]
    if len(set(names)) < len(names):
        fail("variants", f"variant names must be unique, not {names}")
    total = sum(v.share for v in variants)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        fail("variants", f"shares must sum to 1, not {total:g}")
    control = data.get("control", names[0])
    if control not in names:
        fail("control", f"{control!r} is not a variant ({', '.join(names)})")
    return Config(name, salt, float(window), control, outcomes, variants, source)


def _text(value, field: str, fail) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(field, f"must be a non-empty string, not {value!r}")
    return value


def _outcomes(value, fail) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        fail("outcomes", 'must map "click" and/or "conversion" to lists of event types')
    for key in set(value) - set(DEFAULT_OUTCOMES):
        fail(f"outcomes.{key}", f"unknown outcome; use {', '.join(DEFAULT_OUTCOMES)}")
    out = dict(DEFAULT_OUTCOMES)
    for key, types in value.items():
        if (not isinstance(types, list) or not types
                or not all(isinstance(t, str) and t for t in types)):
            fail(f"outcomes.{key}", f"must be a non-empty list of event types, not {types!r}")
        out[key] = tuple(types)
    return out


def _variant(value, field: str, base: Path, fail) -> Variant:
    if not isinstance(value, Mapping):
        fail(field, "must be a table/object with name, bundle, share and options")
    for key in set(value) - VARIANT_KEYS:
        fail(f"{field}.{key}", f"unknown setting; use {', '.join(sorted(VARIANT_KEYS))}")
    name = _text(value.get("name"), f"{field}.name", fail)
    bundle = _text(value.get("bundle"), f"{field}.bundle", fail)
    share = value.get("share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        fail(f"{field}.share", f"must be a number in (0, 1], not {share!r}")
    options = value.get("options", {})
    if not isinstance(options, Mapping):
        fail(f"{field}.options", f"must be a table/object of recommend options, not {options!r}")
    for key in set(options) - OPTION_KEYS:
        fail(f"{field}.options.{key}", f"unknown option; use {', '.join(sorted(OPTION_KEYS))}")
    try:
        _Options.of(**options)  # the runtime's own checks of the values
    except (EdgerecError, TypeError, ValueError) as exc:
        fail(f"{field}.options", str(exc))
    return Variant(name, (base / bundle).resolve(), float(share), dict(options))


def register(store: Store, config: Config) -> None:
    """Store the config, refusing a changed assignment of an experiment already in the store.

    New salt, variant names or shares would move users between variants mid-experiment and
    mix two designs in one report; bundles, options, window and outcomes may change (the
    report uses the latest).
    """
    stored = store.experiment_config(config.name)
    if stored is not None:
        before = parse_config(stored, f"{store.path}: experiment {config.name!r}", Path("/"))
        if before.assignment != config.assignment:
            raise InputError(
                f"{config.source}: experiment {config.name!r} already runs in {store.path} with "
                "another salt, variants or shares; changing them would move users between "
                "variants, so give the new design a new name")
    store.save_experiment(config.name, config.to_dict())


def stored_config(store: Store, name: str) -> Config:
    """The config saved in the store by ``Experiment.open`` (for reports)."""
    stored = store.experiment_config(name)
    if stored is None:
        known = ", ".join(store.experiment_names()) or "none"
        raise InputError(f"{store.path}: no experiment named {name!r} (experiments: {known})")
    return parse_config(stored, f"{store.path}: experiment {name!r}", Path("/"))


class Experiment:
    """Serves each user through their variant and logs every list as impressions.

    ``recommend`` returns the variant's ``Recommendations`` with two more attributes,
    ``variant`` and ``request_id``. Thread-safe like ``Recommender``.
    """

    def __init__(self, config: Config, store: Store, provider: str | None = None, *,
                 event_weights: Mapping[str, float] | None = None, watch: float | None = None,
                 owns_store: bool = False):
        self.config = config
        self.store = store
        self.event_weights = {**feedback.DEFAULT_EVENT_WEIGHTS, **(event_weights or {})}
        self._provider, self._watch, self._owns_store = provider, watch, owns_store
        self._recommenders: dict[str, Recommender] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, config: str | Path | Mapping | Config, store: str | Path | Store,
             provider: str | None = None, *, event_weights: Mapping[str, float] | None = None,
             watch: float | None = None) -> "Experiment":
        """Validate ``config`` (a file, a dict or a ``Config``), check every variant's bundle
        manifest, and register the experiment in ``store`` (a path or an open ``Store``).

        ``provider`` and ``watch`` (hot reload, seconds) apply to every variant's
        ``Recommender``; ``event_weights`` to ``record``.
        """
        config = config if isinstance(config, Config) else load_config(config)
        for i, variant in enumerate(config.variants):  # fail now, not at some user's request
            manifest = read_manifest(variant.bundle)
            if variant.options.get("diversity") and C.M_VECTORS not in manifest:
                raise InputError(f"{config.source}: variants[{i}].options.diversity: bundle "
                                 f"{variant.bundle} ({manifest[C.M_MODEL_KIND]}) has no item "
                                 "vectors to diversify with")
        owns = not isinstance(store, Store)
        opened = Store.open(store, create=False) if owns else store
        try:
            register(opened, config)
        except BaseException:
            if owns:
                opened.close()
            raise
        return cls(config, opened, provider, event_weights=event_weights, watch=watch,
                   owns_store=owns)

    @property
    def name(self) -> str:
        return self.config.name

    def variant_for(self, user_id: str) -> str:
        """The name of the user's variant (stable: see ``unit_hash``)."""
        return self.config.variant_for(user_id).name

    def recommender(self, variant: str) -> Recommender:
        """The ``Recommender`` serving ``variant``, opened on first use."""
        with self._lock:
            rec = self._recommenders.get(variant)
            if rec is None:
                rec = Recommender.over(self.config.variant(variant).bundle, self.store,
                                       self._provider, event_weights=self.event_weights)
                if self._watch:
                    rec.watch(self._watch)
                self._recommenders[variant] = rec
            return rec

    def recommend(self, user_id: str, n: int = 10, *, ts: float | None = None,
                  **options) -> Recommendations:
        """Top-n for the user from their variant, logged as impressions (positions 1..n).

        ``options`` are further ``Recommender.recommend`` keywords (a page's filter, say);
        one the variant itself sets is an error, since it is what the experiment compares.
        ``ts`` (default now) stamps the impressions.
        """
        user_id = str(user_id)
        variant = self.config.variant_for(user_id)
        clash = sorted(set(options) & set(variant.options))
        if clash:
            raise InputError(f"experiment {self.name!r}: variant {variant.name!r} sets "
                             f"{', '.join(clash)}; a request cannot override what is compared")
        recs = self.recommender(variant.name).recommend(user_id, n, **variant.options, **options)
        recs.variant, recs.request_id = variant.name, uuid.uuid4().hex
        when = time.time() if ts is None else float(ts)
        self.store.add_impressions((self.name, variant.name, recs.request_id, user_id, r.item_id,
                                    position, when) for position, r in enumerate(recs, 1))
        return recs

    def record(self, user_id: str, item_id: str, event: str = "click", weight: float | None = None,
               ts: float | None = None) -> bool:
        """Store an outcome event, as ``Recommender.record`` does; reports attribute it."""
        return feedback.record(self.store, user_id, item_id, event, weight, ts, self.event_weights)

    def record_many(self, events: Iterable) -> int:
        """Store many events in one transaction (see ``edgerec.feedback.record_many``)."""
        return feedback.record_many(self.store, events, self.event_weights)

    def report(self, window_hours: float | None = None, offline: bool = False):
        """The experiment's ``edgerec.abtest.Report`` from this store."""
        from .abtest import report  # abtest reads configs from here: import it when used

        return report(self.store, self.name, window_hours=window_hours, offline=offline)

    def close(self) -> None:
        for rec in self._recommenders.values():
            rec.unwatch()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
