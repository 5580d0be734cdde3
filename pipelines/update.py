"""``edgerec update``: the nightly loop of a kiosk, as one command that never publishes worse.

1. The events newer than the current bundle's training data are what it never saw. With
   none, there is nothing to do.
2. Gate: the newest ``holdout`` share of those events (by time) is held out. A candidate is
   warm-started from the current bundle on the store as it was before them, and both
   bundles rank the held-out events from that same store snapshot (``edgerec.replay``):
   neither has trained on them, both see the same histories, and the current bundle meets
   users it does not know the way it would in production (fold-in or popularity).
3. Only if the candidate's NDCG@k is not worse than the current one's (within
   ``tolerance``, relative) is the model warm-started again on *all* events, so the
   published bundle knows the newest behaviour too, and published atomically over the
   current bundle; apps watching it reload. Otherwise the current bundle stays.

The gate measures the warm-start procedure on the newest events rather than the exact
bundle published (which has also learned the held-out part): the same trade every
"validate, then refit on everything" pipeline makes, and the one ``edgerec train`` makes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .. import serving
from ..errors import InputError
from ..exporters import export_bundle
from ..replay import check_gate, iso, replay, training_end
from ..store import Store, snapshots
from ..trainer import Progress, fit, quiet

PUBLISHED, REFUSED, UP_TO_DATE = "published", "refused", "up to date"


def update(store: str | Path | Store, current: str | Path, *, holdout: float = 0.5,
           tolerance: float = 0.0, k: int = 10, epochs: int | None = None, seed: int = 0,
           keep: str | Path | None = None, progress: Progress = quiet) -> dict:
    """Warm-start, gate and publish over ``current``; see the module docstring.

    Returns the decision ({"status": "published" | "refused" | "up to date", ...}) with both
    bundles' replay metrics; it is also recorded in the published bundle's metrics.
    ``keep`` writes the candidate bundle there as well, whatever the decision.
    """
    check_gate(holdout, tolerance)
    current = Path(current)
    started = time.perf_counter()
    opened = store if isinstance(store, Store) else Store.open(store, create=False)
    try:
        trained_until = training_end(current)
        if trained_until is None:
            raise InputError(f"{current}: the bundle does not record when its training data ends "
                             "(re-train it with `edgerec train`)")
        new = snapshots.times_after(opened, trained_until)
        if not len(new):
            progress(f"no events since {iso(trained_until)}: {current} is up to date")
            return {"status": UP_TO_DATE, "since": trained_until}
        cut = float(np.quantile(new, 1.0 - holdout, method="lower"))
        progress(f"{len(new)} events since {iso(trained_until)}; gate on those after {iso(cut)}")
        with tempfile.TemporaryDirectory(prefix="edgerec-update-") as tmp:
            tmp = Path(tmp)
            before = snapshots.snapshot_before(opened, tmp / "before.db", cut)
            try:
                gate = fit(before, warm_start=current, epochs=epochs, seed=seed, progress=progress)
            finally:
                before.close()
            gated = replay(opened, {"current": (current, {}),
                                    "candidate": (export_bundle(gate, tmp / "gate"), {})}, k=k)
            if "candidate" in gated["variants"]:
                gated["variants"]["candidate"]["bundle"] = f"warm start on the events up to {iso(cut)}"
            decision = _decide(gated, tolerance, k)
            progress(decision["reason"])
            if decision["status"] == PUBLISHED or keep is not None:
                final = fit(opened, warm_start=current, epochs=epochs, seed=seed, progress=progress)
                final.metrics["update"] = {**decision, "gate": gated}
                staged = export_bundle(final, tmp / "next", progress)
                if keep is not None:  # a copy, published atomically like any bundle
                    serving.publish(staged, keep)
                if decision["status"] == PUBLISHED:
                    serving.publish(staged, current)
                    progress(f"{current}: published")
    finally:
        if opened is not store:
            opened.close()
    return {**decision, "gate": gated, "seconds": round(time.perf_counter() - started, 1)}


def _decide(gated: dict, tolerance: float, k: int) -> dict:
    metric = f"ndcg@{k}"
    if not gated["variants"]:
        return {"status": REFUSED, "reason": f"not published: {gated.get('note', 'nothing to compare')}"}
    old, new = gated["variants"]["current"][metric], gated["variants"]["candidate"][metric]
    verdict = (f"candidate {metric} {new:.4f} vs current {old:.4f} on {gated['users']} users' "
               f"events after {iso(gated['cutoff'])}")
    better = new >= old * (1.0 - tolerance)
    return {"status": PUBLISHED if better else REFUSED,
            "reason": ("publishing: " if better else "not published, worse than the current bundle: ")
            + verdict, metric: new, f"current_{metric}": old}
