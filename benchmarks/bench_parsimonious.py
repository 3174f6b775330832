"""Cost of the 14 mclust M-steps (bayesgmm.parsimonious) beside one EM iteration.

Not the issue-14 speed goal (the 14 x 9 table on iris against scikit-learn's four
models needs the M-steps wired into EMGMM, which is pending): this measures what
one call of :func:`bayesgmm.parsimonious.covariances` costs on iris (N=150,
D=4) for K=3 and K=9, cold (no ``previous``: EVE and VVE run K + 1 starts) and
warm (``previous`` = the M-step of the preceding EM iteration's scatter, as EM
would call it), against the engine's own E-step (``bayesgmm.em.e_step``) and
full-covariance M-step (``bayesgmm.em.m_step``) on the same data: the cost of
one EM iteration today.

Run: ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_parsimonious.py``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _record import git_state, write_record  # benchmarks/ is on sys.path as a script

import bayesgmm as bg
from bayesgmm import em
from bayesgmm import parsimonious as ps


def _per_call(fn, number: int, repeat: int) -> list[float]:
    """Seconds per call, one value per repeat (each the mean of ``number`` calls)."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - start) / number)
    return out


def _scatter(X: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    return nk, np.stack([(r[:, None] * (X - m)).T @ (X - m)
                         for r, m in zip(resp.T, means, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/parsimonious.json")
    args = parser.parse_args()
    state_at_start = git_state()
    X = bg.datasets.load_iris().to_numpy()
    rows = []
    for k in (3, 9):
        resp0 = np.eye(k)[em.kmeans(X, k, np.random.default_rng(0))]
        base = em.m_step(X, resp0, "full", 1e-6)
        resp1 = np.exp(em.e_step(X, base)[1])
        nk0, w0 = _scatter(X, resp0)
        nk1, w1 = _scatter(X, resp1)
        e_step = _per_call(lambda base=base: em.e_step(X, base), args.number, args.repeat)
        m_full = _per_call(lambda r=resp1: em.m_step(X, r, "full", 1e-6), args.number,
                           args.repeat)
        for model in ps.MODELS:
            previous = ps.covariances(model, nk0, w0, reg=1e-6)

            def cold(model=model, nk1=nk1, w1=w1):
                return ps.covariances(model, nk1, w1, reg=1e-6, return_info=True)

            def warm(model=model, previous=previous, nk1=nk1, w1=w1):
                return ps.covariances(model, nk1, w1, previous, reg=1e-6, return_info=True)

            t_cold = _per_call(cold, args.number, args.repeat)
            t_warm = _per_call(warm, args.number, args.repeat)
            row = {
                "model": model, "K": k,
                "cold_us": [1e6 * t for t in t_cold], "warm_us": [1e6 * t for t in t_warm],
                "cold_sweeps": cold()[1].n_iter, "warm_sweeps": warm()[1].n_iter,
                "warm_converged": bool(warm()[1].converged),
                "em_e_step_us": [1e6 * t for t in e_step],
                "em_m_step_full_us": [1e6 * t for t in m_full],
            }
            rows.append(row)
            print(f"K={k} {model}: cold {statistics.median(row['cold_us']):8.1f} us "
                  f"({row['cold_sweeps']:4d} sweeps), warm "
                  f"{statistics.median(row['warm_us']):8.1f} us ({row['warm_sweeps']:4d}), "
                  f"em.e_step {statistics.median(row['em_e_step_us']):7.1f} us, em.m_step "
                  f"full {statistics.median(row['em_m_step_full_us']):7.1f} us")
    write_record(args.out, {"git": state_at_start, "data": "iris (150 x 4)",
                            "repeat": args.repeat, "number": args.number, "rows": rows})


if __name__ == "__main__":
    main()
