"""Simulation-based calibration study of BayesGMM (NUTS and ADVI).

Four groups of configurations, K=2 components each:

============== ================================================== ======================
group          configurations                                     figure (docs/images/)
============== ================================================== ======================
nuts           NUTS, full covariance, D=1 and D=2                 sbc_nuts.png
advi           mean-field ADVI, full covariance, D=1 and D=2      sbc_advi.png
nuts-types     NUTS, D=2, covariance tied, diag and spherical     sbc_nuts_types.png
fullrank-advi  full-rank ADVI, full covariance, D=1 and D=2       sbc_fullrank_advi.png
============== ================================================== ======================

Each figure shows the ECDF difference of the ranks with simultaneous bands; a
table per configuration is printed, and the ranks and a JSON summary are
saved in ``--ranks-dir``.  The ADVI groups use the same study seeds as the
full-covariance NUTS group, so all three fit the same simulated data sets.
Usage::

    python scripts/sbc.py                          # every group: R=200 NUTS, R=100 ADVI
    python scripts/sbc.py --only nuts-types fullrank-advi
    python scripts/sbc.py --skip advi --reps-nuts 50 --out /tmp
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bayesgmm import validation as val

#: Data-free priors in data units (every key given, so nothing depends on the data).
PRIORS = {"weights_concentration": 5.0, "means_loc": 0.0, "means_scale": 3.0,
          "sd_scale": 1.0, "lkj_eta": 2.0}
REG_COVAR = 1e-9

#: NUTS: 2 chains x 200 draws, every 4th kept (100 draws); ADVI: 100 of 200 draws.
NUTS_KWARGS = {"draws": 200, "tune": 200, "chains": 2}
ADVI_KWARGS = {"draws": 200, "n_steps": 20_000}

#: group -> (figure stem, [(method, covariance_type, n_features, study seed offset)]).
GROUPS: dict[str, tuple[str, list[tuple[str, str, int, int]]]] = {
    "nuts": ("sbc_nuts", [("nuts", "full", 1, 1), ("nuts", "full", 2, 2)]),
    "advi": ("sbc_advi", [("advi", "full", 1, 1), ("advi", "full", 2, 2)]),
    "nuts-types": ("sbc_nuts_types", [("nuts", "tied", 2, 102), ("nuts", "diag", 2, 202),
                                      ("nuts", "spherical", 2, 302)]),
    "fullrank-advi": ("sbc_fullrank_advi", [("fullrank_advi", "full", 1, 1),
                                            ("fullrank_advi", "full", 2, 2)]),
}

_LABELS = {"nuts": "NUTS", "advi": "ADVI (mean-field)", "fullrank_advi": "ADVI (full-rank)"}


def _summary(res: val.SBCResult, wall: float) -> tuple[dict, object]:
    table = res.table(n_bins=10, prob=0.95)
    n_q = len(res.names)
    inside_bonf, _ = res.band_test(prob=1 - 0.05 / n_q)
    out = {
        "replications": int(res.ranks.shape[0]), "failed": res.n_failed,
        "quantities": n_q, "n_ranks": res.n_ranks, "wall_s": round(wall, 1),
        "median_fit_s": round(float(np.median(res.seconds)), 3),
        "reps_with_divergences": int(np.sum(res.divergences > 0)),
        "reps_max_rhat_gt_1.05": int(np.sum(res.max_rhat > 1.05)),
        "min_chi2_pvalue": float(table["chi2_pvalue"].min()),
        "min_band_pvalue": float(table["band_pvalue"].min()),
        "outside_95_band": [str(n) for n in table.index[~table["inside_0.95"].to_numpy()]],
        "n_outside_95_band": int((~table["inside_0.95"]).sum()),
        "outside_bonferroni_band": [res.names[p] for p in np.flatnonzero(~inside_bonf)],
        "n_outside_bonferroni_band": int((~inside_bonf).sum()),
    }
    return out, table


def main() -> None:
    """Run the study and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps-nuts", type=int, default=200,
                    help="replications per NUTS configuration (groups nuts, nuts-types)")
    ap.add_argument("--reps-advi", type=int, default=100,
                    help="replications per ADVI configuration (groups advi, fullrank-advi)")
    ap.add_argument("--n-samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "images")
    ap.add_argument("--only", nargs="+", choices=list(GROUPS), default=None,
                    help="run only these groups (default: all)")
    ap.add_argument("--skip", nargs="+", choices=list(GROUPS), default=[],
                    help="skip these groups")
    ap.add_argument("--skip-advi", action="store_true", help="same as --skip advi")
    ap.add_argument("--ranks-dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the ranks (.npz) and the summary (.json) are saved")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.ranks_dir.mkdir(parents=True, exist_ok=True)
    skip = set(args.skip) | ({"advi"} if args.skip_advi else set())
    groups = [g for g in (args.only or list(GROUPS)) if g not in skip]

    summary = {}
    for group in groups:
        stem, configs = GROUPS[group]
        results: list[val.SBCResult] = []
        for method, cov_type, d, offset in configs:
            reps = args.reps_nuts if method == "nuts" else args.reps_advi
            t0 = time.perf_counter()
            res = val.run_sbc(reps, n_components=2, n_features=d, n_samples=args.n_samples,
                              priors=PRIORS, reg_covar=REG_COVAR, method=method,
                              n_keep=50 if method == "nuts" else 100,
                              fit_kwargs=NUTS_KWARGS if method == "nuts" else ADVI_KWARGS,
                              random_state=args.seed + offset, covariance_type=cov_type)
            wall = time.perf_counter() - t0
            key = (f"{method}_K2_D{d}" if cov_type == "full"
                   else f"{method}_{cov_type}_K2_D{d}")
            summary[key], table = _summary(res, wall)
            summary[key]["study_seed"] = args.seed + offset
            print(f"\n== {key}: {json.dumps(summary[key])}", flush=True)
            print(table.round(3).to_string(), flush=True)
            results.append(res)
            np.savez(args.ranks_dir / f"sbc_{key}.npz", ranks=res.ranks, names=res.names,
                     n_ranks=res.n_ranks, divergences=res.divergences, max_rhat=res.max_rhat,
                     seconds=res.seconds)
        fig = val.plot_ecdf_difference(
            results, prob=0.95,
            titles=[f"{_LABELS[r.method]}, {r.covariance_type}, K=2, D={r.n_features}, "
                    f"R={r.ranks.shape[0]}, L={r.n_ranks - 1}" for r in results])
        path = args.out / f"{stem}.png"
        fig.savefig(path, dpi=90)
        print(f"wrote {path}", flush=True)
    (args.ranks_dir / f"sbc_summary_{'_'.join(groups)}.json").write_text(
        json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
