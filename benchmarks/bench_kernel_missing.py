"""Benchmark: NUTS on incomplete data, bayesgmm's kernel against nutpie on PyMC's graph.

Issue 12: the default sampler (``"nutpie"``: nutpie's Rust NUTS calling
bayesgmm's Numba kernel, which marginalises missing entries per missingness
pattern) against ``sampler="nutpie_native"`` (nutpie compiling the PyMC model,
whose masked likelihood factors one padded D x D matrix per row and component),
on Old Faithful (K=2, D=2) and iris (K=3, D=4) with 20% of the entries missing
completely at random (seeded; no row left empty), full covariances.

Two measurements per data set:

- one log-density + gradient evaluation at the same point: the kernel
  (:class:`bayesgmm.bayes.density.MixtureDensity`), PyTensor's
  ``logp_dlogp_function(mode="NUMBA")`` of the masked model (what nutpie's
  native route compiles) and, for scale, the kernel on the complete data; the
  values must agree before anything is timed; each time is the mean over about
  one second of calls, ``--repeat`` times;
- ``BayesGMM(K, draws=1000, tune=1000, chains=4).fit(X)`` wall time with each
  sampler (EM reference included, the same for both), with its compile and
  sampling seconds.  One first fit per sampler (the kernel loads from Numba's
  disk cache; nutpie_native compiles PyTensor's graph, kept for the process),
  then ``--repeat`` fits each, alternating.

The summary ratios are medians of the repeats (native / kernel: above 1 means
the kernel is faster).  Run with one BLAS thread:

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_kernel_missing.py \\
        --repeat 3 --out benchmarks/results/kernel_missing.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import bayesgmm as bg
from bayesgmm.bayes.density import MixtureDensity
from bayesgmm.bayes.model import build_gmm_model, model_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_state, write_record

DATASETS = [("faithful", 2), ("iris", 3)]
MISSING_SHARE = 0.2


def with_holes(X: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``X`` with each entry missing with probability ``share`` (MCAR); no row left empty."""
    out = np.array(X, dtype=float)
    holes = np.random.default_rng(seed).random(out.shape) < share
    holes[holes.all(axis=1), 0] = False
    out[holes] = np.nan
    return out


def _per_call(fn, x: np.ndarray, seconds: float = 1.0) -> float:
    fn(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(x)
        n += 1
    return (time.perf_counter() - t0) / n


def gradient_times(X: np.ndarray, Xm: np.ndarray, k: int, repeat: int) -> dict:
    """Seconds per log-density + gradient: kernel, PyTensor (masked model), complete kernel."""
    kind, reg = "full", 1e-2
    model = build_gmm_model(Xm, k, kind, None, reg)
    density = MixtureDensity(k, X.shape[1], kind, model_data(Xm, k, None, reg, kind))
    complete = MixtureDensity(k, X.shape[1], kind, model_data(X, k, None, reg, kind))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        pytensor_fn = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
        pytensor_fn.set_extra_values({})
        x = np.random.default_rng(1).normal(scale=0.3, size=density.n_dim)
        value_pt, grad_pt = pytensor_fn(x)
    t_compile = time.perf_counter() - t0
    value, grad = density.value_and_grad(x)
    np.testing.assert_allclose(value, value_pt, rtol=1e-9)
    np.testing.assert_allclose(grad, grad_pt, rtol=1e-7, atol=1e-7 * np.abs(grad).max())
    t_pt, t_kernel, t_complete = [], [], []
    for _ in range(repeat):
        t_pt.append(_per_call(pytensor_fn, x))
        t_kernel.append(_per_call(density.value_and_grad, x))
        t_complete.append(_per_call(complete.value_and_grad, x))
    return {"pytensor_compile_s": t_compile, "pytensor_eval_s": t_pt,
            "kernel_eval_s": t_kernel, "kernel_complete_data_eval_s": t_complete,
            "n_patterns": len(np.unique(np.isnan(Xm), axis=0)),
            "ratio_median": statistics.median(t_pt) / statistics.median(t_kernel)}


def one_fit(Xm: np.ndarray, k: int, sampler: str, seed: int) -> dict:
    """Wall time and split of one BayesGMM NUTS fit, 4 chains x (1000 tune + 1000 draws)."""
    est = bg.BayesGMM(k, draws=1000, tune=1000, chains=4, sampler=sampler,
                      random_state=seed, progressbar=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # kept: a fallback would mean another route ran
        est.fit(Xm)
    wall = time.perf_counter() - t0
    fallbacks = [str(w.message) for w in caught
                 if issubclass(w.category, bg.SamplerFallbackWarning)]
    stats = est.result_.idata["sample_stats"].to_dataset()
    return {"sampler": sampler, "seed": seed, "wall_s": wall,
            "compile_s": float(est.timing_["compile"]), "sample_s": float(est.timing_["sample"]),
            "divergences": int(stats["diverging"].sum()),
            "fallback_warnings": fallbacks,
            "posterior_mean_means": est.means_.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the raw record (JSON) here")
    args = parser.parse_args()
    state = git_state()
    rows = []
    for name, k in DATASETS:
        X = getattr(bg.datasets, f"load_{name}")().to_numpy()
        Xm = with_holes(X, MISSING_SHARE, seed=12)
        grad = gradient_times(X, Xm, k, args.repeat)
        print(f"{name} K={k}: {grad['n_patterns']} patterns, per gradient: kernel "
              f"{statistics.median(grad['kernel_eval_s']) * 1e6:.0f} us, PyTensor "
              f"{statistics.median(grad['pytensor_eval_s']) * 1e6:.0f} us "
              f"({grad['ratio_median']:.2f}x), kernel on complete data "
              f"{statistics.median(grad['kernel_complete_data_eval_s']) * 1e6:.0f} us",
              flush=True)
        first = {s: one_fit(Xm, k, s, seed=0) for s in ("nutpie", "nutpie_native")}
        fits = {"nutpie": [], "nutpie_native": []}
        for r in range(args.repeat):
            for sampler in fits:
                fits[sampler].append(one_fit(Xm, k, sampler, seed=1 + r))
        med = {s: statistics.median(f["wall_s"] for f in fs) for s, fs in fits.items()}
        med_sample = {s: statistics.median(f["sample_s"] for f in fs) for s, fs in fits.items()}
        row = {"dataset": name, "k": k, "n": len(X), "d": int(X.shape[1]),
               "missing_share": MISSING_SHARE, "n_missing": int(np.isnan(Xm).sum()),
               "gradient": grad, "first_fit": first, "fits": fits,
               "wall_median_s": med, "sample_median_s": med_sample,
               "wall_ratio_native_over_kernel": med["nutpie_native"] / med["nutpie"],
               "sample_ratio_native_over_kernel": (med_sample["nutpie_native"]
                                                   / med_sample["nutpie"]),
               "first_fit_ratio_native_over_kernel": (first["nutpie_native"]["wall_s"]
                                                      / first["nutpie"]["wall_s"])}
        rows.append(row)
        print(f"{name} K={k}: NUTS 4x1000 wall, first fit: kernel "
              f"{first['nutpie']['wall_s']:.1f} s, native {first['nutpie_native']['wall_s']:.1f} s"
              f"; median of {args.repeat} later fits: kernel {med['nutpie']:.1f} s, native "
              f"{med['nutpie_native']:.1f} s ({row['wall_ratio_native_over_kernel']:.2f}x); "
              f"sampling only {med_sample['nutpie']:.1f} s vs {med_sample['nutpie_native']:.1f} s",
              flush=True)
    if args.out:
        write_record(args.out, {"git": state, "rows": rows})


if __name__ == "__main__":
    main()
