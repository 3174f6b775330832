"""The import budget of a newcomer's first Bayesian fit (issue 16), by ``python -X importtime``.

Each repeat runs, in a fresh process with warm caches, what a newcomer types
(``import bayesgmm as bg; bg.BayesGMM(2).fit(faithful)``) under
``python -X importtime`` and keeps the cumulative import time of the
packages that make up the budget, in the order the route first imports them:
``bayesgmm`` itself (with scikit-learn, SciPy, pandas and xarray), then, when
``bg.BayesGMM`` is first read, PyMC, PyTensor, Numba and arviz_base, and, at
the first NUTS fit, nutpie (which imports ArviZ, arviz-plots and
matplotlib). Also the process's CPU time. Median of ``--repeat``.

Run: ``python benchmarks/bench_import_budget.py --repeat 3 --out
benchmarks/results/import_budget.json`` (after one fit has warmed the caches,
e.g. ``bench_first_fit.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_state, write_record

#: Top-level imports of the route, as ``-X importtime`` names them.
MODULES = ("bayesgmm", "sklearn", "scipy.stats", "pandas", "xarray", "bayesgmm.bayes.estimator",
           "pymc", "pytensor", "numba", "arviz_base", "nutpie", "arviz", "arviz_plots",
           "matplotlib.pyplot")

FIT = """
import time
c0 = time.process_time()
import bayesgmm as bg
c1 = time.process_time()
BayesGMM = bg.BayesGMM
c2 = time.process_time()
est = BayesGMM(2, random_state=0, progressbar=False).fit(bg.datasets.load_faithful())
c3 = time.process_time()
print("CPU", c1 - c0, c2 - c1, c3 - c2)
"""


def one_run() -> dict:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", FIT], capture_output=True,
                         text=True, check=True)
    cumulative: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|")
        name = name.strip()
        if name in MODULES and name not in cumulative:  # the first (real) import
            cumulative[name] = int(cum)
    cpu = next(line for line in out.stdout.splitlines() if line.startswith("CPU")).split()[1:]
    return {"cumulative_s": {m: cumulative.get(m, 0) / 1e6 for m in MODULES},
            "cpu_import_bayesgmm": float(cpu[0]), "cpu_import_bayes": float(cpu[1]),
            "cpu_fit": float(cpu[2]), "load_average": list(os.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    state = git_state()
    runs = []
    for _ in range(args.repeat):
        runs.append(one_run())
        print({k: round(v, 2) for k, v in runs[-1]["cumulative_s"].items()},
              "load", runs[-1]["load_average"][0], flush=True)
    medians = {m: statistics.median(r["cumulative_s"][m] for r in runs) for m in MODULES}
    cpu = {k: statistics.median(r[k] for r in runs)
           for k in ("cpu_import_bayesgmm", "cpu_import_bayes", "cpu_fit")}
    for m, v in medians.items():
        print(f"{m:28} {v:6.2f} s (cumulative, wall)")
    print("CPU medians:", {k: round(v, 2) for k, v in cpu.items()})
    if args.out:
        write_record(args.out, {"git": state, "runs": runs, "median_cumulative_s": medians,
                                "median_cpu_s": cpu,
                                "note": "python -X importtime; cumulative wall time of each "
                                        "module's first import, nested imports included"})


if __name__ == "__main__":
    main()
