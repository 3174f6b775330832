"""The import layers of DESIGN.md hold."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesgmm"
NUMPY_ONLY = ["_validation.py", "em.py", "criteria.py", "bayes/relabel.py", "bayes/params.py",
              "bayes/_kernel.py"]
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
