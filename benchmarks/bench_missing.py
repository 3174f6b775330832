"""Missing data (issue 12): EM on the observed-data likelihood against three workarounds.

Settings: three data designs x four missingness mechanisms.

- designs: ``sim-k3-d4`` (K=3, D=4, well separated, correlated, N=600 training
  rows), ``sim-k2-d6`` (K=2, D=6, overlapping, within-component correlation
  0.8-0.9, N=400), ``iris`` (K=3, D=4, a random 70/30 split each replication);
  simulated designs get a complete test set of 2000 rows from the same mixture;
- mechanisms: MCAR 10%, 20%, 40% (every entry missing independently; a row
  left empty gets one random entry back) and MAR (column 0 always observed;
  every other column missing with probability ``logistic(a + 1.5 z0)``, ``z0``
  column 0 standardised, ``a`` set so that 30% of those columns' entries are
  missing: 22.5% of all entries at D=4, 25% at D=6).

Each replication draws the data (or the split), fits the complete-data
reference, ``EMGMM(K, n_init=10)`` on the complete training rows, then for
every mechanism one mask and four fits of the incomplete training rows, all
``covariance_type="full"``, k-means starts, ``n_init=5``, ``tol=1e-6``,
``reg_covar=1e-6`` and the replication's seed:

- ``bayesgmm``: ``EMGMM`` on the rows with NaN (observed-data likelihood);
- ``complete-case``: scikit-learn's ``GaussianMixture`` on the complete rows;
- ``mean-impute``: ``GaussianMixture`` after column-mean imputation;
- ``iterative``: ``GaussianMixture`` after ``IterativeImputer`` (defaults).

Per fit: the components matched to the reference's (Hungarian algorithm on
the distance between means in sd units), the RMSE of the means in sd units of
the complete training data, the Frobenius error of the covariances after
scaling by those sds (root mean square over components), the mean held-out
log-likelihood of the complete test rows, and the wall time (imputation
included). Every fit is recorded with a ``status``: ``failed`` (it raised; its message
is kept), ``collapsed`` (``em.collapsed_components``, the rule of ``EMGMM``'s
restarts, flags a component of the returned fit; the fit's numbers are
kept and count in every mean) or ``ok``; warnings raised during a fit are
recorded with it.
Imputation: RMSE over the missing entries, in sd units, of ``impute()``, of
the column means and of ``IterativeImputer``.

Run: ``python benchmarks/bench_missing.py --out benchmarks/results/missing.json``
(``--replications 2`` for a timing estimate); the tables of ``docs/missing.md``
come from ``python benchmarks/bench_missing.py --markdown benchmarks/results/missing.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
from _record import git_state, write_record  # benchmarks/ is on sys.path when run as a script
from scipy.optimize import brentq, linear_sum_assignment
from scipy.special import expit
from scipy.stats import binomtest
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

import bayesgmm as bg
from bayesgmm import em

METHODS = ("bayesgmm", "complete-case", "mean-impute", "iterative")
MECHANISMS = ("mcar10", "mcar20", "mcar40", "mar")
METRICS = ("mean_error", "cov_error", "heldout_loglik")
N_INIT = 5
N_INIT_REFERENCE = 10
TOL = 1e-6
REG_COVAR = 1e-6
MAX_ITER = 1000
MAR_SLOPE = 1.5
MAR_RATE = 0.30  # share of the entries of columns 1..D-1 that go missing
N_TEST = 2000


def _equicorrelation(d: int, rho: float) -> np.ndarray:
    return np.full((d, d), rho) + (1.0 - rho) * np.eye(d)


def _ar1(d: int, rho: float) -> np.ndarray:
    idx = np.arange(d)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def _scaled(corr: np.ndarray, sd) -> np.ndarray:
    sd = np.asarray(sd, dtype=float)
    return corr * sd[:, None] * sd[None, :]


class Mixture:
    """A fixed Gaussian mixture to draw training and test sets from."""

    def __init__(self, weights, means, covs):
        self.weights = np.asarray(weights, dtype=float)
        self.means = np.asarray(means, dtype=float)
        self.covs = np.asarray(covs, dtype=float)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.choice(self.weights.size, size=n, p=self.weights)
        chol = np.linalg.cholesky(self.covs)
        eps = rng.standard_normal((n, self.means.shape[1]))
        return self.means[z] + np.einsum("nij,nj->ni", chol[z], eps)


DESIGNS = {
    # well separated (Mahalanobis distances between means 5-9), correlated
    "sim-k3-d4": (3, 600, Mixture(
        [0.40, 0.35, 0.25],
        [[0.0, 0.0, 0.0, 0.0], [4.0, -2.0, 3.0, 1.0], [-3.0, 4.0, 1.0, -3.0]],
        [_scaled(_equicorrelation(4, 0.6), [1.0, 1.2, 0.8, 1.0]),
         _scaled(_ar1(4, 0.7), [1.0, 0.8, 1.2, 1.0]),
         _scaled(_ar1(4, -0.5), [0.9, 1.0, 1.0, 1.1])])),
    # overlapping (means 2.2 / 1.7 Mahalanobis units apart), strong correlation
    "sim-k2-d6": (2, 400, Mixture(
        [0.6, 0.4],
        [np.zeros(6), np.full(6, 2.0)],
        [_equicorrelation(6, 0.8), _scaled(_ar1(6, 0.9), np.full(6, 1.2))])),
    "iris": (3, None, None),
}


def mask_mcar(shape, share: float, rng: np.random.Generator) -> np.ndarray:
    """Each entry missing with probability ``share``; an empty row gets one entry back."""
    holes = rng.random(shape) < share
    empty = np.flatnonzero(holes.all(axis=1))
    holes[empty, rng.integers(0, shape[1], size=empty.size)] = False
    return holes


def mask_mar(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Columns 1.. missing with probability logistic(a + slope z0); column 0 observed."""
    z0 = (X[:, 0] - X[:, 0].mean()) / X[:, 0].std()
    a = brentq(lambda c: expit(c + MAR_SLOPE * z0).mean() - MAR_RATE, -20.0, 20.0)
    p = expit(a + MAR_SLOPE * z0)
    holes = np.zeros(X.shape, dtype=bool)
    holes[:, 1:] = rng.random((X.shape[0], X.shape[1] - 1)) < p[:, None]
    return holes


