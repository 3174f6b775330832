"""Benchmark: a sparse finite mixture (K_max=10) by NUTS, and the posterior of K+.

Issue 15's speed goal: ``BayesGMM(n_components=10, priors={"weights_concentration":
"sparse"})`` on N up to 1,000 points in 2-D (three clear clusters), 4 chains x 1000
draws after 1000 tuning steps, under 60 s on 2 cores, including ``n_clusters()``.
The competitor in the same run is scikit-learn's ``BayesianGaussianMixture``
(variational, Dirichlet-distribution prior with concentration 1/K_max, the same
K_max): one point estimate of the weights, no posterior of K+; its "number of
clusters" is the count of weights above 1/(2 N).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_n_clusters.py \\
        --n 1000 --repeat 3 --out benchmarks/results/n_clusters.json

Recorded per repeat: wall time of fit and of n_clusters(), sampling time, the
posterior of K+, divergences, mean tree depth, R-hat/ESS of K+ and alpha, and
the load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
from _record import git_state, write_record

CENTRES = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, 5.0]])


def data(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = np.full(3, n // 3)
    sizes[: n - sizes.sum()] += 1
    return np.concatenate([rng.normal(c, 1.0, size=(s, 2)) for c, s in zip(CENTRES, sizes,
                                                                             strict=True)])


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its threads."""
    t = os.times()
    return t.user + t.system


def one_bayes(X: np.ndarray, draws: int, tune: int, chains: int, seed: int) -> dict:
    import bayesgmm as bg
    from bayesgmm.bayes.n_clusters import n_clusters_diagnostics

    load0 = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.BayesGMM(n_components=10, priors={"weights_concentration": "sparse"},
                          draws=draws, tune=tune, chains=chains, random_state=seed,
                          progressbar=False).fit(X)
    t_fit = time.perf_counter() - t0
    t1 = time.perf_counter()
    probs = fit.result_.n_clusters()
    t_k = time.perf_counter() - t1
    cpu = _cpu_seconds() - cpu0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diag = n_clusters_diagnostics(fit.result_, warn=False)
    ss = fit.result_.idata["sample_stats"]
    return {
        "wall_fit_s": t_fit, "wall_n_clusters_s": t_k, "wall_total_s": t_fit + t_k,
        # CPU seconds of the process (all threads): on a loaded machine the wall time
        # measures the load; CPU / 2 is the wall time two idle cores would need at best
        "cpu_total_s": cpu, "cpu_total_over_2_s": cpu / 2,
        "timing": {k: float(v) for k, v in fit.timing_.items()},
        "p_k_plus": {int(k): float(v) for k, v in probs.items()},
        "divergences": int(ss["diverging"].sum()),
        "mean_tree_depth": float(ss["tree_depth"].mean()),
        "diagnostics": {row: {c: float(diag.loc[row, c]) for c in diag.columns}
                        for row in diag.index},
        "chain_modes": diag.attrs["chain_modes"],
        "alpha_mean": float(fit.result_.idata["posterior"]["alpha"].mean()),
        "load_before": load0, "load_after": os.getloadavg()[0],
    }


def one_sklearn(X: np.ndarray, seed: int) -> dict:
    from sklearn.mixture import BayesianGaussianMixture

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vb = BayesianGaussianMixture(
            n_components=10, weight_concentration_prior_type="dirichlet_distribution",
            weight_concentration_prior=0.1, max_iter=1000, n_init=1,
            random_state=seed).fit(X)
    return {"wall_s": time.perf_counter() - t0,
            "n_clusters": int((vb.weights_ > 1 / (2 * len(X))).sum()),
            "weights": sorted(vb.weights_.tolist(), reverse=True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    state = git_state()
    X = data(args.n)
    bayes, vb = [], []
    for r in range(args.repeat):
        bayes.append(one_bayes(X, args.draws, args.tune, args.chains, seed=r))
        vb.append(one_sklearn(X, seed=r))
        b = bayes[-1]
        print(f"repeat {r}: fit {b['wall_fit_s']:.1f} s + n_clusters {b['wall_n_clusters_s']:.1f}"
              f" s (CPU/2 {b['cpu_total_over_2_s']:.1f} s), P(K+) {b['p_k_plus']}, "
              f"divergences {b['divergences']}, depth "
              f"{b['mean_tree_depth']:.2f}, load {b['load_before']:.1f}->{b['load_after']:.1f};"
              f" sklearn VB {vb[-1]['wall_s']:.2f} s, K {vb[-1]['n_clusters']}", flush=True)
        summary = {
            "repeats_done": len(bayes),
            "median_wall_total_s": statistics.median(b["wall_total_s"] for b in bayes),
            "median_cpu_total_over_2_s": statistics.median(b["cpu_total_over_2_s"]
                                                           for b in bayes),
            "median_sklearn_vb_s": statistics.median(v["wall_s"] for v in vb),
            "goal_s": 60.0,
            "median_p_k3": statistics.median(b["p_k_plus"].get(3, 0.0) for b in bayes),
        }
        print(summary, flush=True)
        if args.out:  # after every repeat: a stopped run keeps what it measured
            write_record(args.out, {"git": state, "settings": vars(args), "summary": summary,
                                    "bayes": bayes, "sklearn_vb": vb,
                                    "note": "shared 2-core machine: see load_before/after"})


if __name__ == "__main__":
    main()
