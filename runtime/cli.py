"""The ``edgerec`` command: each command is a thin wrapper over a documented function.

Errors the user can fix (``EdgerecError``) are printed as one ``Error: ...`` line with exit
code 1; the trainer (TensorFlow) is imported only by ``train`` and ``evaluate``.
"""

from __future__ import annotations

import contextlib
import json
import sys

import click

from .errors import EdgerecError, InputError
from .ingest import FORMATS
from .session import CHOICES as PROVIDER_CHOICES


# Old command names, kept working: each command is named after the function it wraps.
ALIASES = {"items": "ingest-items", "demo-data": "write-demo", "similar": "similar-items",
           "info": "describe"}


class _Group(click.Group):
    """Prints ``EdgerecError`` as one line (exit 1) and resolves the old names in ``ALIASES``."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgerecError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    def get_command(self, ctx, cmd_name):
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def fit_options(command):
    """--epochs/--dim/--negatives/--seed/--budget-seconds/--validation for train and evaluate; unset ones take the model
    kind's own defaults (each kind documents them in ``MODEL_KINDS[kind].defaults``)."""
    for option in reversed([
            click.option("--epochs", type=int, help="Most epochs (early stopping)."),
            click.option("--dim", type=int, help="Embedding size."),
            click.option("--negatives", type=int, help="Sampled negatives per positive."),
            click.option("--seed", type=int, help="Random seed [default: 0]."),
            click.option("--budget-seconds", type=float,
                         help="--model auto: seconds for every try and the refit [default: 240; beyond 4M interactions 60 per million]."),
            click.option("--validation", help="The holdout that early stopping, searches and "
                         "auto judge by: temporal (each user's newest 20%) or random (20% of "
                         "each item's events) [default: temporal; evaluate: as its protocol].")]):
        command = option(command)
    return command


def _given(params: dict) -> dict:
    return {name: value for name, value in params.items() if value is not None}


file_arg = click.argument("file", type=click.Path(dir_okay=False))
format_opt = click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto",
                          show_default=True,
                          help="The file's format (auto: from its name and first lines).")
store_arg = click.argument("store", type=click.Path(dir_okay=False))
provider_opt = click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default=None,
                            help="Execution provider (default: $EDGEREC_PROVIDER or auto).")
bundle_arg = click.argument("bundle", type=click.Path(file_okay=False))
json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def filter_options(command):
    """--include/--exclude/--where, shared by recommend and similar (see ``_filters``)."""
    for option in reversed([
        click.option("--include", multiple=True, metavar="ID[,ID...]",
                     help="Only these items (repeatable, or comma-separated)."),
        click.option("--exclude", multiple=True, metavar="ID[,ID...]",
                     help="Never these items (repeatable, or comma-separated)."),
        click.option("--where", multiple=True, metavar="KEY=VALUE",
                     help="Catalogue metadata to match, e.g. category=Comedy (repeatable: "
                          "different keys must all match, one key's values any)."),
    ]):
        command = option(command)
    return command


def _filters(include, exclude, where) -> dict:
    """The keyword arguments ``Recommender.recommend``/``similar_items`` take."""
    def ids(values):
        return [i for v in values for i in v.split(",") if i]

    conditions: dict[str, list] = {}
    for pair in where:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--where takes KEY=VALUE, not {pair!r}")
        try:
            parsed = json.loads(value)  # numbers and true/false as in the metadata JSON
        except ValueError:
            parsed = value
        conditions.setdefault(key, []).append(parsed if isinstance(parsed, (int, float, bool)) else value)
    return {"include": ids(include) if include else None, "exclude": ids(exclude) or None,
            "where": conditions or None}


def request_options(command):
    """The filters plus --diversity/--explain/--new-arrivals: ``Recommender.recommend``'s
    keywords, shared by recommend and ab recommend (see ``_request``)."""
    for option in reversed([
        click.option("--diversity", type=float,
                     help="0..1: re-rank by maximal marginal relevance over item vectors [default: 0]."),
        click.option("--explain", is_flag=True, default=None,
                     help="Show which history items each item is owed to."),
        click.option("--new-arrivals", type=int,
                     help="Slots for catalogue items the model does not know yet [default: 0]."),
    ]):
        command = option(command)
    return filter_options(command)


