"""Benchmark: the mixture a user would write by hand in PyMC vs BayesGMM.

Same data (iris sepal length and width by default, or ``--data simulated``),
K=3, full covariances, 2 chains x 1000 draws after 1000 tuning steps, in one
process.  Prints wall time (including compilation), the minimum bulk ESS over
weights, means and covariance entries, ESS per second, divergences, and the
ratio; ``--out`` writes the raw record (every repeat) with ``_record.py``.

    python benchmarks/bench_bayes.py --data simulated --repeat 3 \
        --out benchmarks/results/bayes_vs_hand.json   # the figure quoted in README and docs
    python benchmarks/bench_bayes.py                # iris, disk caches as they are
    python benchmarks/bench_bayes.py --fresh-cache  # empty PyTensor/Numba cache: a true cold start
    python benchmarks/bench_bayes.py --only bayesgmm
    python benchmarks/bench_bayes.py --compare      # every sampler, cold and warm; prints only,
                                                    # writes no record

The cold/warm comparison against nutpie's PyTensor backend that README and
docs quote is ``benchmarks/bench_compile.py`` (``benchmarks/results/compile.json``).
On iris the hand-written model switches labels, so its ESS (and the ratio) is
unstable between runs; quote only a recorded median of repeats.

The hand-written model uses PyMC's default NUTS sampler (nutpie when it is
installed) and no relabeling: that is what a user gets.  For reference the
script also reports its ESS after our relabeling.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fresh-cache", action="store_true",
                   help="compile into empty temporary PyTensor and Numba caches (cold start)")
    p.add_argument("--only", choices=("hand", "bayesgmm"), default=None)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", choices=("iris", "simulated"), default="iris",
                   help="iris sepal features (the issue's benchmark) or well separated "
                        "simulated data (K=3, D=2, N=500)")
    p.add_argument("--compare", action="store_true",
                   help="time every sampler, cold and warm, in subprocesses")
    p.add_argument("--repeat", type=int, default=1,
                   help="repeat the pair of fits in this process; medians are printed")
    p.add_argument("--out", default=None, help="write the raw record (JSON) here")
    p.add_argument("--variant", choices=VARIANTS, default=None,
                   help="(internal) time one variant on simulated data in this process")
    return p.parse_args()


VARIANTS = ("nutpie", "pymc-numba", "pymc-c", "nutpie-native")


ARGS = _parse()
if ARGS.fresh_cache:  # must happen before pytensor and numba are imported
    os.environ["PYTENSOR_FLAGS"] = (
        os.environ.get("PYTENSOR_FLAGS", "") + f",base_compiledir={tempfile.mkdtemp()}"
    ).lstrip(",")
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()

T_START = time.perf_counter()
import arviz as az  # noqa: E402
import pymc as pm  # noqa: E402

import bayesgmm as bg  # noqa: E402
from bayesgmm.bayes.relabel import apply_permutation, relabel_draws  # noqa: E402

T_IMPORT = time.perf_counter() - T_START
K = 3


def _min_ess(w: np.ndarray, m: np.ndarray, c: np.ndarray) -> tuple[float, str]:
    """Minimum bulk ESS over weights, means and covariance entries (chain, draw first)."""
    d = m.shape[-1]
    iu = np.triu_indices(d)
    cols = {f"weights[{k}]": w[..., k] for k in range(K)}
    cols.update({f"means[{k},{j}]": m[..., k, j] for k in range(K) for j in range(d)})
    cols.update({f"cov[{k},{i},{j}]": c[..., k, i, j] for k in range(K)
                 for i, j in zip(*iu, strict=True)})
    ess = {name: float(az.ess(np.ascontiguousarray(v), method="bulk"))
           for name, v in cols.items()}
    worst = min(ess, key=ess.get)
    return ess[worst], worst


def hand_written(X: np.ndarray) -> dict:
    """The model a PyMC user writes: pm.Mixture over a list of MvNormal components."""
    t0 = time.perf_counter()
    d = X.shape[1]
    with pm.Model():
        w = pm.Dirichlet("w", a=np.ones(K))
        comps = []
        for k in range(K):
            mu = pm.Normal(f"mu_{k}", mu=X.mean(0), sigma=2 * X.std(0), shape=d)
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol_{k}", n=d, eta=2.0, sd_dist=pm.HalfNormal.dist(X.std(0), shape=d),
                compute_corr=True,
            )
            comps.append(pm.MvNormal.dist(mu=mu, chol=chol))
        pm.Mixture("obs", w=w, comp_dists=comps, observed=X)
        idata = pm.sample(draws=ARGS.draws, tune=ARGS.tune, chains=ARGS.chains,
                          random_seed=ARGS.seed, progressbar=False)
    wall = time.perf_counter() - t0
    post = idata["posterior"].to_dataset()
    wdraws = post["w"].values
    m = np.stack([post[f"mu_{k}"].values for k in range(K)], axis=2)
    chols = np.stack([post[f"chol_{k}"].values for k in range(K)], axis=2)  # packed
    n_c, n_d = wdraws.shape[:2]
    L = np.zeros((n_c, n_d, K, d, d))
    L[..., np.tril_indices(d)[0], np.tril_indices(d)[1]] = chols
    c = L @ np.swapaxes(L, -1, -2)
    ess, worst = _min_ess(wdraws, m, c)
    # the same draws after our relabeling (not what the user gets; for reference)
    s = n_c * n_d
    ref = bg.EMGMM(K, n_init=5, random_state=0).fit(X)
    info = relabel_draws(m.reshape(s, K, d), c.reshape(s, K, d, d), ref.means_, ref.covariances_)
    rel = [apply_permutation(a.reshape(s, K, *a.shape[3:]), info.permutation).reshape(a.shape)
           for a in (wdraws, m, c)]
    ess_rel, _ = _min_ess(*rel)
    div = int(idata["sample_stats"]["diverging"].sum())
    sampler = idata["posterior"].attrs.get("inference_library", "pymc default")
    return {"wall": wall, "ess": ess, "worst": worst, "ess_relabeled": ess_rel,
            "divergences": div, "sampler": sampler}


def bayesgmm_fit(X: np.ndarray) -> dict:
    """BayesGMM with its defaults (nutpie over bayesgmm's Numba kernel)."""
    t0 = time.perf_counter()
    fit = bg.BayesGMM(K, draws=ARGS.draws, tune=ARGS.tune, chains=ARGS.chains,
                      random_state=ARGS.seed, progressbar=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.fit(X)
    wall = time.perf_counter() - t0
    timing = dict(fit.timing_)
    post = fit.result_.idata["posterior"].to_dataset()
    ess, worst = _min_ess(post["weights"].values, post["means"].values,
                          post["covariances"].values)
    div = int(fit.result_.idata["sample_stats"]["diverging"].sum())
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.fit(X)  # the compiled kernel is reused
    wall_again = time.perf_counter() - t1
    return {"wall": wall, "ess": ess, "worst": worst, "compile": timing["compile"],
            "sample": timing["sample"], "divergences": div, "wall_again": wall_again}


def simulated() -> np.ndarray:
    """Well separated K=3, D=2, N=500 data: a posterior without label switching."""
    return bg.datasets.make_blobs_gmm(500, 3, 2, separation=8.0, random_state=3).X


def run_variant(name: str) -> None:
    """Fit one sampler variant on the simulated data; print one line."""
    import warnings

    X = simulated()
    t0 = time.perf_counter()
    if name == "pymc-c":  # PyMC's NUTS on the same model, PyTensor's C backend
        from bayesgmm.bayes.model import auto_reg_covar, build_gmm_model

        model = build_gmm_model(X, K, "full", reg_covar=auto_reg_covar(X))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trace = pm.sample(draws=ARGS.draws, tune=ARGS.tune, chains=ARGS.chains,
                              model=model, random_seed=ARGS.seed, progressbar=False,
                              nuts_sampler="pymc", compile_kwargs={"mode": "CVM"})
        t_compile, t_sample = float("nan"), time.perf_counter() - t0
        div = int(trace["sample_stats"]["diverging"].sum())
        ess = float("nan")  # not relabeled: not comparable
    else:
        sampler = {"nutpie": "nutpie", "pymc-numba": "pymc",
                   "nutpie-native": "nutpie_native"}[name]
        fit = bg.BayesGMM(K, draws=ARGS.draws, tune=ARGS.tune, chains=ARGS.chains,
                          sampler=sampler, random_state=ARGS.seed, progressbar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit.fit(X)
        from bayesgmm import posterior

        table = posterior.diagnostics(fit.result_, warn=False)
        t_compile = fit.timing_["compile"]
        t_sample = fit.timing_["sample"]
        div = table.attrs["divergences"]
        ess = float(table["ess_bulk"].min())
    wall = time.perf_counter() - t0
    print(f"RESULT {name} fresh={ARGS.fresh_cache} wall={wall:.1f} compile={t_compile:.1f} "
          f"sample={t_sample:.1f} min_ess={ess:.0f} ess_per_s={ess / wall:.1f} div={div}")


def compare() -> None:
    """Run every variant in a fresh process, with an empty and with a warm cache."""
    import subprocess

    for name in VARIANTS:
        for fresh in (True, False):
            cmd = [sys.executable, __file__, "--variant", name, "--draws", str(ARGS.draws),
                   "--tune", str(ARGS.tune), "--chains", str(ARGS.chains)]
            if fresh:
                cmd.append("--fresh-cache")
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
            print(lines[0] if lines else f"{name} fresh={fresh} failed: {out.stderr[-500:]}",
                  flush=True)


def main() -> int:
    if ARGS.variant:
        run_variant(ARGS.variant)
        return 0
    if ARGS.compare:
        compare()
        return 0
    if ARGS.data == "iris":
        X = bg.datasets.load_iris()[["sepal_length", "sepal_width"]].to_numpy()
    else:
        X = simulated()
    print(f"{ARGS.data} data, N={X.shape[0]}, K={K}, {ARGS.chains} chains x {ARGS.draws} "
          f"draws after {ARGS.tune} tune; fresh cache: {ARGS.fresh_cache}; "
          f"import {T_IMPORT:.1f} s")
    repeats = [_one_repeat(X) for _ in range(ARGS.repeat)]
    if ARGS.repeat > 1 or ARGS.out:
        import statistics

        summary = {}
        for name in repeats[0]:
            ess_per_s = [r[name]["ess"] / r[name]["wall"] for r in repeats]
            summary[name] = {"median_wall": statistics.median(r[name]["wall"] for r in repeats),
                             "median_ess_per_s": statistics.median(ess_per_s)}
            print(f"{name}: median wall {summary[name]['median_wall']:.1f} s, median ESS/s "
                  f"{summary[name]['median_ess_per_s']:.2f} over {ARGS.repeat} repeats")
        if len(summary) == 2:
            summary["ratio_of_median_ess_per_s"] = (summary["bayesgmm"]["median_ess_per_s"]
                                                    / summary["hand"]["median_ess_per_s"])
            print(f"ratio of median ESS/s: {summary['ratio_of_median_ess_per_s']:.1f}x")
        if ARGS.out:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from _record import write_record

            write_record(ARGS.out, {"data": ARGS.data, "n_obs": int(X.shape[0]), "k": K,
                                    "chains": ARGS.chains, "draws": ARGS.draws,
                                    "tune": ARGS.tune, "fresh_cache": ARGS.fresh_cache,
                                    "repeats": repeats, "summary": summary})
    return 0


def _one_repeat(X: np.ndarray) -> dict:
    rows = {}
    if ARGS.only in (None, "bayesgmm"):
        t0 = time.perf_counter()
        rows["bayesgmm"] = r = bayesgmm_fit(X)
        print(f"BayesGMM : wall {r['wall']:6.1f} s (compile {r['compile']:.1f} s, "
              f"sample {r['sample']:.1f} s), "
              f"min bulk ESS {r['ess']:7.1f} ({r['worst']}), "
              f"ESS/s {r['ess'] / r['wall']:8.2f}, divergences {r['divergences']}; "
              f"refit in the same process {r['wall_again']:.1f} s "
              f"[total {time.perf_counter() - t0:.1f} s]")
    if ARGS.only in (None, "hand"):
        rows["hand"] = h = hand_written(X)
        print(f"hand PyMC: wall {h['wall']:6.1f} s (sampler: {h['sampler']}), min bulk ESS "
              f"{h['ess']:7.1f} ({h['worst']}), ESS/s {h['ess'] / h['wall']:8.2f}, "
              f"divergences {h['divergences']}; min bulk ESS after our relabeling "
              f"{h['ess_relabeled']:.1f}")
    if len(rows) == 2:
        ratio = (rows["bayesgmm"]["ess"] / rows["bayesgmm"]["wall"]) / (
            rows["hand"]["ess"] / rows["hand"]["wall"])
        print(f"ratio of ESS/s, BayesGMM / hand-written: {ratio:.1f}x")
    return rows


if __name__ == "__main__":
    sys.exit(main())
