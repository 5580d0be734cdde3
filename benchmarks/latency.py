"""Latency of the scoring core and of requests, each beside a baseline from the same run.

    python benchmarks/latency.py [--quick] [--provider cpu|cuda|auto] [--out DIR]

Writes DIR/latency.json and DIR/latency.png (default DIR: benchmarks/out). Sections:

1. core: one ONNX Runtime call for one user (k=10, 50 excluded items) per catalogue size,
   beside the same computation in numpy (scores, mask, argpartition, sort).
2. requests: ``Recommender.recommend`` end to end (SQLite history read and id mapping
   included) on a MovieLens-100K-size store and, unless --quick, a large-shop store; beside
   implicit's ALS ``recommend`` (history handed over in memory) when implicit is installed.
3. batch: top-10 for every user, beside numpy (and implicit when installed).
4. startup: import time, open-to-first-answer, peak RSS after 10,000 requests (subprocess).
5. environment: providers, CPU, cores, library versions.

Bundles use synthetic factors exported through the real exporter (``export_factors``), so
the graphs are the ones training produces; TensorFlow is needed to build them and they
are cached under DIR/cache. Timings are medians over many calls after warm-up; compare
ratios from one run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def time_calls(fn, args_list: list, warmup: int) -> dict:
    """Time ``fn(*args)`` for each args tuple after ``warmup`` untimed calls."""
    for args in args_list[:warmup]:
        fn(*args)
    samples = []
    clock = time.perf_counter
    for args in args_list:
        t0 = clock()
        fn(*args)
        samples.append(clock() - t0)
    return stats(samples)


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
                     name: str | None = None) -> Path:
    """An MF bundle of random factors, exported once and cached."""
    path = cache / (name or f"mf-{n_users}x{n_items}")
    if not (path / "manifest.json").exists():
        from edgerec.exporters import export_factors

        users, items, bias = synthetic_factors(n_users, n_items)
        export_factors(path, users, items, user_ids=user_ids, item_ids=item_ids, item_bias=bias)
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
        history = np.zeros((1, 0), np.int64)
        onnx = time_calls(lambda u, ex: scorer.top_k(np.array([u], np.int64), history, ex[None, :], K),
                          requests, warmup=min(20, n_calls // 5))
        base = time_calls(lambda u, ex: numpy_top_k(items, bias, users[u], ex), requests,
                          warmup=min(20, n_calls // 5))
        # Same answers, or the comparison means nothing.
        u, ex = requests[0]
        got = scorer.top_k(np.array([u], np.int64), history, ex[None, :], K)[0][0]
        assert list(got) == list(numpy_top_k(items, bias, users[u], ex)), "ONNX and numpy disagree"
        rows.append({"n_items": n_items, "dim": DIM, "provider": scorer.provider, "threads": threads,
                     "onnx": onnx, "numpy": base,
                     "ratio_p50": onnx["p50_us"] / base["p50_us"]})
        print(f"core {n_items:>8} items  onnx({scorer.provider}) p50 {onnx['p50_us']:8.1f} us   "
              f"numpy p50 {base['p50_us']:8.1f} us   ratio {rows[-1]['ratio_p50']:.2f}", flush=True)
    return rows


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
    rng = np.random.default_rng(2)
    requests = [(user_ids[i],) for i in rng.integers(0, len(user_ids), calls)]
    e2e = time_calls(lambda u: rec.recommend(u, n=K), requests, warmup=min(200, calls // 5))
    print(f"{name}: recommend p50 {e2e['p50_us']:.1f} us  p99 {e2e['p99_us']:.1f} us "
          f"(provider {rec.provider})", flush=True)
    out = {"users": n_users, "items": n_items, "events": n_events, "store_build_s": build_s,
           "provider": rec.provider, "recommend": e2e}

    histories = rec.store.histories(user_ids)
    t0 = time.perf_counter()
    rec.recommend_many(user_ids, n=K)
    batch_s = time.perf_counter() - t0
    users_f, items_f, bias = synthetic_factors(n_users, n_items)
    index = {u: int(u[1:]) for u in user_ids}
    rows = np.concatenate([np.full(len(histories[u]), index[u]) for u in user_ids])
    cols = np.concatenate([np.array([int(i[1:]) for i in histories[u]], dtype=np.int64) for u in user_ids])
    t0 = time.perf_counter()
    numpy_batch_top_k(users_f, items_f, bias, rows, cols)
    numpy_s = time.perf_counter() - t0
    out["batch"] = {"users": len(user_ids), "edgerec_s": batch_s, "numpy_s": numpy_s,
                    "edgerec_users_per_s": len(user_ids) / batch_s,
                    "numpy_users_per_s": len(user_ids) / numpy_s}
    print(f"{name}: batch top-{K} for {len(user_ids)} users  edgerec {batch_s:.3f} s   "
          f"numpy {numpy_s:.3f} s", flush=True)
    if n_users * n_items <= 20_000_000:
        out["implicit"] = bench_implicit(n_users, n_items, rows, cols, requests, index, calls)
    rec.close()
    return out


def numpy_batch_top_k(users, items, bias, rows, cols, chunk: int = 1024):
    for start in range(0, len(users), chunk):
        scores = users[start:start + chunk] @ items.T + bias
        sel = (rows >= start) & (rows < start + chunk)
        scores[rows[sel] - start, cols[sel]] = -np.inf
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)


def bench_implicit(n_users, n_items, rows, cols, requests, index, calls) -> dict | None:
    """implicit's ALS recommend with the history handed over in memory (optional)."""
    try:
        import implicit
        from scipy.sparse import csr_matrix
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    user_items = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    user_items.sum_duplicates()
    with threadpool_limits(1):
        model = implicit.cpu.als.AlternatingLeastSquares(factors=DIM, iterations=2, random_state=0)
        model.fit(user_items, show_progress=False)
        reqs = [(index[u],) for (u,) in requests]
        single = time_calls(lambda u: model.recommend(u, user_items[u], N=K), reqs,
                            warmup=min(200, calls // 5))
        t0 = time.perf_counter()
        model.recommend(np.arange(n_users), user_items, N=K)
        batch_s = time.perf_counter() - t0
    print(f"   implicit {implicit.__version__} ALS recommend p50 {single['p50_us']:.1f} us   "
          f"batch {batch_s:.3f} s", flush=True)
    return {"version": implicit.__version__, "recommend": single, "batch_s": batch_s}


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


def bench_startup(bundle: Path, store: Path, provider: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, str(bundle), str(store), provider],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    print(f"startup {result['startup_s']:.3f} s (import {result['import_s']:.3f} s), peak RSS "
          f"{result['peak_rss_mb']:.0f} MB after 10,000 requests", flush=True)
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

    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
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
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    out = args.out
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    sizes = [1_000, 1_682, 10_000] if quick else [1_000, 1_682, 10_000, 100_000, 1_000_000]
    calls = 300 if quick else 5_000
    started = time.time()
    results = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
               "quick": quick, "environment": environment(), "k": K}
    results["core"] = bench_core(cache, sizes, args.provider, calls)
    ml = (943, 1_682, 100_000) if not quick else (300, 1_682, 20_000)
    results["requests"] = {"ml100k": bench_requests(cache, "ml100k" if not quick else "ml100k-quick",
                                                    *ml, args.provider, calls)}
    if not quick:
        results["requests"]["large_shop"] = bench_requests(cache, "shop", 100_000, 100_000, 10_000_000,
                                                           args.provider, calls)
    name = "ml100k" if not quick else "ml100k-quick"
    results["startup"] = bench_startup(cache / f"{name}-bundle", cache / f"{name}.db", args.provider)
    results["seconds"] = time.time() - started
    (out / "latency.json").write_text(json.dumps(results, indent=1))
    plot(results["core"], out / "latency.png")
    print(f"wrote {out / 'latency.json'} and {out / 'latency.png'}")
    return results


if __name__ == "__main__":
    main()