def _request(include, exclude, where, diversity, explain, new_arrivals) -> dict:
    """The keywords given on the command line (unset ones keep the API's defaults, so an
    experiment's variant may set them)."""
    return _given({**_filters(include, exclude, where), "diversity": diversity,
                   "explain": explain, "new_arrivals": new_arrivals})


@click.group(cls=_Group)
@click.version_option(package_name="edgerec")
def main():
    """edgerec: offline top-N recommendations from an exported ONNX scoring core."""


@main.command()
@store_arg
@file_arg
@format_opt
@click.option("--user-col", help="Column of the user ids [default: guessed from the header].")
@click.option("--item-col", help="Column of the item ids [default: guessed from the header].")
@click.option("--time-col", help="Column of the timestamps [default: guessed from the header].")
@click.option("--weight-col", help="Column of the weights [default: guessed from the header].")
@click.option("--event-col", help="Column of the event types [default: guessed from the header].")
@click.option("--strict", is_flag=True, help="Reject the whole file if any row is malformed.")
def ingest(store, file, fmt, user_col, item_col, time_col, weight_col, event_col, strict):
    """Add interaction events from FILE to STORE (created if missing)."""
    from .ingest import ingest_events
    from .store import Store

    with Store.open(store) as opened:
        report = ingest_events(opened, file, format=fmt, user_col=user_col, item_col=item_col,
                               time_col=time_col, weight_col=weight_col, event_col=event_col,
                               strict=strict)
    click.echo(report.summary())


@main.command("ingest-items")
@store_arg
@file_arg
@format_opt
@click.option("--id-col", help="Column of the item ids [default: guessed from the header].")
@click.option("--title-col", help="Column of the titles [default: guessed from the header].")
def ingest_items(store, file, fmt, id_col, title_col):
    """Add or update the item catalogue (titles, categories) from FILE (alias: items)."""
    from .ingest import ingest_items as ingest
    from .store import Store

    with Store.open(store) as opened:
        report = ingest(opened, file, format=fmt, id_col=id_col, title_col=title_col)
    click.echo(report.summary())


