"""How the hyperprior of the concentration moves the posterior of K+ (issue 15).

Three clear clusters in 2-D (N=300, unit-variance Gaussians centred at (0, 0),
(6, 0), (3, 5)), ``BayesGMM(n_components=10)`` by NUTS, 2 chains x 300 draws
after 300 tuning steps, for each ``weights_concentration`` setting: "sparse"
(alpha ~ Gamma(10, 100), prior mean 0.1), ("gamma", 10, 1000) (mean 0.01),
a fixed 0.01, ("gamma", 10, 10000) (mean 0.001) and a fixed 0.001.  Recorded: P(K+),
R-hat/ESS of K+ and alpha, chain modes,
divergences, BIC's K by EM, wall time and load.

    OPENBLAS_NUM_THREADS=1 python benchmarks/n_clusters_priors.py \\
        --out benchmarks/results/n_clusters_priors.json
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from _record import git_state, write_record

SETTINGS = {"sparse": "sparse", "gamma(10,1000)": ("gamma", 10.0, 1000.0), "fixed 0.01": 0.01,
            "gamma(10,10000)": ("gamma", 10.0, 10000.0), "fixed 0.001": 0.001}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                   help="settings to run")
    args = p.parse_args()
    import bayesgmm as bg
    from bayesgmm.bayes.n_clusters import n_clusters_diagnostics

    state = git_state()
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [6, 0], [3, 5]])
    X = np.concatenate([rng.normal(c, 1.0, size=(100, 2)) for c in centres])
    bic = bg.compare_k(X, range(1, 7), methods="em", progressbar=False).best("bic")
    runs = {}
    for name in args.only:
        conc = SETTINGS[name]
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bg.BayesGMM(n_components=10, priors={"weights_concentration": conc},
                              draws=args.draws, tune=args.draws, chains=2, random_state=0,
                              progressbar=False).fit(X)
            diag = n_clusters_diagnostics(fit.result_, warn=False)
        probs = fit.result_.n_clusters()
        runs[name] = {
            "p_k_plus": {int(k): float(v) for k, v in probs.items()},
            "diagnostics": {r: {c: float(diag.loc[r, c]) for c in diag.columns}
                            for r in diag.index},
            "chain_modes": diag.attrs["chain_modes"],
            "divergences": int(fit.result_.idata["sample_stats"]["diverging"].sum()),
            "wall_s": time.perf_counter() - t0, "load_before": load0,
            "load_after": os.getloadavg()[0],
        }
        print(name, runs[name], flush=True)
        if args.out:
            write_record(args.out, {"git": state, "settings": vars(args), "bic_em_k": bic,
                                    "runs": runs})


if __name__ == "__main__":
    main()
