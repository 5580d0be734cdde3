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

import threading
import time
import uuid
from pathlib import Path
from typing import Mapping

from . import feedback
from .abconfig import Config, load_config, register
from .abtest import Report, report
from .bundle import read_manifest
from .errors import InputError
from .recommender import Recommender
from .results import Recommendations
from .store import Store, experiments


class Experiment(feedback.Recorder):
    """Serves each user through their variant and logs every list as impressions.

    ``recommend`` returns the variant's ``Recommendations`` with two more attributes,
    ``variant`` and ``request_id``. Thread-safe like ``Recommender``.
    """

    def __init__(self, config: Config, store: Store, provider: str | None = None, *,
                 event_weights: Mapping[str, float] | None = None, watch: float | None = None,
                 owns_store: bool = False):
        self.config = config
        self.store = store
        self.event_weights = feedback.event_weights(event_weights)
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
            if variant.options.get("diversity") and not manifest.has_vectors:
                raise InputError(f"{config.source}: variants[{i}].options.diversity: bundle "
                                 f"{variant.bundle} ({manifest.model_kind}) has no item "
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
        """The experiment's name (its key in the store)."""
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
        experiments.add_impressions(self.store, (
            (self.name, variant.name, recs.request_id, user_id, r.item_id, position, when)
            for position, r in enumerate(recs, 1)))
        return recs

    def report(self, window_hours: float | None = None, offline: bool = False) -> Report:
        """The experiment's ``edgerec.abtest.Report`` from this store."""
        return report(self.store, self.name, window_hours=window_hours, offline=offline)

    def close(self) -> None:
        """Stop the variants' watchers; close the store if this experiment opened it."""
        for rec in self._recommenders.values():
            rec.unwatch()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