def make_mask(mechanism: str, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if mechanism == "mar":
        return mask_mar(X, rng)
    return mask_mcar(X.shape, int(mechanism[4:]) / 100.0, rng)


def params_of_bayesgmm(model) -> tuple[np.ndarray, np.ndarray]:
    r = model.result_
    return (r.means.transpose("component", "feature").values,
            r.covariances.transpose("component", ...).values)


def params_of_sklearn(model) -> tuple[np.ndarray, np.ndarray]:
    return model.means_, model.covariances_


def errors(means, covs, ref_means, ref_covs, sd) -> tuple[float, float]:
    """Mean RMSE and covariance Frobenius error in sd units after Hungarian matching."""
    zm, zr = means / sd, ref_means / sd
    cost = np.linalg.norm(zm[:, None, :] - zr[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    order = rows[np.argsort(cols)]  # fitted component matched to reference k
    mean_err = np.sqrt(np.mean((zm[order] - zr) ** 2))
    scale = sd[:, None] * sd[None, :]
    diff = (covs[order] - ref_covs) / scale
    cov_err = np.sqrt(np.mean(np.sum(diff**2, axis=(1, 2))))
    return float(mean_err), float(cov_err)


def collapsed_of(model, means: np.ndarray, covs: np.ndarray, X_train: np.ndarray) -> list[int]:
    """Components of a fit that ``em.collapsed_components`` flags (every method, one rule).

    The rule of ``EMGMM``'s restarts: too few points, on the ``reg_covar``
    floor, singular, or narrower than the rounding of the complete training
    data (the fit is recorded whatever its status).
    """
    weights = model.weights_
    state = em.EMState(weights, means, covs, np.zeros_like(covs), "full")
    return em.collapsed_components(state, X_train.shape[0], REG_COVAR,
                                   rounding=em.rounding_variance(X_train)).tolist()


def sklearn_gmm(k: int, seed: int) -> GaussianMixture:
    return GaussianMixture(k, covariance_type="full", tol=TOL, reg_covar=REG_COVAR,
                           max_iter=MAX_ITER, n_init=N_INIT, init_params="kmeans",
                           random_state=seed)


def fit_method(method: str, k: int, Xm: np.ndarray, seed: int):
    """Fit one method on the incomplete rows ``Xm``; returns (params, model, imputed)."""
    imputed = None
    if method == "bayesgmm":
        model = bg.EMGMM(k, covariance_type="full", tol=TOL, reg_covar=REG_COVAR,
                         max_iter=MAX_ITER, n_init=N_INIT, init_params="kmeans",
                         random_state=seed).fit(Xm)
        return params_of_bayesgmm(model), model, None
    if method == "complete-case":
        data = Xm[~np.isnan(Xm).any(axis=1)]
    elif method == "mean-impute":
        data = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
        imputed = data
    else:
        data = IterativeImputer(random_state=seed).fit_transform(Xm)
        imputed = data
    model = sklearn_gmm(k, seed).fit(data)
    return params_of_sklearn(model), model, imputed


def replicate(design: str, rep: int, base_seed: int) -> dict:
    k, n_train, truth = DESIGNS[design]
    seed = int(np.random.SeedSequence([base_seed, list(DESIGNS).index(design), rep])
               .generate_state(1)[0] % 2**31)
    rng = np.random.default_rng(seed)
    if truth is None:
        X = bg.datasets.load_iris().to_numpy().astype(float)
        perm = rng.permutation(X.shape[0])
        n_test = round(0.3 * X.shape[0])
        X_test, X_train = X[perm[:n_test]], X[perm[n_test:]]
    else:
        X_train, X_test = truth.draw(n_train, rng), truth.draw(N_TEST, rng)
    sd = X_train.std(axis=0)
    start = time.perf_counter()
    ref = bg.EMGMM(k, n_init=N_INIT_REFERENCE, tol=TOL, reg_covar=REG_COVAR,
                   max_iter=MAX_ITER, random_state=seed).fit(X_train)
    ref_seconds = time.perf_counter() - start
    ref_means, ref_covs = params_of_bayesgmm(ref)
    out = {"design": design, "replication": rep, "seed": seed,
           "reference": {"seconds": ref_seconds,
                         "heldout_loglik": float(ref.score_samples(X_test).mean())},
           "settings": {}}
    for mechanism in MECHANISMS:
        holes = make_mask(mechanism, X_train, rng)
        Xm = np.where(holes, np.nan, X_train)
        row = {"missing_share": float(holes.mean()),
               "complete_rows": int((~holes.any(axis=1)).sum()), "fits": {},
               "imputation_rmse": {}}
        sdz = sd[None, :].repeat(X_train.shape[0], axis=0)[holes]
        truth_missing = X_train[holes]

        def rmse(filled, sdz=sdz, truth_missing=truth_missing, holes=holes):
            return float(np.sqrt(np.mean(((filled[holes] - truth_missing) / sdz) ** 2)))

        for method in METHODS:
            start = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")  # recorded with the fit, not shown
                    (means, covs), model, imputed = fit_method(method, k, Xm, seed)
                seconds = time.perf_counter() - start
                mean_err, cov_err = errors(means, covs, ref_means, ref_covs, sd)
                loglik = float(model.score_samples(X_test).mean())
                collapsed = collapsed_of(model, means, covs, X_train)
                fit = {"ok": True, "status": "collapsed" if collapsed else "ok",
                       "collapsed_components": collapsed, "seconds": seconds,
                       "mean_error": mean_err, "cov_error": cov_err, "heldout_loglik": loglik,
                       "converged": bool(model.converged_),
                       "warnings": sorted({str(w.message)[:200] for w in caught})}
                if method == "bayesgmm":
                    row["imputation_rmse"]["bayesgmm"] = rmse(model.result_.impute().values)
                elif imputed is not None:
                    row["imputation_rmse"][method] = rmse(imputed)
            except Exception as exc:  # failures are data here
                fit = {"ok": False, "status": "failed", "seconds": time.perf_counter() - start,
                       "error": f"{type(exc).__name__}: {exc}"[:300]}
            row["fits"][method] = fit
        out["settings"][mechanism] = row
    return out


def _mean_se(values) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), se, int(v.size)


def summarise(reps: list[dict]) -> dict:
    """Per setting and method: mean +- se, ratio to bayesgmm, mean rank, paired checks."""
    summary = {}
    for design in DESIGNS:
        for mechanism in MECHANISMS:
            rows = [r["settings"][mechanism] for r in reps if r["design"] == design]
            if not rows:
                continue
            setting = {"missing_share": _mean_se([r["missing_share"] for r in rows]),
                       "complete_rows": _mean_se([r["complete_rows"] for r in rows]),
                       "methods": {}, "imputation_rmse": {}}
            for name in ("bayesgmm", "mean-impute", "iterative"):
                setting["imputation_rmse"][name] = _mean_se(
                    [r["imputation_rmse"].get(name) for r in rows])
            # ranks per replication (1 best); a failed fit ranks last
            ranks = {m: {metric: [] for metric in METRICS} for m in METHODS}
            for r in rows:
                for metric in METRICS:
                    sign = -1.0 if metric == "heldout_loglik" else 1.0
                    score = [sign * r["fits"][m][metric] if r["fits"][m]["ok"] else np.inf
                             for m in METHODS]
                    order = np.argsort(np.argsort(score, kind="stable"), kind="stable") + 1
                    for m, rank in zip(METHODS, order, strict=True):
                        ranks[m][metric].append(int(rank))
            ours = {metric: [r["fits"]["bayesgmm"].get(metric) for r in rows]
                    for metric in METRICS}
            for m in METHODS:
                fits = [r["fits"][m] for r in rows]
                entry = {"failures": sum(not f["ok"] for f in fits),
                         "collapsed": sum(f.get("status") == "collapsed" for f in fits),
                         "failure_messages": sorted({f["error"] for f in fits if not f["ok"]}),
                         "not_converged": sum(f["ok"] and not f["converged"] for f in fits),
                         "seconds": _mean_se([f["seconds"] for f in fits])}
                for metric in METRICS:
                    values = [f.get(metric) for f in fits]
                    entry[metric] = _mean_se(values)
                    entry[f"{metric}_median"] = float(np.median(
                        [v for v in values if v is not None])) if entry[metric][2] else None
                    entry[f"{metric}_rank"] = float(np.mean(ranks[m][metric]))
                    # paired difference, bayesgmm minus this method, where both fitted;
                    # "better" means lower error / higher log-likelihood by > 2 se
                    pairs = [(a, b) for a, b in zip(ours[metric], values, strict=True)
                             if a is not None and b is not None]
                    if m != "bayesgmm" and len(pairs) > 1:
                        d = np.array([a - b for a, b in pairs])
                        if metric == "heldout_loglik":
                            d = -d
                        mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))
                        wins, losses = int((d < 0).sum()), int((d > 0).sum())
                        entry[f"{metric}_paired"] = {
                            "mean_diff": mean, "se": se, "n": int(d.size),
                            "bayesgmm_better": bool(mean < -2 * se),
                            "bayesgmm_not_worse": bool(mean <= 2 * se),
                            **sign_test(wins, losses)}
                base = entry if m == "bayesgmm" else setting["methods"]["bayesgmm"]
                for metric in ("mean_error", "cov_error"):
                    entry[f"{metric}_ratio"] = entry[metric][0] / base[metric][0]
                setting["methods"][m] = entry
            summary[f"{design}/{mechanism}"] = setting
    return summary


