"""The Numba kernel behind NUTS: value and gradient against PyMC and finite
differences, thread safety, and the C-callback route into nutpie."""

import threading
import warnings

import numpy as np
import pytensor
import pytest
from numpy.testing import assert_allclose
from pytensor.compile.mode import Mode

import bayesgmm as bg
from bayesgmm.bayes import _nutpie_bridge
from bayesgmm.bayes.density import MixtureDensity, parameter_layout
from bayesgmm.bayes.model import build_gmm_model, model_data

# (K, D) pairs: one component, 1-D, and the unrolled (D <= 5) and batched (D > 5)
# covariance algebra of the PyMC model
SHAPES = {
    "full": [(1, 1), (3, 2), (2, 3), (2, 6)],
    "tied": [(1, 1), (3, 2), (2, 6)],
    "diag": [(3, 1), (3, 2), (2, 3)],
    "spherical": [(1, 3), (3, 2)],
}
CASES = [(kind, k, d) for kind, shapes in SHAPES.items() for k, d in shapes]


def _problem(kind, k, d, seed=0, n=40):
    """Data with unequal scales and offsets, non-default priors and floors."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.3, 4.0, d) + rng.normal(0, 5, d)
    priors = {"weights_concentration": rng.uniform(0.5, 3.0, k), "lkj_eta": 1.7,
              "sd_scale": rng.uniform(0.5, 2.0, d) * X.std(axis=0),
              "means_scale": 3.0 * X.std(axis=0), "means_loc": X.mean(axis=0) + 0.3}
    reg = rng.uniform(0.01, 0.1, d) * X.var(axis=0)
    return X, priors, reg


def _pymc_reference(model):
    """PyMC's own log-density and gradient of ``model``, PyTensor's Python implementations.

    ``cxx=""`` and the "py" linker skip every C and Numba compilation (about 1 s per
    model instead of 30-40 s on an empty cache); speed does not matter here.
    """
    mode = Mode(linker="py", optimizer="fast_compile")
    with pytensor.config.change_flags(cxx=""):
        return model.compile_logp(mode=mode), model.compile_dlogp(mode=mode)


@pytest.mark.parametrize(("kind", "k", "d"), CASES)
def test_kernel_equals_pymc_model_logp_and_gradient(kind, k, d):
    X, priors, reg = _problem(kind, k, d)
    model = build_gmm_model(X, k, kind, priors, reg)
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    assert density.names == [model.rvs_to_values[rv].name for rv in model.free_RVs]
    logp, dlogp = _pymc_reference(model)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.normal(scale=0.7, size=density.n_dim)
        value, grad = density.value_and_grad(x)
        point = density.unflatten(x)
        # same formulas evaluated in another order: agreement to rounding error
        assert_allclose(value, logp(point), rtol=1e-11)
        assert_allclose(grad, dlogp(point), rtol=1e-9, atol=1e-9 * np.abs(grad).max())


@pytest.mark.parametrize("kind", list(SHAPES))
def test_kernel_gradient_matches_finite_differences(kind):
    # independent of PyMC: central differences, error O(h^2) ~ 1e-8 relative
    k, d = 3, 3
    X, priors, reg = _problem(kind, k, d, seed=5, n=60)
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    x = np.random.default_rng(2).normal(scale=0.5, size=density.n_dim)
    _, grad = density.value_and_grad(x)
    h = 1e-5
    numeric = np.array([
        (density.logp(x + h * e) - density.logp(x - h * e)) / (2 * h)
        for e in np.eye(density.n_dim)
    ])
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * np.abs(grad).max())


def test_layout_follows_the_model():
    assert [n for n, _ in parameter_layout(1, 2, "diag")] == ["mu_std", "sd_std_log__"]
    assert dict(parameter_layout(4, 3, "tied"))["cpc_u_logodds__"] == (3,)
    assert dict(parameter_layout(4, 3, "spherical"))["sd_std_log__"] == (4,)
    with pytest.raises(ValueError, match="covariance_type"):
        parameter_layout(2, 2, "banded")


def test_not_positive_definite_gives_minus_inf():
    # with no floor, standard deviations of exp(-800) = 0 make a singular covariance
    X = np.random.default_rng(0).normal(size=(20, 2))
    density = MixtureDensity(2, 2, "full", model_data(X, 2, None, 0.0, "full"))
    point = {"w_simplex__": np.zeros(1), "mu_std": np.zeros((2, 2)),
             "sd_std_log__": np.full((2, 2), -800.0), "cpc_u_logodds__": np.zeros((2, 1))}
    value, grad = density.value_and_grad(density.flatten(point))
    assert value == -np.inf and np.all(grad == 0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(11,\)"):
        density.value_and_grad(np.zeros(3))


def test_threads_evaluate_the_kernel_at_once():
    # the kernel runs without the GIL and writes only into its own gradient array:
    # every threaded result must equal the serial one exactly
    X, priors, reg = _problem("full", 3, 3, n=400)
    density = MixtureDensity(3, 3, "full", model_data(X, 3, priors, reg, "full"))
    points = np.random.default_rng(0).normal(scale=0.3, size=(6, density.n_dim))
    serial = [density.value_and_grad(x) for x in points]
    errors = []

    def work(i):
        for _ in range(200):
            value, grad = density.value_and_grad(points[i])
            if value != serial[i][0] or not np.array_equal(grad, serial[i][1]):
                errors.append(i)
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(points))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_c_callback_and_python_route_give_the_same_draws(monkeypatch):
    # The C callback (no Python while sampling) and nutpie's from_pyfunc route call
    # the same kernel: with the same seed the draws agree to rounding.
    # a nutpie outside the tested range, or one that changes the interface, must be noticed
    assert _nutpie_bridge.interface_problem() is None
    X = bg.datasets.make_blobs_gmm(150, 2, 3, random_state=0).X

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short run: ESS warnings are not the point
            est = bg.BayesGMM(3, draws=80, tune=80, chains=2, random_state=4,
                              progressbar=False).fit(X)
        return est.result_.idata["posterior"]["means"].values, est.timing_

    via_c, timing = fit()
    monkeypatch.setattr(_nutpie_bridge, "interface_problem", lambda: "simulated")
    via_python, _ = fit()
    assert_allclose(via_c, via_python, rtol=1e-9, atol=1e-12)
    assert timing["compile"] < 60.0 and np.isfinite(timing["sample"])


def test_pack_arguments_layout():
    X, priors, reg = _problem("tied", 2, 3)
    density = MixtureDensity(2, 3, "tied", model_data(X, 2, priors, reg, "tied"))
    buf = _nutpie_bridge.pack_arguments(density.kernel_args, density.n_dim)
    assert buf.dtype == np.float64 and buf.flags.c_contiguous
    length, n, d, k, code, n_dim, const = buf[:7]
    assert code == density.kernel_args[9]  # the covariance code
    assert (length, n, d, k, n_dim) == (buf.size, 40, 3, 2, density.n_dim)
    assert const == density.kernel_args[7]
    assert_allclose(buf[7:7 + 120], density.kernel_args[0].ravel())


def _call_logp_callback(density, x):
    """Call the compiled C callback the way nutpie's Rust core does."""
    import ctypes

    logp_cb, _ = _nutpie_bridge._compiled_callbacks()
    buf = _nutpie_bridge.pack_arguments(density.kernel_args, density.n_dim)
    x = np.ascontiguousarray(x, dtype=np.float64)
    grad, value = np.empty(density.n_dim), np.empty(1)
    ptr = ctypes.POINTER(ctypes.c_double)
    code = logp_cb.ctypes(density.n_dim, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr),
                          value.ctypes.data_as(ptr), buf.ctypes.data_as(ptr))
    return code, value[0], grad


