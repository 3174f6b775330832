"""EM on dask (issue 13 §4): time per iteration and per-worker memory at N=20,000,000.

A Gaussian mixture (D=10, K=8, full covariances) is generated chunk by chunk
with ``dask.array.random`` (``--chunk`` rows per chunk, never gathered on the
driver) on a ``LocalCluster`` of two worker processes with one thread and a
memory limit each. Every case runs EM from the same starting parameters (the
true ones, means shifted) for ``--iterations`` iterations, ``--repeat`` times;
the time per iteration is the median of the gaps between successive
iterations (the first iteration, which includes setting up, is left out).
The streamed case, whose every pass generates the data again, runs
``--repeat-streamed`` times (default 1) on a shared machine.

Cases:

- ``dask_large_streamed``: N=``--n-large``, not persisted: every pass
  generates the data again from the random seed (data larger than the
  cluster's memory, read from their source each pass);
- ``dask_large_persisted``: the same data persisted in the workers' memory;
- ``dask_small_persisted``: N=``--n-small`` persisted (a size that fits in memory);
- ``memory_small``: the in-memory engine (``bayesgmm.em.run_em``, its own two
  threads) on the same N=``--n-small`` rows as a NumPy array on the driver,
  timed ``--repeat`` times before and ``--repeat`` times after the dask cases
  (the load of a shared machine drifts); the median over both.

Per case: the workers' peak resident memory (``ru_maxrss``; workers are
restarted between cases), the driver's peak RSS while the case runs (sampled
every 50 ms), and the final mean log-likelihood (the two N=``--n-small``
engines must agree). Optionally (``--fit``) one ``EMGMM.fit`` end to end on
the persisted large data: the sample restarts, then EM to ``tol``.

Run (one BLAS thread, as every benchmark here):
``cd benchmarks && OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench_dask.py
--iterations 4 --repeat 3 --fit --out results/dask.json``
(``--n-large 2000000 --n-small 200000`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import threading
import time
import warnings

import dask
import dask.array as da
import distributed
import numpy as np
import psutil
from _record import write_record  # benchmarks/ is on sys.path when run as a script

import bayesgmm as bg
from bayesgmm import em, em_dask

D, K = 10, 8


def true_parameters(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(scale=3.0, size=(K, D))
    a = rng.normal(scale=0.4, size=(K, D, D))
    covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(D)
    return weights, means, covs


def _mix(z: np.ndarray, u: np.ndarray, weights: np.ndarray, means: np.ndarray,
         chols: np.ndarray) -> np.ndarray:
    """Rows of the mixture from standard normals ``z`` and uniforms ``u`` (one chunk)."""
    labels = np.minimum(np.searchsorted(np.cumsum(weights), u[:, 0]), K - 1)
    out = np.empty_like(z)
    for k in range(K):
        rows = labels == k
        out[rows] = z[rows] @ chols[k].T + means[k]
    return out


def mixture(n: int, chunk: int, seed: int = 1):
    """A lazy (n, D) mixture sample, chunk by chunk, from ``dask.array.random``."""
    weights, means, covs = true_parameters()
    rng = da.random.default_rng(seed)
    z = rng.standard_normal((n, D), chunks=(chunk, D))
    u = rng.random((n, 1), chunks=(chunk, 1))
    return da.map_blocks(_mix, z, u, weights, means, np.linalg.cholesky(covs), dtype=float)


def start_state() -> em.EMState:
    weights, means, covs = true_parameters()
    return em.EMState(weights, means + 0.5, covs, em.precision_cholesky(covs, "full"), "full")


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled)."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        proc = psutil.Process()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                time.sleep(0.05)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _worker_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_iterations(run, iterations: int) -> tuple[list[float], float, float]:
    """Gaps between successive EM iterations of ``run(callback)``; total time; final bound."""
    stamps: list[float] = []
    t0 = time.perf_counter()
    bound = run(lambda it, value: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    assert len(stamps) == iterations
    return list(np.diff(stamps)), total, bound


def new_cluster(memory_limit: str):
    """Two fresh worker processes (fresh peak-memory counters), one thread each."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       memory_limit=memory_limit, dashboard_address=":0")
    return cluster, distributed.Client(cluster)


