"""Fitting: sampled-negative cross-entropy, early stopping on the temporal holdout, refit.

The holdout is each user's most recent interactions (see ``temporal_split``): the task a
deployed recommender faces. Training stops when holdout NDCG@10 stops improving; the model
is then refit on *all* interactions for the best number of epochs, so what is exported has
also learned the newest behaviour, and the holdout metrics of the early-stopped fit are the
ones recorded in the bundle.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..bundle import read_manifest
from ..errors import InputError
from ..store import Store
from .backend import keras, tf
from .data import Interactions, load_interactions, validation_split
from .defaults import data_defaults, search_grid
from .registry import AUTO, MODEL_KINDS, model_kind
from .validation import holdout_metrics, popularity_baseline
from .warm import WarmStart

Progress = Callable[[str], None]


@dataclass
class FitResult:
    """A fitted model with everything the exporter needs to describe it."""

    model: keras.Model
    data: Interactions
    metrics: dict
    params: dict
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def quiet(message: str) -> None:
    """The default ``progress``: say nothing (the CLI passes one that prints to stderr)."""


AUTO_BUDGET_SECONDS = 240.0
# Beyond 4M interactions auto's default budget grows by a minute per million: at 10M (the
# 100K x 100K shop) one full item-neighbourhood table, its validations and its refit take
# ~5 minutes on 2 cores, so a fixed 240 s could only return tables cut to the popular
# items (popularity's score there); 600 s is also the time the issue allows als alone on
# that data. Below 4M (every shape measured so far, 290K events at most) it stays 240 s.
AUTO_SECONDS_PER_INTERACTION = 60e-6


def auto_budget(n_interactions: int) -> float:
    """``auto``'s default budget for data of ``n_interactions`` unique pairs (see above)."""
    return max(AUTO_BUDGET_SECONDS, AUTO_SECONDS_PER_INTERACTION * n_interactions)


