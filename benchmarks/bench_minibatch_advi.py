"""Benchmark: minibatch ADVI from N = 10^4 to 10^7 rows (issue 13 section 3), time and memory.

Simulated data, D=2, K=3 (centres (0, 0), (3, 0), (0, 3), per-feature sds 1 and 0.5,
equal weights), generated in chunks of 10^6 rows into one array.  For every size and
repeat a fresh child process runs

- the competitor: ``EMGMM(3, n_init=10)`` (the fit BayesGMM makes for its start and
  labelling), timed on its own up to ``--em-max`` rows;
- ``BayesGMM(3, method=..., batch_size=..., draws=...)``, timed end to end (``fit``:
  EM reference, model building, Numba cache load, minibatch ADVI, the Pareto k-hat on
  the full data at every draw, the pointwise log-likelihood and responsibility
  summaries), with the fit's own split (``timing_``: compile, ADVI, k-hat);
- up to ``--full-batch-max`` rows, the full-batch kernel ADVI (``batch_size=None``) on
  the same data, the route minibatches replace.

Recorded per run: wall times, the child's peak resident memory (``ru_maxrss``: the data,
the EM fit and the Bayesian fit together), the largest distance of a posterior mean from
the EM reference's mean in data standard deviations (the draws are relabeled to it), the
k-hat, convergence, steps and epochs.  The machine is shared: the load average is recorded
at the start and end of every child.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_minibatch_advi.py \\
        --sizes 10000 100000 1000000 10000000 --repeat 3 \\
        --out benchmarks/results/minibatch_advi.json

``--ablation`` runs the optimiser alone (``vi.fit_minibatch_advi``, full-rank) at each size
with its control variate and its Laplace start switched on and off (``--repeat`` seeds):

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_minibatch_advi.py \
        --ablation --sizes 1000000 --repeat 1 --out benchmarks/results/minibatch_advi_ablation.json

Goal (issue 13): N = 1,000,000 in under 120 s on 2 cores with the posterior means within
0.02 data sd of EM.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

GOAL_SECONDS = 120.0
GOAL_MEAN_GAP = 0.02
CENTRES = ((0.0, 0.0), (3.0, 0.0), (0.0, 3.0))
SDS = (1.0, 0.5)


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+",
                   default=[10_000, 100_000, 1_000_000, 10_000_000])
    p.add_argument("--methods", nargs="+", default=["fullrank_advi"],
                   help="methods run --repeat times")
    p.add_argument("--once-methods", nargs="*", default=["advi"],
                   help="methods run once per size")
    p.add_argument("--em-max", type=int, default=1_000_000,
                   help="largest N at which EMGMM is also timed on its own")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--repeat-max-rows", type=int, default=1_000_000,
                   help="sizes above this run once")
    p.add_argument("--full-batch-max", type=int, default=100_000,
                   help="largest N for the full-batch ADVI comparison")
    p.add_argument("--out", default=None, help="write the raw record (benchmarks/_record.py)")
    p.add_argument("--ablation", action="store_true",
                   help="only the optimiser, with and without control variate / Laplace start")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_data(n: int, seed: int):
    """The simulated mixture, generated 10^6 rows at a time into one float64 array."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres, sds = np.array(CENTRES), np.array(SDS)
    X = np.empty((n, 2))
    for a in range(0, n, 1_000_000):
        b = min(a + 1_000_000, n)
        X[a:b] = centres[rng.integers(0, 3, b - a)] + rng.standard_normal((b - a, 2)) * sds
    return X


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(spec: dict) -> dict:
    """One run in this (fresh) process: EM, the minibatch fit, optionally full batch."""
    import numpy as np

    import bayesgmm as bg

    out = {**spec, "load_at_start": list(os.getloadavg())}
    t = time.perf_counter()
    X = make_data(spec["n"], spec["seed"])
    out["data_seconds"] = time.perf_counter() - t
    sd = X.std(axis=0)
    if spec["run_em"]:  # the competitor, timed alone (BayesGMM fits the same as its reference)
        t = time.perf_counter()
        bg.EMGMM(3, n_init=10, random_state=spec["seed"]).fit(X)
        out["em_seconds"] = time.perf_counter() - t
        out["rss_after_em_mb"] = _maxrss_mb()

    def bayes(batch_size):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            est = bg.BayesGMM(3, method=spec["method"], batch_size=batch_size,
                              draws=spec["draws"], random_state=spec["seed"],
                              progressbar=False).fit(X)
            wall = time.perf_counter() - t0
        attrs = est.result_.idata["variational"].attrs
        # the draws are relabeled to the fit's EM reference (EMGMM(3, n_init=10)), so the
        # posterior means and EM's means are in the same component order
        gap = np.abs(est.means_ - est.reference_.means_) / sd
        res = {
            "seconds": wall,
            "timing": {k: float(v) for k, v in est.timing_.items()},
            "mean_gap_data_sd": float(gap.max()),
            "em_log_likelihood": float(est.reference_.result_.log_likelihood),
            "pareto_k": float(attrs["pareto_k"]),
            "converged": bool(attrs["converged"]),
            "n_steps": int(attrs["n_steps"]),
            "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:160]}"
                                for w in caught}),
        }
        for key in ("n_epochs", "n_decays", "n_anchors", "final_learning_rate"):
            if key in attrs:
                res[key] = float(attrs[key])
        return res

    out["minibatch"] = bayes(spec["batch_size"])
    out["peak_rss_mb"] = _maxrss_mb()
    if spec["run_full_batch"]:
        out["full_batch"] = bayes(None)
    out["load_at_end"] = list(os.getloadavg())
    return out


