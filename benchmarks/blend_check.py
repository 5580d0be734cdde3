"""Would a score blend of two kinds beat the better one? Measured on validation only.

    python benchmarks/blend_check.py DATA [--kinds seq,itemknn] [--weights 0.1,...,0.9]

DATA as in ``quality.py`` (a ratings file, a store or ``demo:SHAPE``). Each kind is fitted
with its defaults on the train part of ``edgerec evaluate``'s temporal split (no refit), and
scored on ``fit``'s own holdout of that part (each user's newest 20%): the test split is
never read. Per user, the two kinds' score rows (seen items left out) are normalised and
mixed as w * first + (1 - w) * second, three ways: z-scores, min-max, and a probability
mixture (the first kind's softmax, the second's non-negative scores summed to 1). Prints
each kind's and each blend's validation NDCG@10, and, per normalisation, the best w's score
with w chosen on one half of the users and scored on the other (cross-fitted), so that the
choice of w is not credited with the holdout's noise. Why: a blend is worth a kind of its
own (and a two-network ONNX core) only if it wins clearly on validation (benchmarks/README.md,
"Blending seq with a neighbourhood kind").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from quality import interactions_for


def holdout_scores(data, kinds: list[str]) -> tuple[dict, list, list, int]:
    """({kind: [users, items] validation scores}, seen, relevant, n_items) on fit's holdout."""
    from edgerec.pipelines.evaluate import restrict_to_train, split
    from edgerec.trainer import fit
    from edgerec.trainer.data import validation_split
    from edgerec.trainer.validation import VALIDATION_USERS, holdout_users, score_users

    train, _ = restrict_to_train(data, *split(data, "temporal", 0))
    fit_train, fit_holdout = (train.subset(mask) for mask in validation_split(train, "temporal", 0))
    users = holdout_users(fit_holdout, VALIDATION_USERS, 0)
    scores = {}
    for kind in kinds:
        net = fit(train, kind, refit=False).model
        history = fit_train.recent_items(users, net.history_length if net.reads_history else 0)
        scores[kind] = score_users(net, users, history).astype(np.float64)
    seen, relevant = fit_train.items_by_user(), fit_holdout.items_by_user()
    return scores, [seen[u] for u in users], [relevant[u] for u in users], fit_train.n_items


def unseen(scores: np.ndarray, seen: list) -> np.ndarray:
    """``scores`` with each user's seen items as NaN: they never count in a normalisation."""
    out = scores.copy()
    for row, items in enumerate(seen):
        out[row, items] = np.nan
    return out


def z_scores(x: np.ndarray) -> np.ndarray:
    return (x - np.nanmean(x, 1, keepdims=True)) / (np.nanstd(x, 1, keepdims=True) + 1e-12)


def min_max(x: np.ndarray) -> np.ndarray:
    low = np.nanmin(x, 1, keepdims=True)
    return (x - low) / (np.nanmax(x, 1, keepdims=True) - low + 1e-12)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.nanmax(x, 1, keepdims=True))
    return e / np.nansum(e, 1, keepdims=True)


def shares(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 0)
    return x / (np.nansum(x, 1, keepdims=True) + 1e-12)


NORMALISATIONS = {"z": (z_scores, z_scores), "minmax": (min_max, min_max), "prob": (softmax, shares)}


def ndcg(scores: np.ndarray, rows: np.ndarray, seen: list, relevant: list, n_items: int) -> float:
    from edgerec.trainer.validation import ranked_metrics

    filled = np.nan_to_num(scores[rows], nan=-np.inf)
    return ranked_metrics(lambda part: filled[part], [seen[r] for r in rows],
                          [relevant[r] for r in rows], 10, n_items)["ndcg@10"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--kinds", default="seq,itemknn")
    parser.add_argument("--weights", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.85,0.9,0.95")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    first, second = args.kinds.split(",")
    weights = [float(w) for w in args.weights.split(",")]
    scores, seen, relevant, n_items = holdout_scores(interactions_for(args.data, args.out),
                                                     [first, second])
    n = len(seen)
    every, halves = np.arange(n), np.array_split(np.random.default_rng(0).permutation(n), 2)
    print(f"{args.data}, fit's holdout ({n} users): {first} "
          f"{ndcg(scores[first], every, seen, relevant, n_items):.4f}, {second} "
          f"{ndcg(scores[second], every, seen, relevant, n_items):.4f} NDCG@10")
    for name, (norm_a, norm_b) in NORMALISATIONS.items():
        a, b = norm_a(unseen(scores[first], seen)), norm_b(unseen(scores[second], seen))
        blends = {w: w * a + (1 - w) * b for w in weights}
        whole = {w: ndcg(s, every, seen, relevant, n_items) for w, s in blends.items()}
        per_half = [{w: ndcg(s, np.sort(h), seen, relevant, n_items) for w, s in blends.items()}
                    for h in halves]
        crossed = sum(per_half[1 - i][max(weights, key=per_half[i].get)] * len(halves[1 - i])
                      for i in range(2)) / n
        best = max(weights, key=whole.get)
        print(f"  {name:6s} w({first}) " + " ".join(f"{w}:{v:.4f}" for w, v in whole.items())
              + f" | best w {best}: {whole[best]:.4f}; cross-fitted {crossed:.4f}")


if __name__ == "__main__":
    main()
