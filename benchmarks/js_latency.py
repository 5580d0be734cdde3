"""Latency of the JavaScript runtime (js/) beside the Python one, on one bundle, in one run.

    python benchmarks/js_latency.py [--quick] [--calls N] [--out DIR]

On a MovieLens-100K-size store and MF bundle (943 users, 1,682 items, 100K events; the
synthetic ones of ``latency.py``, cached in DIR/cache), top-10 per request:

- Python ``Recommender.recommend``: "first" (each user's first request in a
  ``Recommender``: history read from SQLite, inputs built; one pass over the users, so at
  most 893 calls) and "repeat" (cached inputs);
- Node, ``recommendFromStore`` (history and retired items read from SQLite on every call,
  nothing cached) and ``recommend`` with the history already in memory;
- the browser: ``recommend`` in the kiosk page in headless Chromium (onnxruntime-web,
  WebAssembly, one thread), history in memory. ``performance.now()`` is coarsened to
  0.1 ms in a page that is not cross-origin isolated, so its p50/p99 are in 0.1 ms steps
  and its mean (exact) is reported too.

Python and Node take turns in blocks of ``BLOCK`` requests (Node runs in one long-lived
process that times the blocks Python asks for), so both share the machine's noisy
periods; the browser runs after them. Writes DIR/js_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from latency import K, environment, stats, synthetic_bundle, synthetic_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "js"
BLOCK = 100
WARMUP = 50


class NodeRuntime:
    """js/bench/latency.mjs, kept running: it times the blocks of users it is sent."""

    def __init__(self, store: Path, bundle: Path):
        self.proc = subprocess.Popen(["node", JS / "bench" / "latency.mjs", store, bundle],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def time(self, mode: str, users: list[str]) -> list[float]:
        self.proc.stdin.write(json.dumps({"mode": mode, "users": users}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def side_by_side(store: Path, bundle: Path, users: list[str], calls: int) -> dict:
    """Python first/repeat and Node store/memory requests, taking turns block by block."""
    from edgerec import Recommender

    rng = np.random.default_rng(3)
    # Each user's first request happens once: at most one pass over the users.
    order = [users[i] for i in rng.permutation(len(users))]
    first = order[WARMUP:][:calls]
    repeat = [users[i] for i in rng.integers(0, len(users), calls)]
    samples = {name: [] for name in ("python_first", "python_repeat", "node_store", "node_memory")}
    node = NodeRuntime(store, bundle)
    fresh = Recommender.open(bundle, store, provider="cpu")
    warm = Recommender.open(bundle, store, provider="cpu")
    try:
        for u in order[:WARMUP]:
            fresh.recommend(u, K)
        for u in repeat[:WARMUP]:
            warm.recommend(u, K)
        node.time("store", repeat[:WARMUP])
        node.time("memory", repeat[:WARMUP])
        for start in range(0, calls, BLOCK):
            samples["python_first"] += _timed(fresh, first[start:start + BLOCK])
            samples["node_store"] += node.time("store", repeat[start:start + BLOCK])
            samples["python_repeat"] += _timed(warm, repeat[start:start + BLOCK])
            samples["node_memory"] += node.time("memory", repeat[start:start + BLOCK])
    finally:
        node.close()
        fresh.close()
        warm.close()
    return {name: stats(times) for name, times in samples.items()}


def _timed(rec, users: list[str]) -> list[float]:
    out = []
    for u in users:
        t0 = time.perf_counter()
        rec.recommend(u, K)
        out.append(time.perf_counter() - t0)
    return out


def browser(store: Path, bundle: Path, users: list[str], calls: int, work: Path) -> dict | None:
    """recommend() in the kiosk page (WebAssembly), for known users with their histories."""
    from edgerec.store import Store
    from edgerec.web import export_web

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        print("browser: skipped (no Chromium: apt-get install chromium)")
        return None
    web = export_web(bundle, work / "web", store)
    opened = Store.open(store, create=False)
    rng = np.random.default_rng(4)
    chosen = [users[i] for i in rng.integers(0, len(users), calls + WARMUP)]
    histories = opened.histories(sorted(set(chosen)))
    opened.close()
    requests = work / "requests.json"
    requests.write_text(json.dumps([{"userId": u, "history": histories[u]} for u in chosen]))
    server = subprocess.Popen(["node", JS / "examples" / "kiosk" / "serve.js", web, "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split(" ", 1)[1].strip()
        page = json.loads(subprocess.run(
            ["node", JS / "test" / "kiosk-taps.mjs", url, "--taps", "0", "--bench", requests,
             "--chromium", chromium], capture_output=True, text=True, check=True, timeout=600).stdout)
    finally:
        server.terminate()
        server.wait(timeout=10)
    seconds = [ms / 1e3 for ms in page["benchMs"][WARMUP:]]
    return stats(seconds) | {"resolution_us": 100.0}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few calls (smoke test)")
    parser.add_argument("--calls", type=int, help="requests per runtime [default: 3000, quick 300]")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    calls = args.calls or (300 if args.quick else 3_000)
    cache = args.out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    n_users, n_items, n_events = 943, 1_682, 100_000
    store_path = cache / "ml100k.db"
    store = synthetic_store(store_path, n_users, n_items, n_events)
    users = store.user_ids()
    store.close()
    bundle = synthetic_bundle(cache, n_users, n_items, name="ml100k-bundle",
                              user_ids=[f"u{u}" for u in range(n_users)],
                              item_ids=[f"i{i}" for i in range(n_items)])
    results = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
               "environment": environment(), "users": n_users, "items": n_items, "events": n_events,
               "k": K, "calls": calls, "node": subprocess.run(["node", "--version"], capture_output=True,
                                                            text=True).stdout.strip()}
    results["side_by_side"] = side_by_side(store_path, bundle, users, calls)
    with tempfile.TemporaryDirectory() as work:
        results["browser_wasm"] = browser(store_path, bundle, users, calls, Path(work))
    for name, row in {**results["side_by_side"], "browser_wasm": results["browser_wasm"]}.items():
        if row:
            print(f"{name:<14} p50 {row['p50_us']:8.1f} us   p99 {row['p99_us']:8.1f} us   "
                  f"mean {row['mean_us']:8.1f} us   ({row['calls']} calls)")
    results["environment"]["load_average_end"] = os.getloadavg()
    (args.out / "js_latency.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out / 'js_latency.json'}")
    return results


if __name__ == "__main__":
    main()
