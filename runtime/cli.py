"""The ``edgerec`` command: each command is a thin wrapper over a documented function.

Errors the user can fix (``EdgerecError``) are printed as one ``Error: ...`` line with exit
code 1; the trainer (TensorFlow) is imported only by ``train`` and ``evaluate``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import EdgerecError
from .session import CHOICES as PROVIDER_CHOICES


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgerecError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


store_arg = click.argument("store", type=click.Path(dir_okay=False))
provider_opt = click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default=None,
                            help="Execution provider (default: $EDGEREC_PROVIDER or auto).")


@click.group(cls=_Group)
@click.version_option(package_name="edgerec")
def main():
    """edgerec: offline top-N recommendations from an exported ONNX scoring core."""


@main.command()
@store_arg
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "tsv", "jsonl", "movielens"]),
              default="auto", show_default=True)
@click.option("--user-col")
@click.option("--item-col")
@click.option("--time-col")
@click.option("--weight-col")
@click.option("--event-col")
@click.option("--strict", is_flag=True, help="Reject the whole file if any row is malformed.")
def ingest(store, file, fmt, user_col, item_col, time_col, weight_col, event_col, strict):
    """Add interaction events from FILE to STORE (created if missing)."""
    from .ingest import ingest_events
    from .store import Store

    report = ingest_events(Store.open(store), file, format=fmt, user_col=user_col,
                           item_col=item_col, time_col=time_col, weight_col=weight_col,
                           event_col=event_col, strict=strict)
    click.echo(report.summary())


@main.command()
@store_arg
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "tsv", "jsonl", "movielens"]),
              default="auto", show_default=True)
@click.option("--id-col")
@click.option("--title-col")
def items(store, file, fmt, id_col, title_col):
    """Add or update the item catalogue (titles, categories) from FILE."""
    from .ingest import ingest_items
    from .store import Store

    click.echo(ingest_items(Store.open(store), file, format=fmt, id_col=id_col,
                            title_col=title_col).summary())


@main.command("demo-data")
@store_arg
@click.option("--users", default=600, show_default=True)
@click.option("--items", "n_items", default=400, show_default=True)
@click.option("--seed", default=0, show_default=True)
def demo_data(store, users, n_items, seed):
    """Write the built-in synthetic demo data (clustered tastes) into STORE."""
    from .demo import write_demo
    from .store import Store

    added = write_demo(Store.open(store), n_users=users, n_items=n_items, seed=seed)
    click.echo(f"{store}: {added['events']} events and {added['items']} items added")


@main.command()
@store_arg
@click.option("--model", default="mf", show_default=True, help="Model kind.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle directory.")
@click.option("--epochs", type=int, help="Most epochs (early stopping) [default: 30].")
@click.option("--dim", type=int, help="Embedding size [default: 32].")
@click.option("--negatives", type=int, help="Sampled negatives per positive [default: 4].")
@click.option("--seed", type=int, help="Random seed [default: 0].")
def train(store, model, out, **params):
    """Train a model on STORE and export it as an ONNX bundle at OUT."""
    try:
        from .exporters import train_bundle
    except ImportError as exc:
        raise EdgerecError(f"training needs TensorFlow: pip install 'edgerec[train]' ({exc})") from None
    given = {name: value for name, value in params.items() if value is not None}
    path, result = train_bundle(store, out, model=model, progress=_echo_err, **given)
    holdout = result.metrics["holdout"]
    click.echo(f"{path}: {model} trained in {result.seconds:.1f}s, holdout ndcg@10 "
               f"{holdout.get('ndcg@10', float('nan')):.4f} (popularity "
               f"{result.metrics['popularity'].get('ndcg@10', float('nan')):.4f})")


@main.command()
@store_arg
@click.option("--model", default="mf", show_default=True, help="Model kind.")
@click.option("--protocol", default="temporal", show_default=True,
              help="temporal (last 20% of each user) or leave-one-out-sampled (latest vs 99 sampled).")
@click.option("-k", "k", default=10, show_default=True, help="Cut-off of the ranking metrics.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the results as JSON here.")
@click.option("--epochs", default=30, show_default=True, help="Most epochs (early stopping).")
@click.option("--dim", default=64, show_default=True, help="Embedding size.")
@click.option("--negatives", default=4, show_default=True, help="Negatives per positive.")
@click.option("--seed", default=0, show_default=True)
def evaluate(store, model, protocol, k, out, epochs, dim, negatives, seed):
    """Hold out a test split of STORE, train on the rest, measure the served top-K."""
    try:
        from .exporters.evaluate import evaluate as run_evaluation
    except ImportError as exc:
        raise EdgerecError(f"evaluation needs TensorFlow: pip install 'edgerec[train]' ({exc})") from None
    report = run_evaluation(store, model=model, protocol=protocol, k=k, out=out, epochs=epochs,
                            dim=dim, negatives=negatives, seed=seed, progress=_echo_err)
    names = [m for m in report["metrics"] if "@" in m]
    click.echo(f"{protocol}: {report['users_evaluated']} users, {model} trained in "
               f"{report['train_seconds']:.1f}s on the train part")
    click.echo(f"{'':<11}" + "".join(f"{m:>13}" for m in names))
    for label, values in ((model, report["metrics"]), ("popularity", report["popularity"])):
        click.echo(f"{label:<11}" + "".join(f"{values[m]:>13.4f}" for m in names))
    if out:
        click.echo(f"results: {out}")


@main.command()
@store_arg
@click.argument("bundle", type=click.Path(file_okay=False))
@click.argument("user_id")
@click.option("-n", default=10, show_default=True, help="How many items.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@provider_opt
def recommend(store, bundle, user_id, n, as_json, provider):
    """Top-N items for USER_ID, seen items excluded."""
    from .recommender import Recommender

    with Recommender.open(bundle, store, provider=provider) as rec:
        recs = rec.recommend(user_id, n=n)
        if as_json:
            click.echo(json.dumps({**recs.to_dict(), "provider": rec.provider}))
            return
        titles = rec.store.item_titles(r.item_id for r in recs)
        source = "most popular (user unknown to the model)" if recs.fallback else "personalised"
        click.echo(f"user {user_id}: {source}, provider {rec.provider}")
        for rank, r in enumerate(recs, 1):
            title = f"  {titles[r.item_id]}" if r.item_id in titles else ""
            click.echo(f"{rank:3d}. {r.item_id}  {r.score:.4f}{title}")


@main.command()
@store_arg
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
@click.option("-n", default=10, show_default=True)
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False),
              help="File with one user id per line (default: every user in the store).")
@provider_opt
def batch(store, bundle, out, n, users_file, provider):
    """Write top-N for every user to a CSV (user_id,rank,item_id,score)."""
    from .recommender import Recommender

    users = None
    if users_file:
        users = [line.strip() for line in Path(users_file).read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    with Recommender.open(bundle, store, provider=provider) as rec:
        total = len(users) if users is not None else len(rec.store.user_ids())
        with click.progressbar(length=total, label="users", file=sys.stderr) as bar:
            rows = rec.batch(out, n=n, users=users, progress=bar.update)
        click.echo(f"{out}: {rows} rows for {total} users (provider {rec.provider})")


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(bundle, as_json):
    """What a bundle is: model kind, sizes, metrics, checksum, opset."""
    from .bundle import describe

    about = describe(bundle)
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