@pytest.mark.parametrize(("kind", "k", "d"), [("full", 3, 2), ("spherical", 2, 3)])
def test_c_callback_returns_the_kernel_values(kind, k, d):
    X, priors, reg = _problem(kind, k, d, seed=7)
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    x = np.random.default_rng(3).normal(size=density.n_dim)
    code, value, grad = _call_logp_callback(density, x)
    expected_value, expected_grad = density.value_and_grad(x)
    assert code == 0
    assert_allclose(value, expected_value, rtol=1e-13)
    assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-13)


def test_c_callback_reports_a_bad_point():
    X = np.random.default_rng(0).normal(size=(20, 2))
    density = MixtureDensity(2, 2, "full", model_data(X, 2, None, 0.0, "full"))
    x = np.zeros(density.n_dim)
    x[density.slices[density.names.index("sd_std_log__")]] = -800.0
    code, value, _ = _call_logp_callback(density, x)
    assert code == 4 and value == -np.inf  # the code nutpie's PyMC backend uses for it


@pytest.mark.parametrize("kind", ["full", "tied"])
@pytest.mark.parametrize("log_odds", [-60.0, 40.0, 60.0])
def test_partial_correlation_at_plus_minus_one_stays_finite(kind, log_odds):
    # Found by SBC: beyond |log-odds| ~ 37, z = 2u - 1 rounds to +-1 and the old
    # gradient's z / (1 - z^2) divided by zero, an exception the C callback swallowed
    # (nutpie then read an unwritten value as a success).  1 - z^2 = 4 u (1 - u) is
    # now formed from log u and log(1 - u), and the division cancels.
    X, priors, reg = _problem(kind, 2, 3, seed=8)
    density = MixtureDensity(2, 3, kind, model_data(X, 2, priors, reg, kind))
    x = np.random.default_rng(5).normal(scale=0.3, size=density.n_dim)
    cpc = density.slices[density.names.index("cpc_u_logodds__")]
    x[cpc.start] = log_odds  # the first pair of the first matrix
    code, value, grad = _call_logp_callback(density, x)
    assert code == 0 and np.isfinite(value) and np.all(np.isfinite(grad))
    expected_value, expected_grad = density.value_and_grad(x)
    assert_allclose(value, expected_value, rtol=1e-13)
    assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-13)
    # the gradient along that coordinate still matches central differences
    # (the log-density is nearly linear there: slope about -a)
    h = 1e-3
    e = np.zeros(density.n_dim)
    e[cpc.start] = 1.0
    numeric = (density.logp(x + h * e) - density.logp(x - h * e)) / (2 * h)
    assert_allclose(grad[cpc.start], numeric, rtol=1e-6)