def fit(source: Store | str | Path | Interactions, model: str | None = None, *, seed: int = 0,
        patience: int = 3, refit: bool = True, k: int = 10, progress: Progress = quiet,
        warm_start: str | Path | None = None, time_limit: float | None = None,
        refit_limit: float | None = None, validation: str = "temporal", **params) -> FitResult:
    """Train a model of kind ``model`` (default mf) on every event in a store (or on ``Interactions``).

    ``params`` are the kind's hyper-parameters (``MODEL_KINDS[model].defaults``: epochs,
    dim, ...); unset ones take the kind's defaults. ``model="auto"`` tries every kind and
    keeps the best (see ``fit_auto``). ``warm_start`` (a bundle path) continues from that
    bundle's weights instead (see ``fit_warm``). ``time_limit`` (seconds) ends the epochs
    early once spent, keeping the best epoch so far, as early stopping does (``auto`` uses
    it to keep its budget). Seeded and repeatable: the same data and arguments give the
    same weights (with ``time_limit``, as long as the limit is not reached).
    ``refit_limit`` (seconds) must hold the training and, after it, a refit of the best
    epochs on all interactions (``refit_seconds``): epochs stop early enough for it, so
    that ``auto``'s late winner (seq on MovieLens) is not left without its refit. A kind's
    ``search`` parameters that the caller leaves unset are chosen on the holdout: every
    value is trained (with early stopping) and the best kept (``params["searched"]``).
    ``validation`` is that holdout's split (``validation_split``: temporal or random).
    """
    if warm_start is not None:
        return fit_warm(source, warm_start, model, seed=seed, k=k, progress=progress, **params)
    model = model or "mf"
    if model == AUTO:
        unknown = sorted(set(params) - {"epochs", "budget_seconds"})
        if unknown:
            raise InputError(f"model 'auto' uses each kind's defaults; it takes only epochs and "
                             f"budget_seconds, not {', '.join(unknown)}")
        return fit_auto(source, seed=seed, patience=patience, k=k, progress=progress,
                        validation=validation, **params)
    kind = model_kind(model)
    unknown = sorted(set(params) - set(kind.defaults))
    if unknown:
        raise InputError(f"model {model!r} has no parameter {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(kind.defaults))}")
    passed = set(params)  # what the caller set: never searched over
    params = {**kind.defaults, **params}
    for name in ("epochs", "dim", "negatives"):
        if name in params and params[name] < 1:
            raise InputError(f"--{name} must be at least 1")
    started = time.perf_counter()
    data = _interactions(source)
    params.update(data_defaults(model, data, passed))
    train_mask, holdout_mask = validation_split(data, validation, seed)
    train, holdout = data.subset(train_mask), data.subset(holdout_mask)
    progress(f"{model}: {data.summary['interactions']} interactions, {data.n_users} users, "
             f"{data.n_items} items; holdout {int(holdout_mask.sum())} interactions")

    tf.config.experimental.enable_op_determinism()
    searched = search_grid(kind, train, params, passed, bounded=time_limit is not None) \
        if len(holdout.users) else {}
    metric, deadline = f"ndcg@{k}", None if time_limit is None else started + time_limit
    refit_by = None if refit_limit is None else started + refit_limit

    users = kind.validation_users(data.n_users, data.n_items)

    def validate(net) -> dict:  # without a holdout every epoch scores 0: the first is kept
        return holdout_metrics(net, train, holdout, k, users, seed) if len(holdout.users) else {}

    best = None
    combos = list(itertools.product(*searched.values()))
    for i, values in enumerate(combos):
        settings = {**params, **dict(zip(searched, values))}
        if searched:
            progress("search: " + ", ".join(f"{n} {settings[n]}" for n in searched))
        net = build_model(kind, data, seed, settings, train,
                          _build_deadline(deadline, kind, users, data.n_items, settings))
        row, log = run_epochs(net, train, settings["epochs"], seed, progress, validate=validate,
                              metric=metric, patience=patience, deadline=deadline,
                              refit_by=refit_by)
        if best is None or row.get(metric, 0.0) > best[1].get(metric, 0.0):
            best, params = (net, row, log), settings
        if i + 1 < len(combos) and _search_stops(kind, train, net, settings,
                                                 dict(zip(searched, combos[i + 1])), log, deadline):
            break
    net, best, log = best
    cut = getattr(net, "cut_short", None)
    if cut:
        progress(cut)
    metrics = {"holdout": {m: v for m, v in best.items() if m not in ("loss", "seconds", "train_s")},
               "popularity": popularity_baseline(train, holdout, k, users, seed)}
    refit = bool(refit and len(holdout.users) and not cut)  # a cut build would not fit either
    if refit:
        net = _refit(kind, data, seed, params, best["epoch"], progress)
    fitted = {"model": model, "seed": seed, "patience": patience, "validation": validation, **params,
              "trained_epochs": best["epoch"], "refit": refit}
    if searched:
        fitted["searched"] = {name: list(values) for name, values in searched.items()}
    if cut:
        fitted["cut_short"] = cut
    return FitResult(net, data, metrics, fitted, log, time.perf_counter() - started)


def _search_stops(kind, train: Interactions, net, last: dict, following: dict, log: list,
                  deadline: float | None) -> bool:
    """As ``run_epochs`` does: stop before a setting (``following``) that would pass the
    limit; a build cut short has already met it."""
    if deadline is None:
        return False
    return bool(getattr(net, "cut_short", None)) or \
        time.perf_counter() + _next_setting_seconds(kind, train, last, following, log) > deadline


def _next_setting_seconds(kind, train: Interactions, last: dict, following: dict,
                          log: list) -> float:
    """What a search's next setting (``following``: its searched values) should take,
    judged by the ``last`` one's epochs (``log``): their validations, plus, unless the two
    differ in ``kind.search_shared`` parameters alone (the neighbour tables are cached),
    their training scaled by the two settings' ``epoch_seconds``. At 100K items pricing
    a cached setting as a build stopped itemknn's search after one value (178 s build and
    validation, when the next needed a ~20 s validation), and pricing forward 0.5 as
    forward 1 would start a build ~2x longer."""
    validation = sum(row["seconds"] - row["train_s"] for row in log)
    if all(last[name] == value for name, value in following.items() if name not in kind.search_shared):
        return validation
    shape = (train.n_users, train.n_items, len(train.users))
    ratio = kind.epoch_seconds(*shape, {**last, **following}) / max(kind.epoch_seconds(*shape, last), 1e-9)
    return validation + ratio * sum(row["train_s"] for row in log)


