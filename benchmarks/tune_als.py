"""`als` settings on validation only: the grid behind ``edgerec.trainer.defaults``.

    python benchmarks/tune_als.py DATA [--reg 5,20,100] [--alpha 1,4,16,40] [--dim 64] [--out DIR]

DATA is what ``benchmarks/quality.py`` takes. The test part of ``edgerec evaluate``'s temporal
split is dropped first and never read: each setting is fitted on the train part minus its
own temporal holdout (``fit``'s early stopping split) and scored there, so what this chooses
was chosen without the test split. Prints the data's statistics (what the data-driven
defaults read) and, per setting, validation NDCG@10 and seconds; writes DIR/tune_als.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from quality import interactions_for

    from edgerec.pipelines.evaluate import split
    from edgerec.trainer import fit
    from edgerec.trainer.defaults import data_statistics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--reg", default="5,20,100")
    parser.add_argument("--alpha", default="1,4,16,40")  # 40: the sparse shops
    parser.add_argument("--dim", default="64")
    parser.add_argument("--weighting", default="log1p")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = interactions_for(args.data, args.out)
    train = data.subset(split(data, "temporal")[0])  # the test part is never seen
    stats = data_statistics(train)
    print("statistics:", json.dumps(stats), flush=True)
    grid = {"reg": [float(v) for v in args.reg.split(",")],
            "alpha": [float(v) for v in args.alpha.split(",")],
            "dim": [int(v) for v in args.dim.split(",")],
            "weighting": args.weighting.split(",")}
    rows = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        t0 = time.perf_counter()
        result = fit(train, "als", refit=False, **params)
        rows.append({**params, "validation_ndcg@10": round(result.metrics["holdout"]["ndcg@10"], 4),
                     "epochs": result.params["trained_epochs"],
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda row: row["validation_ndcg@10"])
    print("best:", json.dumps(best))
    report = {"data": str(args.data), "statistics": stats, "grid": grid, "rows": rows, "best": best}
    (args.out / "tune_als.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
