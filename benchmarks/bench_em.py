"""EM speed and memory: bayesgmm.EMGMM against scikit-learn's GaussianMixture.

Both fit the same data (default N=200,000, D=16, K=8, full covariances) from
the same initial parameters with ``tol=0``, for exactly 2 and exactly
2 + ``--iterations`` EM iterations, in this process, the fits alternating.
The script checks that both reach the same log-likelihood (relative 1e-6),
then prints the time per iteration (the difference of the two fits' times
over ``--iterations``, median of ``--repeat``), each fit's fixed cost, the
peak memory each fit allocates (tracemalloc, which sees NumPy's buffers) and
the ratios.

The functions here measure one shape; ``bench_em_grid.py`` runs them over
the issue-13 grid of shapes and covariance types.

Run: ``python benchmarks/bench_em.py`` (``--n 20000`` for a quick look,
``--covariance-type tied`` for another structure).
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

#: Rows the shared start is computed from: the start only has to be the same for both.
START_ROWS = 20_000


def make_problem(n: int, d: int, k: int, covariance_type: str = "full", seed: int = 0,
                 reg_covar: float = 1e-6) -> tuple[np.ndarray, dict]:
    """Simulated data and the starting parameters both libraries take (scikit-learn's names).

    The start is k-means on the first :data:`START_ROWS` rows, turned into
    weights, means and precisions by one M-step.
    """
    sim = bg.datasets.make_blobs_gmm(n, k, d, separation=4.0, random_state=seed)
    start = em.init_state(sim.X[:START_ROWS], k, covariance_type, reg_covar=reg_covar,
                          init_params="kmeans", rng=np.random.default_rng(seed))
    pc = start.precisions_cholesky
    if covariance_type == "full":
        precisions = pc @ pc.transpose(0, 2, 1)
    elif covariance_type == "tied":
        precisions = pc @ pc.T
    else:
        precisions = pc**2
    return sim.X, dict(weights_init=start.weights, means_init=start.means,
                       precisions_init=precisions)


def models(k: int, init: dict, covariance_type: str = "full",
           reg_covar: float = 1e-6) -> dict:
    """Builders ``m -> estimator`` of the two libraries: same start, ``tol=0``, ``m`` iterations."""
    common = dict(covariance_type=covariance_type, tol=0.0, reg_covar=reg_covar, **init)
    return {
        "bayesgmm": lambda m: bg.EMGMM(k, max_iter=m, **common),
        # user-given inits replace the estimate; "random_from_data" keeps its own setup cheap
        "scikit-learn": lambda m: GaussianMixture(k, init_params="random_from_data",
                                                  random_state=0, max_iter=m, **common),
    }


def fit_quietly(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never converges: both warn
        return model.fit(X)


def peak_memory(build, X) -> int:
    """Peak bytes allocated during one fit (tracemalloc sees NumPy's buffers)."""
    tracemalloc.start()
    try:
        fit_quietly(build(), X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def measure(X: np.ndarray, build: dict, n_iter: int | dict, repeat: int,
            base_iter: int = 2) -> dict:
    """Time per EM iteration and peak memory of each library on ``X``.

    ``build[name](m)`` makes an estimator that runs exactly ``m`` iterations.
    Each repeat fits every library twice, with ``base_iter`` and with
    ``base_iter + n_iter`` iterations, the fits alternating; the time per
    iteration is the median over repeats of the difference divided by
    ``n_iter``, so each fit's fixed costs (checks, start, final E-step,
    result object) cancel; they are reported apart (``fixed``, the median
    of the short fit minus ``base_iter`` iterations). ``n_iter`` may be a
    dict by library (a fast library needs more iterations to rise above the
    timer's noise); the libraries' fits are then compared at the short
    length, where both ran ``base_iter`` iterations from the same start.
    ``whole_fit_per_iter`` is the long fit's median time over its iteration
    count. Peak memory is traced over the short fit: every iteration
    allocates the same.
    """
    counts = n_iter if isinstance(n_iter, dict) else dict.fromkeys(build, n_iter)
    for make in build.values():
        fit_quietly(make(base_iter), X[:1000])  # warm-up: imports, caches
    times: dict[str, dict[str, list[float]]] = {n: {"short": [], "long": []} for n in build}
    fitted: dict[str, dict] = {n: {} for n in build}
    for _ in range(repeat):
        for name, make in build.items():
            for length, m in (("short", base_iter), ("long", base_iter + counts[name])):
                model = make(m)
                start = time.perf_counter()
                fit_quietly(model, X)
                times[name][length].append(time.perf_counter() - start)
                fitted[name][length] = model
    compared = "long" if len(set(counts.values())) == 1 else "short"
    rows = {}
    for name, models_ in fitted.items():
        short, long_ = times[name]["short"], times[name]["long"]
        differences = [b - a for a, b in zip(short, long_, strict=True)]
        per_iter = statistics.median(differences) / counts[name]
        model = models_[compared]
        rows[name] = dict(per_iter=per_iter, timed_iterations=counts[name],
                          fixed=statistics.median(short) - base_iter * per_iter,
                          whole_fit_per_iter=statistics.median(long_) / (base_iter + counts[name]),
                          peak=peak_memory(lambda make=build[name]: make(base_iter), X),
                          loglik=float(model.score(X) * len(X)), n_iter=int(model.n_iter_),
                          seconds_short=short, seconds_long=long_)
    ours, ref = rows["bayesgmm"], rows["scikit-learn"]
    return dict(results=rows, iterations_short=base_iter,
                iterations_long={name: base_iter + m for name, m in counts.items()},
                loglik_compared_at=compared,
                speedup=ref["per_iter"] / ours["per_iter"],
                whole_fit_speedup=ref["whole_fit_per_iter"] / ours["whole_fit_per_iter"],
                memory_ratio=ours["peak"] / ref["peak"],
                loglik_relative_difference=abs(ours["loglik"] - ref["loglik"])
                / abs(ref["loglik"]),
                same_iterations=ours["n_iter"] == ref["n_iter"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--covariance-type", default="full",
                        choices=("full", "tied", "diag", "spherical"))
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the raw results here")
    args = parser.parse_args()

    X, init = make_problem(args.n, args.d, args.k, args.covariance_type)
    print(f"N={args.n}, D={args.d}, K={args.k}, {args.covariance_type} covariance, "
          f"{args.iterations} EM iterations from the same start, median of {args.repeat}")
    out = measure(X, models(args.k, init, args.covariance_type), args.iterations,
                  args.repeat)
    rows = out["results"]
    print(f"{'':14}{'ms/iteration':>14}{'fixed ms':>10}{'peak MiB':>10}{'log-likelihood':>20}")
    for name, row in rows.items():
        print(f"{name:14}{1e3 * row['per_iter']:14.1f}{1e3 * row['fixed']:10.1f}"
              f"{row['peak'] / 2**20:10.1f}{row['loglik']:20.6f}")
    rel = out["loglik_relative_difference"]
    print(f"log-likelihood relative difference: {rel:.2e} (must be < 1e-6)")
    print(f"speed-up (scikit-learn time / bayesgmm time): {out['speedup']:.2f}x")
    print(f"peak memory ratio (bayesgmm / scikit-learn): {out['memory_ratio']:.2f}")
    if args.json:
        write_record(args.json, {"n": args.n, "d": args.d, "k": args.k,
                                 "covariance_type": args.covariance_type,
                                 "iterations": args.iterations, **out})
    if rel >= 1e-6 or not out["same_iterations"]:
        raise SystemExit("FAILED: the two fits did not reach the same log-likelihood")


if __name__ == "__main__":
    main()