def run_epochs(net, train: Interactions, epochs: int, seed: int, progress: Progress, *,
               validate: Callable | None = None, metric: str = "", patience: int = 0,
               deadline: float | None = None,
               refit_by: float | None = None) -> tuple[dict, list[dict]]:
    """Train ``net`` on ``train`` for up to ``epochs`` epochs: the one loop of ``fit``, its
    refit and ``fit_warm``. Returns (the kept epoch's row, every epoch's row).

    With ``validate`` (net -> holdout metrics) each epoch is measured, and the loop stops
    once ``metric`` has not improved for ``patience`` epochs, or when another epoch as long
    as the last would pass ``deadline`` (perf_counter), or would leave too little time
    before ``refit_by`` to refit every epoch so far and it (``refit_seconds``); ``net`` is
    left at its best epoch. Without it every epoch runs and the last is kept.
    """
    log: list[dict] = []
    best, best_weights = None, None
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss = net.train_epoch(train, seed + epoch)
        trained = time.perf_counter() - t0
        scores = validate(net) if validate is not None else {}
        row = {"epoch": epoch, "loss": loss, **scores, "seconds": time.perf_counter() - t0,
               "train_s": trained}
        log.append(row)
        progress("  ".join([f"epoch {epoch:3d}", f"loss {loss:.4f}",
                            *(f"{name} {value:.4f}" for name, value in scores.items() if "@" in name),
                            f"({row['seconds']:.1f}s)"]))
        if validate is None:
            continue
        if best is None or scores.get(metric, 0.0) > best.get(metric, 0.0):
            best, best_weights = row, net.get_weights()
        elif epoch - best["epoch"] >= patience:
            progress(f"early stop: best holdout {metric} at epoch {best['epoch']}")
            break
        if _time_is_up(row, log, deadline, refit_by):
            progress(f"time limit reached: best holdout {metric} at epoch {best['epoch']}")
            break
    if validate is None:
        return (log[-1] if log else {}), log
    net.set_weights(best_weights)
    return best, log


def _time_is_up(row: dict, log: list[dict], deadline: float | None,
                refit_by: float | None) -> bool:
    """Whether to stop before another epoch like ``row`` (the last in ``log``), not after
    it: it would pass ``deadline`` (auto's limits then hold, and the winner's reserved
    refit still fits), or, should it be the best, its refit (``refit_seconds`` of every
    epoch so far and it) would end after ``refit_by``."""
    finish = time.perf_counter() + row["seconds"]
    if deadline is not None and finish > deadline:
        return True
    return refit_by is not None and finish + refit_seconds(log + [row]) > refit_by


# A refit trains on every interaction, the holdout's newest fifth too: a quarter more data
# than the training part, without the per-epoch validation.
REFIT_DATA_FACTOR = 1.25


def refit_seconds(log: list[dict]) -> float:
    """What refitting for as many epochs as ``log`` holds should take: their training
    seconds (``train_s``) on a quarter more data."""
    return REFIT_DATA_FACTOR * sum(row["train_s"] for row in log)


# No kind may take more than this share of auto's budget: a slow kind cannot starve the
# others, and the winner's refit still fits.
AUTO_MAX_SHARE = 0.5
# The kinds after the winner leave it this multiple of its expected refit: each runs past
# its limit by its set-up (the split, building and tracing the model: ~1 s on ML-100K),
# and there neumf's 14 s left seq's 57 s refit 57 s, so seq went out without its refit
# (test NDCG@10 0.2683, against 0.2789 with it).
REFIT_RESERVE = 1.1
# Early stopping usually ends a kind well before its epoch cap: auto plans with at most this
# many epochs per kind (each kind still runs until it stops or reaches its time limit).
AUTO_PLAN_EPOCHS = 15


def plan_auto(data: Interactions, epochs: int | None = None) -> list[dict]:
    """Every kind with its estimated seconds (``search_seconds``) and its expected value
    per second, best first: ``auto_prior`` / the seconds to its first result (its first
    setting's epochs; a time limit stops a search between settings and a table build
    between blocks, so the rest of a search is what time allows, not what it costs)."""
    plan = []
    for name, kind in MODEL_KINDS.items():
        n_epochs = min(epochs or kind.defaults["epochs"], AUTO_PLAN_EPOCHS)
        first, total = search_seconds(kind, data, n_epochs)
        plan.append({"model": name, "epoch_s": first, "estimate_s": total,
                     "value_per_s": kind.auto_prior / max(n_epochs * first, 0.1)})
    return sorted(plan, key=lambda entry: -entry["value_per_s"])


