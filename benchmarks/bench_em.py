"""EM speed and memory: bayesgmm.EMGMM against scikit-learn's GaussianMixture.

Both fit the same data (N=200,000, D=16, K=8, full covariances) for exactly
20 EM iterations from the same initial parameters, in this process. The
script checks that both reach the same log-likelihood (relative 1e-6), then
prints the time per iteration (best of ``--repeat`` runs), the peak memory
each fit allocates (tracemalloc, which sees NumPy's buffers) and the ratios.

Run: ``python benchmarks/bench_em.py`` (``--n 20000`` for a quick look).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
import warnings

import numpy as np
from _record import write_record  # benchmarks/ is on sys.path when run as a script
from sklearn.mixture import GaussianMixture

import bayesgmm as bg
from bayesgmm import em


def make_problem(n: int, d: int, k: int, seed: int = 0):
    sim = bg.datasets.make_blobs_gmm(n, k, d, separation=4.0, random_state=seed)
    start = em.init_state(sim.X, k, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(seed))
    pc = start.precisions_cholesky
    precisions = pc @ pc.transpose(0, 2, 1)
    return sim.X, dict(weights_init=start.weights, means_init=start.means,
                       precisions_init=precisions)


def models(k: int, n_iter: int, init: dict):
    common = dict(covariance_type="full", tol=0.0, max_iter=n_iter, reg_covar=1e-6, **init)
    return {
        "bayesgmm": lambda: bg.EMGMM(k, **common),
        # user-given inits replace the estimate; "random_from_data" keeps its own setup cheap
        "scikit-learn": lambda: GaussianMixture(k, init_params="random_from_data",
                                                random_state=0, **common),
    }


def fit_quietly(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never converges: both warn
        return model.fit(X)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the raw results here")
    args = parser.parse_args()

    X, init = make_problem(args.n, args.d, args.k)
    print(f"N={args.n}, D={args.d}, K={args.k}, full covariance, {args.iterations} EM "
          f"iterations from the same start, median of {args.repeat}")
    rows = {}
    for name, build in models(args.k, args.iterations, init).items():
        fit_quietly(build(), X[:1000])  # warm-up: imports, caches
        times = []
        for _ in range(args.repeat):
            model = build()
            start = time.perf_counter()
            fit_quietly(model, X)
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        fit_quietly(build(), X)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows[name] = dict(per_iter=statistics.median(times) / args.iterations, peak=peak,
                          loglik=model.score(X) * len(X), n_iter=model.n_iter_,
                          seconds_per_repeat=times)

    ours, ref = rows["bayesgmm"], rows["scikit-learn"]
    rel = abs(ours["loglik"] - ref["loglik"]) / abs(ref["loglik"])
    print(f"{'':14}{'ms/iteration':>14}{'peak MiB':>10}{'log-likelihood':>20}")
    for name, row in rows.items():
        print(f"{name:14}{1e3 * row['per_iter']:14.1f}{row['peak'] / 2**20:10.1f}"
              f"{row['loglik']:20.6f}")
    print(f"log-likelihood relative difference: {rel:.2e} (must be < 1e-6)")
    speedup = ref["per_iter"] / ours["per_iter"]
    print(f"speed-up (scikit-learn time / bayesgmm time): {speedup:.2f}x")
    print(f"peak memory ratio (bayesgmm / scikit-learn): {ours['peak'] / ref['peak']:.2f}")
    if args.json:
        write_record(args.json, {"n": args.n, "d": args.d, "k": args.k,
                                 "iterations": args.iterations, "results": rows,
                                 "speedup": speedup, "loglik_relative_difference": rel})
    if rel >= 1e-6 or ours["n_iter"] != ref["n_iter"]:
        raise SystemExit("FAILED: the two fits did not reach the same log-likelihood")


if __name__ == "__main__":
    main()
