"""Benchmark: ADVI on bayesgmm's kernel against ADVI through ``pm.fit`` and against NUTS.

Old Faithful (272 x 2), K=2, full covariances.  Three measurements:

1. first fit in a fresh process (imports, EM reference, model, kernel load,
   optimisation, draws): ``BayesGMM(2, method=m).fit(X)`` for the kernel
   route (default) and the ``pm.fit`` route (``sampler="pymc"``), each run in
   a new Python process, median of ``--repeats``;
2. later fits in one warm process: kernel ADVI, ``pm.fit`` ADVI and the
   default NUTS fit (4 chains x 1000 draws after 1000 tuning steps), median
   of ``--repeats``, with the ratio NUTS / kernel ADVI;
3. the optimum: the mean of the approximation in data units (component
   means), kernel against ``pm.fit`` with the same learning rate, start and
   step budget, both averaged over their last 1000 iterates and over seeds,
   in data standard deviations.

    python benchmarks/bench_advi.py                      # prints a table
    python benchmarks/bench_advi.py --json benchmarks/results/advi.json

The JSON holds the command, versions, machine, date and every repeat.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

FIRST_FIT = """
import time, warnings
t0 = time.perf_counter()
import bayesgmm as bg
X = bg.datasets.load_faithful()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    bg.BayesGMM(2, method={method!r}, sampler={sampler!r}, random_state=0,
                progressbar=False).fit(X)
print(time.perf_counter() - t0)
"""


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, default=4, help="seeds averaged for the optimum")
    p.add_argument("--method", default="advi", choices=("advi", "fullrank_advi"))
    p.add_argument("--json", default=None, help="write the raw results here")
    return p.parse_args()


def first_fits(method: str, repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"kernel": [], "pm.fit": []}
    for _ in range(repeats):
        for route, sampler in (("kernel", None), ("pm.fit", "pymc")):
            code = FIRST_FIT.format(method=method, sampler=sampler)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True)
            out[route].append(float(done.stdout.strip().splitlines()[-1]))
    return out


def warm_fits(method: str, repeats: int) -> dict[str, list[float]]:
    import warnings

    import bayesgmm as bg

    X = bg.datasets.load_faithful()
    routes = {
        "kernel": dict(method=method),
        "pm.fit": dict(method=method, sampler="pymc"),
        "nuts 4x1000": dict(method="nuts", draws=1000, tune=1000, chains=4),
    }
    out: dict[str, list[float]] = {name: [] for name in routes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs in routes.values():  # warm every route once
            bg.BayesGMM(2, random_state=0, progressbar=False, **kwargs).fit(X)
        for seed in range(repeats):
            for name, kwargs in routes.items():
                t0 = time.perf_counter()
                bg.BayesGMM(2, random_state=seed + 1, progressbar=False, **kwargs).fit(X)
                out[name].append(time.perf_counter() - t0)
    return out


def optimum(method: str, seeds: int) -> dict[str, object]:
    """Mean of q in data units, kernel vs pm.fit, both iterate-averaged over the last window."""
    import pymc as pm

    import bayesgmm as bg
    from bayesgmm import em
    from bayesgmm.bayes import inference, vi
    from bayesgmm.bayes.model import build_gmm_model, model_data
    from bayesgmm.bayes.params import raw_from_params, unconstrained_from_raw

    X = bg.datasets.load_faithful().to_numpy()
    k, d = 2, 2
    ref = bg.EMGMM(k, n_init=3, random_state=0).fit(X)
    reg = np.full(d, 1e-6)
    md = model_data(X, k, None, reg, "full")
    cov = em.full_covariances(ref.covariances_, "full", k, d)
    init_raw = raw_from_params(ref.weights_, ref.means_, cov, covariance_type="full",
                               center=md.center, scale=md.scale, reg_diag=md.reg_diag)
    model = build_gmm_model(X, k, "full", None, reg)
    density = inference.model_log_density(model)
    start = density.flatten(unconstrained_from_raw(init_raw))
    mu = density.slices[density.names.index("mu_std")]
    n_steps = 3000  # the step count both routes stop at on these data (window rule)

    kernel, pymc = [], []
    for seed in range(seeds):
        q = vi.fit_advi(density.value_and_grad, start, method=method, max_steps=n_steps,
                        window=1000, tolerance=0.0, rng=np.random.default_rng(seed))
        kernel.append(q.mean[mu])
        window: list[np.ndarray] = []

        def keep(approx, losses, i, window=window):
            if i > n_steps - 1000:
                mean = next(p for p in approx.params if p.name == "mu")
                window.append(np.asarray(mean.get_value()).copy())

        cls = pm.ADVI if method == "advi" else pm.FullRankADVI
        fit = cls(model=model, random_seed=seed, start=inference._model_init(model, init_raw))
        inference._narrow_start(fit.approx, method, 0.1)
        fit.fit(n=n_steps, progressbar=False, callbacks=[keep],
                obj_optimizer=pm.adam(learning_rate=0.01))
        order = fit.approx.groups[0].ordering["mu_std"][1]
        pymc.append(np.mean(window, axis=0)[order])
    kernel_mean, pymc_mean = np.mean(kernel, axis=0), np.mean(pymc, axis=0)
    # mu_std is in standardized units: a difference of 1 is one data sd
    return {
        "n_steps": n_steps, "seeds": seeds,
        "kernel_means_std_units": kernel_mean.tolist(),
        "pymc_means_std_units": pymc_mean.tolist(),
        "max_abs_difference_in_data_sd": float(np.max(np.abs(kernel_mean - pymc_mean))),
        "kernel_seed_spread": float(np.max(np.std(kernel, axis=0))),
        "pymc_seed_spread": float(np.max(np.std(pymc, axis=0))),
    }


def main() -> None:
    import os

    from _record import git_state  # benchmarks/ is on sys.path when run as a script

    args = _parse()
    git = git_state()  # at the start: the code that ran
    load = {"start": list(os.getloadavg())}  # 1, 5, 15-minute load averages per phase
    first = first_fits(args.method, args.repeats)
    load["after_first_fits"] = list(os.getloadavg())
    warm = warm_fits(args.method, args.repeats)
    load["after_warm_fits"] = list(os.getloadavg())
    same = optimum(args.method, args.seeds)
    med = {f"first {k}": statistics.median(v) for k, v in first.items()}
    med.update({f"warm {k}": statistics.median(v) for k, v in warm.items()})
    print(f"Old Faithful, K=2, full, method={args.method}; median of {args.repeats} (s)")
    for name, value in med.items():
        print(f"  {name:<22} {value:8.2f}")
    ratio = med["warm nuts 4x1000"] / med["warm kernel"]
    print(f"  NUTS 4x1000 / kernel ADVI (warm): {ratio:.1f}x")
    print(f"  pm.fit / kernel ADVI (warm): {med['warm pm.fit'] / med['warm kernel']:.1f}x")
    print(f"  optimum: max |kernel - pm.fit| = {same['max_abs_difference_in_data_sd']:.4f} "
          f"data sd over {args.seeds} seeds (seed spread kernel "
          f"{same['kernel_seed_spread']:.4f}, pm.fit {same['pymc_seed_spread']:.4f})")
    if args.json:
        from _record import write_record  # benchmarks/ is on sys.path when run as a script

        write_record(args.json, {"method": args.method, "git": git, "load_average": load,
                                 "repeats": {"first": first, "warm": warm}, "medians": med,
                                 "nuts_over_kernel_advi": ratio, "optimum": same})


if __name__ == "__main__":
    main()