def ablation(n: int, batch_size: int, draws: int, seeds: int) -> list[dict]:
    """The optimiser alone with its control variate and Laplace start switched on and off.

    ``vi.fit_minibatch_advi`` (full-rank) on the kernel, started at an EM fit
    (``n_init=1``); k-hat on ``draws`` full-data passes; the gap of ``q``'s mean of the
    component means from the start, in standardized units (= data sd).
    """
    import numpy as np

    import bayesgmm as bg
    from bayesgmm import em as em_module
    from bayesgmm.bayes import vi
    from bayesgmm.bayes.density import MixtureDensity
    from bayesgmm.bayes.params import raw_from_params, unconstrained_from_raw
    from bayesgmm.bayes.spec import model_data

    X = make_data(n, 0)
    ref = bg.EMGMM(3, n_init=1, random_state=0).fit(X)
    md = model_data(X, 3, None, np.full(2, 1e-6), "full")
    dens = MixtureDensity(3, 2, "full", md)
    cov = em_module.full_covariances(ref.covariances_, "full", 3, 2)
    start = dens.flatten(unconstrained_from_raw(raw_from_params(
        ref.weights_, ref.means_, cov, covariance_type="full", center=md.center,
        scale=md.scale, reg_diag=md.reg_diag)))
    mu = dens.slices[dens.names.index("mu_std")]
    rows = []
    for control in (True, False):
        for laplace in (True, False):
            for seed in range(seeds):
                t = time.perf_counter()
                q, trace = vi.fit_minibatch_advi(
                    dens.value_and_grad_rows, start, n, batch_size, method="fullrank_advi",
                    value_and_grad=dens.value_and_grad if control else None,
                    curvature_rows=100_000 if laplace else 0, rng=np.random.default_rng(seed))
                seconds = time.perf_counter() - t
                k_hat = vi.importance_pareto_k(dens.logp, q, q.sample(draws,
                                               np.random.default_rng(seed + 100)), workers=2)
                sd = np.sqrt(np.sum(q.chol**2, axis=1))
                rows.append({"control_variate": control, "laplace_start": laplace,
                             "seed": seed, "seconds": seconds, "n_steps": q.n_steps,
                             "converged": q.converged, "n_epochs": trace.n_epochs,
                             "mean_gap_std_units": float(np.max(np.abs(q.mean[mu] - start[mu]))),
                             "q_sd_of_means_std_units": sd[mu].tolist(), "pareto_k": k_hat})
                print(rows[-1], flush=True)
    return rows


