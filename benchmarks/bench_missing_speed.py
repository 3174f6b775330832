"""EM on incomplete data against EM on the same data complete (issue 12's speed goal).

The same simulated mixture (default N=200,000, D=16, K=8, full covariances) is
fitted twice by ``EMGMM`` from the same starting parameters for exactly
``--iterations`` EM iterations: once complete, once with ``--share`` of its
entries missing completely at random (NaN). Goal: the incomplete fit in at most
3x the time of the complete one. Reports the number of missingness patterns,
the time per iteration of each (median of ``--repeat`` runs) and their ratio.

Run: ``python benchmarks/bench_missing_speed.py --repeat 3 --out
benchmarks/results/missing_speed.json`` (``--n 20000`` for a quick look).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from _record import write_record  # benchmarks/ is on sys.path when run as a script

import bayesgmm as bg
from bayesgmm import em, em_missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    sim = bg.datasets.make_blobs_gmm(args.n, args.k, args.d, separation=4.0, random_state=0)
    X = sim.X
    rng = np.random.default_rng(1)
    holes = rng.random(X.shape) < args.share
    holes[holes.all(axis=1), 0] = False
    Xm = np.where(holes, np.nan, X)
    start = em.init_state(X, args.k, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(0))
    pc = start.precisions_cholesky
    init = dict(weights_init=start.weights, means_init=start.means,
                precisions_init=pc @ pc.transpose(0, 2, 1))
    n_patterns = int(em_missing.group_patterns(Xm).observed.shape[0])

    def fit(data):
        model = bg.EMGMM(args.k, tol=0.0, max_iter=args.iterations, **init)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fixed number of iterations: "not converged"
            model.fit(data)
        return (time.perf_counter() - t0) / args.iterations

    runs = {"complete": [], "missing": []}
    for _ in range(args.repeat):
        runs["complete"].append(fit(X))
        runs["missing"].append(fit(Xm))
    median = {name: statistics.median(times) for name, times in runs.items()}
    ratio = median["missing"] / median["complete"]
    print(f"N={args.n} D={args.d} K={args.k}, {100 * holes.mean():.1f}% missing, "
          f"{n_patterns} patterns")
    print(f"time per iteration (median of {args.repeat}): complete "
          f"{1e3 * median['complete']:.1f} ms, missing {1e3 * median['missing']:.1f} ms, "
          f"ratio {ratio:.2f} (goal <= 3)")
    if args.out:
        write_record(args.out, {
            "settings": vars(args), "missing_share": float(holes.mean()),
            "n_patterns": n_patterns, "seconds_per_iteration": runs,
            "median_seconds_per_iteration": median, "ratio_missing_to_complete": ratio,
        })


if __name__ == "__main__":
    main()
