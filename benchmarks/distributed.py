"""Offline batch top-N on each engine: users/s, start-up, peak RSS per worker, scaling.

    python benchmarks/distributed.py [--users 100000] [--items 10000] [--n 10]
                                     [--configs local:1,local:2,ray:1,ray:2,spark:1,spark:2]
                                     [--out DIR]

Synthetic data: every user known to an MF bundle of random factors (dim 32) over
``--items`` items; history lengths lognormal (median 12, long tail, capped at 2,000),
items drawn by a Zipf-like popularity, written straight to a histories Parquet file (the
documented schema). Each configuration runs in a fresh process, so start-up is real:

* ``startup_s``: the engine's own start (``ray.init``; a Spark session; 0 for local);
* ``small_s``: a job over the first ``--small`` users (pays worker start and session load);
* ``full_s``: the job over every user, in the same process after the small one;
* ``users_per_s``: users / full_s, the whole job's throughput (it still pays the per-job
  overhead that ``small_s`` shows); ``efficiency``: T1 / (W x TW) against W=1 of the same
  engine;
* ``peak_rss_mb``: the largest peak RSS (VmHWM) of one worker process: the scoring actor
  (Ray), the Python worker (Spark), the one process (local: driver and workers in one).

Writes DIR/distributed.json and DIR/distributed.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

WORKER_MARKS = {"ray": "MapWorker", "spark": "pyspark.daemon", "local": None}


def make_data(root: Path, users: int, items: int, seed: int = 0) -> tuple[Path, Path]:
    """(histories.parquet, bundle) for ``users`` known users over ``items`` items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgerec.exporters import export_factors

    rng = np.random.default_rng(seed)
    lengths = np.minimum(2000, np.maximum(1, rng.lognormal(np.log(12), 1.0, users).astype(np.int64)))
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    flat = rng.choice(items, size=int(lengths.sum()), p=popularity / popularity.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    item_ids = [f"i{i}" for i in range(items)]
    user_ids = [f"u{u}" for u in range(users)]
    # Arrow gathers the history strings: no Python object per event (10^7+ of them).
    events = pa.array(item_ids, pa.string()).take(pa.array(flat))
    table = pa.table({"user_id": pa.array(user_ids, pa.string()),
                      "history": pa.ListArray.from_arrays(pa.array(offsets), events)})
    histories = root / "histories.parquet"
    pq.write_table(table, histories, row_group_size=10_000)
    del table, events, flat
    dim = 32
    bundle = export_factors(root / "bundle", rng.normal(0, 0.3, (users, dim)).astype(np.float32),
                            rng.normal(0, 0.3, (items, dim)).astype(np.float32), user_ids, item_ids)
    return histories, bundle


def data(root: Path, users: int, items: int) -> tuple[Path, Path]:
    """``make_data`` into ``root``, or what an earlier run left there for the same shape."""
    root = root / f"{users}x{items}"
    if (root / "bundle" / "manifest.json").exists():
        return root / "histories.parquet", root / "bundle"
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    made = make_data(root, users, items)
    print(f"data: {users} users, {items} items in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return made


class PeakRss(threading.Thread):
    """Polls /proc for the workers' peak RSS (VmHWM) while a job runs."""

    def __init__(self, mark: str | None):
        super().__init__(daemon=True)
        self.mark, self.peak_kb, self.stop = mark, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    self._sample(pid)

    def _sample(self, pid: str) -> None:
        try:
            if self.mark in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                self.peak_kb = max(self.peak_kb, self.hwm(pid))
        except OSError:
            pass

    @staticmethod
    def hwm(pid: str) -> int:
        """Peak RSS in KiB (VmHWM; unlike ru_maxrss it does not carry over an exec)."""
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0


def head(histories: str, users: int, path: Path) -> Path:
    """The first ``users`` rows of ``histories`` as their own file, row groups as the
    original's (Spark splits work by row group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = next(pq.ParquetFile(histories).iter_batches(users))
    pq.write_table(pa.Table.from_batches([first]), path, row_group_size=10_000)
    return path


def one(engine: str, workers: int, histories: str, bundle: str, small: int, n: int,
        limit: int | None = None) -> dict:
    """One configuration, in this (fresh) process."""
    from edgerec.batch import batch

    os.environ["PYSPARK_PYTHON"] = sys.executable
    started = time.perf_counter()
    if engine == "ray":
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
    elif engine == "spark":
        from pyspark.sql import SparkSession

        SparkSession.builder.master(f"local[{workers}]").config("spark.ui.enabled", "false") \
            .config("spark.driver.memory", "2g").getOrCreate().sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - started
    scratch = Path(tempfile.mkdtemp(prefix="edgerec-bench-"))
    try:
        if limit:
            histories = str(head(histories, limit, scratch / "limit.parquet"))
        t = time.perf_counter()
        batch(head(histories, small, scratch / "head.parquet"), bundle, scratch / "small", n=n, engine=engine, workers=workers)
        small_s = time.perf_counter() - t
        rss = PeakRss(WORKER_MARKS[engine])
        rss.start()
        t = time.perf_counter()
        about = batch(histories, bundle, scratch / "full", n=n, engine=engine, workers=workers)
        full_s = time.perf_counter() - t
        rss.stop.set()
        out_bytes = sum(f.stat().st_size for f in (scratch / "full").rglob("*.parquet"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    peak_kb = rss.peak_kb if engine != "local" else PeakRss.hwm("self")
    return {"engine": engine, "workers": workers, "users": about["users"], "startup_s": startup,
            "small_s": small_s, "full_s": full_s,
            "users_per_s": about["users"] / full_s,
            # Only where the full job took longer than the small one: a warm pool of
            # worker processes (Ray) can make the second job's overhead the smaller one.
            "marginal_per_s": (about["users"] - small) / (full_s - small_s) if full_s > small_s else None,
            "peak_rss_mb": peak_kb / 1024, "output_bytes": out_bytes}


def table(rows: list[dict]) -> str:
    lines = ["| engine | W | users | start-up s | small job s | full job s | users/s | per worker | "
             "efficiency | marginal users/s | peak RSS/worker MB |", "|---" * 11 + "|"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['workers']} | {r['users']:,} | {r['startup_s']:.1f} | "
                     f"{r['small_s']:.1f} | {r['full_s']:.1f} | {r['users_per_s']:,.0f} | "
                     f"{r['users_per_s'] / r['workers']:,.0f} | {_num(r['efficiency'], '.2f')} | "
                     f"{_num(r['marginal_per_s'], ',.0f')} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def projection(rows: list[dict], users: float = 1e8) -> str:
    """Wall time for ``users`` on N cores: the best measured marginal per-core rate (the
    per-job overhead is amortised over 10^8 users), its engine's W=2 marginal efficiency,
    plus that engine's start-up and small-job overhead once."""
    rows = [r for r in rows if r["marginal_per_s"]]
    best = max(rows, key=lambda r: r["marginal_per_s"] / r["workers"])
    per_core = best["marginal_per_s"] / best["workers"]
    one_w = [r for r in rows if r["engine"] == best["engine"] and r["workers"] == 1]
    two_w = [r for r in rows if r["engine"] == best["engine"] and r["workers"] == 2]
    eff = two_w[0]["marginal_per_s"] / (2 * one_w[0]["marginal_per_s"]) if one_w and two_w else 1.0
    fixed = best["startup_s"] + best["small_s"]
    per_user = best["output_bytes"] / best["users"]
    lines = [f"Per-core marginal rate {per_core:,.0f} users/s ({best['engine']}, W={best['workers']}), "
             f"W=2 efficiency {eff:.2f}, fixed {fixed:.0f} s, output {per_user:.0f} B/user -> "
             f"{users * per_user / 1e9:,.1f} GB for {users:.0e} users.",
             "", "| cores | wall time |", "|---|---|"]
    for cores in (16, 64, 256, 1024):
        seconds = fixed + users / (cores * per_core * min(1.0, eff))
        lines.append(f"| {cores} | {seconds / 3600:.2f} h ({seconds:,.0f} s) |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--configs", default="local:1,local:2,ray:1,ray:2,spark:1,spark:2")
    parser.add_argument("--limit", type=int, help="score only the first LIMIT users of the data")
    parser.add_argument("--data", help="keep the generated data in DATA, or reuse it from there")
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument("--one", nargs=4, metavar=("ENGINE", "W", "HISTORIES", "BUNDLE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        engine, workers, histories, bundle = args.one
        print(json.dumps(one(engine, int(workers), histories, bundle, args.small, args.n, args.limit)))
        return []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.data or tempfile.mkdtemp(prefix="edgerec-dist-"))
    try:
        histories, bundle = data(root, args.users, args.items)
        rows = []
        for config in args.configs.split(","):
            engine, workers = config.split(":")
            limit = ["--limit", str(args.limit)] if args.limit else []
            done = subprocess.run([sys.executable, __file__, "--small", str(args.small), "--n", str(args.n),
                                   *limit, "--one", engine, workers, str(histories), str(bundle)],
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        if not args.data:
            shutil.rmtree(root, ignore_errors=True)
    for r in rows:
        base = next((b for b in rows if b["engine"] == r["engine"] and b["workers"] == 1), None)
        r["efficiency"] = r["users_per_s"] / (r["workers"] * base["users_per_s"]) if base else None
    (out / "distributed.json").write_text(json.dumps(rows, indent=1))
    text = f"{args.users:,} users ({args.limit or args.users:,} scored), {args.items:,} items, n={args.n}\n\n{table(rows)}\n\n{projection(rows)}\n"
    (out / "distributed.md").write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