def search_seconds(kind, data: Interactions, n_epochs: int) -> tuple[float, float]:
    """(one epoch of the first setting tried, its validation included; all of ``kind``'s
    search at ``n_epochs`` each). Every setting validates every epoch, but settings that
    differ only in ``search_shared`` parameters train once (the neighbourhood kinds' tables
    are cached across ``recency``): pricing each as a fit overstated itemknn 3x."""
    users = kind.validation_users(data.n_users, data.n_items)
    trained, first, total = set(), None, 0.0
    for values in itertools.product(*kind.search.values()):
        settings = {**kind.defaults, **dict(zip(kind.search, values))}
        epoch = kind.epoch_seconds(data.n_users, data.n_items, len(data.users), settings)
        validation = kind.validation_seconds(users, data.n_items, settings)
        first = epoch + validation if first is None else first
        key = tuple(v for n, v in zip(kind.search, values) if n not in kind.search_shared)
        total += n_epochs * (validation + (0.0 if key in trained else epoch))
        trained.add(key)
    return first, total


def fit_auto(source: Store | str | Path | Interactions, *, seed: int = 0, patience: int = 3,
             k: int = 10, progress: Progress = quiet, epochs: int | None = None,
             budget_seconds: float | None = None, validation: str = "temporal") -> FitResult:
    """Fit model kinds with their defaults inside ``budget_seconds``, keep the best on the
    holdout, refit it; the refit is inside the budget too (when it would not fit, the
    winner keeps its weights from the training part: ``params["refit"]`` says which).
    The default budget is ``auto_budget``: 240 s, more beyond 4M interactions.

    ``epochs`` caps every kind's epochs (default: each kind's own). The holdout is the same
    temporal split each kind early-stops on (inside ``evaluate`` it is carved from the
    training part, so the test set never chooses). Kinds go in ``plan_auto`` order (most
    expected value per second first, so fast strong kinds get their full run before slow
    ones start); each may use at most ``AUTO_MAX_SHARE`` of the budget and what is left
    after reserving the current winner's refit. Once a kind has a result, one whose single
    epoch is not expected to fit is skipped, as is any kind that refuses the data. The bundle records every try and
    why each untried kind was skipped.
    """
    started = time.perf_counter()
    data = _interactions(source)
    budget_seconds = auto_budget(len(data.users)) if budget_seconds is None else budget_seconds
    tried: list[dict] = []
    best: FitResult | None = None
    metric = f"ndcg@{k}"
    plan = plan_auto(data, epochs)
    progress(f"[auto] budget {budget_seconds:.0f}s; plan (estimated seconds, most value per second "
             f"first): " + ", ".join(f"{p['model']} ~{p['estimate_s']:.0f}s" for p in plan))
    slowdown = 1.0  # measured / estimated seconds of the kinds tried so far (a busy machine)
    for entry in plan:
        name = entry["model"]
        left = budget_seconds - (time.perf_counter() - started) \
            - REFIT_RESERVE * _refit_seconds(best, slowdown)
        limit = min(left, AUTO_MAX_SHARE * budget_seconds)
        if best is not None and entry["epoch_s"] * slowdown > limit:  # the first kind always runs
            reason = (f"one epoch needs ~{entry['epoch_s'] * slowdown:.0f}s (estimate x "
                      f"{slowdown:.1f}, the slowdown measured so far), {max(limit, 0):.0f}s "
                      f"available (budget {budget_seconds:.0f}s, refit reserved)")
            tried.append({"model": name, "skipped": reason})
            progress(f"[auto] {name}: skipped: {reason}")
            continue
        try:
            cap = {"epochs": min(epochs, MODEL_KINDS[name].defaults["epochs"])} if epochs else {}
            result = fit(data, name, seed=seed, patience=patience, refit=False, k=k,
                         validation=validation,
                         progress=lambda m, name=name: progress(f"[auto {name}] {m}"),
                         time_limit=limit, **cap,
                         refit_limit=budget_seconds - (time.perf_counter() - started))
        except InputError as exc:
            tried.append({"model": name, "skipped": str(exc)})
            progress(f"[auto] {name}: skipped: {exc}")
            continue
        score = result.metrics["holdout"].get(metric, 0.0)
        cut = result.params.get("cut_short")
        tried.append({"model": name, metric: score, "seconds": round(result.seconds, 1),
                      "epochs": result.params["trained_epochs"], "limit_s": round(limit, 1),
                      "estimate_s": round(entry["estimate_s"], 1),
                      **({"cut_short": cut} if cut else {})})
        slowdown = _slowdown(tried)
        progress(f"[auto] {name}: holdout {metric} {score:.4f} in {result.seconds:.0f}s "
                 f"(best epoch {result.params['trained_epochs']}, limit {limit:.0f}s{'; ' + cut if cut else ''})")
        if best is None or score > best.metrics["holdout"].get(metric, 0.0):
            best = result
    if best is None:
        raise InputError("auto: no model kind could be trained on this data")
    winner = best.params["model"]
    spent = time.perf_counter() - started
    progress(f"[auto] stopped after {spent:.0f}s of {budget_seconds:.0f}s: every kind tried or "
             f"skipped; chose {winner}: highest holdout {metric}")
    net, refit = _refit_within(best, budget_seconds - spent, slowdown, seed, progress)
    metrics = {**best.metrics, "auto": {"chosen": winner, "criterion": f"holdout {metric}",
                                        "budget_seconds": budget_seconds, "tried": tried}}
    fitted = {**best.params, "auto": True, "refit": refit}
    return FitResult(net, data, metrics, fitted, best.epochs, time.perf_counter() - started)


