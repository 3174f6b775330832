"""The import layers of DESIGN.md hold."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesgmm"
NUMPY_ONLY = ["_validation.py", "em.py", "criteria.py", "bayes/relabel.py", "bayes/params.py",
              "bayes/_kernel.py", "bayes/spec.py", "bayes/density.py", "bayes/vi.py",
              "initialization.py"]
HEAVY = {"pymc", "pytensor", "matplotlib", "arviz", "nutpie"}


def _imports(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", NUMPY_ONLY)
def test_numpy_only_layers_import_no_pymc_or_matplotlib(module):
    path = PACKAGE / module
    if not path.exists():
        pytest.skip(f"{module} not written yet")
    assert not (_imports(path) & HEAVY)


def test_import_bayesgmm_stays_light():
    code = ("import sys, bayesgmm; "
            "print(sorted(m for m in ('pymc', 'pytensor', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_no_pickle_anywhere_in_the_package():
    # user files are read through netCDF only: no pickle, joblib or numpy allow_pickle
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "pickle" not in _imports(path), path
        assert "allow_pickle=True" not in text, path
        assert "joblib.load" not in text, path


def _loaded_after(code):
    probe = (f"import sys\n{code}\n"
             "print(sorted(m for m in ('pymc', 'pytensor', 'nutpie') if m in sys.modules))")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def test_em_workflow_loads_no_pymc_transitively():
    # Not just the import: a whole EM session (fit, save, load, compare_k, compare, summary).
    code = """
import tempfile, pathlib, warnings
import bayesgmm as bg
X = bg.datasets.load_faithful()
r = bg.EMGMM(2, random_state=0).fit(X).result_
back = bg.load(r.to_netcdf(pathlib.Path(tempfile.mkdtemp()) / "fit.nc"))
cmp = bg.compare_k(X, range(1, 4), methods="em", progressbar=False)
cmp.best("bic"); cmp.verdict(); back.summary(); back.assignment_uncertainty()
bg.compare([r, back])
"""
    assert _loaded_after(code) == "[]"


def test_fast_log_density_and_its_advi_load_no_pymc():
    code = "import bayesgmm.bayes.spec, bayesgmm.bayes.density, bayesgmm.bayes.vi"
    assert _loaded_after(code) == "[]"
