"""Benchmark: time per gradient of the fast kernel vs nutpie's PyTensor backend, on a grid.

Issue 13 section 2 (kernel half): for every shape of the grid N in {300, 3000, 30000},
D in {1, 2, 8, 16}, K in {2, 5} (full covariances), the same model
(``build_gmm_model``) is evaluated, value and gradient, at the same point by

- nutpie's PyTensor backend: the function ``nutpie.compile_pymc_model(backend="numba")``
  compiles (``nutpie.compile_pymc._make_functions(mode="NUMBA", compute_grad=True)``:
  PyMC's logp, canonicalize/stabilize rewrites, ``pt.grad``, PyTensor's Numba mode),
  called through its PyTensor function with ``trust_input=True``;
- bayesgmm's kernel: :meth:`bayesgmm.bayes.density.MixtureDensity.value_and_grad`,
  the Numba kernel the default NUTS and ADVI run on.

Both are called from Python, so each time includes one Python call (a few
microseconds; it matters only at N=300). The values must agree before timing.
Each time per evaluation is the mean over ``--seconds`` of calls, measured
``--repeat`` times alternating the two; the table shows medians, the record every
repeat. The floor column is N K D^2 multiply-adds (the quadratic forms of one
evaluation; at D=1 N K): ``ns/madd`` is the time per evaluation over it.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_kernel_grid.py \
        --repeat 3 --out benchmarks/results/kernel_grid.json

The machine is shared: the load average is recorded before and after every shape.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from bayesgmm.bayes.density import MixtureDensity
from bayesgmm.bayes.model import build_gmm_model, model_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_state, write_record

NS = (300, 3000, 30000)
DS = (1, 2, 8, 16)
KS = (2, 5)


def _per_call(fn, x: np.ndarray, seconds: float) -> float:
    fn(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn(x)
        n += 1
    return (time.perf_counter() - t0) / n


def _nutpie_function(model):
    """The value-and-gradient function nutpie's numba backend compiles for ``model``."""
    from nutpie.compile_pymc import _make_functions
    from pymc.initial_point import make_initial_point_fn

    init = make_initial_point_fn(model=model, return_transformed=True)
    out = _make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                          pymc_initial_point_fn=init)
    fn = out[2]
    fn.trust_input = True
    return fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--kind", default="full")
    parser.add_argument("--n", type=int, nargs="+", default=list(NS))
    parser.add_argument("--d", type=int, nargs="+", default=list(DS))
    parser.add_argument("--k", type=int, nargs="+", default=list(KS))
    parser.add_argument("--out", default=None, help="write the raw record (JSON) here")
    args = parser.parse_args()
    git = git_state()
    rng = np.random.default_rng(1)
    rows = []
    print(f"{'N':>6s} {'D':>3s} {'K':>2s} {'madds':>10s} | {'compile':>8s} {'nutpie/eval':>12s}"
          f" {'ns/madd':>8s} | {'kernel/eval':>12s} {'ns/madd':>8s} | kernel speed-up")
    for n, d, k in itertools.product(args.n, args.d, args.k):
        load_before = list(os.getloadavg())
        X = rng.normal(size=(n, d))
        model = build_gmm_model(X, k, args.kind, None, 1e-2)
        density = MixtureDensity(k, d, args.kind, model_data(X, k, None, 1e-2, args.kind))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            fn = _nutpie_function(model)
            x = rng.normal(scale=0.3, size=density.n_dim)
            value_pt, grad_pt = fn(x)
        t_compile = time.perf_counter() - t0
        value, grad = density.value_and_grad(x)
        np.testing.assert_allclose(value, value_pt, rtol=1e-9)
        np.testing.assert_allclose(grad, grad_pt, rtol=1e-7, atol=1e-7 * np.abs(grad).max())
        t_pt, t_kernel = [], []
        for _ in range(args.repeat):
            t_pt.append(_per_call(fn, x, args.seconds))
            t_kernel.append(_per_call(density.value_and_grad, x, args.seconds))
        med_pt, med_kernel = statistics.median(t_pt), statistics.median(t_kernel)
        madds = n * k * d * d
        rows.append({"covariance_type": args.kind, "n": n, "d": d, "k": k,
                     "floor_madds": madds, "nutpie_compile_s": t_compile,
                     "nutpie_eval_s": t_pt, "kernel_eval_s": t_kernel,
                     "nutpie_ns_per_madd": med_pt / madds * 1e9,
                     "kernel_ns_per_madd": med_kernel / madds * 1e9,
                     "speedup_median": med_pt / med_kernel,
                     "load_before": load_before, "load_after": list(os.getloadavg())})
        print(f"{n:6d} {d:3d} {k:2d} {madds:10d} | {t_compile:7.1f}s {med_pt * 1e6:10.1f}us "
              f"{med_pt / madds * 1e9:8.2f} | {med_kernel * 1e6:10.1f}us "
              f"{med_kernel / madds * 1e9:8.2f} | {med_pt / med_kernel:5.2f}x", flush=True)
        if args.out:  # after every shape: a cut-off run keeps the shapes it measured
            _write(args, git, rows)
    slower = [r for r in rows if r["speedup_median"] < 1]
    print(f"kernel slower than nutpie's PyTensor backend at {len(slower)} of {len(rows)} shapes")


def _write(args: argparse.Namespace, git: dict, rows: list[dict]) -> None:
    slower = [r for r in rows if r["speedup_median"] < 1]
    grid = len(args.n) * len(args.d) * len(args.k)
    write_record(args.out, {"git": git, "rows": rows, "complete": len(rows) == grid,
                            "threads": {v: os.environ.get(v) for v in
                                        ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                         "NUMBA_NUM_THREADS")},
                            "slower_shapes": [(r["n"], r["d"], r["k"]) for r in slower]})


if __name__ == "__main__":
    main()