def _refit_within(best: FitResult, left: float, slowdown: float, seed: int,
                  progress: Progress) -> tuple[keras.Model, bool]:
    """(the winner refitted on every interaction, True) when its refit is expected to fit in
    the ``left`` seconds, else (its weights from the training part, False).

    The budget is the caller's promise: the last kind to run may win with a refit nobody
    reserved (its own), and a model that read most of the data beats a late one."""
    expected = _refit_seconds(best, slowdown)
    kind = MODEL_KINDS[best.params["model"]]
    if "cut_short" in best.params:
        progress(f"[auto] no refit: {kind.kind}'s tables were cut at its time limit, and a "
                 f"refit builds them whole; it keeps its tables from the training part")
        return best.model, False
    if expected > left:
        progress(f"[auto] no refit: ~{expected:.0f}s expected, {max(left, 0):.0f}s of the budget "
                 f"left; {kind.kind} keeps its weights from the training part")
        return best.model, False
    params = {name: best.params[name] for name in kind.defaults}
    net = _refit(kind, best.data, seed, params, best.params["trained_epochs"], progress,
                 deadline=time.perf_counter() + left)
    if getattr(net, "cut_short", None):  # the estimate was low: keep the whole model
        progress(f"[auto] refit stopped at the budget ({net.cut_short}); {kind.kind} keeps "
                 f"its tables from the training part")
        return best.model, False
    return net, True


def _slowdown(tried: list[dict]) -> float:
    """How much slower than planned the machine runs (at least 1): the smallest ratio of
    seconds to estimate among kinds that ran all their planned epochs or stopped early (a
    kind cut by its time limit says nothing). A loaded machine makes every kind slower
    alike, so ``fit_auto`` skips a kind whose scaled epoch cannot fit instead of starting
    it; the smallest ratio, not the pooled one, so that one family's low estimate (the
    neighbourhood kinds' on a large catalogue) does not starve the kinds after it."""
    ratios = [t["seconds"] / t["estimate_s"] for t in tried
              if "seconds" in t and t["seconds"] < t["limit_s"] and t["estimate_s"] > 0]
    return max(1.0, min(ratios)) if ratios else 1.0


def _refit_seconds(result: FitResult | None, slowdown: float = 1.0) -> float:
    """What refitting ``result`` on all interactions should take: its epochs up to the best
    one without their validation (which the refit skips: on demo:shop half of a neighbour
    kind's epoch), a quarter more data (``refit_seconds``, which ``fit`` reserved). A kind
    whose search shares work between settings (``search_shared``: the neighbourhood kinds'
    tables, cached across ``recency``) may have kept a setting that reused tables computed
    for an earlier one, so its own seconds understate a refit: for those, at least the
    kind's estimated epochs times the measured ``slowdown``. Only for those: on ML-100K
    that floor priced seq's 10-epoch refit at 91 s, when all 13 of its epochs, validations
    included, had taken 62 s."""
    if result is None:
        return 0.0
    epochs = result.params["trained_epochs"]
    measured = refit_seconds(result.epochs[:epochs])
    kind, data = MODEL_KINDS[result.params["model"]], result.data
    if not kind.search_shared:
        return measured
    planned = epochs * slowdown * kind.epoch_seconds(data.n_users, data.n_items, len(data.users),
                                                     result.params)
    return max(measured, REFIT_DATA_FACTOR * planned)


