"""Benchmark: one log-density + gradient evaluation, bayesgmm's kernel vs PyTensor.

For each problem size, the same model (``build_gmm_model``) is evaluated at the
same point by

- PyTensor: ``model.logp_dlogp_function(mode="NUMBA")``, what PyMC compiles
  for NUTS (value and gradient in one call, flat input);
- bayesgmm: :class:`bayesgmm.bayes.density.MixtureDensity`, the Numba kernel
  the default sampler runs on.

Prints compile time (first call, this machine's caches as they are), the mean
time per evaluation over about one second of calls, and the ratio.  The values
must agree (checked before timing).  Each per-evaluation time is measured
``--repeat`` times; the table shows the median, the record keeps every repeat.

    python benchmarks/bench_kernel.py --repeat 3 --out benchmarks/results/kernel.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from bayesgmm.bayes.density import MixtureDensity
from bayesgmm.bayes.model import build_gmm_model, model_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import write_record

SIZES = [  # covariance type, N, K, D
    ("full", 150, 3, 2),
    ("diag", 150, 3, 2),
    ("full", 2000, 4, 5),
    ("full", 5000, 3, 8),
    ("full", 20000, 5, 3),
    ("diag", 20000, 5, 10),
]


def _per_call(fn, x: np.ndarray, seconds: float = 1.0) -> float:
    fn(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(x)
        n += 1
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the raw record (JSON) here")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    rows = []
    print(f"{'type':9s} {'N':>6s} {'K':>2s} {'D':>3s} | {'PyTensor compile':>16s} "
          f"{'PyTensor/eval':>13s} | {'kernel/eval':>11s} | ratio")
    for kind, n, k, d in SIZES:
        X = rng.normal(size=(n, d))
        model = build_gmm_model(X, k, kind, None, 1e-2)
        density = MixtureDensity(k, d, kind, model_data(X, k, None, 1e-2, kind))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            pytensor_fn = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
            pytensor_fn.set_extra_values({})
            x = rng.normal(scale=0.3, size=density.n_dim)
            value_pt, grad_pt = pytensor_fn(x)
        t_compile = time.perf_counter() - t0
        value, grad = density.value_and_grad(x)
        np.testing.assert_allclose(value, value_pt, rtol=1e-9)
        np.testing.assert_allclose(grad, grad_pt, rtol=1e-7, atol=1e-7 * np.abs(grad).max())
        t_pt = [_per_call(pytensor_fn, x) for _ in range(args.repeat)]
        t_kernel = [_per_call(density.value_and_grad, x) for _ in range(args.repeat)]
        med_pt, med_kernel = statistics.median(t_pt), statistics.median(t_kernel)
        rows.append({"covariance_type": kind, "n": n, "k": k, "d": d,
                     "pytensor_compile_s": t_compile, "pytensor_eval_s": t_pt,
                     "kernel_eval_s": t_kernel, "ratio_median": med_pt / med_kernel})
        print(f"{kind:9s} {n:6d} {k:2d} {d:3d} | {t_compile:15.1f}s {med_pt * 1e6:11.0f}us | "
              f"{med_kernel * 1e6:9.0f}us | {med_pt / med_kernel:5.2f}x", flush=True)
    if args.out:
        write_record(args.out, {"rows": rows})


if __name__ == "__main__":
    main()
