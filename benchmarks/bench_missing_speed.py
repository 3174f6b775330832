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
import os
import statistics
import time
import warnings

import numpy as np
from _record import git_state, write_record  # benchmarks/ is on sys.path when run as a script

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
    parser.add_argument("--cpus", type=int, default=None,
                        help="pin the process to this many CPUs (both fits then plan their "
                             "threads for the same budget)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    git, load_start = git_state(), list(os.getloadavg())

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
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fixed number of iterations: "not converged"
            model.fit(data)
        return ((time.perf_counter() - t0) / args.iterations,
                (time.process_time() - c0) / args.iterations)

    runs = {"complete": [], "missing": []}
    cpu = {"complete": [], "missing": []}  # CPU time of the process (all its threads)
    loads = []
    for _ in range(args.repeat):
        for name, data in (("complete", X), ("missing", Xm)):
            wall, used = fit(data)
            runs[name].append(wall)
            cpu[name].append(used)
        loads.append(list(os.getloadavg()))
    median = {name: statistics.median(times) for name, times in runs.items()}
    ratio = median["missing"] / median["complete"]
    cpu_median = {name: statistics.median(times) for name, times in cpu.items()}
    print(f"N={args.n} D={args.d} K={args.k}, {100 * holes.mean():.1f}% missing, "
          f"{n_patterns} patterns")
    print(f"time per iteration (median of {args.repeat}): complete "
          f"{1e3 * median['complete']:.1f} ms, missing {1e3 * median['missing']:.1f} ms, "
          f"ratio {ratio:.2f} (goal <= 3); CPU time ratio "
          f"{cpu_median['missing'] / cpu_median['complete']:.2f}")
    if args.out:
        write_record(args.out, {
            "git": git, "cpus_used": sorted(os.sched_getaffinity(0)),
            "load_average_at_start": load_start, "load_average_after_each_repeat": loads,
            "settings": vars(args), "missing_share": float(holes.mean()),
            "n_patterns": n_patterns, "seconds_per_iteration": runs,
            "median_seconds_per_iteration": median, "ratio_missing_to_complete": ratio,
            "cpu_seconds_per_iteration": cpu, "median_cpu_seconds_per_iteration": cpu_median,
            "cpu_ratio_missing_to_complete": cpu_median["missing"] / cpu_median["complete"],
        })


if __name__ == "__main__":
    main()
