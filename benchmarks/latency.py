"""Latency of the scoring core and of requests, each beside a baseline from the same run.

    python benchmarks/latency.py [--quick] [--skip-shop] [--requests-only] [--calls N]
        [--provider cpu|cuda|auto] [--kinds als,gan] [--events u.data] [--out DIR]

Writes DIR/latency.json and DIR/latency.png (default DIR: benchmarks/out). Sections:

1. core: one ONNX Runtime call for one user (k=10, 50 excluded items) per catalogue size,
   beside the same computation in numpy (scores, mask, argpartition, sort); then bundles
   exported with float16 weights beside float32 ones: speed, model.onnx size, top-10 overlap.
2. requests: ``Recommender.recommend`` end to end on a MovieLens-100K-size store and, unless
   --quick or --skip-shop, a large-shop store (100K users, 100K items, 10M events: most of
   the run time). "first": each user's first request in a fresh ``Recommender`` (history
   read from SQLite, model inputs built); "repeat": users served before, with no write to
   the store since (history and inputs cached); "after another user's write": repeat
   requests each preceded (untimed) by another user's event, so the store version changes
   every time (on a copy of the store). Beside implicit's ALS ``recommend``
   (history handed over in memory) when implicit is installed, call by call, twice: the
   user's CSR row sliced inside the timed call, and implicit's best case, every row
   sliced beforehand (BLAS at one thread for both). Then where the time goes, stage by
   stage (``request_stages``: version check, history, inputs, ONNX call, results), for
   repeat and first requests.
3. batch: top-10 for every user through ``recommend_many``, with the SQLite read of every
   history timed alone, beside numpy (and implicit when installed).
4. kinds: trained bundles of ``als`` and the other kinds (``--kinds``; default: the
   item-neighbourhood kinds and gan) on the same store, their repeat-request p50 taken in
   turns (ratio to als; a kind's own graph costs what it costs only in a trained bundle),
   their first requests (fresh recommenders, in turns), the stage breakdown of both, and
   their model.onnx size: on
   the MovieLens-size store (or the store of ``--events FILE``, e.g. MovieLens 100K's
   ``u.data``) and, unless --quick or --skip-shop, on the ``demo:shop`` purchases (30K
   users, 24K items). mf, als and neumf bundles carry the known-user core
   (``model_known.onnx``), which serves these requests: every timed user is known.
5. startup: import, open, first answer and peak RSS after 10,000 requests, in fresh
   subprocesses: the first one after the sections above, then two more.
6. environment: providers, CPU, cores, load averages, library versions.

Bundles use synthetic factors exported through the real exporter (``export_factors``), so
the graphs are the ones training produces; TensorFlow is needed to build them and they
are cached under DIR/cache. Timings are medians over many calls after warm-up, and timed
alternatives run call by call in turn, so a noisy neighbour slows them alike; compare
ratios from one run, not absolute numbers across runs or machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

DIM = 64
K = 10
EXCLUDED = 50


def stats(samples_s: list[float]) -> dict:
    us = np.asarray(samples_s) * 1e6
    return {"p50_us": float(np.percentile(us, 50)), "p95_us": float(np.percentile(us, 95)),
            "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean()),
            "per_second": float(1e6 / np.percentile(us, 50)), "calls": len(us)}


def time_calls(fns: dict, args_list: list, warmup: int, block: int = 50) -> dict:
    """Time each ``fns[name](*args)`` for each args tuple, the functions taking turns.

    Turns are blocks of ``block`` calls, so the functions share the machine's noisy periods
    alike, while the thread pools of one (ONNX Runtime, BLAS: they spin a while after each
    call) slow only the first call of the other's block. ``warmup`` untimed calls of each
    come first, on the first args tuples.
    """
    for fn in fns.values():
        for args in args_list[:warmup]:
            fn(*args)
    samples = {name: [] for name in fns}
    clock = time.perf_counter
    for start in range(0, len(args_list), block):
        for name, fn in fns.items():
            for args in args_list[start:start + block]:
                t0 = clock()
                fn(*args)
                samples[name].append(clock() - t0)
    return {name: stats(times) for name, times in samples.items()}


def numpy_top_k(item_factors: np.ndarray, item_bias: np.ndarray, user_vec: np.ndarray,
                exclude: np.ndarray, k: int = K) -> np.ndarray:
    """The baseline: what the scoring core computes, in plain numpy."""
    scores = item_factors @ user_vec
    scores += item_bias
    scores[exclude] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def synthetic_factors(n_users: int, n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = rng.normal(0, 0.1, (n_users, DIM)).astype(np.float32)
    items = rng.normal(0, 0.1, (n_items, DIM)).astype(np.float32)
    bias = rng.normal(0, 0.1, n_items).astype(np.float32)
    return users, items, bias


def synthetic_bundle(cache: Path, n_users: int, n_items: int, user_ids=None, item_ids=None,
                     name: str | None = None, weights_dtype: str = "float32") -> Path:
    """An MF bundle of random factors, exported once and cached."""
    suffix = "" if weights_dtype == "float32" else f"-{weights_dtype}"
    path = cache / ((name or f"mf-{n_users}x{n_items}") + suffix)
    if not (path / "manifest.json").exists():
        from edgerec.exporters import export_factors

        users, items, bias = synthetic_factors(n_users, n_items)
        export_factors(path, users, items, user_ids=user_ids, item_ids=item_ids, item_bias=bias,
                       weights_dtype=weights_dtype)
    return path


# -- 1. scoring core --------------------------------------------------------------------------

def bench_core(cache: Path, sizes: list[int], provider: str, calls: int) -> list[dict]:
    from edgerec import serving

    rows = []
    rng = np.random.default_rng(1)
    for n_items in sizes:
        n_calls = max(50, calls if n_items <= 100_000 else calls // 20)
        bundle = synthetic_bundle(cache, 100, n_items)
        scorer = serving.load(bundle, provider).scorer  # the runtime's own thread policy
        threads = scorer.session.get_session_options().intra_op_num_threads
        users, items, bias = synthetic_factors(100, n_items)
        requests = [(rng.integers(0, 100), rng.choice(n_items, EXCLUDED, replace=False))
                    for _ in range(n_calls)]
        times = time_calls({"onnx": core_call(scorer),
                            "numpy": lambda u, ex: numpy_top_k(items, bias, users[u], ex)},
                           requests, warmup=min(20, n_calls // 5))
        # Same answers, or the comparison means nothing.
        u, ex = requests[0]
        got = core_call(scorer)(u, ex)[0][0]
        assert list(got) == list(numpy_top_k(items, bias, users[u], ex)), "ONNX and numpy disagree"
        onnx, base = times["onnx"], times["numpy"]
        rows.append({"n_items": n_items, "dim": DIM, "provider": scorer.provider, "threads": threads,
                     "onnx": onnx, "numpy": base,
                     "ratio_p50": onnx["p50_us"] / base["p50_us"]})
        print(f"core {n_items:>8} items  onnx({scorer.provider}) p50 {onnx['p50_us']:8.1f} us   "
              f"numpy p50 {base['p50_us']:8.1f} us   ratio {rows[-1]['ratio_p50']:.2f}", flush=True)
    return rows


def core_call(scorer):
    """One user's scoring-core call, as ``bench_core`` times it."""
    history = np.zeros((1, 0), np.int64)
    return lambda u, ex: scorer.top_k(np.array([u], np.int64), history, ex[None, :], K)


