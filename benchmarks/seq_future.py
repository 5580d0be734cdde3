"""How far ahead ``seq`` should learn: its settings compared on validation data only.

    python benchmarks/seq_future.py DATA [--protocol temporal] [--set future_window=1,8 ...]

The temporal test set is each user's whole newest 20%, not their next item, yet a model
trained on the next item only learns "what comes right after". ``future_window`` trains
every position against the F items that followed it (PinnerFormer's dense all-action
loss). Each ``--set NAME=V1,V2`` adds a grid axis; every combination is trained with
``fit`` on the *train* part of DATA's split (``--protocol``), and scored on ``fit``'s own
temporal holdout inside it: the test split never chooses. DATA as for ``quality.py``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from quality import interactions_for  # noqa: E402


def grid(sets: list[str]) -> list[dict]:
    """``["a=1,2", "b=x"]`` -> every combination, numbers and true/false parsed as JSON."""
    def value(text: str):
        try:
            return json.loads(text)
        except ValueError:
            return text

    axes = {name: [value(v) for v in values.split(",")]
            for name, values in (s.split("=", 1) for s in sets)}
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def main(argv=None) -> list[dict]:
    from edgerec.pipelines.evaluate import restrict_to_train, split
    from edgerec.trainer import fit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--protocol", default="temporal", choices=["temporal", "new-users"])
    parser.add_argument("--set", action="append", default=[], help="NAME=V1,V2 (a grid axis)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = interactions_for(args.data, args.out)
    train, _ = restrict_to_train(data, *split(data, args.protocol))
    rows = []
    for settings in grid(args.set) or [{}]:
        result = fit(train, "seq", refit=False, **settings,
                     progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
        rows.append({**settings, "validation ndcg@10": round(float(result.metrics["holdout"]["ndcg@10"]), 4),
                     "popularity": round(float(result.metrics["popularity"]["ndcg@10"]), 4),
                     "epochs": result.params["trained_epochs"], "seconds": round(result.seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    command = "python benchmarks/seq_future.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "seq_future.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