@main.command("write-demo")
@store_arg
@click.option("--users", default=600, show_default=True, help="Synthetic users.")
@click.option("--items", "n_items", default=400, show_default=True, help="Synthetic items.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
def write_demo(store, users, n_items, seed):
    """Write the built-in synthetic demo data (clustered tastes) into STORE (alias: demo-data)."""
    from .demo import write_demo as write
    from .store import Store

    with Store.open(store) as opened:
        added = write(opened, n_users=users, n_items=n_items, seed=seed)
    click.echo(f"{store}: {added['events']} events and {added['items']} items added")


def _trainer():
    """The trainer package (TensorFlow), or a one-line error saying how to install it."""
    try:
        from . import pipelines
    except ImportError as exc:
        raise EdgerecError(f"training needs TensorFlow: pip install 'edgerec[train]' ({exc})") from None
    return pipelines


@main.command()
@store_arg
@click.option("--model", help="Model kind [default: mf, or the --warm-start bundle's kind].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle directory.")
@click.option("--warm-start", type=click.Path(file_okay=False),
              help="Continue from this bundle's weights (its kind and settings) on today's events.")
@click.option("--fp16", is_flag=True,
              help="Store large weights as float16: half the model.onnx, float32 speed and memory on the CPU.")
@fit_options
def train(store, model, out, warm_start, fp16, **params):
    """Train a model on STORE and export it as an ONNX bundle at OUT."""
    path, result = _trainer().train_bundle(store, out, model=model, warm_start=warm_start,
                                           progress=_echo_err,
                                           weights_dtype="float16" if fp16 else "float32",
                                           **_given(params))
    kind = result.params["model"]
    if "holdout" in result.metrics:
        click.echo(f"{path}: {kind} trained in {result.seconds:.1f}s, holdout ndcg@10 "
                   f"{result.metrics['holdout'].get('ndcg@10', float('nan')):.4f} (popularity "
                   f"{result.metrics['popularity'].get('ndcg@10', float('nan')):.4f})")
    else:
        warm = result.metrics["warm_start"]
        click.echo(f"{path}: {kind} warm-started from {warm['from']} in {result.seconds:.1f}s "
                   f"({warm.get('new_users', 0)} new users, {warm.get('new_items', 0)} new items)")


@main.command()
@store_arg
@bundle_arg
@click.option("--holdout", default=0.5, show_default=True,
              help="Newest share of the unseen events that judges the candidate.")
@click.option("--tolerance", default=0.0, show_default=True,
              help="Publish if the candidate's NDCG@k is at most this much (relative) lower.")
@click.option("-k", "k", default=10, show_default=True, help="Cut-off of the gate's NDCG.")
@click.option("--epochs", type=int, help="Warm-start epochs [default: a quarter of the bundle's].")
@click.option("--seed", default=0, show_default=True, help="Random seed of the warm start.")
@click.option("--keep", type=click.Path(file_okay=False), help="Also write the candidate bundle here.")
@json_opt
def update(store, bundle, holdout, tolerance, k, epochs, seed, keep, as_json):
    """Warm-start BUNDLE on STORE's new events and publish over it only if not worse.

    Exit status 0: published, or nothing new; 3: the candidate was worse, BUNDLE kept.
    """
    from .replay import check_gate

    check_gate(holdout, tolerance)  # before the trainer's imports: a typo fails at once
    run_update = _trainer().update
    from .pipelines.update import REFUSED

    result = run_update(store, bundle, holdout=holdout, tolerance=tolerance, k=k, epochs=epochs,
                        seed=seed, keep=keep, progress=_echo_err)
    click.echo(json.dumps(result, indent=1) if as_json else f"{bundle}: {result['status']}")
    if result["status"] == REFUSED:
        sys.exit(3)


@main.command()
@store_arg
@click.option("--model", default="mf", show_default=True, help="Model kind.")
@click.option("--protocol", default="temporal", show_default=True,
              help="temporal (last 20% of each user), leave-one-out-sampled (latest vs 99 "
                   "sampled), random (25% of each item's interactions, as Microsoft "
                   "Recommenders) or new-users (10% of users left out of training, served "
                   "from history).")
@click.option("-k", "k", default=10, show_default=True, help="Cut-off of the ranking metrics.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the results as JSON here.")
@fit_options
@click.option("--diversity", default=0.0, show_default=True,
              help="Also measure lists re-ranked with this MMR diversity (0..1).")
def evaluate(store, model, protocol, k, out, diversity, **params):
    """Hold out a test split of STORE, train on the rest, measure the served top-K."""
    report = _trainer().evaluate(store, model=model, protocol=protocol, k=k, out=out,
                            diversity=diversity, progress=_echo_err, **_given(params))
    names = [m for m in report["metrics"] if "@" in m]
    click.echo(f"{protocol}: {report['users_evaluated']} users, {model} trained in "
               f"{report['train_seconds']:.1f}s on the train part")
    click.echo(f"{'':<11}" + "".join(f"{m:>13}" for m in names))
    rows = [(model, report["metrics"]), ("popularity", report["popularity"])]
    if "diversified" in report:
        rows.insert(1, (f"{model}+div{diversity:g}", report["diversified"]["metrics"]))
    for label, values in rows:
        click.echo(f"{label:<11}" + "".join(f"{values[m]:>13.4f}" for m in names))
    if out:
        click.echo(f"results: {out}")


def _source(recs) -> str:
    return "most popular (user unknown to the model)" if recs.fallback else "personalised"


def _echo_recommendations(recs, store, as_json: bool, about: dict, heading: str) -> None:
    """One list as JSON (``to_dict`` plus ``about``) or as text: ``heading``, then the
    ranked items with titles, new-arrival slots and reasons (every list command's format)."""
    if as_json:
        click.echo(json.dumps({**recs.to_dict(), **about}))
        return
    named = {r.item_id for r in recs} | {i for r in recs for i, _ in getattr(r, "because", ())}
    titles = store.item_titles(named)
    click.echo(heading)
    fresh = set(recs.new_arrivals)
    for rank, r in enumerate(recs, 1):
        title = f"  {titles[r.item_id]}" if r.item_id in titles else ""
        score = "new" if r.item_id in fresh else f"{r.score:.4f}"
        click.echo(f"{rank:3d}. {r.item_id}  {score}{title}")
        if getattr(r, "because", None):
            click.echo("       because of " + ", ".join(
                f"{titles.get(i, i)} ({share:.0%})" for i, share in r.because))


@main.command()
@store_arg
@bundle_arg
@click.argument("user_id")
@click.option("-n", default=10, show_default=True, help="How many items.")
@request_options
@click.option("--half-life-days", type=float, help="Recency-weighted popularity for cold start.")
@json_opt
@provider_opt
def recommend(store, bundle, user_id, n, include, exclude, where, diversity, explain, new_arrivals,
              half_life_days, as_json, provider):
    """Top-N items for USER_ID: unseen, active, filtered; popular items for a new user."""
    from .recommender import Recommender

    with Recommender.open(bundle, store, provider=provider, half_life_days=half_life_days) as rec:
        recs = rec.recommend(user_id, n=n, **_request(include, exclude, where, diversity, explain,
                                                      new_arrivals))
        _echo_recommendations(recs, rec.store, as_json, {"provider": rec.provider},
                              f"user {user_id}: {_source(recs)}, provider {rec.provider}")


@main.command("similar-items")
@store_arg
@bundle_arg
@click.argument("item_id")
@click.option("-n", default=10, show_default=True, help="How many items.")
@filter_options
@json_opt
@provider_opt
def similar_items(store, bundle, item_id, n, include, exclude, where, as_json, provider):
    """Items most similar to ITEM_ID (cosine of the model's item vectors; alias: similar)."""
    from .recommender import Recommender
    from .results import Recommendations

    with Recommender.open(bundle, store, provider=provider) as rec:
        items = Recommendations(None, rec.similar_items(item_id, n=n,
                                                        **_filters(include, exclude, where)))
        if as_json:
            click.echo(json.dumps({"item_id": item_id, "items": items.to_dict()["items"]}))
            return
        title = rec.store.item_titles([item_id]).get(item_id)
        _echo_recommendations(items, rec.store, False, {},
                              f"similar to {item_id}{'  ' + title if title else ''}")


@main.command()
@store_arg
@bundle_arg
@click.argument("user_id")
@click.argument("item_id")
@click.option("--top", default=3, show_default=True, help="How many history items to name.")
@json_opt
@provider_opt
def explain(store, bundle, user_id, item_id, top, as_json, provider):
    """Which of USER_ID's history items ITEM_ID's recommendation is owed to."""
    from .recommender import Recommender

    with Recommender.open(bundle, store, provider=provider) as rec:
        why = rec.explain(user_id, item_id, top=top)
        if as_json:
            click.echo(json.dumps(why.to_dict()))
            return
        titles = rec.store.item_titles([item_id, *(i for i, _ in why.because)])
        click.echo(f"{item_id}{'  ' + titles[item_id] if item_id in titles else ''} for user "
                   f"{user_id} (score {why.score:.4f}, method {why.method})")
        if not why.because:
            click.echo("  no history item contributes to it")
        for i, share in why.because:
            click.echo(f"  {share:6.1%}  {i}{'  ' + titles[i] if i in titles else ''}")


@main.command()
@store_arg
@click.argument("user_id")
@click.argument("item_id")
@click.option("--event", default="click", show_default=True,
              help="Event type (view, click, like, add_to_cart, share, purchase, or any with --weight).")
@click.option("--weight", type=float, help="Weight (default: the event type's).")
@click.option("--ts", type=float, help="Seconds since the epoch (default: now).")
def record(store, user_id, item_id, event, weight, ts):
    """Record that USER_ID interacted with ITEM_ID (live feedback)."""
    from .feedback import record as record_event
    from .store import Store

    with Store.open(store, create=False) as opened:
        new = record_event(opened, user_id, item_id, event, weight, ts)
    click.echo(f"{store}: {'recorded' if new else 'already recorded'} {event} {user_id} -> {item_id}")


@main.command()
@store_arg
@click.argument("item_ids", nargs=-1, required=True)
@click.option("--restore", "restore_", is_flag=True,
              help="Make the items eligible again (the same as `edgerec restore`).")
def retire(store, item_ids, restore_):
    """Retire ITEM_IDS: never recommend them again (`Recommender.retire`)."""
    _set_active(store, item_ids, restore_)


@main.command()
@store_arg
@click.argument("item_ids", nargs=-1, required=True)
def restore(store, item_ids):
    """Make retired ITEM_IDS eligible again (`Recommender.restore`)."""
    _set_active(store, item_ids, True)


def _set_active(store, item_ids, active: bool) -> None:
    from .store import Store

    with Store.open(store, create=False) as opened:
        count = opened.set_active(item_ids, active)
    click.echo(f"{store}: {count} item(s) {'restored' if active else 'retired'}")


@main.command()
@click.argument("src", type=click.Path(file_okay=False))
@bundle_arg
def publish(src, bundle):
    """Verify the bundle SRC and install it atomically as BUNDLE (apps reload it)."""
    from .serving import publish as publish_bundle

    publish_bundle(src, bundle)
    click.echo(f"{bundle}: published from {src}")


@main.command("export-web")
@bundle_arg
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--store", type=click.Path(dir_okay=False),
              help="Titles, popularity (the fallback) and retired items from this store.")
