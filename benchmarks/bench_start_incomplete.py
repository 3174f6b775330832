"""The default one-run start of EMGMM on incomplete data: collapsed fits and gaps to n_init=10.

Iris with ``share`` of the entries missing completely at random
(``tests/conftest.py::with_holes``, seeds 0..5), K = 2, 3, 4, six mclust models and
``"full"``; ``EMGMM(K, covariance_type=m, random_state=0)`` with the default
``n_init=1, init_params="auto"`` under three start strategies:

- ``column``: the hc tree grown on column-mean-filled data, no rescue (the code before
  commit 9bb3466);
- ``fill``: the tree grown on conditional means under one full Gaussian, no rescue;
- ``fill+rescue``: the default now (``RESCUE_RUNS`` screened restarts after a collapsed
  single run).

Each fit is compared to ``n_init=10`` on the same data. Records every fit: the
log-likelihood, ``compare.fit_status``, ``n_rescue_runs_`` and seconds. Run from
``benchmarks/``::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 ../.venv/bin/python bench_start_incomplete.py \\
        --out results/start_incomplete.json
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _record import git_state, write_record
from conftest import with_holes

import bayesgmm as bg
from bayesgmm import estimators
from bayesgmm.compare import fit_status

MODELS = ("VVV", "VEV", "VVI", "VEE", "EVE", "EEE", "full")
SHARES = (0.1, 0.2, 0.4)
KS = (2, 3, 4)
SEEDS = range(6)
FILLED = estimators.EMGMM._filled


def _column_means(self, X):
    return np.where(np.isnan(X), np.nanmean(X, axis=0), X)


def _fit(X, k, model, strategy, n_init=1):
    estimators.EMGMM._filled = _column_means if strategy == "column" else FILLED
    rescue = estimators.RESCUE_RUNS
    if strategy in ("column", "fill"):
        estimators.RESCUE_RUNS = 0
    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bg.EMGMM(k, covariance_type=model, n_init=n_init, random_state=0).fit(X)
        seconds = time.perf_counter() - start
    finally:
        estimators.EMGMM._filled = FILLED
        estimators.RESCUE_RUNS = rescue
    return {"loglik": fit.result_.log_likelihood, "status": fit_status(fit.result_),
            "rescue_runs": fit.n_rescue_runs_, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/start_incomplete.json")
    args = parser.parse_args()
    git = git_state()
    iris = bg.datasets.load_iris().to_numpy()
    cases = []
    summary = {s: {"flagged": 0, "collapsed": 0, "gap_over_1": 0, "seconds": 0.0}
               for s in ("column", "fill", "fill+rescue", "n_init=10")}
    for share in SHARES:
        for k in KS:
            for model in MODELS:
                for seed in SEEDS:
                    X = with_holes(iris, share, seed)
                    case = {"share": share, "k": k, "model": model, "seed": seed}
                    case["n_init=10"] = _fit(X, k, model, "fill+rescue", n_init=10)
                    best = case["n_init=10"]["loglik"]
                    for strategy in ("column", "fill", "fill+rescue"):
                        case[strategy] = _fit(X, k, model, strategy)
                    for strategy in summary:
                        one = case[strategy]
                        summary[strategy]["flagged"] += bool(one["status"])
                        summary[strategy]["collapsed"] += any("collapsed" in r
                                                              for r in one["status"])
                        summary[strategy]["gap_over_1"] += best - one["loglik"] > 1.0
                        summary[strategy]["seconds"] += one["seconds"]
                    cases.append(case)
            print(share, k, {s: v["collapsed"] for s, v in summary.items()}, flush=True)
    print(summary)
    write_record(args.out, {"git": git, "n_fits_per_strategy": len(cases), "summary": summary,
                            "cases": cases})


if __name__ == "__main__":
    main()