def dask_case(client, X, iterations: int, repeat: int, persist: bool) -> dict:
    with PeakRSS() as driver:
        if persist:
            t0 = time.perf_counter()
            X = client.persist(X)
            distributed.wait(X)
            persist_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = em_dask.summarize(X, np.random.default_rng(0))
        summary_s = time.perf_counter() - t0
        gaps, totals, bounds = [], [], []
        for _ in range(repeat):
            def run(callback):
                _, _, ll = em_dask.run_em(X, start_state(), reg_covar=1e-6, tol=0.0,
                                                 max_iter=iterations, callback=callback,
                                                 summary=summary)
                return ll / summary.n_samples
            g, total, bound = timed_iterations(run, iterations)
            gaps += g
            totals.append(total)
            bounds.append(bound)
    workers = client.run(_worker_peak_mb)
    out = {
        "n": int(X.shape[0]), "chunk_rows": int(X.chunks[0][0]), "n_chunks": len(X.chunks[0]),
        "persisted": persist, "iterations": iterations, "repeat": repeat,
        "seconds_per_iteration": statistics.median(gaps), "iteration_gaps": gaps,
        "run_seconds": totals, "summary_pass_seconds": summary_s,
        "worker_peak_rss_mb": sorted(workers.values()),
        "driver_peak_rss_mb": driver.peak / 2**20, "final_mean_loglik": bounds,
    }
    if persist:
        out["persist_seconds"] = persist_s
    return out


