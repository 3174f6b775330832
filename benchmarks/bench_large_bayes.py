"""Benchmark: a Bayesian fit at N = 20,000 (issue 13 section 1), time and peak memory per step.

Simulated data (``bayesgmm.datasets.make_blobs_gmm``, K=4, D=3, separation 4), NUTS
4 chains x 1000 draws after 1000 tuning steps, then the calls a user makes on the
result: ``responsibility_interval``, ``assignment_uncertainty``, ``waic``, ``loo``,
``bg.report``, ``to_netcdf`` and ``bg.load``.  Every size runs in a fresh child
process, so its peak resident memory (``ru_maxrss``) is that fit's alone; a thread
samples the resident set every 0.1 s so that the peak *during sampling* (nutpie's
trace included) is told apart from the peak of the work after it.  Each step is
timed on its own; "outside sampling" is the fit's wall time minus nutpie's sampling
time (EM reference, model building, compilation or cache load, relabeling, the
pointwise log-likelihood and responsibilities, diagnostics).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_large_bayes.py \
        --sizes 5000 20000 --out benchmarks/results/large_bayes.json

Goals (issue 13): at N=20,000 peak memory < 1.5 GB, work outside sampling < 15% of the
sampling time, intervals + LOO + uncertainty + report < 25% of it, saved file < 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings

GOALS = {"peak_rss_mb": 1500.0, "outside_sampling_share": 0.15, "post_share": 0.25,
         "file_mb": 100.0}


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    p.add_argument("--components", type=int, default=4)
    p.add_argument("--features", type=int, default=3)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the raw record (benchmarks/_record.py)")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _Sampler(threading.Thread):
    """Resident set size every 0.1 s, with the time of each reading."""

    def __init__(self):
        super().__init__(daemon=True)
        self.readings: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.readings.append((time.perf_counter(), _rss_mb()))
            self.stop.wait(0.1)

    def peak(self, start: float, end: float) -> float:
        inside = [mb for t, mb in self.readings if start <= t <= end]
        return max(inside) if inside else float("nan")


def _child(args: argparse.Namespace) -> dict:
    """One size: fit, then every post-processing step, timed; prints a JSON line."""
    import numpy as np

    import bayesgmm as bg
    from bayesgmm.bayes import estimator as est_module
    from bayesgmm.datasets import make_blobs_gmm

    warnings.simplefilter("ignore")
    sampler = _Sampler()
    sampler.start()
    n = args.child
    sim = make_blobs_gmm(n, args.components, args.features, separation=4.0,
                         random_state=args.seed)
    marks: dict[str, float] = {}
    run_nuts = est_module.inference.run_nuts

    def timed_run_nuts(*a, **kw):  # instrumentation only: when sampling starts and ends
        marks["nuts_start"] = time.perf_counter()
        try:
            return run_nuts(*a, **kw)
        finally:
            marks["nuts_end"] = time.perf_counter()

    est_module.inference.run_nuts = timed_run_nuts
    out: dict = {"n_obs": n, "n_components": args.components, "n_features": args.features,
                 "draws": args.draws, "chains": args.chains, "tune": args.tune,
                 "rss_before_fit_mb": _rss_mb(), "load_average_start": list(os.getloadavg())}
    t0 = time.perf_counter()
    fit = bg.BayesGMM(args.components, draws=args.draws, tune=args.tune, chains=args.chains,
                      random_state=args.seed, progressbar=False).fit(sim.X)
    t1 = time.perf_counter()
    r = fit.result_
    out["fit_s"] = t1 - t0
    out["compile_s"] = float(fit.timing_.get("compile", float("nan")))
    out["sampling_s"] = float(fit.timing_["sample"])
    out["run_nuts_s"] = marks["nuts_end"] - marks["nuts_start"]
    out["outside_sampling_s"] = out["fit_s"] - out["sampling_s"]
    out["after_sampling_s"] = t1 - marks["nuts_end"]
    out["peak_rss_until_sampling_end_mb"] = sampler.peak(0.0, marks["nuts_end"])
    out["peak_rss_after_sampling_mb"] = sampler.peak(marks["nuts_end"], t1)
    out["maxrss_after_fit_mb"] = _maxrss_mb()
    out["rss_after_fit_mb"] = _rss_mb()
    ll = r.idata["log_likelihood"]["X"]
    out["log_likelihood_dtype"] = str(ll.dtype)
    out["log_likelihood_mb"] = ll.nbytes / 2**20
    steps = {}
    with tempfile.TemporaryDirectory() as folder:
        calls = [
            ("responsibility_interval", lambda: r.responsibility_interval()),
            ("responsibility_interval_prob_0.5", lambda: r.responsibility_interval(0.5)),
            ("assignment_uncertainty", lambda: r.assignment_uncertainty()),
            ("waic", lambda: r.waic()),
            ("loo", lambda: r.loo()),
            ("report", lambda: bg.report(r, os.path.join(folder, "report.html"))),
            ("to_netcdf", lambda: r.to_netcdf(os.path.join(folder, "fit.nc"))),
            ("load", lambda: bg.load(os.path.join(folder, "fit.nc"))),
        ]
        values = {}
        for name, call in calls:
            start = time.perf_counter()
            values[name] = call()
            end = time.perf_counter()
            steps[name] = {"s": end - start, "peak_rss_mb": sampler.peak(start, end),
                           "maxrss_after_mb": _maxrss_mb()}
        out["file_mb"] = os.path.getsize(os.path.join(folder, "fit.nc")) / 2**20
    out["steps"] = steps
    loo, waic = values["loo"], values["waic"]
    out["elpd_loo"], out["se_loo"] = float(loo.elpd), float(loo.se)
    out["elpd_waic"] = float(waic.elpd)
    out["pareto_k_max"] = float(np.nanmax(np.asarray(loo.pareto_k)))
    back = values["load"]
    out["load_log_likelihood_max_abs_diff"] = float(np.max(np.abs(
        back.idata["log_likelihood"]["X"].values.astype(float) - ll.values.astype(float))))
    post = ("responsibility_interval", "assignment_uncertainty", "loo", "report")
    out["post_s"] = sum(steps[name]["s"] for name in post)
    out["post_steps"] = list(post)
    out["outside_sampling_share"] = out["outside_sampling_s"] / out["sampling_s"]
    out["post_share"] = out["post_s"] / out["sampling_s"]
    out["load_average_end"] = list(os.getloadavg())
    sampler.stop.set()
    sampler.join()
    out["peak_rss_mb"] = _maxrss_mb()
    return out


def main(argv=None) -> None:
    args = _parse(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(_child(args)))
        return
    runs = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--components", str(args.components),
               "--features", str(args.features), "--draws", str(args.draws), "--tune",
               str(args.tune), "--chains", str(args.chains), "--seed", str(args.seed)]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        line = next((s for s in done.stdout.splitlines() if s.startswith("RESULT ")), None)
        if line is None:
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the child for N={n} failed (exit {done.returncode})")
        run = json.loads(line[len("RESULT "):])
        run["child_wall_s"] = time.perf_counter() - start
        runs.append(run)
        print(f"N={n}: fit {run['fit_s']:.1f} s (sampling {run['sampling_s']:.1f} s, outside "
              f"{run['outside_sampling_s']:.1f} s = {run['outside_sampling_share']:.1%}), "
              f"post {run['post_s']:.1f} s = {run['post_share']:.1%}, peak "
              f"{run['peak_rss_mb']:.0f} MB, file {run['file_mb']:.1f} MB", flush=True)
        for name, step in run["steps"].items():
            print(f"    {name:34s} {step['s']:8.2f} s  peak {step['peak_rss_mb']:7.0f} MB")
    if args.out:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _record import git_state, write_record

        big = max(runs, key=lambda r: r["n_obs"])
        met = {"peak_rss_mb": big["peak_rss_mb"] < GOALS["peak_rss_mb"],
               "outside_sampling_share": big["outside_sampling_share"]
               < GOALS["outside_sampling_share"],
               "post_share": big["post_share"] < GOALS["post_share"],
               "file_mb": big["file_mb"] < GOALS["file_mb"]}
        write_record(args.out, {"git": git_state(), "goals": GOALS, "goals_met_at_largest": met,
                                "threads": {k: os.environ.get(k) for k in
                                            ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
                                "runs": runs})


if __name__ == "__main__":
    main()
