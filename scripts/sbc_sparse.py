r"""Simulation-based calibration of a sparse finite mixture (issue 15): alpha, K+, components.

Each replication draws alpha ~ Gamma(10, 10 K_max), the weights from
Dirichlet(alpha, ..., alpha), the components from the rest of the prior
(:func:`bayesgmm.bayes.spec.sample_prior_raw`), simulates N points with their
labels, fits ``BayesGMM(K_max, priors={..., "weights_concentration": "sparse"})``
by NUTS and ranks among the kept posterior draws: ``alpha``; ``n_clusters``, the
number of non-empty components (truth: of the simulated labels; draws: of
allocations drawn from the responsibilities, :func:`bayesgmm.bayes.n_clusters.allocation_counts`;
ties broken at random); and the label-invariant quantities of
:func:`bayesgmm.validation.sbc.label_invariant_quantities` (components sorted
by their mean, empty ones included).  Uniform ranks (chi-square and the 95%
simultaneous ECDF band of :class:`bayesgmm.validation.sbc.SBCResult`) mean the
fit recovers the posterior.

    OPENBLAS_NUM_THREADS=1 python scripts/sbc_sparse.py --reps 100 \\
        --out benchmarks/results/sbc_sparse.json

The record is written after every replication.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

K_MAX, D = 4, 1


def main() -> None:
    """Run the study and write the record (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--n-samples", type=int, default=60)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import bayesgmm as bg
    from bayesgmm.bayes.n_clusters import allocation_counts
    from bayesgmm.bayes.params import params_from_raw
    from bayesgmm.bayes.spec import prior_model_data, sample_prior_raw, simulate_mixture
    from bayesgmm.validation import ranks as rank_stats
    from bayesgmm.validation.sbc import SBCResult, label_invariant_quantities

    priors = {"weights_concentration": "sparse", "means_loc": 0.0, "means_scale": 3.0,
              "sd_scale": 1.0}
    reg = 1e-3
    md = prior_model_data(K_MAX, D, priors, reg, "diag")
    n_keep = min(99, args.draws)
    names: list[str] = []
    ranks, div, secs, rhat = [], [], [], []
    for i in range(args.reps):
        rng = np.random.default_rng(np.random.SeedSequence([args.seed, i]))
        raw = {k: v for k, v in sample_prior_raw(md, "diag", 1, rng).items()}
        w, m, c = params_from_raw(raw, covariance_type="diag", n_components=K_MAX,
                                  center=md.center, scale=md.scale, reg_diag=md.reg_diag)
        X, labels = simulate_mixture(w[0], m[0], c[0], args.n_samples, rng, return_labels=True)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bg.BayesGMM(K_MAX, covariance_type="diag", priors=priors, reg_covar=reg,
                              draws=args.draws, tune=args.draws, chains=2,
                              random_state=int(rng.integers(2**31 - 1)),
                              progressbar=False).fit(X)
        secs.append(time.perf_counter() - t0)
        post = fit.result_.idata["posterior"].to_dataset()
        keep = rank_stats.thin_draws(post.sizes["draw"], n_keep)
        pw = post["weights"].values[:, keep].reshape(-1, K_MAX)
        pm_ = post["means"].values[:, keep].reshape(-1, K_MAX, D)
        pc = post["covariances"].values[:, keep].reshape(-1, K_MAX, D, D)
        palpha = post["alpha"].values[:, keep].reshape(-1)
        kplus = (allocation_counts(X, pw, pm_, pc, rng) > 0).sum(axis=1)
        names_q, truth_q = label_invariant_quantities(w, m, c, covariance_type="diag")
        _, q = label_invariant_quantities(pw, pm_, pc, covariance_type="diag")
        names = ["alpha", "n_clusters", *names_q]
        truth = np.concatenate([[raw["alpha"][0], np.unique(labels).size], truth_q[0]])
        draws = np.column_stack([palpha, kplus, q])
        ranks.append(rank_stats.rank_statistic(truth, draws, rng))
        div.append(int(fit.result_.idata["sample_stats"]["diverging"].sum()))
        by_chain = palpha.reshape(2, -1)
        from arviz_stats.base import array_stats

        rhat.append(float(array_stats.rhat(by_chain, chain_axis=0, draw_axis=1)))
        result = SBCResult(names=names, ranks=np.asarray(ranks), n_ranks=2 * n_keep + 1,
                           method="nuts", n_components=K_MAX, n_features=D,
                           n_samples=args.n_samples, divergences=np.asarray(div),
                           max_rhat=np.asarray(rhat), seconds=np.asarray(secs),
                           covariance_type="diag")
        print(f"rep {i}: {secs[-1]:.1f} s, divergences {div[-1]}, true K+ {truth[1]:.0f}",
              flush=True)
        if args.out and ((i + 1) % 5 == 0 or i + 1 == args.reps):
            table = result.table() if len(ranks) >= 10 else None
            record = {
                "command": (f"python scripts/sbc_sparse.py --reps {args.reps} --n-samples "
                            f"{args.n_samples} --draws {args.draws} --seed {args.seed} "
                            f"--out {args.out}"),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average": list(os.getloadavg()),
                "settings": {"K_max": K_MAX, "D": D, "priors": priors, "reg_covar": reg,
                             "covariance_type": "diag", "chains": 2, **vars(args)},
                "names": names, "ranks": np.asarray(ranks).tolist(), "n_ranks": 2 * n_keep + 1,
                "divergences": div, "alpha_rhat": rhat, "seconds": secs,
                "table": None if table is None else json.loads(table.to_json(orient="index")),
            }
            with open(args.out, "w") as handle:
                json.dump(record, handle, indent=1)


if __name__ == "__main__":
    main()
