"""Recommendation quality of every model kind, beside most-popular, on one data set.

    python benchmarks/quality.py DATA [--models mf,neumf,...] [--protocol temporal] [--out DIR]

DATA is a ratings file edgerec can ingest (e.g. MovieLens ``u.data``), an existing store
(``.db``), or ``demo:SHAPE`` for synthetic check data of shapes unlike MovieLens (see
``SHAPES``): ``demo:long`` (a 12K-item catalogue, few users, long histories) and
``demo:plays`` (play counts as weights, in an order that carries no meaning),
``demo:listens`` (last.fm-like: ~50 artists per user, heavy-tailed play counts that follow
taste, no order; ``listens.py``, whose true odds give the table a "ceiling" row),
``demo:shop`` (30K users x 24K products, about 10 purchases each, in an order that matters:
``edgerec.demo.shop``) and ``demo:shop-small`` (the same at a tenth of the size, for tests
and quick checks), ``demo:shop-loose`` (the shop where only 30% of purchases follow the one
before, not 70%: does what wins on ``demo:shop`` hold where order says less?). Each kind is
evaluated with its default settings by ``edgerec evaluate`` (fit on the train part with
early stopping on a validation split carved from it, export, serve through the runtime,
score the held-out test part). Writes DIR/quality.json and
DIR/quality.md (a table with model, metrics, training time and the command). Not part of
the test suite: it trains every kind on the full data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

METRICS = ("ndcg@10", "recall@10", "hr@10", "map@10", "coverage@10")
SHAPES = {
    "long": {"n_users": 1_200, "n_items": 12_000, "mean_events": 250, "seed": 11},
    "plays": {"n_users": 1_500, "n_items": 10_000, "mean_events": 150, "seed": 12},
    "listens": {"n_users": 1_900, "n_items": 17_600, "mean_events": 50, "seed": 14},
    "shop": {"n_users": 30_000, "n_items": 24_000, "mean_events": 10, "seed": 13},
    # The shop with weaker order: a third of purchases follow the previous one, not 70%.
    "shop-loose": {"n_users": 30_000, "n_items": 24_000, "mean_events": 10, "seed": 13,
                   "follow": 0.3},
    "shop-small": {"n_users": 3_000, "n_items": 2_400, "mean_events": 10, "seed": 13},
}


def synthetic_store(shape: str, path: Path) -> Path:
    """Demo-generator data of a named shape; "plays" gets Poisson play counts as weights
    and timestamps shuffled within each user, so that order carries no signal; "shop*"
    comes from the purchase generator (``edgerec.demo.shop``), "listens" from ``listens``."""
    import numpy as np

    from edgerec.demo import generate, shop
    from edgerec.store import Store
    from listens import listens

    if shape not in SHAPES:
        raise SystemExit(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    if shape == "listens":
        events, items = listens(**SHAPES[shape]), []
    else:
        events, items = (shop if shape.startswith("shop") else generate)(**SHAPES[shape])
    if shape == "plays":
        rng = np.random.default_rng(0)
        by_user: dict[str, list] = {}
        for event in events:
            by_user.setdefault(event[0], []).append(event)
        events = []
        for rows in by_user.values():
            stamps = rng.permutation([row[4] for row in rows])
            events += [(u, i, "play", float(1 + rng.poisson(3 * w)), float(t))
                       for (u, i, _, w, _), t in zip(rows, stamps)]
    store = Store.open(path)
    store.add_events(events)
    store.add_items(items)
    store.close()
    return path


def interactions_for(data: Path, work: Path):
    """The data's interactions (``store_for``'s store, read once and closed): what the
    training benchmarks start from."""
    from edgerec.store import Store
    from edgerec.trainer.data import load_interactions

    store = Store.open(store_for(data, work), create=False)
    try:
        return load_interactions(store)
    finally:
        store.close()


def store_for(data: Path, work: Path) -> Path:
    """The data as a store: a .db is used as is, anything else is ingested once."""
    if data.suffix == ".db":
        return data
    if str(data).startswith("demo:"):
        shape = str(data).split(":", 1)[1]
        path = work / f"demo-{shape}.db"
        return path if path.exists() else synthetic_store(shape, path)
    from edgerec.ingest import ingest_events
    from edgerec.store import Store

    path = work / f"{data.stem}.db"
    if not path.exists():
        tmp = path.with_suffix(".tmp.db")
        tmp.unlink(missing_ok=True)
        store = Store.open(tmp)
        print(ingest_events(store, data).summary(), flush=True)
        store.close()  # checkpoints the WAL into the file before it moves
        shutil.move(tmp, path)
    return path


def listening_ceiling(store: Path, protocol: str) -> dict:
    """``listens.ceiling`` of the demo:listens store."""
    from listens import ceiling

    return ceiling(interactions_for(store, store.parent), SHAPES["listens"], protocol)


def table(rows: list[dict], protocol: str) -> str:
    keys = ("ndcg@10", "hr@10") if protocol == "leave-one-out-sampled" else METRICS
    lines = ["| model | " + " | ".join(keys) + " | train s |", "|---" * (len(keys) + 2) + "|"]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['model']} | skipped: {row['skipped']} |")
            continue
        values = " | ".join(f"{row['metrics'][k]:.4f}" for k in keys)
        name = row["model"]
        if name == "auto":
            name = f"auto (chose {row['params']['model']})"
        lines.append(f"| {name} | {values} | {row.get('train_seconds', '')} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    from edgerec.errors import InputError
    from edgerec.pipelines.evaluate import evaluate
    from edgerec.trainer import MODEL_KINDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="ratings file, store (.db) or demo:SHAPE "
                        f"({', '.join(SHAPES)})")
    parser.add_argument("--models", default=",".join(MODEL_KINDS))
    parser.add_argument("--protocol", default="temporal")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = store_for(args.data, args.out)
    rows, popularity = [], None
    for kind in args.models.split(","):
        t0 = time.perf_counter()
        try:
            report = evaluate(store, kind, protocol=args.protocol,
                              progress=lambda m: print("  " + m, file=sys.stderr, flush=True))
        except InputError as exc:  # a kind that refuses this data (e.g. ease on a large catalogue)
            print(f"{kind}: skipped ({exc})", flush=True)
            rows.append({"model": kind, "skipped": str(exc)})
            continue
        report["wall_seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(report)
        popularity = report["popularity"]
        print(f"{kind}: " + "  ".join(f"{k} {report['metrics'][k]:.4f}" for k in ("ndcg@10", "hr@10"))
              + f"  ({report['train_seconds']} s training)", flush=True)
    rows.append({"model": "popularity", "metrics": popularity})
    if str(args.data) == "demo:listens":
        rows.append({"model": "ceiling (the generator's own odds)",
                     "metrics": listening_ceiling(store, args.protocol)})
    command = "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "quality.json").write_text(json.dumps({"command": command, "results": rows}, indent=1))
    (args.out / "quality.md").write_text(
        f"Data: `{args.data}`, protocol `{args.protocol}`, K=10.\n\n{table(rows, args.protocol)}\n\n"
        f"Command: `{command}`\n")
    print(table(rows, args.protocol))
    return rows


if __name__ == "__main__":
    main()