def export_web(bundle, out, store):
    """Write what a browser page needs to serve BUNDLE (ONNX core, id maps, titles) to OUT."""
    from .web import export_web as write_web

    write_web(bundle, out, store)
    click.echo(f"{out}: web export of {bundle}" + (f" with the catalogue of {store}" if store else ""))


@main.command("export-histories")
@store_arg
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False),
              help="File with one user id per line (default: every user in the store).")
@click.option("--since", type=float, help="Only users with an event at or after this time (epoch s).")
def export_histories(store, out, users_file, since):
    """Write users' histories from STORE to the Parquet file OUT (the batch jobs' input)."""
    from .histories import export_histories as export

    done = [0]

    def progress(count):
        done[0] += count
        click.echo(f"\r{done[0]} users", nl=False, err=True)

    written = export(store, out, users=users_file, since=since, progress=progress)
    click.echo("", err=True)
    click.echo(f"{out}: {written} users")


@main.command()
@click.argument("source", type=click.Path())
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(),
              help="Directory of Parquet results, or a .csv file (local engine).")
@click.option("-n", default=10, show_default=True, help="How many items per user.")
@click.option("--engine", type=click.Choice(["local", "ray", "spark"]), default="local",
              show_default=True, help="Where to score: this process, Ray Data or Spark.")