def fit_warm(source: Store | str | Path | Interactions, bundle: str | Path, model: str | None = None,
             *, seed: int = 0, k: int = 10, progress: Progress = quiet,
             epochs: int | None = None, **params) -> FitResult:
    """Continue the model in ``bundle`` on every event in the store (see ``edgerec.trainer.warm``).

    The kind and settings are the bundle's (``model``, if given, must match). It trains
    ``epochs`` epochs (default: a quarter of the epochs the bundle was trained for, at
    least two) on all interactions, without a holdout: the warm start's quality is judged
    where it is used, by ``edgerec update`` on the events the bundle never saw. A kind
    that keeps no trainer state (``ease``, ``gan``) is fitted afresh (``epochs`` caps it).
    """
    if params:
        raise InputError(f"a warm start keeps the bundle's settings; it takes epochs and seed, "
                         f"not {', '.join(sorted(params))}")
    started = time.perf_counter()
    found = read_manifest(Path(bundle)).model_kind
    if model not in (None, found):
        raise InputError(f"{bundle} holds a {found!r} model; a warm start cannot make it {model!r}")
    if not model_kind(found).warm_starts:
        progress(f"{found} is trained afresh every time: no warm start needed")
        limit = {} if epochs is None else {"epochs": epochs}  # for kinds with epochs (gan)
        result = fit(source, found, seed=seed, k=k, progress=progress, **limit)
        result.metrics["warm_start"] = {"from": str(bundle), "afresh": True}
        return result
    warm = WarmStart(bundle)
    kind = model_kind(warm.kind)
    epochs = warm.default_epochs() if epochs is None else epochs
    if epochs < 1:
        raise InputError("--epochs must be at least 1")
    data = _interactions(source)
    tf.config.experimental.enable_op_determinism()
    saved = {**kind.defaults, **kind.settings_before, **warm.params}
    net = build_model(kind, data, seed, saved, data)
    grown = warm.load_into(net, data)
    progress(f"warm start from {bundle} ({warm.kind}): {grown['kept_users']} users and "
             f"{grown['kept_items']} items kept, {grown['new_users']} and {grown['new_items']} new; "
             f"{epochs} epochs on {data.summary['interactions']} interactions")
    _, log = run_epochs(net, data, epochs, seed, progress)
    metrics = {"warm_start": {"from": str(bundle), "from_created_at": warm.manifest.created_at,
                              "from_interactions": warm.manifest.training_data.get("interactions"),
                              "epochs": epochs, **grown}}
    fitted = {**saved, "model": warm.kind, "seed": seed,
              "trained_epochs": epochs, "warm_start": str(bundle),
              "full_epochs": warm.full_epochs}  # what later warm starts take their share of
    return FitResult(net, data, metrics, fitted, log, time.perf_counter() - started)


def _interactions(source: Store | str | Path | Interactions) -> Interactions:
    if isinstance(source, Interactions):
        return source
    store = source if isinstance(source, Store) else Store.open(source, create=False)
    return load_interactions(store)


def _refit(kind, data: Interactions, seed: int, params: dict, epochs: int, progress: Progress,
           deadline: float | None = None):
    """The chosen settings trained again on all interactions, for the chosen epochs (a
    neighbourhood table build stops at ``deadline``, a perf_counter time, as in ``fit``)."""
    progress(f"refit on all interactions for {epochs} epochs")
    net = build_model(kind, data, seed, params, data, deadline)
    run_epochs(net, data, epochs, seed, quiet)
    return net


def _build_deadline(deadline: float | None, kind, users: int, n_items: int,
                    settings: dict) -> float | None:
    """When a time-limited build must stop: early enough for the validation after it
    (``kind.validation_seconds``), which a cut build still needs (at 100K items the
    validation after a build cut at the limit overran it by 115-131 s)."""
    return None if deadline is None else deadline - kind.validation_seconds(users, n_items, settings)


def build_model(kind, data: Interactions, seed: int, params: dict, fitted_on: Interactions,
                deadline: float | None = None):
    """A ``kind`` model sized for ``data``'s id maps, seeded, prepared to train on
    ``fitted_on`` (``data`` itself, or its train part). A kind whose epoch can stop
    part-way (the neighbourhood tables) is given ``deadline``, a perf_counter time."""
    keras.utils.set_random_seed(seed)
    net = kind(data.n_users, data.n_items, seed=seed,
               **{name: value for name, value in params.items() if name != "epochs"})
    net.prepare(fitted_on)
    if hasattr(net, "deadline"):
        net.deadline = deadline
    return net
