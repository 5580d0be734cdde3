"""Warm start against a full retrain: quality on the same test split, and training time.

    python benchmarks/warm_start.py DATA [--models mf,als,...] [--new 0.1] [--epochs 1,2,4]
                                        [--validation] [--out DIR]

The scene a nightly update faces: a bundle was trained on everything up to some day; events
kept arriving (new users and items among them). DATA (a ratings file, a store, or
``demo:SHAPE``, as for ``quality.py``) is split by the ``temporal`` protocol of
``edgerec evaluate``; the newest ``--new`` share of the *train* part (by time) is what
arrived after the bundle was trained. For each kind:

1. the "yesterday" bundle is fitted (defaults, early stopping) on the older train events only;
2. a full retrain fits all train events from scratch (``edgerec train``);
3. a warm start continues the yesterday bundle on all train events
   (``edgerec train --warm-start``), for each ``--epochs`` value (default: the kind's own);

and the bundles from 2 and 3 are served through the runtime to rank the test part.
``--validation`` runs everything on the train part of the split instead (its own newest
20% per user as the test): what the default epochs were chosen on, so the test set never
chose them. Writes DIR/warm_start.json and DIR/warm_start.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from quality import store_for  # noqa: E402 - the same DATA forms as quality.py


def main(argv=None) -> list[dict]:
    import numpy as np

    from edgerec.pipelines.evaluate import restrict_to_train, serving_store, split
    from edgerec.exporters import export_bundle
    from edgerec.store import Store
    from edgerec.trainer import MODEL_KINDS, fit, load_interactions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--models", default=",".join(k for k, c in MODEL_KINDS.items() if c.warm_starts))
    parser.add_argument("--new", type=float, default=0.1, help="share of train events that are new")
    parser.add_argument("--epochs", default="", help="warm epochs to try, e.g. 1,2,4 (default: the kind's)")
    parser.add_argument("--validation", action="store_true", help="measure on the validation split")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = Store.open(store_for(args.data, args.out), create=False)
    data = load_interactions(store)
    train, test = restrict_to_train(data, *split(data))
    if args.validation:
        train, test = restrict_to_train(train, *split(train))
    cut = np.quantile(train.ts, 1.0 - args.new)
    old, _ = restrict_to_train(train, train.ts <= cut, train.ts > cut)
    print(f"train {len(train.users)} interactions ({train.n_users} users, {train.n_items} items); "
          f"yesterday's {len(old.users)} ({old.n_users} users, {old.n_items} items); "
          f"test {len(test.users)}", flush=True)
    tries = [int(e) for e in args.epochs.split(",") if e] or [None]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgerec-warm-") as tmp:
        tmp = Path(tmp)
        serving = serving_store(train, tmp / "train.db")
        for kind in args.models.split(","):
            yesterday = export_bundle(fit(old, kind), tmp / f"{kind}-yesterday")
            full = fit(train, kind)
            row = {"model": kind, "full": _served(full, serving, train, test, tmp / f"{kind}-full"),
                   "warm": []}
            for epochs in tries:
                warm = fit(train, warm_start=yesterday, epochs=epochs)
                row["warm"].append({"epochs": warm.params["trained_epochs"],
                                    **_served(warm, serving, train, test, tmp / f"{kind}-warm")})
            rows.append(row)
            print(_line(row), flush=True)
    command = "python benchmarks/warm_start.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "warm_start.json").write_text(json.dumps({"command": command, "results": rows}, indent=1))
    (args.out / "warm_start.md").write_text(_table(rows, command))
    print(_table(rows, command))
    return rows


def _served(result, serving: Path, train, test, out: Path) -> dict:
    """Test NDCG@10 of the fitted model as the runtime serves it, and its training time."""
    import numpy as np

    from edgerec.pipelines.evaluate import full_ranking_metrics
    from edgerec.exporters import export_bundle
    from edgerec.recommender import Recommender

    bundle = export_bundle(result, out)
    users = np.flatnonzero(np.bincount(test.users, minlength=train.n_users))
    with Recommender.open(bundle, serving, provider="cpu") as rec:
        metrics = full_ranking_metrics(rec, train, test, users, 10)
    return {"ndcg@10": float(metrics["ndcg@10"]), "recall@10": float(metrics["recall@10"]),
            "train_seconds": round(result.seconds, 1)}


def _line(row: dict) -> str:
    full = row["full"]
    parts = [f"{row['model']}: full {full['ndcg@10']:.4f} in {full['train_seconds']} s"]
    parts += [f"warm x{w['epochs']} {w['ndcg@10']:.4f} in {w['train_seconds']} s "
              f"({w['ndcg@10'] / full['ndcg@10'] - 1:+.1%})" for w in row["warm"]]
    return "; ".join(parts)


def _table(rows: list[dict], command: str) -> str:
    lines = ["| model | full retrain NDCG@10 | s | warm epochs | warm NDCG@10 | vs full | s | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        full = row["full"]
        for warm in row["warm"]:
            lines.append(f"| {row['model']} | {full['ndcg@10']:.4f} | {full['train_seconds']} | "
                         f"{warm['epochs']} | {warm['ndcg@10']:.4f} | "
                         f"{warm['ndcg@10'] / full['ndcg@10'] - 1:+.1%} | {warm['train_seconds']} | "
                         f"{full['train_seconds'] / max(warm['train_seconds'], 0.1):.1f}x |")
    return "\n".join(lines) + f"\n\nCommand: `{command}`\n"


if __name__ == "__main__":
    main()