def bench_fp16(cache: Path, sizes: list[int], provider: str, calls: int) -> list[dict]:
    """Bundles with float16-stored weights beside float32 ones and numpy, same requests.

    Reports speed, model.onnx size, the session's memory (RSS growth while opening it, in
    a subprocess) and how many of float32's top-10 items float16 also returns.
    """
    from edgerec import serving

    rows = []
    rng = np.random.default_rng(3)
    for n_items in sizes:
        n_calls = max(50, calls if n_items <= 100_000 else calls // 20)
        bundles = {dtype: synthetic_bundle(cache, 100, n_items, weights_dtype=dtype)
                   for dtype in ("float32", "float16")}
        scorers = {dtype: serving.load(path, provider).scorer for dtype, path in bundles.items()}
        users, items, bias = synthetic_factors(100, n_items)
        requests = [(rng.integers(0, 100), rng.choice(n_items, EXCLUDED, replace=False))
                    for _ in range(n_calls)]
        times = time_calls({**{dtype: core_call(s) for dtype, s in scorers.items()},
                            "numpy": lambda u, ex: numpy_top_k(items, bias, users[u], ex)},
                           requests, warmup=min(20, n_calls // 5))
        overlap = np.mean([len(set(core_call(scorers["float32"])(u, ex)[0][0])
                               & set(core_call(scorers["float16"])(u, ex)[0][0])) / K
                           for u, ex in requests[:200]])
        row = {"n_items": n_items, "dim": DIM, "provider": scorers["float16"].provider,
               "top10_overlap": float(overlap), **times}
        for dtype, path in bundles.items():
            row[f"{dtype}_onnx_mb"] = (path / "model.onnx").stat().st_size / 2**20
            row[f"{dtype}_bundle_mb"] = sum(f.stat().st_size for f in path.iterdir()) / 2**20
            row[f"{dtype}_session_mb"] = session_memory_mb(path, provider)
        rows.append(row)
        print(f"fp16 {n_items:>8} items  float32 p50 {times['float32']['p50_us']:8.1f} us   "
              f"float16 p50 {times['float16']['p50_us']:8.1f} us   numpy p50 "
              f"{times['numpy']['p50_us']:8.1f} us   model.onnx {row['float32_onnx_mb']:.0f} -> "
              f"{row['float16_onnx_mb']:.0f} MB   session {row['float32_session_mb']:.0f} -> "
              f"{row['float16_session_mb']:.0f} MB   top-10 overlap {overlap:.3f}", flush=True)
    return rows


SESSION_MEMORY_SCRIPT = textwrap.dedent("""
    import sys
    from edgerec import serving
    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    before = rss_mb()
    served = serving.load(sys.argv[1], sys.argv[2])
    print(rss_mb() - before)
""")


def session_memory_mb(bundle: Path, provider: str) -> float | None:
    """RSS growth while a fresh process opens the bundle's session (None where unreadable)."""
    proc = subprocess.run([sys.executable, "-c", SESSION_MEMORY_SCRIPT, str(bundle), provider],
                          capture_output=True, text=True)
    try:
        return float(proc.stdout)
    except ValueError:
        return None


# -- 2./3. requests and batch -----------------------------------------------------------------

def synthetic_store(path: Path, n_users: int, n_items: int, n_events: int, seed: int = 0):
    """A store with Zipf item popularity and a skewed number of events per user."""
    from edgerec.store import Store

    fresh = not path.exists()
    store = Store.open(path)
    if fresh:
        rng = np.random.default_rng(seed)
        per_user = rng.lognormal(0, 1, n_users)
        users = rng.choice(n_users, n_events, p=per_user / per_user.sum())
        pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
        items = rng.choice(n_items, n_events, p=pop / pop.sum())
        ts = rng.integers(1_600_000_000, 1_700_000_000, n_events)
        for start in range(0, n_events, 1_000_000):
            end = start + 1_000_000
            store.add_events(zip((f"u{u}" for u in users[start:end]), (f"i{i}" for i in items[start:end]),
                                 ("view" for _ in range(end - start)), (1.0 for _ in range(end - start)),
                                 ts[start:end].astype(float).tolist()))
    return store


def bench_requests(cache: Path, name: str, n_users: int, n_items: int, n_events: int,
                   provider: str, calls: int) -> dict:
    from edgerec import Recommender

    store_path = cache / f"{name}.db"
    t0 = time.perf_counter()
    store = synthetic_store(store_path, n_users, n_items, n_events)
    user_ids = store.user_ids()
    build_s = time.perf_counter() - t0
    bundle = synthetic_bundle(cache, n_users, n_items, name=f"{name}-bundle",
                              user_ids=[f"u{u}" for u in range(n_users)],
                              item_ids=[f"i{i}" for i in range(n_items)])
    store.close()
    rec = Recommender.open(bundle, store_path, provider=provider)
    histories = rec.store.histories(user_ids)
    index = {u: int(u[1:]) for u in user_ids}
    rows = np.concatenate([np.full(len(histories[u]), index[u]) for u in user_ids])
    cols = np.concatenate([np.array([int(i[1:]) for i in histories[u]], dtype=np.int64) for u in user_ids])
    implicit = implicit_model(n_users, n_items, rows, cols) if n_users * n_items <= 20_000_000 else None
    rng = np.random.default_rng(2)
    order = [user_ids[i] for i in rng.permutation(len(user_ids))[:calls + 20]]
    first_users, repeat = order[20:], [(order[20 + i],) for i in rng.integers(0, len(order) - 20, calls)]
    ours = {"edgerec": lambda u: rec.recommend(u, n=K)}
    if implicit is not None:
        ours["implicit"] = lambda u: implicit.recommend(index[u])
        ours["implicit_best"] = lambda u: implicit.recommend_presliced(index[u])
    for u in order[:20]:  # warm the session up on users left out of the "first" timings
        rec.recommend(u, n=K)
    with implicit.one_thread() if implicit is not None else contextlib.nullcontext():
        first = time_calls(ours, [(u,) for u in first_users], warmup=0)
        again = time_calls(ours, repeat, warmup=min(200, calls // 5))
    out = {"users": n_users, "items": n_items, "events": n_events, "store_build_s": build_s,
           "provider": rec.provider, "recommend": again["edgerec"], "recommend_first": first["edgerec"]}
    print(f"{name}: recommend first p50 {first['edgerec']['p50_us']:.1f} us  p99 "
          f"{first['edgerec']['p99_us']:.1f} us   repeat p50 {again['edgerec']['p50_us']:.1f} us  "
          f"p99 {again['edgerec']['p99_us']:.1f} us (provider {rec.provider})", flush=True)
    if implicit is not None:
        out["implicit"] = {"version": implicit.version, "recommend": again["implicit"],
                           "recommend_during_first": first["implicit"]}
        out["implicit_best"] = {"version": implicit.version, "recommend": again["implicit_best"],
                                "recommend_during_first": first["implicit_best"]}
        for key, label in (("implicit", "row sliced in the call"), ("implicit_best", "row pre-sliced")):
            print(f"   implicit {implicit.version} ALS recommend ({label}) p50 "
                  f"{again[key]['p50_us']:.1f} us (beside repeat), {first[key]['p50_us']:.1f} us "
                  f"(beside first)", flush=True)
        out["ratio_repeat_p50_to_implicit_best"] = (again["edgerec"]["p50_us"]
                                                    / again["implicit_best"]["p50_us"])
    sample = [u for u, in repeat[:STAGE_CALLS]]
    out["stages"] = {"repeat": request_stages(rec, sample, first=False),
                     "first": request_stages(rec, sample, first=True)}
    for which, stages in out["stages"].items():
        print_stages(f"edgerec {which}", stages)
    rec.close()
    out["recommend_after_write"] = bench_after_writes(bundle, store_path, provider,
                                                      [u for u, in repeat], n_items)
    print(f"{name}: recommend after another user's write p50 "
          f"{out['recommend_after_write']['p50_us']:.1f} us  p99 "
          f"{out['recommend_after_write']['p99_us']:.1f} us", flush=True)
    out["batch"] = bench_batch(bundle, store_path, provider, user_ids, rows, cols, implicit,
                               runs=5 if n_users * n_items <= 20_000_000 else 1)
    print(f"{name}: batch top-{K} for {len(user_ids)} users  edgerec {out['batch']['edgerec_s']:.3f} s "
          f"(SQLite read alone {out['batch']['read_s']:.3f} s, CPU {out['batch']['edgerec_cpu_s']:.3f} s)"
          f"   numpy {out['batch']['numpy_s']:.3f} s"
          + (f"   implicit {out['batch']['implicit_s']:.3f} s" if implicit is not None else ""), flush=True)
    return out


def bench_after_writes(bundle: Path, store_path: Path, provider: str, users: list[str],
                       n_items: int) -> dict:
    """Requests of served users, each after another user's event, recorded outside the timer.

    Runs on a copy of the store, so the cached store stays as built for later sections
    and runs.
    """
    from edgerec import Recommender

    copy = store_path.with_name(f"{store_path.stem}-writes.db")
    shutil.copy(store_path, copy)
    samples = []
    try:
        with Recommender.open(bundle, copy, provider=provider) as rec:
            for u in set(users):
                rec.recommend(u, n=K)
            for n, u in enumerate(users):
                rec.record("bench-writer", f"i{n % n_items}", "view", ts=float(n))
                t0 = time.perf_counter()
                rec.recommend(u, n=K)
                samples.append(time.perf_counter() - t0)
    finally:
        copy.unlink()
    return stats(samples)


def bench_batch(bundle: Path, store_path: Path, provider: str, user_ids: list[str], rows, cols,
                implicit, runs: int) -> dict:
    """Top-K for every user, ``runs`` times (medians), each from a freshly opened Recommender.

    CPU time beside wall time shows how much ran in parallel; the SQLite read of every
    history (``Store.histories``) is timed alone, for the breakdown.
    """
    from edgerec import Recommender

    wall, cpu, read = [], [], []
    for _ in range(runs):
        with Recommender.open(bundle, store_path, provider=provider) as rec:
            c0, t0 = time.process_time(), time.perf_counter()
            rec.recommend_many(user_ids, n=K)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            t0 = time.perf_counter()
            rec.store.histories(user_ids)
            read.append(time.perf_counter() - t0)
    n_users, n_items = len(user_ids), int(cols.max()) + 1
    users_f, items_f, bias = synthetic_factors(int(rows.max()) + 1, n_items)
    t0 = time.perf_counter()
    numpy_batch_top_k(users_f, items_f, bias, rows, cols)
    numpy_s = time.perf_counter() - t0
    out = {"users": n_users, "runs": runs, "edgerec_s": float(np.median(wall)),
           "edgerec_runs_s": wall, "edgerec_cpu_s": float(np.median(cpu)),
           "read_s": float(np.median(read)), "numpy_s": numpy_s,
           "edgerec_users_per_s": n_users / float(np.median(wall)), "numpy_users_per_s": n_users / numpy_s}
    if implicit is not None:
        out["implicit_s"] = implicit.batch_s()
    return out


def numpy_batch_top_k(users, items, bias, rows, cols, chunk: int = 1024):
    for start in range(0, len(users), chunk):
        scores = users[start:start + chunk] @ items.T + bias
        sel = (rows >= start) & (rows < start + chunk)
        scores[rows[sel] - start, cols[sel]] = -np.inf
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)


def implicit_model(n_users, n_items, rows, cols) -> "ImplicitALS | None":
    """implicit's ALS fitted on the interactions, or None where implicit is not installed."""
    try:
        return ImplicitALS(n_users, n_items, rows, cols)
    except ImportError:
        return None


class ImplicitALS:
    """implicit's ALS with the interactions in memory: ``recommend`` is handed the user's
    history row. Timed under ``one_thread()``, as edgerec's small-model sessions run."""

    def __init__(self, n_users, n_items, rows, cols):
        import implicit
        from scipy.sparse import csr_matrix
        from threadpoolctl import threadpool_limits

        self.version = implicit.__version__
        self.one_thread = lambda: threadpool_limits(1)
        self.user_items = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                     shape=(n_users, n_items))
        self.user_items.sum_duplicates()
        self.model = implicit.cpu.als.AlternatingLeastSquares(factors=DIM, iterations=2, random_state=0)
        with self.one_thread():
            self.model.fit(self.user_items, show_progress=False)
        # implicit's best case: an app that keeps each user's CSR row, sliced once, saves
        # the 20-25 us a slice costs inside the timed call.
        self.rows = [self.user_items[u] for u in range(n_users)]

    def recommend(self, user: int):
        return self.model.recommend(user, self.user_items[user], N=K)

    def recommend_presliced(self, user: int):
        return self.model.recommend(user, self.rows[user], N=K)

    def batch_s(self) -> float:
        with self.one_thread():
            t0 = time.perf_counter()
            self.model.recommend(np.arange(self.user_items.shape[0]), self.user_items, N=K)
            return time.perf_counter() - t0


# -- where a request's time goes ---------------------------------------------------------------

STAGES = ("version", "history", "inputs", "onnx", "results")
STAGE_CALLS = 500  # users per stage breakdown


def request_stages(rec, users: list[str], first: bool) -> dict:
    """Where a plain ``recommend(u, n=K)`` spends its time, per stage, for ``users``.

    Replays the plain request path one step at a time, each timed alone: ``version`` (the
    store's change check and the cache snapshot for it), ``history`` (SQLite for a first
    request, the snapshot's cache for a repeat), ``inputs`` (model inputs built, or taken
    from the cache), ``onnx`` (the ONNX Runtime call) and ``results`` (ids mapped, result
    objects built, or those of an answer given before reused; never for ``first``). ``first`` keeps every user cold (nothing is cached); otherwise each
    user is served once, untimed, first. The replayed answer must equal ``recommend``'s, so
    a change of the request path that this replay misses fails here instead of timing
    something else. Returns {stage: stats} and ``sum_p50_us``.
    """
    from edgerec.cache import Answers
    from edgerec.recommender import _inputs, _plain_results
    from edgerec.topn import core_top_k

    samples = {stage: [] for stage in STAGES}
    clock = time.perf_counter
    for u in users:
        if not first:
            rec.recommend(u, n=K)
        served = rec._served
        if first:  # no answer given before: the result tuples are built
            rec._current(served).answers = Answers()
        t0 = clock()
        snap = rec._current(served)
        t1 = clock()
        history = rec.store.history(u) if first else snap.history(rec.store, u)
        t2 = clock()
        build = lambda: _inputs(snap, served, {u: history}, [u], None)  # noqa: E731
        inputs = build() if first else snap.plain_inputs(u, build)
        t3 = clock()
        if not inputs.users:  # a user the model cannot score: the fallback, not timed here
            continue
        raw = core_top_k(served.bundle, served.scorer, inputs, K)
        t4 = clock()
        recs = _plain_results(served.bundle, snap, inputs, raw)
        t5 = clock()
        for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
            samples[stage].append(b - a)
        assert list(recs) == list(rec.recommend(u, n=K)), f"staged answer differs for {u}"
    out = {stage: stats(times) for stage, times in samples.items() if times}
    out["sum_p50_us"] = sum(out[stage]["p50_us"] for stage in STAGES if stage in out)
    return out


def print_stages(label: str, stages: dict) -> None:
    shown = "  ".join(f"{stage} {stages[stage]['p50_us']:.1f}" for stage in STAGES if stage in stages)
    print(f"   {label:<28} p50 us: {shown}  (sum {stages['sum_p50_us']:.1f})", flush=True)


# -- 4. startup and footprint -----------------------------------------------------------------

# Peak RSS is read from VmHWM: ru_maxrss survives exec on Linux, so a child of this (large)
# benchmark process would report the parent's peak.
STARTUP_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    def peak_rss_mb():
        try:
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    import edgerec
    t1 = time.perf_counter()
    from edgerec import Recommender
    rec = Recommender.open(sys.argv[1], sys.argv[2], provider=sys.argv[3])
    users = rec.store.user_ids()
    rec.recommend(users[0])
    t2 = time.perf_counter()
    for i in range(10_000):
        rec.recommend(users[i % len(users)])
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "open_to_first_answer_s": t2 - t1,
                      "startup_s": t2 - t0, "requests": 10_000, "requests_s": t3 - t2,
                      "peak_rss_mb": peak_rss_mb(),
                      "tensorflow_loaded": "tensorflow" in sys.modules}))
