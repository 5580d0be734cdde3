"""edgerec kinds beside implicit's ALS tuned on validation, on the temporal protocol.

    python benchmarks/implicit_baseline.py DATA [--models als,auto] [--tune-itemknn] [--out DIR]

DATA is what ``benchmarks/quality.py`` takes (a ratings file, a store, ``demo:shop``...).
The test split is ``edgerec evaluate``'s temporal one (each user's latest 20%). implicit is
tuned the way a careful user would: a grid (factors, regularisation, alpha; 15 iterations,
its own threads, BLAS at one thread; the matrix it factorises: ones, the data's summed event
weights (play counts, ratings) where they vary, or those weighted by BM25 as implicit's
last.fm example does) fitted on the train part minus a validation split
carved from it by the same temporal rule, the best setting by validation NDCG@10 refitted
on the whole train part, then scored once on the test part: full ranking, train items
excluded, the metrics of ``edgerec.metrics``. The edgerec kinds run with their defaults
through ``edgerec evaluate`` (export and serving included); ``--tune-itemknn`` adds
edgerec's itemknn tuned on the same validation split (``ITEMKNN_GRID``). Writes
DIR/implicit_baseline.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

GRID = {"factors": (64, 128), "regularization": (0.1, 1.0, 10.0, 100.0), "alpha": (1.0, 10.0, 40.0)}
# What implicit factorises (``confidence``): a careful user of play counts tries the counts
# and BM25 on them (implicit's last.fm example), not only ones.
CONFIDENCES = ("ones", "counts", "bm25")
# edgerec's own itemknn, tuned the same way (``--tune-itemknn``): the neighbourhood baseline,
# classic item-kNN (every history item alike, symmetric co-occurrence), as the literature's.
ITEMKNN_GRID = {"neighbours": (100, 400), "shrink": (0.0, 50.0),
                "weighting": ("none", "bm25"), "recency": (1.0,), "forward": (0.0,)}


def confidences(data) -> tuple[str, ...]:
    """``CONFIDENCES`` less "counts" where every weight is equal (it would repeat "ones")."""
    weights = data.weights
    varied = weights is not None and len(weights) and np.ptp(weights) > 0
    return tuple(c for c in CONFIDENCES if varied or c != "counts")


def user_item_matrix(train, confidence: str):
    """[users, items] CSR of ones, the summed event weights, or BM25 of those (K1 100,
    B 0.8: implicit's last.fm example)."""
    from implicit.nearest_neighbours import bm25_weight
    from scipy.sparse import csr_matrix

    ones = np.ones(len(train.users), np.float32)
    values = ones if confidence == "ones" or train.weights is None else train.weights
    matrix = csr_matrix((np.asarray(values, np.float32), (train.users, train.items)),
                        shape=(train.n_users, train.n_items))
    if confidence != "bm25":
        return matrix
    return bm25_weight(matrix, K1=100, B=0.8).tocsr().astype(np.float32)


def implicit_scores(train, test, params: dict, k: int = 10) -> dict:
    """implicit ALS with ``params`` fitted on ``train``, full-ranking metrics on ``test``."""
    import implicit
    from threadpoolctl import threadpool_limits

    from edgerec.metrics import ranking_metrics

    params = dict(params)
    matrix = user_item_matrix(train, params.pop("confidence"))
    model = implicit.cpu.als.AlternatingLeastSquares(iterations=15, random_state=0, **params)
    with threadpool_limits(1, "blas"):
        model.fit(matrix, show_progress=False)
        users = np.flatnonzero(np.bincount(test.users, minlength=test.n_users))
        top, _ = model.recommend(users, matrix[users], N=k, filter_already_liked_items=True)
    relevant = test.items_by_user()
    return ranking_metrics(top, [relevant[u] for u in users], k, train.n_items)


def tuned_implicit(data) -> dict:
    """The grid on validation, the winner on test: {"params", "validation", "metrics"}."""
    from edgerec.pipelines.evaluate import split
    from edgerec.trainer.data import temporal_split

    train_mask, test_mask = split(data, "temporal")
    train, test = data.subset(train_mask), data.subset(test_mask)
    fit_mask, valid_mask = temporal_split(train)
    fit_part, valid = train.subset(fit_mask), train.subset(valid_mask)
    tried = []
    grid = {**GRID, "confidence": confidences(train)}
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        score = implicit_scores(fit_part, valid, params)["ndcg@10"]
        tried.append((score, params))
        print(f"  implicit {params}: validation ndcg@10 {score:.4f}", file=sys.stderr, flush=True)
    best_score, best = max(tried, key=lambda t: t[0])
    return {"params": best, "validation_ndcg@10": best_score,
            "metrics": implicit_scores(train, test, best)}


def tuned_itemknn(path: Path, data) -> dict:
    """``ITEMKNN_GRID`` on validation (``fit``'s holdout, carved from the train part by the
    same temporal rule), the winner through ``edgerec evaluate`` on the test part."""
    from edgerec.pipelines.evaluate import evaluate, split
    from edgerec.trainer import fit

    train = data.subset(split(data, "temporal")[0])
    tried = []
    for values in itertools.product(*ITEMKNN_GRID.values()):
        params = dict(zip(ITEMKNN_GRID, values))
        score = fit(train, "itemknn", refit=False, **params).metrics["holdout"]["ndcg@10"]
        tried.append((score, params))
        print(f"  itemknn {params}: validation ndcg@10 {score:.4f}", file=sys.stderr, flush=True)
    best_score, best = max(tried, key=lambda t: t[0])
    return {"params": best, "validation_ndcg@10": best_score,
            "metrics": evaluate(path, "itemknn", **best)["metrics"]}


def main(argv=None) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from quality import listening_ceiling, store_for

    from edgerec.pipelines.evaluate import evaluate
    from edgerec.store import Store
    from edgerec.trainer.data import load_interactions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--models", default="als,auto")
    parser.add_argument("--tune-itemknn", action="store_true",
                        help="also tune edgerec's itemknn on validation (ITEMKNN_GRID)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = store_for(args.data, args.out)
    store = Store.open(path, create=False)
    data = load_interactions(store)
    store.close()
    rows = []
    t0 = time.perf_counter()
    baseline = tuned_implicit(data)
    rows.append({"model": f"implicit ALS tuned {baseline['params']}", "ndcg@10": baseline["metrics"]["ndcg@10"],
                 "seconds": round(time.perf_counter() - t0, 1)})
    if args.tune_itemknn:
        t0 = time.perf_counter()
        knn = tuned_itemknn(path, data)
        rows.append({"model": f"itemknn tuned {knn['params']}", "ndcg@10": knn["metrics"]["ndcg@10"],
                     "seconds": round(time.perf_counter() - t0, 1)})
    for kind in args.models.split(","):
        report = evaluate(path, kind, progress=lambda m: print("  " + m, file=sys.stderr, flush=True))
        name = kind if kind != "auto" else f"auto (chose {report['params']['model']})"
        rows.append({"model": name, "ndcg@10": report["metrics"]["ndcg@10"],
                     "seconds": report["train_seconds"]})
    if str(args.data) == "demo:listens":
        rows.append({"model": "ceiling (the generator's own odds)", "seconds": 0,
                     "ndcg@10": listening_ceiling(path, "temporal")["ndcg@10"]})
    for row in rows:
        print(f"{row['model']}: ndcg@10 {row['ndcg@10']:.4f}  ({row['seconds']} s)", flush=True)
    command = "python benchmarks/implicit_baseline.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command, "data": str(args.data), "implicit": baseline, "results": rows}
    (args.out / "implicit_baseline.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