@click.option("--workers", type=int, help="Parallel workers [default: CPUs / cpus-per-worker].")
@click.option("--cpus-per-worker", default=1, show_default=True,
              help="CPUs (ONNX Runtime threads) of each worker.")
@click.option("--address", help="Ray cluster address or Spark master URL [default: local].")
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False),
              help="File with one user id per line (store sources; default: every user).")
@filter_options
@provider_opt
def batch(source, bundle, out, n, engine, workers, cpus_per_worker, address, users_file,
          include, exclude, where, provider):
    """Top-N of every user in SOURCE (a store or Parquet histories) with BUNDLE, into OUT."""
    from .batch import batch as run_batch

    options = dict(engine=engine, workers=workers, cpus_per_worker=cpus_per_worker,
                   address=address, users=users_file, provider=provider or "cpu",
                   **_filters(include, exclude, where))
    if engine != "local":  # Ray and Spark show their own progress
        about = run_batch(source, bundle, out, n, **options)
    else:
        with contextlib.ExitStack() as stack:
            bars = []

            def progress(done, total):  # the bar starts with the work: errors stay one line
                if not bars:
                    bars.append(stack.enter_context(click.progressbar(
                        length=total, label="users", file=sys.stderr, show_pos=True)))
                bars[0].update(done - bars[0].pos)

            about = run_batch(source, bundle, out, n, progress=progress, **options)
    click.echo(f"{out}: {about['users']} users ({engine} on {about['cluster']}, "
               f"{about['workers']} workers, {about['seconds']:.1f}s)")


@main.command()
@click.argument("path", type=click.Path())
@json_opt
def check(path, as_json):
    """Verify a store file (integrity, schema, counts) or a bundle (everything an app checks)."""
    from .check import check as run_check

    result = run_check(path)
    if as_json:
        click.echo(json.dumps(result, indent=1))
    elif result["ok"]:
        shown = {k: v for k, v in result.items() if k not in ("path", "kind", "ok", "problems")}
        click.echo(f"{path}: {result['kind']} ok ("
                   + ", ".join(f"{k} {v}" for k, v in shown.items()) + ")")
    else:
        click.echo(f"{path}: {result['kind']} damaged: {'; '.join(result['problems'][:5])}")
    if not result["ok"]:
        sys.exit(1)


