"""Choosing K by EM on Old Faithful: bayesgmm.compare_k against a scikit-learn sweep.

bayesgmm: ``compare_k(X, range(1, 9), methods="em")`` at its defaults (n_init=10,
tol=1e-7). scikit-learn: GaussianMixture(k, n_init=10) for k = 1..8 at its defaults
(tol=1e-3), computing BIC for each. Both in this process, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time

from sklearn.mixture import GaussianMixture

import bayesgmm as bg


def sweep_bayesgmm(X, ks):
    return bg.compare_k(X, ks, methods="em", progressbar=False).best("bic")


def sweep_sklearn(X, ks):
    bics = {k: GaussianMixture(k, n_init=10, random_state=0).fit(X).bic(X) for k in ks}
    return min(bics, key=bics.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    X = bg.datasets.load_faithful()
    ks = range(1, 9)
    rows = {}
    for name, run in (("bayesgmm", sweep_bayesgmm), ("scikit-learn", sweep_sklearn)):
        run(X, [1, 2])  # warm-up
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            best = run(X, ks)
            times.append(time.perf_counter() - start)
        rows[name] = (min(times), best)
        print(f"{name:14} {min(times):6.2f} s   BIC picks K={best}")
    ratio = rows["scikit-learn"][0] / rows["bayesgmm"][0]
    print(f"speed-up (scikit-learn time / bayesgmm time): {ratio:.2f}x; goal: bayesgmm < 2 s")


if __name__ == "__main__":
    main()
