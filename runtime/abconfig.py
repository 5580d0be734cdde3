"""A/B experiment definitions: the config file, its validation, and who gets which variant.

Kept apart from ``edgerec.experiment`` (which serves the variants) and ``edgerec.abtest``
(which reports on them), because both read configs: the report needs nothing but the store
and the config saved in it. The file format and the assignment rule are described in
``edgerec.experiment``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import EdgerecError, InputError
from .recommender import Recommender, _Options
from .store import Store, experiments

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
    """One arm of an experiment: its bundle, share of users and recommend options."""

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
        """The variant called ``name``."""
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
    stored = experiments.config(store, config.name)
    if stored is not None:
        before = parse_config(stored, f"{store.path}: experiment {config.name!r}", Path("/"))
        if before.assignment != config.assignment:
            raise InputError(
                f"{config.source}: experiment {config.name!r} already runs in {store.path} with "
                "another salt, variants or shares; changing them would move users between "
                "variants, so give the new design a new name")
    experiments.save(store, config.name, config.to_dict())


def stored_config(store: Store, name: str) -> Config:
    """The config saved in the store by ``Experiment.open`` (for reports)."""
    stored = experiments.config(store, name)
    if stored is None:
        known = ", ".join(experiments.names(store)) or "none"
        raise InputError(f"{store.path}: no experiment named {name!r} (experiments: {known})")
    return parse_config(stored, f"{store.path}: experiment {name!r}", Path("/"))
