"""The Numba kernel on data with missing entries (issue 12): the observed-data
log-density and its gradient against PyMC's model, scipy and finite differences,
the C callback nutpie calls, and the default routes (NUTS, ADVI) running on it."""

import dataclasses
import warnings

import numpy as np
import pytensor
import pytest
from conftest import with_holes
from numpy.testing import assert_allclose
from pytensor.compile.mode import Mode
from scipy import stats
from scipy.special import logsumexp

import bayesgmm as bg
from bayesgmm.bayes import _kernel, _nutpie_bridge
from bayesgmm.bayes.density import MixtureDensity
from bayesgmm.bayes.inference import kernel_mismatch, run_advi
from bayesgmm.bayes.model import build_gmm_model, model_data
from bayesgmm.bayes.params import params_from_raw, raw_from_unconstrained

# (K, D): one component, and the unrolled (D <= 5) and batched (D > 5) shapes of the
# PyMC model (with one feature no row can miss an entry: empty rows are refused)
SHAPES = {
    "full": [(1, 2), (3, 3), (2, 6)],
    "tied": [(3, 4)],
    "diag": [(2, 4)],
    "spherical": [(2, 3)],
}
CASES = [(kind, k, d) for kind, shapes in SHAPES.items() for k, d in shapes]


def _holey_problem(kind, k, d, seed=0, n=45):
    """Data with unequal scales, 30% MCAR holes, and rows observed in one coordinate only.

    Every pattern size from 1 to D observed coordinates occurs (for D > 1), rows of
    one pattern are scattered (not adjacent), and the priors are not the defaults.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.3, 4.0, d) + rng.normal(0, 5, d)
    holes = rng.random(X.shape) < 0.3
    holes[holes.all(axis=1), 0] = False
    if d > 1:
        for i, row in enumerate((2, 9, 17)):  # one observed coordinate, varying which
            holes[row] = True
            holes[row, i % d] = False
    X[holes] = np.nan
    priors = {"weights_concentration": rng.uniform(0.5, 3.0, k), "lkj_eta": 1.7,
              "sd_scale": rng.uniform(0.5, 2.0, d) * np.nanstd(X, axis=0),
              "means_scale": 3.0 * np.nanstd(X, axis=0),
              "means_loc": np.nanmean(X, axis=0) + 0.3}
    reg = rng.uniform(0.01, 0.1, d) * np.nanvar(X, axis=0)
    return X, priors, reg


def _pymc_reference(model):
    """PyMC's log-density and gradient of ``model`` with PyTensor's Python linker (no compile)."""
    mode = Mode(linker="py", optimizer="fast_compile")
    with pytensor.config.change_flags(cxx=""):
        return model.compile_logp(mode=mode), model.compile_dlogp(mode=mode)


@pytest.mark.parametrize(("kind", "k", "d"), CASES)
def test_kernel_equals_pymc_logp_and_dlogp_with_missing_entries(kind, k, d):
    X, priors, reg = _holey_problem(kind, k, d)
    assert np.isnan(X).any()
    model = build_gmm_model(X, k, kind, priors, reg)
    assert "observed_mask" in model.named_vars  # PyMC's masked likelihood, batched Cholesky
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    assert density.names == [model.rvs_to_values[rv].name for rv in model.free_RVs]
    logp, dlogp = _pymc_reference(model)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.normal(scale=0.7, size=density.n_dim)
        value, grad = density.value_and_grad(x)
        point = density.unflatten(x)
        # The same quantities by two routes: PyMC factors the D x D matrix padded with
        # the identity, the kernel the |O| x |O| block, and they sum rows in different
        # orders. Rounding differs by ~1e-15 relative (measured); 1e-9 would still catch
        # a wrong term, e.g. one row's 0.5 log 2 pi (~1e-3 of the value here).
        assert_allclose(value, logp(point), rtol=1e-9)
        assert_allclose(grad, dlogp(point), rtol=1e-9, atol=1e-9 * np.abs(grad).max())


def _standardized_parameters(density, x):
    """Weights, means and covariances (standardized units) at the flat point ``x``."""
    raw = raw_from_unconstrained(density.unflatten(x))
    d = density.n_features
    return params_from_raw(raw, covariance_type=density.covariance_type,
                           n_components=density.n_components, center=np.zeros(d),
                           scale=np.ones(d), reg_diag=density.data.reg_diag)


@pytest.mark.parametrize("kind", list(SHAPES))
def test_likelihood_part_is_the_observed_data_density_by_scipy(kind):
    # Independent of PyMC: the log-density on all rows minus the one on the complete
    # rows only (same priors, same standardization) is the likelihood of the incomplete
    # rows, sum_n log sum_k w_k N(z_nO | mu_kO, Sigma_kOO) with scipy per row.
    k, d = 3, 3
    X, priors, reg = _holey_problem(kind, k, d, seed=4, n=60)
    md = model_data(X, k, priors, reg, kind)
    complete = ~np.isnan(md.X_std).any(axis=1)
    everything = MixtureDensity(k, d, kind, md)
    only_complete = MixtureDensity(k, d, kind, dataclasses.replace(md, X_std=md.X_std[complete]))
    x = np.random.default_rng(2).normal(scale=0.5, size=everything.n_dim)
    weights, means, covs = _standardized_parameters(everything, x)
    expected = 0.0
    for z in md.X_std[~complete]:
        o = ~np.isnan(z)
        expected += logsumexp([
            np.log(w) + stats.multivariate_normal(m[o], c[np.ix_(o, o)]).logpdf(z[o])
            for w, m, c in zip(weights, means, covs, strict=True)])
    got = everything.logp(x) - only_complete.logp(x)
    # the difference of two sums of ~60 terms of size ~5: absolute rounding ~1e-13
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-10)


@pytest.mark.parametrize("kind", list(SHAPES))
def test_gradient_matches_finite_differences_with_missing_entries(kind):
    # independent of PyMC: central differences, truncation error O(h^2) ~ 1e-8 relative
    k, d = 2, 3
    X, priors, reg = _holey_problem(kind, k, d, seed=5, n=60)
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    x = np.random.default_rng(3).normal(scale=0.5, size=density.n_dim)
    _, grad = density.value_and_grad(x)
    h = 1e-5
    numeric = np.array([(density.logp(x + h * e) - density.logp(x - h * e)) / (2 * h)
                        for e in np.eye(density.n_dim)])
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * np.abs(grad).max())


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_row_order_does_not_change_the_value(kind):
    # density.py sorts rows by pattern (one factorisation per pattern); the kernel itself
    # must give the same answer on rows in any order (many short runs of a pattern)
    k, d = 2, 4
    X, priors, reg = _holey_problem(kind, k, d, seed=6, n=80)
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    Z, *rest = density.kernel_args
    runs = 1 + np.sum(np.any(np.isnan(Z[1:]) != np.isnan(Z[:-1]), axis=1))
    n_patterns = len(np.unique(np.isnan(Z), axis=0))
    assert runs == n_patterns  # sorted: one run per pattern
    shuffled = Z[np.random.default_rng(0).permutation(len(Z))]
    x = np.random.default_rng(4).normal(scale=0.5, size=density.n_dim)
    g_sorted, g_shuffled = np.empty(density.n_dim), np.empty(density.n_dim)
    v_sorted = _kernel.log_density_grad(x, g_sorted, Z, *rest)
    v_shuffled = _kernel.log_density_grad(x, g_shuffled, shuffled, *rest)
    # the same terms summed in another order: rounding only
    assert v_shuffled == pytest.approx(v_sorted, rel=1e-12)
    assert_allclose(g_shuffled, g_sorted, rtol=1e-10, atol=1e-12 * np.abs(g_sorted).max())


def test_pattern_sorted_keeps_complete_data_and_groups_patterns():
    Z = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(_kernel.pattern_sorted(Z), Z)  # complete: as it is
    Zm = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 4.0], [5.0, np.nan]])
    out = _kernel.pattern_sorted(Zm)
    assert out.flags.c_contiguous
    # the same rows (as a multiset), each pattern's rows adjacent
    assert sorted(map(str, out.tolist())) == sorted(map(str, Zm.tolist()))
    np.testing.assert_array_equal(np.isnan(out[:2]), [[False, True], [False, True]])


def test_a_singular_observed_block_gives_minus_inf():
    # no floor and standard deviations of exp(-800) = 0: every block is singular
    X = with_holes(np.random.default_rng(0).normal(size=(20, 3)), 0.3, 1)
    density = MixtureDensity(2, 3, "full", model_data(X, 2, None, 0.0, "full"))
    x = np.zeros(density.n_dim)
    x[density.slices[density.names.index("sd_std_log__")]] = -800.0
    value, grad = density.value_and_grad(x)
    assert value == -np.inf and np.all(grad == 0.0)


@pytest.mark.parametrize(("kind", "k", "d"), [("full", 3, 3), ("diag", 2, 4)])
def test_c_callback_marginalises_missing_entries_too(kind, k, d):
    # nutpie's Rust core gets the NaN-marked rows in the callback's buffer
    import ctypes

    X, priors, reg = _holey_problem(kind, k, d, seed=7)
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    logp_cb, _ = _nutpie_bridge._compiled_callbacks()
    buf = _nutpie_bridge.pack_arguments(density.kernel_args, density.n_dim)
    x = np.random.default_rng(3).normal(scale=0.5, size=density.n_dim)
    grad, value = np.empty(density.n_dim), np.empty(1)
    ptr = ctypes.POINTER(ctypes.c_double)
    code = logp_cb.ctypes(density.n_dim, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr),
                          value.ctypes.data_as(ptr), buf.ctypes.data_as(ptr))
    expected_value, expected_grad = density.value_and_grad(x)
    assert code == 0 and np.isfinite(value[0])
    assert_allclose(value[0], expected_value, rtol=1e-13)  # the same compiled function
    assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-13)


def test_kernel_accepts_bayesgmms_own_model_on_missing_data():
    X = with_holes(np.random.default_rng(0).normal(size=(30, 2)), 0.2, 0)
    assert kernel_mismatch(build_gmm_model(X, 2, "diag")) is None
    assert kernel_mismatch(build_gmm_model(X, 2, "full")) is None


def test_advi_on_missing_data_runs_on_the_kernel():
    # no SamplerFallbackWarning (warnings are errors) and the kernel engine recorded
    X = with_holes(bg.datasets.load_faithful().to_numpy()[:100], 0.2, 3)
    model = build_gmm_model(X, 2, "full")
    out = run_advi(model, n_steps=3000, draws=50, random_seed=0, progressbar=False,
                   built_here=True)
    assert out.variational.attrs["engine"] == "kernel"
    assert out.raw["mu_std"].shape == (1, 50, 2, 2)


def test_bayesgmm_nuts_on_missing_data_uses_the_kernel_route(monkeypatch):
    # the default sampler must reach the C-callback kernel model, not PyMC's graph
    calls = []
    original = _nutpie_bridge.kernel_model

    def spy(density, initial_point):
        calls.append(np.isnan(density.kernel_args[0]).sum())
        return original(density, initial_point)

    monkeypatch.setattr(_nutpie_bridge, "kernel_model", spy)
    X = with_holes(bg.datasets.load_faithful().to_numpy()[:60], 0.2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback would warn
        warnings.filterwarnings("ignore", category=bg.ConvergenceWarning)  # 50 draws
        fit = bg.BayesGMM(2, draws=50, tune=50, chains=1, random_state=0,
                          progressbar=False).fit(X)
    assert calls == [int(np.isnan(X).sum())]
    assert fit.result_.responsibilities.shape == (60, 2)
