"""A newcomer's first Bayesian fit, in fresh processes: where the time goes (issue 16).

Each repeat starts two fresh Python processes that run exactly what a
newcomer types, ``import bayesgmm as bg; bg.BayesGMM(2).fit(faithful)``:
the first with empty PyTensor and Numba caches (the very first fit on a
machine), the second reusing the caches the first wrote (warm). Each process
records the time to ``import bayesgmm``, to reach ``bg.BayesGMM`` (the lazy
import of the Bayesian stack), the fit split into its compile, sampling and
everything else (EM reference, data, relabeling, results), the CPU time of
each step (``time.process_time``, all threads: on a loaded machine the wall
times mostly measure waiting for a core), the load average, and which heavy
modules ended up loaded; the parent records the wall time of the process.
A third process per repeat runs ``python -X importtime`` on the warm route
and keeps the slowest imports, so the import budget in docs/benchmarks.md has a record.

Run: ``python benchmarks/bench_first_fit.py --repeat 3 --out benchmarks/results/first_fit.json``.
While others edit the package in the same checkout, run it from a clone of
HEAD (``PYTHONPATH=<clone>``): an edited kernel source invalidates Numba's
cache between the cold and the warm process, and a half-saved file fails the fit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_state, write_record

HEAVY = ("pymc", "pytensor", "nutpie", "numba", "matplotlib", "arviz", "arviz_plots",
         "sklearn", "scipy", "pandas", "xarray")

FIT = """
import json, os, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import bayesgmm as bg
t1, c1 = time.perf_counter(), time.process_time()
BayesGMM = bg.BayesGMM
t2, c2 = time.perf_counter(), time.process_time()
X = bg.datasets.load_faithful()
est = BayesGMM(2, random_state=0, progressbar=False).fit(X)
t3, c3 = time.perf_counter(), time.process_time()
ok = est.result_.diagnostics(warn=False)
print(json.dumps({{"import_bayesgmm": t1 - t0, "import_bayes": t2 - t1, "fit": t3 - t2,
                  "compile": est.timing_["compile"], "sample": est.timing_["sample"],
                  "fit_other": t3 - t2 - est.timing_["compile"] - est.timing_["sample"],
                  "process": t3 - t0, "cpu_import_bayesgmm": c1 - c0,
                  "cpu_import_bayes": c2 - c1, "cpu_fit": c3 - c2, "cpu_process": c3 - c0,
                  "load_average": list(os.getloadavg()),
                  "max_r_hat": float(ok["r_hat"].max()),
                  "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def _env(cache: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if cache is not None:
        env["PYTENSOR_FLAGS"] = f"compiledir={cache / 'pytensor'}"
        env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    return env


def _run(cache: Path | None) -> dict:
    code = FIT.format(heavy=HEAVY)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=_env(cache), capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the fit process failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["wall"] = time.perf_counter() - t0
    return figures


def _slowest_imports(cache: Path, top: int = 15) -> list[dict]:
    """The ``top`` imports of the warm route with the largest self time (microseconds)."""
    code = FIT.format(heavy=HEAVY)
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=_env(cache),
                         capture_output=True, text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|")
        rows.append({"module": name.strip(), "self_us": int(self_us),
                     "cumulative_us": int(cumulative_us)})
    return sorted(rows, key=lambda r: -r["self_us"])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the raw record (JSON) here")
    args = parser.parse_args()
    state = git_state()
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    imports: list[list[dict]] = []
    keys = ("wall", "process", "import_bayesgmm", "import_bayes", "compile", "sample",
            "fit_other", "cpu_process", "cpu_import_bayesgmm", "cpu_import_bayes", "cpu_fit")
    for repeat in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bayesgmm-first-fit-") as tmp:
            for kind in ("cold", "warm"):
                figures = _run(Path(tmp))
                runs[kind].append(figures)
                print(f"{kind}: wall {figures['wall']:5.2f} s = import "
                      f"{figures['import_bayesgmm']:.2f}"
                      f" + Bayes stack {figures['import_bayes']:.2f} + compile "
                      f"{figures['compile']:.2f} + sample {figures['sample']:.2f} + other "
                      f"{figures['fit_other']:.2f} (+ interpreter start/exit); CPU "
                      f"{figures['cpu_process']:.2f} s, load {figures['load_average'][0]:.1f}",
                      flush=True)
            imports.append(_slowest_imports(Path(tmp)))
        medians = {kind: {k: statistics.median(r[k] for r in rows) for k in keys}
                   for kind, rows in runs.items()}
        if args.out:  # after every repeat: a failure later keeps what was measured
            write_record(args.out, {"git": state, "runs": runs, "medians": medians,
                                    "repeats_done": repeat + 1,
                                    "slowest_imports_warm": imports,
                                    "data": "Old Faithful, BayesGMM(2) defaults, 4 x 1000"})
    for kind, m in medians.items():
        print(f"median {kind}: " + ", ".join(f"{k} {v:.2f} s" for k, v in m.items()))
    print("loaded after the fit:", runs["warm"][-1]["loaded"])


if __name__ == "__main__":
    main()
