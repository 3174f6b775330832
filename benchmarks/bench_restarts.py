"""Restart quality: EMGMM's default restarts against the best of 100 k-means++ restarts.

For each real data set and K (full covariance), this fits

- ``EMGMM(K, n_init=10, random_state=s)`` at the default ``init_params`` for
  several seeds ``s`` (each seed is one "repeat"), and
- ``EMGMM(K, n_init=100, init_params="k-means++", random_state=0)``, the
  reference: the best non-spurious log-likelihood over 100 k-means++ restarts,

and prints the default's worst and median shortfall from the reference (a
positive shortfall means the default missed it by that many log-likelihood
units; within 1e-6 relative counts as reached), and the median times.
A fit whose best run still has a collapsed component
(:func:`bayesgmm.em.collapsed_components`) is spurious and reported as such.
Raw output (command, versions, date, machine, every repeat) goes to JSON.

Data, all shipped offline: iris, Old Faithful (bayesgmm); wine, breast cancer,
diabetes (raw units), digits projected on 10 principal components, and 2,000
random pixels (RGB) of each of the two sample photographs (scikit-learn).

Run: ``python benchmarks/bench_restarts.py --out benchmarks/results/restarts.json``
(``--quick`` for 2 repeats and K=2..3). A gap of -inf means the default is sound
where the reference is spurious, +inf the opposite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets as skd
from sklearn.decomposition import PCA

import bayesgmm as bg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_state, write_record


def _pixels(name: str, n: int = 2000) -> np.ndarray:
    image = skd.load_sample_image(name).reshape(-1, 3).astype(float)
    return image[np.random.default_rng(0).choice(len(image), n, replace=False)]


def load_data() -> dict[str, np.ndarray]:
    """The benchmark's data sets as float arrays."""
    return {
        "iris": bg.datasets.load_iris().to_numpy(float),
        "faithful": bg.datasets.load_faithful().to_numpy(float),
        "wine": skd.load_wine().data,
        "breast_cancer": skd.load_breast_cancer().data,
        "diabetes": skd.load_diabetes(scaled=False).data,
        "digits_pca10": PCA(10, random_state=0).fit_transform(skd.load_digits().data),
        "china_pixels": _pixels("china.jpg"),
        "flower_pixels": _pixels("flower.jpg"),
    }


def fit(X: np.ndarray, k: int, **params) -> dict:
    """One EMGMM fit: log-likelihood, spurious flag, seconds."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bg.EMGMM(k, **params).fit(X)
    seconds = time.perf_counter() - start
    state = model._point_state()
    spurious = model._collapsed(state, X.shape[0]).size > 0  # the rule the fit used
    return {"loglik": model.result_.log_likelihood, "spurious": bool(spurious),
            "seconds": seconds}


def shortfall(default: dict, reference: dict) -> float:
    """How far the default stays below the reference (<= 0: reached)."""
    if reference["spurious"] != default["spurious"]:
        return np.inf if default["spurious"] else -np.inf
    # both sound, or both spurious (then compared as they are, and flagged in the table)
    gap = reference["loglik"] - default["loglik"]
    return 0.0 if gap <= 1e-6 * abs(reference["loglik"]) else gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="seeds of the default fit")
    parser.add_argument("--ks", default="2,3,4,5")
    parser.add_argument("--data", default="", help="comma-separated subset of data sets")
    parser.add_argument("--reference-restarts", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.ks = 2, "2,3"
    ks = [int(k) for k in args.ks.split(",")]
    data = load_data()
    if args.data:
        data = {name: data[name] for name in args.data.split(",")}
    git = git_state()  # at the start: the code that ran
    load_at_start = list(os.getloadavg())
    fit(data["iris"], 2)  # warm-up
    rows = []
    header = (f"{'data':<14}{'N x D':>10}{'K':>3}{'default':>12}{'best-of-100':>13}"
              f"{'worst gap':>11}{'median gap':>12}{'t default':>11}{'t 100':>9}")
    print(header)
    for name, X in data.items():
        for k in ks:
            defaults = [fit(X, k, n_init=10, random_state=seed) for seed in range(args.repeat)]
            reference = fit(X, k, n_init=args.reference_restarts, init_params="k-means++",
                            random_state=0)
            gaps = [shortfall(d, reference) for d in defaults]
            row = {
                "data": name, "n_samples": X.shape[0], "n_features": X.shape[1], "k": k,
                "default": defaults, "reference": reference,
                "worst_gap": max(gaps), "median_gap": statistics.median(gaps),
                "median_seconds_default": statistics.median(d["seconds"] for d in defaults),
            }
            rows.append(row)
            med_ll = statistics.median(d["loglik"] for d in defaults)
            flag = "*" if all(d["spurious"] for d in defaults) else ""
            ref_flag = "*" if reference["spurious"] else ""
            print(f"{name:<14}{f'{X.shape[0]}x{X.shape[1]}':>10}{k:>3}"
                  f"{med_ll:>11.2f}{flag:1}{reference['loglik']:>12.2f}{ref_flag:1}"
                  f"{row['worst_gap']:>11.3g}{row['median_gap']:>12.3g}"
                  f"{row['median_seconds_default']:>10.2f}s{reference['seconds']:>8.2f}s",
                  flush=True)
    reached = sum(r["worst_gap"] <= 0 for r in rows)
    print(f"\nThe default reached the reference in every repeat for {reached} of {len(rows)} "
          "(data, K); * marks a spurious (collapsed) best fit.")
    if args.out:
        write_record(args.out, {
            "git": git, "load_average_at_start": load_at_start,
            "threads": {name: os.environ.get(name) for name in
                        ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
            "settings": vars(args), "rows": rows,
        })

if __name__ == "__main__":
    main()
