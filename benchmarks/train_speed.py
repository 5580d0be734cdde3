"""ALS fit time: edgerec's ``als`` beside implicit's ALS, same data, factors and iterations.

    python benchmarks/train_speed.py [DATA] [--factors 64,128] [--iterations 15] [--repeats 3]

DATA is what ``benchmarks/quality.py`` takes (default ``demo:shop``: 30K users x 24K
products, ~10 purchases each). Both solve the same problem: the confidences edgerec
computes (c = 1 + alpha log1p(w)) are handed to implicit as its matrix, with the same
regularisation and conjugate-gradient steps. implicit runs at its best: its own threads on
every core, BLAS at one thread (implicit's advice), the CSR matrix built beforehand. The
two fits alternate, ``--repeats`` times, and the medians and their ratio are reported
(the machine may be shared: only side-by-side ratios mean anything). edgerec's time is
``prepare`` + the epochs' sweeps (the loss and fold-in refresh each epoch included), not
validation. Writes DIR/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def edgerec_fit(data, factors: int, iterations: int) -> float:
    from edgerec.trainer import MODEL_KINDS

    net = MODEL_KINDS["als"](data.n_users, data.n_items, seed=0, dim=factors)
    t0 = time.perf_counter()
    net.prepare(data)
    for epoch in range(iterations):
        net.train_epoch(data, epoch)
    return time.perf_counter() - t0


def implicit_fit(matrix, factors: int, iterations: int, params: dict) -> float:
    import implicit
    from threadpoolctl import threadpool_limits

    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=factors, iterations=iterations, regularization=params["reg"], alpha=1.0,
        random_state=0)
    model.cg_steps = params["cg_steps"]  # an attribute, not a constructor argument
    with threadpool_limits(1, "blas"):
        t0 = time.perf_counter()
        model.fit(matrix, show_progress=False)
        return time.perf_counter() - t0


def confidence_matrix(data):
    """The user x item matrix of edgerec's confidences, as implicit takes it."""
    from scipy.sparse import csr_matrix

    from edgerec.trainer.als import confidence_weights
    from edgerec.trainer import MODEL_KINDS

    params = MODEL_KINDS["als"].defaults
    conf = 1.0 + params["alpha"] * confidence_weights(data, params["weighting"])
    return csr_matrix((conf.astype(np.float32), (data.users, data.items)),
                      shape=(data.n_users, data.n_items))


def main(argv=None) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from quality import interactions_for

    from edgerec.trainer import MODEL_KINDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default="demo:shop", type=Path)
    parser.add_argument("--factors", default="64,128")
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = interactions_for(args.data, args.out)
    matrix = confidence_matrix(data)
    edgerec_fit(data, 8, 1)  # compiles (or loads) the numba kernels outside the timings
    rows = []
    for factors in map(int, args.factors.split(",")):
        times = {"edgerec": [], "implicit": []}
        for _ in range(args.repeats):
            times["edgerec"].append(edgerec_fit(data, factors, args.iterations))
            times["implicit"].append(implicit_fit(matrix, factors, args.iterations,
                                                  MODEL_KINDS["als"].defaults))
        row = {"factors": factors, "iterations": args.iterations,
               **{f"{k}_s": statistics.median(v) for k, v in times.items()}, "runs": times}
        row["ratio"] = row["edgerec_s"] / row["implicit_s"]
        rows.append(row)
        print(f"factors {factors:4d} x {args.iterations} iterations: edgerec {row['edgerec_s']:.2f} s"
              f"  implicit {row['implicit_s']:.2f} s  ratio {row['ratio']:.2f}x", flush=True)
    command = "python benchmarks/train_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command, "data": str(args.data), "users": data.n_users,
              "items": data.n_items, "interactions": len(data.users), "results": rows}
    (args.out / "train_speed.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
