"""Soak: an app serving and recording for minutes while everything else goes on around it.

    python benchmarks/soak.py [--minutes 10] [--quick] [--out DIR]

On an ML-100K-size store (943 users, 1,682 items, ~100K events of the built-in demo
generator): an app process with 8 threads recommending and 2 recording (watching its
bundle), 2 more writer processes recording, one big ingest in another process (1M rows;
200K with --quick), a publish of another bundle every 30 s (10 s with --quick) and a
kill -9 of one writer every minute (every 10 s with --quick; it is restarted). --quick
runs 30 s.

Every recorded event has its own user id; a writer appends an event's id to its ack log
only after ``record`` returned, so at the end: events acknowledged but not stored (lost,
must be 0), stored but never acknowledged (killed between commit and log: allowed),
errors by type (busy errors, "write lock for over N s", are the documented outcome of a
write waiting behind the big ingest), requests served, recommend latency (p50/p99/max)
overall, after the first second (requests before wait for the first popularity ranking)
and while the ingest runs, bundles swapped in the app, and SQLite's integrity
check. Writes DIR/soak.json (default DIR: benchmarks/out).

The two bundles are synthetic factors exported with the real exporter (TensorFlow is
needed once to build them; cached under DIR/cache).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

N_USERS, N_ITEMS = 943, 1682
APP_READERS, APP_WRITERS = 8, 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="30 s, smaller ingest, faster events")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--role", choices=["app", "writer", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        ROLES[args.role](json.loads(args.args))
        return
    seconds = 30.0 if args.quick else args.minutes * 60
    timing = {"publish_every": 10.0 if args.quick else 30.0,
              "kill_every": 10.0 if args.quick else 60.0,
              "ingest_rows": 200_000 if args.quick else 1_000_000,
              "ingest_at": 3.0 if args.quick else 30.0}
    result = soak(args.out, seconds, **timing)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


# -- setup ---------------------------------------------------------------------------------------

def prepare(work: Path, cache: Path, ingest_rows: int) -> tuple[Path, list[Path], Path]:
    from edgerec.demo import generate
    from edgerec.store import Store

    for leftover in work.glob("*"):
        if leftover.is_file() or leftover.is_symlink():
            leftover.unlink()
    store = work / "store.db"
    events, items = generate(n_users=N_USERS, n_items=N_ITEMS, mean_events=106, seed=1)
    opened = Store.open(store)
    opened.add_events(events)
    opened.add_items(items)
    opened.close()
    bundles = [bundle_for(cache, seed) for seed in (1, 2)]
    data = work / "ingest.csv"
    rng = np.random.default_rng(3)
    users, items_, times = (rng.integers(0, 50_000, ingest_rows), rng.integers(0, N_ITEMS, ingest_rows),
                            1_650_000_000 + np.arange(ingest_rows))
    with open(data, "w") as fh:
        fh.write("user_id,item_id,timestamp\n")
        fh.writelines(f"ing{u},i{i},{t}\n" for u, i, t in zip(users, items_, times))
    return store, bundles, data


def bundle_for(cache: Path, seed: int) -> Path:
    path = cache / f"soak-mf-{seed}"
    if not (path / "manifest.json").exists():
        from edgerec.exporters import export_factors

        rng = np.random.default_rng(seed)
        export_factors(path, rng.normal(0, 0.3, (N_USERS, 32)).astype(np.float32),
                       rng.normal(0, 0.3, (N_ITEMS, 32)).astype(np.float32),
                       user_ids=[f"u{u}" for u in range(N_USERS)],
                       item_ids=[f"i{i}" for i in range(N_ITEMS)])
    return path


# -- the run ---------------------------------------------------------------------------------------

def soak(out: Path, seconds: float, publish_every: float, kill_every: float, ingest_rows: int,
         ingest_at: float) -> dict:
    from edgerec.serving import publish
    from edgerec.store import Store

    work = out / "soak"
    work.mkdir(parents=True, exist_ok=True)
    store, sources, data = prepare(work, out / "cache", ingest_rows)
    live = work / "models" / "live"
    publish(sources[0], live)
    started = time.time()
    app = spawn("app", store=str(store), bundle=str(live), seconds=seconds, log=str(work / "app.json"))
    writers = {k: spawn("writer", store=str(store), log=str(work / f"writer-w{k}-0.log"), prefix=f"w{k}-0")
               for k in range(2)}
    incarnations = Counter()
    ingest = None
    ingest_window = [None, None]
    publishes, kills = 0, 0
    next_publish, next_kill = started + publish_every, started + kill_every
    while time.time() - started < seconds:
        now = time.time()
        if ingest is None and now - started >= ingest_at:
            ingest = spawn("ingest", store=str(store), file=str(data))
            ingest_window[0] = now
        if ingest is not None and ingest_window[1] is None and ingest.poll() is not None:
            ingest_window[1] = time.time()
        if now >= next_publish:
            publish(sources[(publishes + 1) % 2], live)
            publishes += 1
            next_publish += publish_every
        if now >= next_kill:
            victim = kills % 2
            writers[victim].kill()
            writers[victim].wait()
            incarnations[victim] += 1
            prefix = f"w{victim}-{incarnations[victim]}"
            writers[victim] = spawn("writer", store=str(store), log=str(work / f"writer-{prefix}.log"),
                                    prefix=prefix)
            kills += 1
            next_kill += kill_every
        time.sleep(0.05)
    for proc in writers.values():
        proc.send_signal(signal.SIGTERM)
    for proc in writers.values():
        proc.wait(120)
    app.wait(300)
    ingest_status = None
    if ingest is not None:
        ingest_status = ingest.wait(600)
        ingest_window[1] = ingest_window[1] or time.time()
    report = json.loads((work / "app.json").read_text())
    return summarise(work, store, report, ingest_window, ingest_status, ingest_rows, seconds,
                     publishes, kills, Store)


def summarise(work: Path, store: Path, app: dict, window, ingest_status, ingest_rows: int,
              seconds: float, publishes: int, kills: int, Store) -> dict:
    acked, errors = set(app["acked"]), Counter(app["errors"])
    for log in work.glob("writer-*.log"):
        for line in log.read_text().splitlines():
            if line.startswith("ERR "):
                errors[line.split(" ", 2)[1].replace("_", " ")] += 1
            elif line:
                acked.add(line)
    opened = Store.open(store, create=False)
    integrity = opened.integrity()
    stored = {r[0] for r in opened.db.execute("SELECT user_id FROM events WHERE user_id LIKE 'soak-%'").fetchall()}
    ingested = opened.db.execute("SELECT COUNT(*) FROM events WHERE user_id LIKE 'ing%'").fetchone()[0]
    opened.close()
    lat = np.array(app["latency"])
    slow = lat[lat[:, 1] > 0.5] if len(lat) else lat
    stalled = np.array([t for t, late in app["stalls"] if late > 0.25])
    # Slow requests that overlap a heartbeat stall were waiting for the CPU, not for edgerec.
    explained = sum(bool(len(stalled)) and bool(((stalled >= t - d) & (stalled <= t + 0.1)).any())
                    for t, d in slow)
    during = lat[(lat[:, 0] >= window[0]) & (lat[:, 0] <= window[1])] if window[0] and len(lat) else lat[:0]

    def stats(rows):
        if not len(rows):
            return None
        ms = rows[:, 1] * 1000
        return {"requests": int(len(ms)), "p50_ms": round(float(np.median(ms)), 3),
                "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 1)}

    return {
        "seconds": seconds, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
        "events_acknowledged": len(acked), "acknowledged_and_stored": len(acked & stored),
        "lost": len(acked - stored), "stored_unacknowledged": len(stored - acked),
        "errors": dict(errors), "requests_served": app["served"],
        "latency": stats(lat), "latency_during_ingest": stats(during),
        # Requests begun in the first second wait for the first popularity ranking.
        "latency_after_first_second": stats(lat[lat[:, 0] - lat[:, 1] >= lat[0, 0] - lat[0, 1] + 1.0])
        if len(lat) else None,
        # A lock-free thread's oversleep: what scheduling and the GIL alone delayed.
        "heartbeat_oversleep": stats(np.array(app["stalls"])),
        "requests_over_500ms": int(len(slow)), "of_which_during_a_heartbeat_stall": int(explained),
        "ingest": {"rows": ingest_rows, "stored": ingested, "exit": ingest_status,
                   "seconds": round(window[1] - window[0], 1) if window[0] else None},
        "publishes": publishes, "bundles_swapped": app["swaps"], "writer_kills": kills,
        "integrity_check": integrity,
    }


def spawn(role: str, **args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", role, "--args", json.dumps(args)])


# -- roles (child processes) -------------------------------------------------------------------------

def run_app(args: dict) -> None:
    """8 threads recommending, 2 recording, the bundle watched; a JSON report at the end."""
    from edgerec.recommender import Recommender

    rec = Recommender.open(args["bundle"], args["store"], provider="cpu", watch=1.0)
    stop = time.monotonic() + args["seconds"]
    lock = threading.Lock()
    report = {"served": 0, "latency": [], "errors": Counter(), "acked": [], "swaps": 0}

    def failed(exc: Exception) -> None:
        kind = type(exc).__name__ + (" (busy)" if "write lock for over" in str(exc) else "")
        with lock:
            report["errors"][kind] += 1

    def reader(k: int) -> None:
        rng = random.Random(k)
        while time.monotonic() < stop:
            user = f"u{rng.randrange(N_USERS + 100)}"
            t0 = time.perf_counter()
            try:
                rec.recommend(user, n=10)
            except Exception as exc:  # noqa: BLE001 - counted by type
                failed(exc)
                continue
            with lock:
                report["served"] += 1
                report["latency"].append((time.time(), time.perf_counter() - t0))

    def recorder(k: int) -> None:
        rng, seq = random.Random(100 + k), 0
        while time.monotonic() < stop:
            user = f"soak-app{k}-{seq}"
            seq += 1
            try:
                rec.record(user, f"i{rng.randrange(N_ITEMS)}", "click")
            except Exception as exc:  # noqa: BLE001 - counted by type
                failed(exc)
                continue
            with lock:
                report["acked"].append(user)
            time.sleep(0.005)

    def swaps() -> None:
        """Counts swaps; its oversleep (a 50 ms sleep that took longer) takes no lock, so it
        measures what the machine and the GIL alone cost every thread at that moment."""
        current = rec.bundle
        report["stalls"] = []
        while time.monotonic() < stop:
            if rec.bundle is not current:
                current = rec.bundle
                report["swaps"] += 1
            t0 = time.perf_counter()
            time.sleep(0.05)
            report["stalls"].append((time.time(), time.perf_counter() - t0 - 0.05))

    threads = ([threading.Thread(target=reader, args=(k,)) for k in range(APP_READERS)]
               + [threading.Thread(target=recorder, args=(k,)) for k in range(APP_WRITERS)]
               + [threading.Thread(target=swaps)])
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    report["errors"] = dict(report["errors"])
    Path(args["log"]).write_text(json.dumps(report))


def run_writer(args: dict) -> None:
    """Record events until SIGTERM (or SIGKILL), logging each one after it is committed."""
    from edgerec.feedback import record
    from edgerec.store import Store

    store = Store.open(args["store"], create=False)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    rng, seq = random.Random(args["prefix"]), 0
    with open(args["log"], "a", buffering=1) as log:
        while not stopping.is_set():
            user = f"soak-{args['prefix']}-{seq}"
            seq += 1
            try:
                record(store, user, f"i{rng.randrange(N_ITEMS)}", "view")
            except Exception as exc:  # noqa: BLE001 - logged by type
                busy = " (busy)" if "write lock for over" in str(exc) else ""
                log.write(f"ERR {type(exc).__name__}{busy.replace(' ', '_')} {exc}\n")
                continue
            log.write(user + "\n")
            time.sleep(0.005)


def run_ingest(args: dict) -> None:
    from edgerec.ingest import ingest_events
    from edgerec.store import Store

    print(ingest_events(Store.open(args["store"]), args["file"]).summary(), file=sys.stderr)


ROLES = {"app": run_app, "writer": run_writer, "ingest": run_ingest}

if __name__ == "__main__":
    main()
