"""Cold and warm start of the two NUTS routes, each in fresh processes.

The question (issue 11 §2): can nutpie's own compilation of the PyMC model
(``sampler="nutpie_native"``) be cached on disk well enough to replace
bayesgmm's hand-written kernel (``sampler="nutpie"``)? For each route and
repeat, two fresh processes fit ``BayesGMM(2)`` to Old Faithful (4 x 1000):
the first with empty PyTensor and Numba caches (cold), the second reusing
the caches the first wrote (warm). Recorded per process: the fit's own
``timing_["compile"]`` and ``timing_["sample"]``, and the wall time of the
whole process (imports included).

Run: ``python benchmarks/bench_compile.py --repeat 3 --out benchmarks/results/compile.json``
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
from _record import write_record

FIT = """
import json, time, warnings
t0 = time.perf_counter()
import bayesgmm as bg
X = bg.datasets.load_faithful()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est = bg.BayesGMM(2, sampler={sampler!r}, random_state=0, progressbar=False).fit(X)
    process = time.perf_counter() - t0
    diag = est.result_.diagnostics(warn=False)
print(json.dumps({{"compile": est.timing_["compile"], "sample": est.timing_["sample"],
                  "process": process, "min_ess_bulk": float(diag["ess_bulk"].min()),
                  "max_r_hat": float(diag["r_hat"].max()),
                  "divergences": int(diag.attrs["divergences"])}}))
"""


def _run(sampler: str, cache: Path) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = f"compiledir={cache / 'pytensor'}"
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", FIT.format(sampler=sampler)], env=env,
                         capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["wall"] = time.perf_counter() - t0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the raw record (JSON) here")
    args = parser.parse_args()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    for sampler in ("nutpie", "nutpie_native"):
        runs[sampler] = {"cold": [], "warm": []}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bayesgmm-bench-cache-") as tmp:
                for state in ("cold", "warm"):
                    figures = _run(sampler, Path(tmp))
                    runs[sampler][state].append(figures)
                    print(f"{sampler:14s} {state}: compile {figures['compile']:6.2f} s, "
                          f"sample {figures['sample']:5.2f} s, process {figures['process']:6.2f} s"
                          f", min ESS {figures['min_ess_bulk']:.0f}")
    medians = {f"{s} {state}": {key: statistics.median(r[key] for r in rows)
                                for key in ("compile", "sample", "process", "wall",
                                            "min_ess_bulk")}
               for s, states in runs.items() for state, rows in states.items()}
    print("\nmedian of", args.repeat, "(seconds)")
    for name, m in medians.items():
        print(f"  {name:20s} compile {m['compile']:6.2f}  sample {m['sample']:5.2f}  "
              f"process {m['process']:6.2f}  ESS/s of process "
              f"{m['min_ess_bulk'] / m['process']:7.1f}")
    for state in ("cold", "warm"):
        ratio = medians[f"nutpie_native {state}"]["process"] / medians[f"nutpie {state}"]["process"]
        print(f"  {state}: the kernel route takes {ratio:.2f}x less process time")
    if args.out:
        write_record(args.out, {"runs": runs, "medians": medians,
                                "data": "Old Faithful, BayesGMM(2), 4 x 1000"})


if __name__ == "__main__":
    main()