def sign_test(wins: int, losses: int) -> dict:
    """Paired sign test (ties dropped), one-sided each way at the 5% level.

    Beside the 2-se rule on the paired mean, which a few huge losses of the
    other method (degenerate fits, held-out log-likelihoods of -1e5) can
    defeat although bayesgmm wins every replication, and a few mode switches
    of iris can defeat both ways.
    """
    n = wins + losses
    p_better = binomtest(wins, n, 0.5, alternative="greater").pvalue if n else 1.0
    p_worse = binomtest(losses, n, 0.5, alternative="greater").pvalue if n else 1.0
    return {"wins": wins, "losses": losses, "sign_p_better": float(p_better),
            "sign_p_worse": float(p_worse), "sign_better": bool(p_better < 0.05),
            "sign_not_worse": bool(p_worse >= 0.05)}


def goals(summary: dict) -> dict:
    """Goal 1: bayesgmm better than complete-case and mean-impute on every metric;
    goal 2: not worse than iterative on every metric; per setting (paired, 2 se).

    A method whose fits failed in some replications is compared on the
    replications where it fitted; its failures count against it.
    """
    out = {}
    for key, setting in summary.items():
        methods = setting["methods"]
        g = {}
        for m in ("complete-case", "mean-impute"):
            for rule, field in (("", "bayesgmm_better"), ("sign_", "sign_better")):
                g[f"{rule}better_than_{m}"] = {
                    metric: methods[m][f"{metric}_paired"][field]
                    if f"{metric}_paired" in methods[m] else methods[m]["failures"] > 0
                    for metric in METRICS}
        for rule, field in (("", "bayesgmm_not_worse"), ("sign_", "sign_not_worse")):
            g[f"{rule}not_worse_than_iterative"] = {
                metric: methods["iterative"][f"{metric}_paired"][field] for metric in METRICS}
        imp = setting["imputation_rmse"]
        g["impute_below_half_column_mean"] = bool(
            imp["bayesgmm"][0] < 0.5 * imp["mean-impute"][0])
        out[key] = g
    return out


