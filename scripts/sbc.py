"""Simulation-based calibration study of BayesGMM (NUTS and ADVI).

Four groups of configurations, K=2 components each:

============== ================================================== ======================
group          configurations                                     figure (docs/images/)
============== ================================================== ======================
nuts           NUTS, full covariance, D=1 and D=2                 sbc_nuts.png
advi           mean-field ADVI, full covariance, D=1 and D=2      sbc_advi.png
nuts-types     NUTS, D=2, covariance tied, diag and spherical     sbc_nuts_types.png
fullrank-advi  full-rank ADVI, full covariance, D=1 and D=2       sbc_fullrank_advi.png
asym-weights   NUTS, D=2, every covariance type, per-feature      sbc_asym_weights.png
               priors and weights_concentration=[3, 6]
               (only with ``--only``; ``--types`` selects types)
nuts-missing   NUTS, full covariance, D=2, 20 % of the simulated  sbc_nuts_missing.png
               entries missing completely at random (only with
               ``--only``)
============== ================================================== ======================

Each figure shows the ECDF difference of the ranks with simultaneous bands; a
table per configuration is printed, and the ranks and a JSON summary are
saved in ``--ranks-dir``.  With ``--out``, the raw record (command, date,
machine, versions, and per configuration its summary, per-quantity table,
every rank, divergence count, R-hat and fit time) is written as JSON by
``benchmarks/_record.py``, after every configuration.  The ADVI groups use the
same study seeds as the full-covariance NUTS group, so all three fit the same
simulated data sets.  Usage::

    python scripts/sbc.py --out benchmarks/results/sbc.json   # every group: R=200 NUTS, R=100 ADVI
    python scripts/sbc.py --only nuts-types fullrank-advi
    python scripts/sbc.py --skip advi --reps-nuts 50 --figures-dir /tmp
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bayesgmm import validation as val

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _record import git_state, write_record

#: Data-free priors in data units (every key given, so nothing depends on the data).
PRIORS = {"weights_concentration": 5.0, "means_loc": 0.0, "means_scale": 3.0,
          "sd_scale": 1.0, "lkj_eta": 2.0}
REG_COVAR = 1e-9

#: NUTS: 2 chains x 200 draws, every 4th kept (100 draws); ADVI: 100 of 200 draws.
NUTS_KWARGS = {"draws": 200, "tune": 200, "chains": 2}
ADVI_KWARGS = {"draws": 200, "n_steps": 20_000}

#: Per-feature priors with a weight prior that is not symmetric in the labels
#: (docs/calibration.md, "Asymmetric weight prior").
ASYM_PRIORS = {"weights_concentration": [3.0, 6.0], "means_loc": [1.0, -1.0],
               "means_scale": [1.5, 4.0], "sd_scale": [0.5, 2.0], "lkj_eta": 2.0}
GROUP_PRIORS = {"asym-weights": ASYM_PRIORS}

#: group -> (figure stem, [(method, covariance_type, n_features, study seed offset)]).
GROUPS: dict[str, tuple[str, list[tuple[str, str, int, int]]]] = {
    "nuts": ("sbc_nuts", [("nuts", "full", 1, 1), ("nuts", "full", 2, 2)]),
    "advi": ("sbc_advi", [("advi", "full", 1, 1), ("advi", "full", 2, 2)]),
    "nuts-types": ("sbc_nuts_types", [("nuts", "tied", 2, 102), ("nuts", "diag", 2, 202),
                                      ("nuts", "spherical", 2, 302)]),
    "fullrank-advi": ("sbc_fullrank_advi", [("fullrank_advi", "full", 1, 1),
                                            ("fullrank_advi", "full", 2, 2)]),
    "asym-weights": ("sbc_asym_weights", [("nuts", t, 2, o) for t, o in
                                          (("full", 401), ("tied", 402), ("diag", 403),
                                           ("spherical", 404))]),
    "nuts-missing": ("sbc_nuts_missing", [("nuts", "full", 2, 502)]),
}
#: groups fitted on incomplete data: share of the simulated entries removed at random
GROUP_MISSING = {"nuts-missing": 0.2}
#: the groups run when neither --only nor --skip names them
DEFAULT_GROUPS = ["nuts", "advi", "nuts-types", "fullrank-advi"]

def rhat_null_rates(n_quantities: tuple[int, ...] = (6, 8, 9, 10, 12), n_sets: int = 4000,
                    n_chains: int = 2, n_draws: int = 50, seed: int = 0) -> dict[str, float]:
    """Share of sets of exactly independent draws whose largest split R-hat exceeds 1.05.

    The reference for the study's R-hat column: ``n_sets`` sets of
    ``n_quantities`` independent standard normal quantities, ``n_chains`` chains
    of ``n_draws`` draws each (the study's kept draws), arviz-stats split R-hat.
    """
    from arviz_stats.base import array_stats

    rng = np.random.default_rng(seed)
    out = {}
    for p in n_quantities:
        x = rng.standard_normal((n_sets, n_chains, n_draws, p))
        r = array_stats.rhat(x, chain_axis=1, draw_axis=2, method="split")
        out[str(p)] = float(np.mean(np.nanmax(r, axis=-1) > 1.05))
    return out


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


def _config_key(group: str, method: str, cov_type: str, d: int) -> str:
    prefix = {"asym-weights": "asym_", "nuts-missing": "missing_"}.get(group, "")
    return prefix + (f"{method}_K2_D{d}" if cov_type == "full"
                     else f"{method}_{cov_type}_K2_D{d}")


def _draw(results: list, path: Path) -> None:
    """One ECDF-difference figure of a group's configurations."""
    fig = val.plot_ecdf_difference(
        results, prob=0.95,
        titles=[f"{_LABELS[r.method]}, {r.covariance_type}, K=2, D={r.n_features}, "
                f"R={r.ranks.shape[0]}, L={r.n_ranks - 1}" for r in results])
    fig.savefig(path, dpi=90)
    print(f"wrote {path}", flush=True)


def _figures_from_record(record_path: Path, figures_dir: Path) -> None:
    """Redraw each group's figure from the ranks kept in a raw record."""
    record = json.loads(record_path.read_text())
    configurations = record["configurations"]
    for group in record["groups"]:
        stem, configs = GROUPS[group]
        results = []
        for method, cov_type, d, _ in configs:
            entry = configurations.get(_config_key(group, method, cov_type, d))
            if entry is None:
                continue
            results.append(val.SBCResult(
                names=entry["names"], ranks=np.asarray(entry["ranks"]),
                n_ranks=int(entry["n_ranks"]), method=method, n_components=2, n_features=d,
                n_samples=int(record["n_samples"]),
                divergences=np.asarray(entry["divergences"]),
                max_rhat=np.asarray(entry["max_rhat"]), seconds=np.asarray(entry["seconds"]),
                config=entry["config"], covariance_type=cov_type))
        if results:
            _draw(results, figures_dir / f"{stem}.png")


def main() -> None:
    """Run the study and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps-nuts", type=int, default=200,
                    help="replications per NUTS configuration (groups nuts, nuts-types)")
    ap.add_argument("--reps-advi", type=int, default=100,
                    help="replications per ADVI configuration (groups advi, fullrank-advi)")
    ap.add_argument("--n-samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--figures-dir", type=Path,
                    default=Path(__file__).parents[1] / "docs" / "images",
                    help="where the figures (.png) are written")
    ap.add_argument("--out", default=None,
                    help="write the raw record (JSON, benchmarks/_record.py) here")
    ap.add_argument("--only", nargs="+", choices=list(GROUPS), default=None,
                    help="run only these groups (default: all)")
    ap.add_argument("--skip", nargs="+", choices=list(GROUPS), default=[],
                    help="skip these groups")
    ap.add_argument("--skip-advi", action="store_true", help="same as --skip advi")
    ap.add_argument("--rhat-null", action="store_true",
                    help="only compute the R-hat > 1.05 rate of independent draws (the "
                         "reference of the R-hat column) and record it with --out")
    ap.add_argument("--types", nargs="+", choices=["full", "tied", "diag", "spherical"],
                    default=None, help="run only the configurations of these covariance types")
    ap.add_argument("--ranks-dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the ranks (.npz) and the summary (.json) are saved")
    ap.add_argument("--figures-from", type=Path, default=None, metavar="RECORD",
                    help="draw the figures from the ranks in a raw record written by --out "
                         "(no study is run)")
    args = ap.parse_args()
    if args.figures_from is not None:
        args.figures_dir.mkdir(parents=True, exist_ok=True)
        _figures_from_record(args.figures_from, args.figures_dir)
        return
    if args.rhat_null:
        rates = rhat_null_rates()
        print(json.dumps(rates))
        if args.out:
            write_record(args.out, {"share_max_split_rhat_gt_1.05": rates,
                                    "by_number_of_quantities": True, "n_sets": 4000,
                                    "chains": 2, "draws_per_chain": 50, "seed": 0,
                                    "git": git_state()})
        return
    args.figures_dir.mkdir(parents=True, exist_ok=True)
    args.ranks_dir.mkdir(parents=True, exist_ok=True)
    skip = set(args.skip) | ({"advi"} if args.skip_advi else set())
    groups = [g for g in (args.only or DEFAULT_GROUPS) if g not in skip]

    summary: dict[str, dict] = {}
    raw: dict[str, dict] = {}
    git = git_state()
    for group in groups:
        stem, configs = GROUPS[group]
        results: list[val.SBCResult] = []
        priors = GROUP_PRIORS.get(group, PRIORS)
        configs = [c for c in configs if args.types is None or c[1] in args.types]
        for method, cov_type, d, offset in configs:
            reps = args.reps_nuts if method == "nuts" else args.reps_advi
            t0 = time.perf_counter()
            res = val.run_sbc(reps, n_components=2, n_features=d, n_samples=args.n_samples,
                              priors=priors, reg_covar=REG_COVAR, method=method,
                              n_keep=50 if method == "nuts" else 100,
                              fit_kwargs=NUTS_KWARGS if method == "nuts" else ADVI_KWARGS,
                              random_state=args.seed + offset, covariance_type=cov_type,
                              missing_share=GROUP_MISSING.get(group, 0.0))
            wall = time.perf_counter() - t0
            key = _config_key(group, method, cov_type, d)
            summary[key], table = _summary(res, wall)
            summary[key]["study_seed"] = args.seed + offset
            print(f"\n== {key}: {json.dumps(summary[key])}", flush=True)
            print(table.round(3).to_string(), flush=True)
            results.append(res)
            if args.out:
                raw[key] = {"group": group, "summary": summary[key], "config": res.config,
                            "names": list(res.names), "n_ranks": res.n_ranks,
                            "table": json.loads(table.to_json(orient="index")),
                            "ranks": res.ranks.tolist(),
                            "divergences": res.divergences.tolist(),
                            "max_rhat": res.max_rhat.tolist(),
                            "seconds": res.seconds.tolist()}
                write_record(args.out, {"groups": groups, "reps_nuts": args.reps_nuts,
                                        "reps_advi": args.reps_advi,
                                        "n_samples": args.n_samples, "seed": args.seed,
                                        "git": git,
                                        "configurations": raw})
            np.savez(args.ranks_dir / f"sbc_{key}.npz", ranks=res.ranks, names=res.names,
                     n_ranks=res.n_ranks, divergences=res.divergences, max_rhat=res.max_rhat,
                     seconds=res.seconds)
        if results:
            _draw(results, args.figures_dir / f"{stem}.png")
    (args.ranks_dir / f"sbc_summary_{'_'.join(groups)}.json").write_text(
        json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