""")


# -- 4. model kinds ---------------------------------------------------------------------------

KINDS = ("als", "itemknn", "rp3beta", "sparse_ease", "gan")


def bench_kinds(cache: Path, store_path: Path, kinds: list[str], provider: str, calls: int) -> dict:
    """Repeat-request latency of bundles trained on ``store_path``, one per kind, in turns
    (``als`` first: the reference of every ratio).

    Two epochs only: the epochs do not change a bundle's graph, only its weights."""
    from edgerec import Recommender
    from edgerec.pipelines import train_bundle

    paths = {}
    for kind in kinds:
        paths[kind] = cache / f"{store_path.stem}-{kind}"
        if not (paths[kind] / "manifest.json").exists():
            train_bundle(store_path, paths[kind], kind, epochs=2)
    recs = {kind: Recommender.open(path, store_path, provider=provider) for kind, path in paths.items()}
    users = recs["als"].store.user_ids()
    rng = np.random.default_rng(3)
    order = [users[i] for i in rng.permutation(len(users))]
    for rec in recs.values():  # warm each session up on users left out of the "first" timings
        for u in order[:20]:
            rec.recommend(u, n=K)
    calls_of = {kind: (lambda u, rec=rec: rec.recommend(u, n=K)) for kind, rec in recs.items()}
    implicit = implicit_of_store(recs["als"].store, users)
    if implicit is not None:  # implicit's best case in the same turns: the target of every kind
        model, index = implicit
        calls_of["implicit_best"] = lambda u: model.recommend_presliced(index[u])
    with model.one_thread() if implicit is not None else contextlib.nullcontext():
        first = time_calls(calls_of, [(u,) for u in order[20:20 + calls]], warmup=0)
        repeat = [(users[i],) for i in rng.integers(0, len(users), calls)]
        times = time_calls(calls_of, repeat, warmup=min(200, calls // 5))
    out = {}
    if implicit is not None:
        print(f"{store_path.stem} implicit {model.version} ALS recommend (row pre-sliced) p50 "
              f"{times['implicit_best']['p50_us']:.1f} us (beside repeat), "
              f"{first['implicit_best']['p50_us']:.1f} us (beside first)", flush=True)
    for kind, rec in recs.items():
        sample = [u for u, in repeat[:STAGE_CALLS]]
        out[kind] = {"recommend": times[kind], "recommend_first": first[kind],
                     "stages": {"repeat": request_stages(rec, sample, first=False),
                                "first": request_stages(rec, sample, first=True)},
                     "n_items": rec.bundle.n_items,
                     "history_length": rec.bundle.history_length,
                     "model_onnx_mb": (rec.bundle.path / "model.onnx").stat().st_size / 1e6,
                     "ratio_p50_to_als": times[kind]["p50_us"] / times["als"]["p50_us"]}
        if implicit is not None:  # the same numbers in every kind's row: timed in the same turns
            out[kind]["implicit_best"] = {"version": model.version, "recommend": times["implicit_best"],
                                          "recommend_during_first": first["implicit_best"]}
            out[kind]["ratio_p50_to_implicit_best"] = (times[kind]["p50_us"]
                                                       / times["implicit_best"]["p50_us"])
        rec.close()
        print(f"{store_path.stem} {kind:>12}: recommend p50 {times[kind]['p50_us']:8.1f} us "
              f"p99 {times[kind]['p99_us']:8.1f} us ({out[kind]['ratio_p50_to_als']:.2f}x als, "
              f"{out[kind].get('ratio_p50_to_implicit_best', float('nan')):.2f}x implicit best); "
              f"first p50 {first[kind]['p50_us']:8.1f} us p99 {first[kind]['p99_us']:8.1f} us  "
              f"model.onnx {out[kind]['model_onnx_mb']:.1f} MB", flush=True)
        for which, stages in out[kind]["stages"].items():
            print_stages(f"{kind} {which}", stages)
    return out


def implicit_of_store(store, users: list[str]):
    """(implicit's ALS fitted on ``store``'s histories, user id -> row), or None without implicit."""
    histories = store.histories(users)
    index = {u: n for n, u in enumerate(users)}
    items: dict[str, int] = {}
    rows = np.concatenate([np.full(len(histories[u]), index[u]) for u in users])
    cols = np.array([items.setdefault(i, len(items)) for u in users for i in histories[u]], np.int64)
    model = implicit_model(len(users), len(items), rows, cols)
    return None if model is None else (model, index)


def events_store(cache: Path, events: Path) -> Path:
    """A store of an events file (MovieLens ``u.data`` or any format ``ingest_events``
    reads), written once into the cache: the kinds then train and serve on real data."""
    from edgerec.ingest import ingest_events
    from edgerec.store import Store

    path = cache / f"{events.parent.name}-{events.stem}.db"
    if not path.exists():
        tmp = path.with_suffix(".tmp.db")
        tmp.unlink(missing_ok=True)
        store = Store.open(tmp)
        ingest_events(store, events)
        store.close()
        tmp.rename(path)
    return path


def shop_store(cache: Path) -> Path:
    """The ``demo:shop`` purchases (``edgerec.demo.shop``), written once into the cache."""
    from edgerec.demo import shop
    from edgerec.store import Store

    path = cache / "demo-shop.db"
    if not path.exists():
        tmp = path.with_suffix(".tmp.db")
        tmp.unlink(missing_ok=True)
        store = Store.open(tmp)
        store.add_events(shop()[0])
        store.close()
        tmp.rename(path)
    return path


def bench_startup(bundle: Path, store: Path, provider: str, runs: int = 3) -> dict:
    """Fresh processes, one after another: the first pays for whatever the sections before
    pushed out of the file cache, the others show a warm start. Keys are the first run's."""
    results = [json.loads(subprocess.run(
        [sys.executable, "-c", STARTUP_SCRIPT, str(bundle), str(store), provider],
        capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
    result = {**results[0], "runs": results,
              "warm_startup_s": float(np.median([r["startup_s"] for r in results[1:]]))}
    print(f"startup {result['startup_s']:.3f} s first (import {result['import_s']:.3f} s), "
          f"{result['warm_startup_s']:.3f} s warm; peak RSS {result['peak_rss_mb']:.0f} MB after "
          f"10,000 requests", flush=True)
    return result


# -- 5. environment and plot ------------------------------------------------------------------

def environment() -> dict:
    import onnxruntime as ort

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from edgerec import __version__

    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": os.getloadavg(),
            "machine": platform.machine(),
            "os": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "onnxruntime": ort.__version__,
            "onnxruntime_providers": ort.get_available_providers(), "edgerec": __version__}


def plot(core: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = [r["n_items"] for r in core]
    for provider in sorted({r["provider"] for r in core}):
        rows = [r for r in core if r["provider"] == provider]
        ax.plot([r["n_items"] for r in rows], [r["onnx"]["p50_us"] for r in rows], "o-",
                label=f"edgerec ONNX Runtime ({provider})")
    ax.plot(sizes, [r["numpy"]["p50_us"] for r in core], "s--", label="numpy baseline")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("p50 latency, one user, top-10 (µs)")
    ax.set_title(f"Scoring core latency (d={DIM}, {EXCLUDED} excluded items)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few calls (smoke test)")
    parser.add_argument("--skip-shop", action="store_true",
                        help="leave out the large-shop store (100K users and items, 10M events), "
                             "the longest part")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--kinds", default="",
                        help="comma-separated model kinds to train and time side by side beside als "
                             f"(the reference) [default: {','.join(KINDS)}]")
    parser.add_argument("--requests-only", action="store_true",
                        help="only the request sections (requests, batch, kinds): no scoring "
                             "core, float16, start-up or plot")
    parser.add_argument("--events", type=Path, default=None,
                        help="an events file (e.g. MovieLens' u.data) whose store the kinds are "
                             "trained and timed on instead of the synthetic ML-100K-size store")
    parser.add_argument("--calls", type=int, default=None,
                        help="timed calls per measurement [default: 300 with --quick, else 5000]")
    args = parser.parse_args(argv)
    out = args.out
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    sizes = [1_000, 1_682, 10_000] if quick else [1_000, 1_682, 10_000, 100_000, 1_000_000]
    calls = args.calls or (300 if quick else 5_000)
    started = time.time()
    results = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
               "quick": quick, "environment": environment(), "k": K}
    if not args.requests_only:
        results["core"] = bench_core(cache, sizes, args.provider, calls)
        results["core_fp16"] = bench_fp16(cache, [10_000] if quick else [100_000, 1_000_000],
                                          args.provider, calls)
    ml = (943, 1_682, 100_000) if not quick else (300, 1_682, 20_000)
    results["requests"] = {"ml100k": bench_requests(cache, "ml100k" if not quick else "ml100k-quick",
                                                    *ml, args.provider, calls)}
    if not quick and not args.skip_shop:
        results["requests"]["large_shop"] = bench_requests(cache, "shop", 100_000, 100_000, 10_000_000,
                                                           args.provider, calls)
    name = "ml100k" if not quick else "ml100k-quick"
    kinds = ["als", *[k for k in (args.kinds.split(",") if args.kinds else KINDS) if k != "als"]]
    kinds_store = events_store(cache, args.events) if args.events else cache / f"{name}.db"
    results["kinds"] = {kinds_store.stem: bench_kinds(cache, kinds_store, kinds, args.provider, calls)}
    if not quick and not args.skip_shop:
        results["kinds"]["demo_shop"] = bench_kinds(cache, shop_store(cache), kinds, args.provider,
                                                    calls)
    if not args.requests_only:
        results["startup"] = bench_startup(cache / f"{name}-bundle", cache / f"{name}.db",
                                           args.provider)
    results["seconds"] = time.time() - started
    results["environment"]["load_average_end"] = os.getloadavg()
    (out / "latency.json").write_text(json.dumps(results, indent=1))
    if not args.requests_only:
        plot(results["core"], out / "latency.png")
    print(f"wrote {out / 'latency.json'}" + ("" if args.requests_only else f" and {out / 'latency.png'}"))
    return results


if __name__ == "__main__":
    main()
