"""Simulation-based calibration study of BayesGMM (NUTS and ADVI).

Writes ``docs/images/sbc_nuts.png`` and ``docs/images/sbc_advi.png`` (ECDF
difference of the ranks with simultaneous bands) and prints one table per
configuration.  Usage::

    python scripts/sbc.py                      # R=200 for NUTS, R=100 for ADVI
    python scripts/sbc.py --reps-nuts 50 --reps-advi 20 --out /tmp
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bayesgmm import calibration as cal

#: Data-free priors in data units (every key given, so nothing depends on the data).
PRIORS = {"weights_concentration": 5.0, "means_loc": 0.0, "means_scale": 3.0,
          "sd_scale": 1.0, "lkj_eta": 2.0}
REG_COVAR = 1e-9


def main() -> None:
    """Run the study and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps-nuts", type=int, default=200)
    ap.add_argument("--reps-advi", type=int, default=100)
    ap.add_argument("--n-samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "images")
    ap.add_argument("--skip-advi", action="store_true")
    ap.add_argument("--ranks-dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the ranks are saved (.npz)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    configs = [("nuts", 1, args.reps_nuts), ("nuts", 2, args.reps_nuts)]
    if not args.skip_advi:
        configs += [("advi", 1, args.reps_advi), ("advi", 2, args.reps_advi)]
    results: dict[str, list[cal.SBCResult]] = {"nuts": [], "advi": []}
    summary = {}
    for method, d, reps in configs:
        t0 = time.perf_counter()
        # NUTS: 2 chains x 200 draws, every 4th kept (100 draws); ADVI: 100 of 200 draws
        fit_kwargs = ({"draws": 200, "tune": 200, "chains": 2} if method == "nuts"
                      else {"draws": 200, "n_steps": 20_000})
        res = cal.run_sbc(reps, n_components=2, n_features=d, n_samples=args.n_samples,
                          priors=PRIORS, reg_covar=REG_COVAR, method=method,
                          n_keep=50 if method == "nuts" else 100, fit_kwargs=fit_kwargs,
                          random_state=args.seed + d)
        wall = time.perf_counter() - t0
        table = res.table(n_bins=10, prob=0.95)
        n_q = len(res.names)
        inside_bonf, _ = res.band_test(prob=1 - 0.05 / n_q)
        key = f"{method}_K2_D{d}"
        summary[key] = {
            "replications": int(res.ranks.shape[0]), "failed": res.n_failed,
            "n_ranks": res.n_ranks, "wall_s": round(wall, 1),
            "median_fit_s": round(float(np.median(res.seconds)), 3),
            "reps_with_divergences": int(np.sum(res.divergences > 0)),
            "reps_max_rhat_gt_1.05": int(np.sum(res.max_rhat > 1.05)),
            "min_chi2_pvalue": float(table["chi2_pvalue"].min()),
            "n_outside_95_band": int((~table["inside_0.95"]).sum()),
            "n_outside_bonferroni_band": int((~inside_bonf).sum()),
        }
        print(f"\n== {key}: {json.dumps(summary[key])}")
        print(table.round(3).to_string())
        results[method].append(res)
        np.savez(args.ranks_dir / f"sbc_{key}.npz", ranks=res.ranks, names=res.names,
                 n_ranks=res.n_ranks, divergences=res.divergences, max_rhat=res.max_rhat)
    for method, res_list in results.items():
        if not res_list:
            continue
        fig = cal.plot_ecdf_difference(
            res_list, prob=0.95,
            titles=[f"{method.upper()}, K=2, D={r.n_features}, R={r.ranks.shape[0]}, "
                    f"L={r.n_ranks - 1}" for r in res_list])
        path = args.out / f"sbc_{method}.png"
        fig.savefig(path, dpi=90)
        print(f"wrote {path}")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