def memory_case(X: np.ndarray, iterations: int, repeat: int) -> dict:
    gaps, totals, bounds = [], [], []
    for _ in range(repeat):
        def run(callback):
            state, _ = em.run_em(X, start_state(), reg_covar=1e-6, tol=0.0,
                                    max_iter=iterations, callback=callback)
            return em.log_likelihood(X, state) / X.shape[0]
        g, total, bound = timed_iterations(run, iterations)
        gaps += g
        totals.append(total)
        bounds.append(bound)
    return {"n": int(X.shape[0]), "iterations": iterations, "repeat": repeat,
            "seconds_per_iteration": statistics.median(gaps), "iteration_gaps": gaps,
            "run_seconds": totals, "final_mean_loglik": bounds,
            "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


LABELS = {
    "dask_large_streamed": "dask, generated again every pass",
    "dask_large_persisted": "dask, persisted in the workers",
    "dask_small_persisted": "dask, persisted in the workers",
    "memory_small": "in memory (NumPy, 2 threads)",
}


def markdown(record: dict) -> str:
    """The scaling table of docs/dask.md from a results record."""
    cases, mem = record["cases"], record["cases"]["memory_small"]
    per_row_mem = mem["seconds_per_iteration"] / mem["n"]
    lines = ["| engine | N | s / iteration | s / iteration / 10^6 rows | vs in memory, per row "
             "| peak RSS per worker (MB) | driver peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, label in LABELS.items():
        case = cases[name]
        per_row = case["seconds_per_iteration"] / case["n"]
        workers = case.get("worker_peak_rss_mb")
        lines.append(
            f"| {label} | {case['n']:,} | {case['seconds_per_iteration']:.2f} | "
            f"{per_row * 1e6:.2f} | {per_row / per_row_mem:.2f}x | "
            + (" / ".join(f"{w:.0f}" for w in workers) if workers else "-")
            + f" | {case['driver_peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", default=None,
                        help="print the docs table of a results file and stop")
    parser.add_argument("--n-large", type=int, default=20_000_000)
    parser.add_argument("--n-small", type=int, default=2_000_000)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-streamed", type=int, default=1,
                        help="repeats of the streamed case (each pass regenerates the data)")
    parser.add_argument("--memory-limit", default="3GiB")
    parser.add_argument("--fit", action="store_true", help="also one EMGMM.fit end to end")
    parser.add_argument("--fit-max-iter", type=int, default=50)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.markdown:
        with open(args.markdown) as handle:
            print(markdown(json.load(handle)))
        return

    cases = {}
    large = mixture(args.n_large, args.chunk)
    small = mixture(args.n_small, args.chunk, seed=2)
    small_np = small.compute(scheduler="threads")  # the same rows, on the driver
    print("memory_small (before) ...", flush=True)
    before = memory_case(small_np, args.iterations, args.repeat)
    for name, X, persist, repeat in [("dask_large_streamed", large, False, args.repeat_streamed),
                                     ("dask_large_persisted", large, True, args.repeat),
                                     ("dask_small_persisted", small, True, args.repeat)]:
        print(f"{name} ...", flush=True)
        cluster, client = new_cluster(args.memory_limit)
        try:
            cases[name] = dask_case(client, X, args.iterations, repeat, persist)
        finally:
            client.close()
            cluster.close()
        print({k: v for k, v in cases[name].items() if k != "iteration_gaps"}, flush=True)
    cluster, client = new_cluster(args.memory_limit)
    try:
        if args.fit:
            X = client.persist(large)
            distributed.wait(X)
            with PeakRSS() as driver, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0 = time.perf_counter()
                model = bg.EMGMM(K, random_state=0, max_iter=args.fit_max_iter).fit(X)
                seconds = time.perf_counter() - t0
            cases["emgmm_fit_large"] = {
                "n": args.n_large, "seconds": seconds, "n_iter": model.n_iter_,
                "converged": model.converged_, "mean_loglik": model.lower_bound_,
                "warnings": [str(w.message)[:200] for w in caught],
                "worker_peak_rss_mb": sorted(client.run(_worker_peak_mb).values()),
                "driver_peak_rss_mb": driver.peak / 2**20,
                "sample_rows": em_dask.SAMPLE_ROWS,
            }
            print(cases["emgmm_fit_large"], flush=True)
    finally:
        client.close()
        cluster.close()
    print("memory_small (after) ...", flush=True)
    after = memory_case(small_np, args.iterations, args.repeat)
    # the machine's load drifts: the reference is timed before and after the dask cases
    gaps = before["iteration_gaps"] + after["iteration_gaps"]
    cases["memory_small"] = {**after, "repeat": 2 * args.repeat, "iteration_gaps": gaps,
                             "seconds_per_iteration": statistics.median(gaps),
                             "seconds_per_iteration_before": before["seconds_per_iteration"],
                             "seconds_per_iteration_after": after["seconds_per_iteration"],
                             "run_seconds": before["run_seconds"] + after["run_seconds"]}
    print({k: v for k, v in cases["memory_small"].items() if k != "iteration_gaps"})

    mem = cases["memory_small"]["seconds_per_iteration"] / args.n_small
    ratios = {name: cases[name]["seconds_per_iteration"] / cases[name]["n"] / mem
              for name in cases if name.startswith("dask")}
    agree = abs(cases["dask_small_persisted"]["final_mean_loglik"][0]
                - cases["memory_small"]["final_mean_loglik"][0])
    summary = {
        "seconds_per_iteration_per_million_rows": {
            name: cases[name]["seconds_per_iteration"] / cases[name]["n"] * 1e6
            for name in cases if "seconds_per_iteration" in cases[name]},
        "time_per_row_vs_in_memory": ratios,
        "small_loglik_abs_difference_per_row": agree,
    }
    print(summary)
    if args.out:
        write_record(args.out, {
            "settings": {"D": D, "K": K, "covariance_type": "full", "workers": 2,
                         "threads_per_worker": 1, "memory_limit": args.memory_limit,
                         "n_large": args.n_large, "n_small": args.n_small,
                         "chunk_rows": args.chunk, "iterations": args.iterations,
                         "repeat": args.repeat, "dask": dask.__version__,
                         "distributed": distributed.__version__},
            "cases": cases, "summary": summary,
        })


if __name__ == "__main__":
    main()
