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
    # issue 16: a newcomer's `import bayesgmm` pays for none of the heavy stacks
    heavy = ('pymc', 'pytensor', 'nutpie', 'numba', 'matplotlib', 'dask', 'distributed')
    code = ("import sys, bayesgmm; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
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


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_file(name):
    """The file of a bayesgmm module (``bayesgmm.bayes.relabel``), or None."""
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _runtime_bayesgmm_imports(path):
    """Every bayesgmm module ``path`` imports at run time, function-local imports included.

    Imports under ``if TYPE_CHECKING:`` are left out: they never run.
    """
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "bayesgmm")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "bayesgmm":
                for alias in node.names:  # `from bayesgmm import em` imports bayesgmm.em
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if _module_file(sub) else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _imported_closure(module):
    """The bayesgmm modules ``module`` reaches through imports, package ``__init__``s aside.

    The package's ``__init__`` is its public facade (it imports everything on purpose);
    the layers are about the modules themselves.
    """
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        if path.name != "__init__.py":
            todo.extend(_runtime_bayesgmm_imports(path))
    return seen - {module}


def test_the_walker_sees_function_local_imports_and_skips_type_checking(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    from bayesgmm.results import GMMResult\n"
                      "def f():\n    from bayesgmm.compare import compare\n"
                      "    from bayesgmm import em\n")
    assert _runtime_bayesgmm_imports(source) == {"bayesgmm.compare", "bayesgmm.em"}


@pytest.mark.parametrize(("module", "forbidden"), [
    ("bayesgmm.plotting", {"bayesgmm.compare", "bayesgmm.results", "bayesgmm.reporting",
                           "bayesgmm.selection", "bayesgmm.cli"}),
    ("bayesgmm.results", {"bayesgmm.compare", "bayesgmm.reporting", "bayesgmm.selection",
                          "bayesgmm.cli"}),
    ("bayesgmm.bayes.relabel", {"bayesgmm.compare", "bayesgmm.results", "bayesgmm.plotting"}),
])
def test_no_import_circle_through_plotting_results_and_compare(module, forbidden):
    # results.plot imports plotting, and compare imports results: so plotting must reach
    # neither (not even inside a function, not even through another module), and results
    # must not reach compare
    reached = _imported_closure(module)
    assert not reached & forbidden, sorted(reached & forbidden)


def test_bayesian_stack_imports_nutpie_only_when_a_fit_samples_with_it():
    # issue 16: nutpie imports ArviZ, arviz-plots and matplotlib; reaching BayesGMM,
    # the inference module or the C-callback bridge must not pay for it
    code = ("import bayesgmm as bg\n"
            "bg.BayesGMM\n"
            "from bayesgmm.bayes import inference, _nutpie_bridge\n"
            "_nutpie_bridge.pack_arguments")
    probe = (f"import sys\n{code}\n"
             "print(sorted(m for m in ('nutpie', 'matplotlib', 'arviz_plots') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    assert out == "[]"