# ---------------------------------------------------------------------------
# nutpie's private interface: version bound, signature check, fallback
# ---------------------------------------------------------------------------


def _small_fit(**kwargs):
    X = bg.datasets.make_blobs_gmm(120, 2, 2, random_state=1).X
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = bg.BayesGMM(2, draws=60, tune=60, chains=2, random_state=0,
                          progressbar=False, **kwargs).fit(X)
    fallbacks = [w for w in caught if issubclass(w.category, bg.SamplerFallbackWarning)]
    return est, fallbacks


def test_pyproject_bound_matches_the_tested_range():
    # The dependency bound and the bridge's own check must name the same releases.
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    spec = next(d for d in meta["project"]["dependencies"] if d.startswith("nutpie"))
    low, high = _nutpie_bridge.TESTED_NUTPIE
    assert spec == f"nutpie>={'.'.join(map(str, low))},<{'.'.join(map(str, high[:2]))}"


def test_interface_check_names_a_changed_signature(monkeypatch):
    # nutpie 0.16.8's hook took five arguments; that is what broke fits before the check.
    from nutpie import compile_pymc

    def old_hook(self, settings, init_mean, cores, progress_type, store):
        raise AssertionError("never called")

    monkeypatch.setattr(compile_pymc.CompiledPyMCModel, "_make_sampler", old_hook)
    problem = _nutpie_bridge.interface_problem()
    assert problem is not None and "progress_type, store)" in problem
    with pytest.raises(RuntimeError, match="_make_sampler takes"):
        _nutpie_bridge.kernel_model(None, lambda seed: None)


