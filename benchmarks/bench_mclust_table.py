"""mclust's table on iris: bayesgmm's 14 models x K=1..9 against scikit-learn's 4 models.

bayesgmm: ``compare_k(iris, range(1, 10), methods="em", covariance_type="all")`` (its
defaults for a model table: one EM run per model and K from mclust's start, model-based
hierarchical clustering), the whole table with criteria and fit checks.
scikit-learn: ``GaussianMixture(k, covariance_type=t, n_init=10)`` for its four types and
the same K, then ``bic``. Wall time of each, median of ``--repeat`` runs; the BIC pick of
each, and for the four shared models (VII, VVI, EEE, VVV = spherical, diag, tied, full)
both maximum log-likelihoods.

Run from ``benchmarks/``:
``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 ../.venv/bin/python bench_mclust_table.py
--repeat 3 --out results/mclust_table.json``
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from _record import git_state, write_record
from sklearn.mixture import GaussianMixture

import bayesgmm as bg
from bayesgmm._constants import SKLEARN_EQUIVALENTS

KS = range(1, 10)


def run_bayesgmm(X):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = bg.compare_k(X, KS, methods="em", covariance_type="all", progressbar=False)
    seconds = time.perf_counter() - start
    table = cmp.table.loc["em"]
    ok = table[table["status"] == "ok"]["bic"].sort_values()
    best = cmp.best("bic")
    return seconds, {
        "pick": [best.model, best.K],
        "top3": [[m, int(k), float(v)] for (m, k), v in ok.head(3).items()],
        "loglik": {f"{m},{k}": float(v) for (m, k), v in table["loglik"].items()},
        "status": {f"{m},{k}": s for (m, k), s in table["status"].items() if s != "ok"},
    }


def run_sklearn(X):
    start = time.perf_counter()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in SKLEARN_EQUIVALENTS:
            for k in KS:
                gm = GaussianMixture(k, covariance_type=kind, n_init=10, random_state=0).fit(X)
                out[(kind, k)] = (float(gm.score(X) * X.shape[0]), float(gm.bic(X)))
    seconds = time.perf_counter() - start
    best = min(out, key=lambda key: out[key][1])
    return seconds, {
        "pick": [best[0], best[1]],
        "loglik": {f"{SKLEARN_EQUIVALENTS[kind]},{k}": v[0] for (kind, k), v in out.items()},
    }


def hc_cost(repeat: int, out: str) -> None:
    """Time ``hc.partition`` (the VVV tree, uncached) on standard normal data, 4 features."""
    from bayesgmm import hc

    state = git_state()
    load_start = list(os.getloadavg())
    cases = {}
    for n in (500, 1000, 2000):
        X = np.random.default_rng(0).normal(size=(n, 4))
        times = []
        for _ in range(repeat):
            hc._CACHE.clear()
            start = time.perf_counter()
            hc.partition(X, 3)
            times.append(time.perf_counter() - start)
        cases[str(n)] = {"seconds": times, "median_seconds": float(np.median(times))}
        print(f"hc VVV tree, {n} x 4: median {np.median(times):.2f} s")
    write_record(out, {"git": state, "load_average_at_start": load_start,
                       "what": "hc.partition(X, 3), VVV criterion, X standard normal n x 4",
                       "cases": cases})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="results/mclust_table.json")
    parser.add_argument("--hc-only", action="store_true",
                        help="only time the hc tree (default out results/hc_cost.json)")
    args = parser.parse_args()
    if args.hc_only:
        out = args.out if args.out != "results/mclust_table.json" else "results/hc_cost.json"
        hc_cost(args.repeat, out)
        return
    state = git_state()
    X = bg.datasets.load_iris().to_numpy()
    load_start = list(os.getloadavg())
    bayes_times, sk_times = [], []
    bayes_info = sk_info = None
    for r in range(args.repeat):
        t, bayes_info = run_bayesgmm(X)
        bayes_times.append(t)
        t, sk_info = run_sklearn(X)
        sk_times.append(t)
        print(f"repeat {r}: bayesgmm 14x9 {bayes_times[-1]:.2f} s, "
              f"scikit-learn 4x9 n_init=10 {sk_times[-1]:.2f} s, load {os.getloadavg()[0]:.1f}")
    shared = {}
    for key, ll in sk_info["loglik"].items():
        ours = bayes_info["loglik"][key]
        shared[key] = {"bayesgmm": ours, "sklearn": ll, "difference": ours - ll}
    results = {
        "git": state,
        "load_average_at_start": load_start,
        "data": "iris, 150 x 4",
        "bayesgmm": {"what": "compare_k(covariance_type='all', K=1..9), 126 fits",
                     "seconds": bayes_times, "median_seconds": float(np.median(bayes_times)),
                     **bayes_info},
        "sklearn": {"what": "GaussianMixture(n_init=10), 4 types x K=1..9, 36 fits",
                    "seconds": sk_times, "median_seconds": float(np.median(sk_times)),
                    "pick": sk_info["pick"]},
        "shared_models_loglik": shared,
        "bayesgmm_below_sklearn_by_more_than_0.01": {
            key: v for key, v in shared.items() if v["difference"] < -0.01},
    }
    print(f"bayesgmm median {np.median(bayes_times):.2f} s, pick {bayes_info['pick']}; "
          f"scikit-learn median {np.median(sk_times):.2f} s, pick {sk_info['pick']}")
    write_record(args.out, results)


if __name__ == "__main__":
    main()