def main(argv=None) -> dict:
    args = _parse(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return {}
    if args.ablation:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _record import git_state, write_record

        state = git_state()
        rows = [ablation(n, args.batch_size, args.draws, args.repeat) for n in args.sizes]
        if args.out:
            write_record(args.out, {"git": state, "settings": vars(args),
                                    "ablation": dict(zip(map(str, args.sizes), rows,
                                                         strict=True))})
        return {}
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _record import git_state, write_record

    state = git_state()
    runs = []
    for n in args.sizes:
        plan = [(m, args.repeat if n <= args.repeat_max_rows else 1) for m in args.methods]
        plan += [(m, 1) for m in args.once_methods]
        for method, repeats in plan:
            for r in range(repeats):
                spec = {"n": n, "method": method, "batch_size": args.batch_size,
                        "draws": args.draws, "seed": r, "repeat": r,
                        "run_em": n <= args.em_max,
                        "run_full_batch": n <= args.full_batch_max and r == 0
                        and method in args.methods}
                cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
                t = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True)
                line = next((ln for ln in done.stdout.splitlines()
                             if ln.startswith("RESULT ")), None)
                if line is None:
                    run = {**spec, "failed": done.stderr[-2000:]}
                else:
                    run = json.loads(line[len("RESULT "):])
                run["child_seconds"] = time.perf_counter() - t
                runs.append(run)
                mb = run.get("minibatch", {})
                print(f"N={n:>9,} {method:14s} r{r}: fit {mb.get('seconds', float('nan')):7.1f} s "
                      f"(ADVI {mb.get('timing', {}).get('sample', float('nan')):6.1f}, k-hat "
                      f"{mb.get('timing', {}).get('pareto_k', float('nan')):6.1f}), EM "
                      f"{run.get('em_seconds') or float('nan'):6.1f} s, peak "
                      f"{run.get('peak_rss_mb', float('nan')):7.0f} MB, gap "
                      f"{mb.get('mean_gap_data_sd', float('nan')):.4f} sd, k-hat "
                      f"{mb.get('pareto_k', float('nan')):.2f}, load "
                      f"{run.get('load_at_end', ['?'])[0]}", flush=True)
    summary = _summary(runs)
    for row in summary:
        print(row)
    results = {"git": state, "settings": vars(args) | {"child": None}, "runs": runs,
               "summary": summary,
               "goal": {"n": 1_000_000, "seconds": GOAL_SECONDS,
                        "mean_gap_data_sd": GOAL_MEAN_GAP}}
    if args.out:
        write_record(args.out, results)
    return results


def _summary(runs: list[dict]) -> list[dict]:
    import numpy as np

    rows = []
    keys = sorted({(r["n"], r["method"]) for r in runs})
    for n, method in keys:
        ok = [r for r in runs if r["n"] == n and r["method"] == method and "minibatch" in r]
        if not ok:
            rows.append({"n": n, "method": method, "failed": True})
            continue
        mb = [r["minibatch"] for r in ok]
        row = {
            "n": n, "method": method, "repeats": len(ok),
            "median_fit_seconds": float(np.median([m["seconds"] for m in mb])),
            "median_advi_seconds": float(np.median([m["timing"]["sample"] for m in mb])),
            "median_pareto_k_seconds": float(np.median([m["timing"]["pareto_k"] for m in mb])),
            "median_em_seconds": (float(np.median([r["em_seconds"] for r in ok]))
                                  if all("em_seconds" in r for r in ok) else None),
            "max_peak_rss_mb": float(np.max([r["peak_rss_mb"] for r in ok])),
            "max_mean_gap_data_sd": float(np.max([m["mean_gap_data_sd"] for m in mb])),
            "pareto_k": [m["pareto_k"] for m in mb],
            "all_converged": all(m["converged"] for m in mb),
            "max_load": float(np.max([r["load_at_end"][0] for r in ok])),
        }
        full = [r["full_batch"] for r in ok if "full_batch" in r]
        if full:
            row["full_batch_fit_seconds"] = full[0]["seconds"]
            row["full_batch_advi_seconds"] = full[0]["timing"]["sample"]
            row["full_batch_mean_gap_data_sd"] = full[0]["mean_gap_data_sd"]
            row["full_batch_pareto_k"] = full[0]["pareto_k"]
        if n == 1_000_000:
            row["goal_met"] = bool(row["median_fit_seconds"] < GOAL_SECONDS
                                   and row["max_mean_gap_data_sd"] < GOAL_MEAN_GAP)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