def print_table(summary: dict) -> None:
    head = (f"{'setting':18}{'method':15}{'fail':>5}{'mean err':>17}{'ratio':>6}"
            f"{'rank':>5}{'cov err':>17}{'ratio':>6}{'rank':>5}{'held-out ll':>18}"
            f"{'rank':>5}{'s/fit':>7}")
    print(head)
    for key, setting in summary.items():
        for m, e in setting["methods"].items():
            cells = [f"{key:18}{m:15}{e['failures']:5d}"]
            for metric in METRICS:
                mean, se, _ = e[metric]
                cells.append(f"{mean:10.4f} +-{se:6.4f}" if metric != "heldout_loglik"
                             else f"{mean:10.3f} +-{se:6.3f}")
                if metric != "heldout_loglik":
                    cells.append(f"{e[f'{metric}_ratio']:6.2f}")
                cells.append(f"{e[f'{metric}_rank']:5.2f}")
            cells.append(f"{e['seconds'][0]:7.3f}")
            print("".join(cells))
        imp = setting["imputation_rmse"]
        print(f"{'':18}imputation RMSE (sd units): "
              + ", ".join(f"{n} {v[0]:.3f}" for n, v in imp.items()))


def _pm(cell, digits: int) -> str:
    mean, se, _ = cell
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def merged(records: list[dict]) -> dict:
    """Several records (e.g. one per design) as one; summary and goals recomputed."""
    reps = [r for record in records for r in record["replicates"]]
    summary = summarise(reps)
    return {"replicates": reps, "summary": summary, "goals": goals(summary)}


