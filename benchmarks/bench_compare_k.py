"""Choosing K by EM: bayesgmm.compare_k against a scikit-learn sweep, Old Faithful and iris.

bayesgmm: ``compare_k(X, range(1, kmax + 1), methods="em")`` at its defaults
(n_init=10, tol=1e-7). scikit-learn: GaussianMixture(k, n_init=10) for the same
k at its defaults (tol=1e-3), computing BIC for each. Both in this process,
after one warm-up sweep over K=1, 2 each; the repeats of the two alternate
(bayesgmm, scikit-learn, bayesgmm, ...) so that a change in the machine's load
hits both. Every repeat's time is recorded; the figures quoted are medians.

Run: ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_compare_k.py --repeat 3
--out benchmarks/results/compare_k.json``. On a machine shared with other jobs, one
BLAS/OpenMP thread per process keeps scikit-learn's pools from oversubscribing the
cores (unpinned, its times on these tiny data sets went from 2 s to 50 s as the load
rose); the record holds the thread settings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from sklearn.mixture import GaussianMixture

import bayesgmm as bg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_state, write_record

DATA = {"faithful": bg.datasets.load_faithful, "iris": bg.datasets.load_iris}


def sweep_bayesgmm(X, ks):
    return int(bg.compare_k(X, ks, methods="em", progressbar=False).best("bic"))


def sweep_sklearn(X, ks):
    bics = {k: GaussianMixture(k, n_init=10, random_state=0).fit(X).bic(X) for k in ks}
    return int(min(bics, key=bics.get))


def thread_state() -> dict:
    """Thread settings of the BLAS/OpenMP pools (shared machines: pin them to compare)."""
    from threadpoolctl import threadpool_info

    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS")}
    return {"env": env, "pools": [{"api": p.get("internal_api"), "threads": p.get("num_threads")}
                                  for p in threadpool_info()]}


SWEEPS = {"bayesgmm": sweep_bayesgmm, "scikit-learn": sweep_sklearn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kmax", type=int, default=8, help="sweep K = 1..kmax")
    parser.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA))
    parser.add_argument("--out", default=None, help="write the raw record (JSON) here")
    args = parser.parse_args()
    ks = list(range(1, args.kmax + 1))
    git = git_state()
    threads = thread_state()
    rows = {}
    for data in args.data:
        X = DATA[data]()
        if hasattr(X, "to_numpy"):
            X = X.to_numpy()
        for run in SWEEPS.values():
            run(X, [1, 2])  # warm-up
        seconds: dict[str, list[float]] = {name: [] for name in SWEEPS}
        best: dict[str, list[int]] = {name: [] for name in SWEEPS}
        for _ in range(args.repeat):
            for name, run in SWEEPS.items():
                start = time.perf_counter()
                best[name].append(run(X, ks))
                seconds[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(t) for name, t in seconds.items()}
        ratios = [s / b for s, b in zip(seconds["scikit-learn"], seconds["bayesgmm"],
                                        strict=True)]
        rows[data] = {"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "ks": ks,
                      "seconds": seconds, "best_k_bic": best, "median_seconds": medians,
                      "ratio_sklearn_over_bayesgmm_per_repeat": ratios,
                      "ratio_of_medians": medians["scikit-learn"] / medians["bayesgmm"]}
        for name in SWEEPS:
            print(f"{data:9} {name:14} median {medians[name]:6.2f} s "
                  f"(repeats {', '.join(f'{t:.2f}' for t in seconds[name])})   "
                  f"BIC picks K={best[name]}")
        print(f"{data:9} scikit-learn time / bayesgmm time: "
              f"{rows[data]['ratio_of_medians']:.2f}x (median of {args.repeat})")
    if args.out:
        write_record(args.out, {"repeat": args.repeat, "sweeps": rows, "git": git,
                                "threads": threads,
                                "settings": "compare_k(methods='em') defaults (n_init=10, "
                                            "tol=1e-7) vs GaussianMixture(k, n_init=10, "
                                            "random_state=0) defaults (tol=1e-3)"})


if __name__ == "__main__":
    main()
