"""Training at scale: each kind on a 100K users x 100K items shop of 10M purchases.

    python benchmarks/large_train.py [--models als,auto] [--follow 0.7] [--stay 0.25] [--categories N]
                                     [--budget S] [--params JSON] [--users N] [--items N]
                                     [--events N] [--out DIR]

The data is ``demo:shop``'s generator (``edgerec.demo.shop_purchases``) at the size of
``benchmarks/latency.py``'s large store: 100 purchases per user on average (lognormal),
Zipf(0.9) item popularity, each purchase following an item-to-item transition from the
previous one (``--follow``), else from one of the user's two favourite categories
(``--stay``; ``--categories`` of them), else from popularity; built in memory as ``Interactions`` (the store round
trip is ``latency.py``'s business). ``--follow 0 --stay 0`` leaves items drawn
independently of the user, as in latency.py's store, where nothing can beat most-popular.

Each kind runs ``edgerec.trainer.fit`` as ``edgerec train`` does (holdout for early stopping,
refit on everything) in a fresh process, so its peak RSS is its own: wall seconds, peak RSS,
holdout NDCG@10 and most-popular's on the same holdout users. Writes DIR/large_train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def shop_interactions(n_users: int, n_items: int, n_events: int, follow: float, stay: float,
                      categories: int | None = None, seed: int = 0):
    """``n_events`` shop purchases as ``load_interactions`` returns them: unique (user, item)
    pairs of the users and the items bought."""
    from edgerec.demo import shop_purchases
    from edgerec.trainer.data import Interactions

    users, items, ts, _ = shop_purchases(n_users, n_items, n_events / n_users, categories, follow,
                                         stay, seed=seed)
    bought, items = np.unique(items, return_inverse=True)
    summary = {"events": int(len(users)), "interactions": int(len(users)), "users": n_users,
               "items": int(len(bought))}
    return Interactions(np.array([f"u{u}" for u in range(n_users)], object),
                        np.array([f"p{i}" for i in bought], object),
                        users, items.astype(np.int64), ts, summary, np.ones(len(users)))


def one(kind: str, args) -> dict:
    """Run in the child process: build the data, fit ``kind``, report."""
    from edgerec.trainer import fit

    t0 = time.perf_counter()
    data = shop_interactions(args.users, args.items, args.events, args.follow, args.stay,
                             args.categories)
    built = time.perf_counter() - t0
    extra = {"budget_seconds": args.budget} if kind == "auto" else json.loads(args.params)
    extra = {name: value for name, value in extra.items() if value is not None}
    t0 = time.perf_counter()
    result = fit(data, kind, progress=lambda m: print("  " + m, file=sys.stderr, flush=True), **extra)
    seconds = time.perf_counter() - t0
    return {"model": kind, "chose": result.params["model"], "train_seconds": round(seconds, 1),
            "data_seconds": round(built, 1), "interactions": int(len(data.users)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "holdout_ndcg@10": result.metrics["holdout"]["ndcg@10"],
            "popularity_ndcg@10": result.metrics["popularity"]["ndcg@10"],
            "params": {k: v for k, v in result.params.items() if k != "auto"},
            "load_after": os.getloadavg()[0]}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="als,auto")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--follow", type=float, default=0.7)
    parser.add_argument("--stay", type=float, default=0.25)
    parser.add_argument("--categories", type=int, help="default: 12 x events per user items each")
    parser.add_argument("--budget", type=float,
                        help="auto's budget in seconds (default: auto's own, 600 at 10M interactions)")
    parser.add_argument("--params", default="{}", help='settings for the kinds, JSON: {"reg": 20}')
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args)))
        return []
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.models.split(","):
        child = [sys.executable, __file__, "--one", kind, *(argv if argv is not None else sys.argv[1:])]
        load = os.getloadavg()[0]
        done = subprocess.run(child, stdout=subprocess.PIPE, text=True, check=True)
        rows.append({**json.loads(done.stdout.strip().splitlines()[-1]), "load_before": load})
        row = rows[-1]
        print(f"{kind} (chose {row['chose']}): {row['train_seconds']} s, peak RSS "
              f"{row['peak_rss_mb']} MB, holdout ndcg@10 {row['holdout_ndcg@10']:.4f} "
              f"(popularity {row['popularity_ndcg@10']:.4f}), load {load:.1f}", flush=True)
    command = "python benchmarks/large_train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "large_train.json").write_text(json.dumps({"command": command, "results": rows},
                                                          indent=1))
    return rows


if __name__ == "__main__":
    main()