@pytest.mark.parametrize("version, ok", [("0.16.8", False), ("0.16.9", True),
                                         ("0.16.11", True), ("0.17.0", False),
                                         ("1.0.0rc1", False)])
def test_interface_check_enforces_the_version_range(monkeypatch, version, ok):
    monkeypatch.setattr(_nutpie_bridge._lib, "__version__", version, raising=False)
    problem = _nutpie_bridge.interface_problem()
    assert (problem is None) is ok
    if not ok:
        assert version in problem and "tested range" in problem


def test_incompatible_nutpie_interface_falls_back_with_one_warning(monkeypatch):
    # Simulate nutpie 0.16.8: the sampler calls _make_sampler with seven arguments but the
    # model implements five -> TypeError inside nutpie.sample.  The check is bypassed
    # (it would have caught this) to prove that a failure *during* the route also falls back.
    reference, none = _small_fit()
    assert none == []

    def _make_sampler(self, settings, init_mean, cores, progress_type, store):
        raise AssertionError("nutpie >= 0.16.9 passes seven arguments")

    monkeypatch.setattr(_nutpie_bridge.KernelModel, "_make_sampler", _make_sampler)
    est, fallbacks = _small_fit()
    assert len(fallbacks) == 1
    assert "TypeError" in str(fallbacks[0].message)
    assert "_make_sampler" in str(fallbacks[0].message)
    # the fallback samples the same kernel with the same seed: the same draws
    assert_allclose(est.result_.idata["posterior"]["means"].values,
                    reference.result_.idata["posterior"]["means"].values, rtol=1e-9, atol=1e-12)


def test_fast_route_is_skipped_when_the_check_fails(monkeypatch):
    called = []
    monkeypatch.setattr(_nutpie_bridge, "interface_problem", lambda: "nutpie 9.9 is outside")
    monkeypatch.setattr(_nutpie_bridge, "kernel_model", lambda *a: called.append(a))
    est, fallbacks = _small_fit()
    assert called == [] and len(fallbacks) == 1
    assert "nutpie 9.9 is outside" in str(fallbacks[0].message)
    assert np.isfinite(est.result_.log_likelihood)


# ---------------------------------------------------------------------------
# an edited model goes to its own PyMC graph, never to the kernel
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize(("k", "d"), [(2, 3), (1, 2), (3, 1)])
def test_kernel_mismatch_accepts_every_model_bayesgmm_writes(kind, k, d):
    from bayesgmm.bayes import inference

    X = np.random.default_rng(0).normal(size=(30, d))
    model = build_gmm_model(X, k, kind)
    assert inference.kernel_mismatch(model) is None
    k_read, d_read, kind_read = inference.model_structure(model)
    assert (k_read, d_read) == (k, d)
    # where two structures give the same shapes (D = 1, or K = 1) they are the same model
    same = {kind, kind_read} <= {"full", "diag"} or (
        {kind, kind_read} <= {"spherical", "tied"} and ((d == 1 and k == 1) or kind != "tied"))
    assert kind_read == kind or same
    model.set_data("means_scale", np.full(d, 5.0))  # new prior values: still the kernel's
    assert inference.kernel_mismatch(model) is None