def markdown(record: dict) -> str:
    """The tables of docs/missing.md from a written record (summary recomputed)."""
    record = merged([record])
    summary, met = record["summary"], record["goals"]
    lines = ["| setting | method | failed / collapsed | mean error | ratio | rank | cov. error "
             "| ratio | rank | held-out log-lik. | median | rank | s / fit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, setting in summary.items():
        for m, e in setting["methods"].items():
            ll = e["heldout_loglik"]
            ll_text = (_pm(ll, 3) if abs(ll[0]) < 1e3
                       else f"{ll[0]:.3g} ± {ll[1]:.3g}")
            lines.append(
                f"| {key} | {m} | {e['failures']} / {e.get('collapsed', 0)} "
                f"| {_pm(e['mean_error'], 3)} "
                f"| {e['mean_error_ratio']:.2f} | {e['mean_error_rank']:.2f} "
                f"| {_pm(e['cov_error'], 3)} | {e['cov_error_ratio']:.2f} "
                f"| {e['cov_error_rank']:.2f} | {ll_text} | {e['heldout_loglik_median']:.3f} "
                f"| {e['heldout_loglik_rank']:.2f} | {e['seconds'][0]:.3f} |")
    lines += ["", "| setting | missing share | complete rows | impute() | column means "
              "| IterativeImputer | impute() / column means |", "|---|---|---|---|---|---|---|"]
    for key, setting in summary.items():
        imp = setting["imputation_rmse"]
        lines.append(
            f"| {key} | {setting['missing_share'][0]:.3f} | {setting['complete_rows'][0]:.1f} "
            f"| {_pm(imp['bayesgmm'], 3)} | {_pm(imp['mean-impute'], 3)} "
            f"| {_pm(imp['iterative'], 3)} | {imp['bayesgmm'][0] / imp['mean-impute'][0]:.2f} |")

    wins = win_shares(record["replicates"])

    def marks(key: str, method: str, flags: dict, sign: dict) -> str:
        return " / ".join(("yes" if flags[m] else "**no**") + " "
                          + ("yes" if sign[m] else "**no**") + f" {wins[key][method][m]:.0%}"
                          for m in METRICS)

    lines += ["", "| setting | better than complete-case (mean / cov / log-lik) "
              "| better than mean-impute | not worse than iterative |", "|---|---|---|---|"]
    for key, g in met.items():
        cells = [marks(key, m, g[f"{goal}_{m}"], g[f"sign_{goal}_{m}"])
                 for goal, m in (("better_than", "complete-case"), ("better_than", "mean-impute"),
                                 ("not_worse_than", "iterative"))]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def win_shares(reps: list[dict]) -> dict:
    """Share of replications in which bayesgmm beats each method (its failures count as wins)."""
    out: dict = {}
    for r in reps:
        for mechanism, row in r["settings"].items():
            ours = row["fits"]["bayesgmm"]
            for m in METHODS[1:]:
                other = row["fits"][m]
                for metric in METRICS:
                    sign = -1.0 if metric == "heldout_loglik" else 1.0
                    if not other["ok"]:
                        won = True
                    elif not ours["ok"]:
                        won = False
                    else:
                        won = sign * ours[metric] < sign * other[metric]
                    (out.setdefault(f"{r['design']}/{mechanism}", {}).setdefault(m, {})
                     .setdefault(metric, []).append(won))
    return {key: {m: {metric: float(np.mean(v)) for metric, v in d.items()}
                  for m, d in per.items()} for key, per in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=50)
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", default=None, help="write the raw record here (JSON)")
    parser.add_argument("--markdown", default=None, nargs="+", metavar="RECORD",
                        help="print the docs tables of written records (merged) and exit")
    args = parser.parse_args()
    if args.markdown:
        records = []
        for path in args.markdown:
            with open(path) as handle:
                records.append(json.load(handle))
        print(markdown(merged(records)))
        return
    start = time.perf_counter()
    git, load_start = git_state(), list(os.getloadavg())
    reps = []
    for design in args.designs:
        t0 = time.perf_counter()
        # one thread for BLAS and OpenMP: one core per run, and no spinning threads
        # competing on a shared machine (6x6 solves took 10 ms each with two)
        with threadpool_limits(1):
            for rep in range(args.replications):
                reps.append(replicate(design, rep, args.seed))
        print(f"{design}: {args.replications} replications in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    total = time.perf_counter() - start
    summary = summarise(reps)
    print_table(summary)
    met = goals(summary)
    print(f"total {total:.1f} s")
    if args.out:
        write_record(args.out, {
            "git": git, "load_average_at_start": load_start,
            "replications": args.replications, "seed": args.seed,
            "settings": {"n_init": N_INIT, "n_init_reference": N_INIT_REFERENCE,
                         "tol": TOL, "reg_covar": REG_COVAR, "max_iter": MAX_ITER,
                         "covariance_type": "full", "init_params": "kmeans",
                         "mar_slope": MAR_SLOPE, "mar_rate_columns_1_on": MAR_RATE,
                         "n_test_simulated": N_TEST, "iris_test_share": 0.3,
                         "threads": 1},
            "total_seconds": total, "summary": summary, "goals": met,
            "replicates": reps})


if __name__ == "__main__":
    main()