@main.command()
@bundle_arg
@json_opt
def describe(bundle, as_json):
    """What a bundle is: model kind, sizes, metrics, checksum, opset (alias: info)."""
    from .bundle import describe as describe_bundle

    about = describe_bundle(bundle)
    if as_json:
        click.echo(json.dumps(about, indent=1))
        return
    dims, onnx = about["dims"], about["onnx"]
    click.echo(f"bundle      {about['path']}")
    click.echo(f"model       {about['model_kind']} (format {about['format_version']}, "
               f"edgerec {about['edgerec_version']}, created {about.get('created_at')})")
    click.echo(f"sizes       {dims['n_users']} users, {dims['n_items']} items, dim {dims['dim']}, "
               f"history {dims['history_length']}")
    click.echo(f"onnx        {onnx['file']} {about['onnx_bytes']} bytes, opset {onnx['opset']}, "
               f"sha256 {onnx['sha256']}")
    training = about["training"]
    click.echo(f"trained on  {training['data'].get('interactions')} interactions in "
               f"{training.get('seconds')}s, epochs {training['params'].get('trained_epochs')}")
    for name, values in about["metrics"].items():
        shown = "  ".join(f"{m} {v:.4f}" for m, v in values.items() if "@" in m)
        click.echo(f"{name:<11} {shown}")


@main.command()
@click.option("--bundle", type=click.Path(file_okay=False), default=None,
              help="Probe with this bundle's scoring core instead of a one-node graph.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(bundle, as_json):
    """Which execution providers can run here, and why not (see edgerec.doctor)."""
    from .doctor import providers_report

    report = providers_report(bundle)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(f"onnxruntime  {report['onnxruntime']} (compiled in: {', '.join(report['compiled_in'])})")
    wheels = report["cuda_wheels"]
    click.echo("cuda wheels  " + (", ".join(f"{n} {v}" for n, v in wheels.items()) or "none"))
    for name, verdict in report["providers"].items():
        state = "usable" if verdict["usable"] else "unusable"
        click.echo(f"{name:<12} {state}: {verdict['why']}")
    click.echo(f"auto         {report['auto']}")


# -- A/B experiments ------------------------------------------------------------------------

config_arg = click.argument("config", type=click.Path(dir_okay=False))


@main.group()
def ab():
    """A/B experiments between bundles: assign users, serve and log, report."""


@ab.command("assign")
@config_arg
@click.argument("user_ids", nargs=-1, required=True)
def ab_assign(config, user_ids):
    """Print the variant of each USER_ID in the experiment CONFIG (a hash: no store needed)."""
    from .abconfig import load_config

    experiment = load_config(config)
    for user in user_ids:
        click.echo(f"{user}\t{experiment.variant_for(user).name}")


@ab.command("recommend")
@store_arg
@config_arg
@click.argument("user_id")
@click.option("-n", default=10, show_default=True, help="How many items.")
@request_options
@click.option("--ts", type=float, help="Seconds since the epoch stamped on the impressions "
                                      "(default: now).")
@json_opt
@provider_opt
def ab_recommend(store, config, user_id, n, include, exclude, where, diversity, explain,
                 new_arrivals, ts, as_json, provider):
    """Top-N for USER_ID from their variant of CONFIG, logged as impressions in STORE.

    Options the variant itself sets (what the experiment compares) cannot be given.
    """
    from .experiment import Experiment

    with Experiment.open(config, store, provider=provider) as experiment:
        recs = experiment.recommend(user_id, n=n, ts=ts, **_request(
            include, exclude, where, diversity, explain, new_arrivals))
        used = experiment.recommender(recs.variant).provider
        _echo_recommendations(
            recs, experiment.store, as_json,
            {"experiment": experiment.name, "variant": recs.variant,
             "request_id": recs.request_id, "provider": used},
            f"user {user_id}: experiment {experiment.name}, variant {recs.variant}, "
            f"request {recs.request_id}, {_source(recs)}, provider {used}")


@ab.command("report")
@store_arg
@click.argument("experiment")
@click.option("--window", type=float, help="Attribution window in hours [default: the config's].")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw cumulative CTR and conversion over time into this PNG.")
@click.option("--offline", is_flag=True,
              help="Also replay each variant on the events newer than its bundle's training data.")
@json_opt
def ab_report(store, experiment, window, plot_path, offline, as_json):
    """Per variant: users, impressions, CTR and conversion with intervals, lift, tests."""
    from .abtest import plot, report

    result = report(store, experiment, window_hours=window, offline=offline)
    if plot_path:
        plot(result, plot_path)
    click.echo(json.dumps(result.to_dict(), indent=1) if as_json else result.render())
    if plot_path and not as_json:
        click.echo(f"plot: {plot_path}")