def test_the_likelihood_is_an_observed_variable_pymc_can_simulate_and_score():
    # pm.sample_prior_predictive / sample_posterior_predictive and pm.compute_log_likelihood
    # need an observed variable (the likelihood was a Potential)
    import pymc as pm

    X = np.random.default_rng(0).normal(size=(25, 2))
    model = build_gmm_model(X, 2, "full")
    assert [v.name for v in model.observed_RVs] == ["X_obs"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = pm.sample_prior_predictive(draws=400, model=model, random_seed=1,
                                           compile_kwargs={"mode": "FAST_COMPILE"})
    sims = prior["prior_predictive"]["X_obs"].values
    assert sims.shape == (1, 400, 25, 2)
    # standardized units: prior draws centre near 0 (means ~ N(0, 2), sds ~ HalfNormal(1))
    assert abs(float(np.median(sims))) < 0.5
    pointwise = model.logp(vars=[model["X_obs"]], sum=False)[0]
    values = pointwise.eval({v: model.initial_point()[v.name] for v in model.value_vars},
                            mode="FAST_COMPILE")
    assert values.shape == (25,)  # one term per row: what pm.compute_log_likelihood stores


def test_kernel_mismatch_names_an_added_potential_and_a_replaced_container():
    import pymc as pm

    from bayesgmm.bayes import inference

    X = np.random.default_rng(0).normal(size=(30, 2))
    model = build_gmm_model(X, 2, "full")
    with model:
        pm.Potential("pin", -((model["mu_std"][0, 0] - 3.0) ** 2))
    assert "pin" in inference.kernel_mismatch(model)
    fixed = pm.do(build_gmm_model(X, 2, "full"), {"lkj_eta": 50.0})
    assert inference.kernel_mismatch(fixed) is not None


class _Routed(Exception):
    pass


def test_an_edited_model_is_sampled_on_its_own_graph(monkeypatch):
    # run_nuts's default (the kernel) must not sample an edited model: it warns and
    # hands the model to nutpie's compilation of the PyMC graph (stubbed here: that
    # compile takes a minute; the real run is in test_edited_model_posterior_follows_the_edit)
    import pymc as pm

    from bayesgmm.bayes import inference

    seen = {}

    def native(model, settings, edited):
        seen["edited"] = edited
        raise _Routed

    monkeypatch.setattr(inference, "_sample_nutpie_native", native)
    model = build_gmm_model(np.random.default_rng(0).normal(size=(30, 2)), 2, "diag")
    with model:
        pm.Potential("pin", -((model["mu_std"][0, 0] - 3.0) ** 2))
    with pytest.warns(bg.SamplerFallbackWarning, match="pin"), pytest.raises(_Routed):
        inference.run_nuts(model, draws=10, tune=10, chains=1, random_seed=0,
                           progressbar=False)
    assert seen == {"edited": True}


def test_an_edited_model_is_fitted_by_pm_fit_not_the_kernel(monkeypatch):
    import pymc as pm

    from bayesgmm.bayes import inference

    def advi(*args, **kwargs):
        raise _Routed

    monkeypatch.setattr(inference.pm, "ADVI", advi)
    monkeypatch.setattr(inference.vi, "fit_advi", lambda *a, **k: pytest.fail("kernel used"))
    model = build_gmm_model(np.random.default_rng(0).normal(size=(30, 2)), 2, "diag")
    with model:
        pm.Potential("pin", -((model["mu_std"][0, 0] - 3.0) ** 2))
    with pytest.warns(bg.SamplerFallbackWarning, match="pin"), pytest.raises(_Routed):
        inference.run_advi(model, n_steps=10, progressbar=False)


@pytest.mark.slow
def test_edited_model_posterior_follows_the_edit():
    import pymc as pm

    from bayesgmm.bayes import inference

    X = np.random.default_rng(0).normal(size=(60, 1))
    model = build_gmm_model(X, 1, "diag")
    with model:  # a strong extra term pulls the standardized mean to 3
        pm.Potential("pin", -50.0 * (model["mu_std"][0, 0] - 3.0) ** 2)
    with pytest.warns(bg.SamplerFallbackWarning):
        out = inference.run_nuts(model, draws=300, tune=300, chains=2, random_seed=0,
                                 progressbar=False)
    # prior N(0, 2) x likelihood (60 points, sd 1 at 0) x pin N(3, 0.1): mean near 2.9
    assert 2.5 < out.raw["mu_std"].mean() < 3.0
