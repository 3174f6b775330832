"""Sparse finite mixtures (issue 15): the sampled Dirichlet concentration on the
kernel against PyMC, its hyperprior, and the posterior of the number of clusters."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special, stats

from bayesgmm.bayes import _nutpie_bridge
from bayesgmm.bayes.density import MixtureDensity
from bayesgmm.bayes.spec import (
    concentration_hyperprior,
    model_data,
    parameter_layout,
    prior_model_data,
    sample_prior_raw,
)

# (covariance type, K, D, hyperprior): the "sparse" default and an explicit Gamma
SPARSE_CASES = [("full", 3, 2, "sparse"), ("diag", 4, 1, ("gamma", 2.0, 3.0))]


def _sparse_problem(kind, k, d, conc, seed=0, n=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.3, 4.0, d) + rng.normal(0, 5, d)
    priors = {"weights_concentration": conc, "lkj_eta": 1.7,
              "sd_scale": rng.uniform(0.5, 2.0, d) * X.std(axis=0)}
    reg = rng.uniform(0.01, 0.1, d) * X.var(axis=0)
    return X, priors, reg


def _point(density, rng):
    x = rng.normal(scale=0.7, size=density.n_dim)
    x[0] = rng.normal(-2.0, 1.5)  # log alpha: from about 0.01 to 1
    return x


@pytest.mark.parametrize(("kind", "k", "d", "conc"), SPARSE_CASES)
def test_sampled_concentration_kernel_equals_pymc(kind, k, d, conc):
    from test_bayes_density import _pymc_reference  # the py-linker graphs (about 1 s each)

    from bayesgmm.bayes.model import build_gmm_model

    X, priors, reg = _sparse_problem(kind, k, d, conc)
    model = build_gmm_model(X, k, kind, priors, reg)
    density = MixtureDensity(k, d, kind, model_data(X, k, priors, reg, kind))
    assert density.names[0] == "alpha_log__"
    assert density.names == [model.rvs_to_values[rv].name for rv in model.free_RVs]
    logp, dlogp = _pymc_reference(model)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = _point(density, rng)
        value, grad = density.value_and_grad(x)
        point = density.unflatten(x)
        # the same formulas in another order: agreement to rounding error
        assert_allclose(value, logp(point), rtol=1e-11)
        assert_allclose(grad, dlogp(point), rtol=1e-9, atol=1e-9 * np.abs(grad).max())


def test_sampled_concentration_terms_against_scipy():
    # independent of PyMC: the alpha-dependent part of the log-density is the Gamma
    # log-pdf of alpha + log alpha (Jacobian) + the Dirichlet log-pdf of w + the simplex
    # Jacobian; compare differences between two alphas at the same w, mu, sd
    k, d = 5, 1
    X, priors, reg = _sparse_problem("diag", k, d, ("gamma", 3.0, 7.0), seed=3)
    density = MixtureDensity(k, d, "diag", model_data(X, k, priors, reg, "diag"))
    x = _point(density, np.random.default_rng(4))
    w = np.exp(np.append(x[1:k], -x[1:k].sum()))
    w /= w.sum()
    for log_a in (-4.0, -1.0, 0.5):
        y = x.copy()
        y[0] = log_a
        a = np.exp(log_a)
        expected = (stats.gamma(3.0, scale=1 / 7.0).logpdf(a) + log_a
                    + stats.dirichlet(np.full(k, a)).logpdf(w))
        y0 = x.copy()
        y0[0] = 0.0
        base = (stats.gamma(3.0, scale=1 / 7.0).logpdf(1.0)
                + stats.dirichlet(np.ones(k)).logpdf(w))
        # the w-Jacobian and the rest cancel in the difference; scipy's dirichlet logpdf
        # to about 1e-12 relative
        assert_allclose(density.logp(y) - density.logp(y0), expected - base, rtol=1e-9)


def test_sampled_concentration_gradient_matches_finite_differences():
    k, d = 4, 2
    X, priors, reg = _sparse_problem("full", k, d, "sparse", seed=5, n=60)
    density = MixtureDensity(k, d, "full", model_data(X, k, priors, reg, "full"))
    for log_a in (-6.0, -2.3, 1.0):  # digamma's recurrence and asymptotic branches
        x = _point(density, np.random.default_rng(2))
        x[0] = log_a
        _, grad = density.value_and_grad(x)
        h = 1e-5
        numeric = np.array([(density.logp(x + h * e) - density.logp(x - h * e)) / (2 * h)
                            for e in np.eye(density.n_dim)])
        # central differences: error O(h^2) ~ 1e-8 relative
        assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * np.abs(grad).max())


def test_c_callback_reads_the_sampled_concentration():
    from test_bayes_density import _call_logp_callback

    X, priors, reg = _sparse_problem("full", 3, 2, "sparse", seed=7)
    density = MixtureDensity(3, 2, "full", model_data(X, 3, priors, reg, "full"))
    x = _point(density, np.random.default_rng(3))
    code, value, grad = _call_logp_callback(density, x)
    expected_value, expected_grad = density.value_and_grad(x)
    assert code == 0
    assert_allclose(value, expected_value, rtol=1e-13)
    assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-13)
    buf = _nutpie_bridge.pack_arguments(density.kernel_args, density.n_dim)
    assert buf.size > 0


def test_concentration_hyperprior_settings_and_errors():
    assert concentration_hyperprior("sparse", 10).tolist() == [10.0, 100.0]  # MW et al. 2016
    assert concentration_hyperprior(("gamma", 1, 2), 3).tolist() == [1.0, 2.0]
    assert concentration_hyperprior(0.01, 3) is None  # a fixed small float stays possible
    for bad, match in [("sprase", "must be 'sparse'"), (("gamma", 1.0), r"\('gamma', shape"),
                       (("gamma", -1.0, 2.0), "shape > 0"), (("beta", 1, 1), r"\('gamma'")]:
        with pytest.raises(ValueError, match=match):
            concentration_hyperprior(bad, 3)
    with pytest.raises(ValueError, match="n_components >= 2"):
        concentration_hyperprior("sparse", 1)
    names = [n for n, _ in parameter_layout(3, 2, "diag", sampled_concentration=True)]
    assert names == ["alpha_log__", "w_simplex__", "mu_std", "sd_std_log__"]
    md = model_data(np.random.default_rng(0).normal(size=(20, 2)), 10,
                    {"weights_concentration": "sparse"})
    assert md.concentration_prior.tolist() == [10.0, 100.0]
    assert "concentration_prior" in md.data_dict()
    fixed = model_data(np.random.default_rng(0).normal(size=(20, 2)), 3,
                       {"weights_concentration": 0.01})
    assert fixed.concentration_prior is None and np.all(fixed.weights_concentration == 0.01)


def test_prior_draws_of_the_sparse_hyperprior():
    pri = dict(weights_concentration=("gamma", 2.0, 20.0), means_loc=0.0, means_scale=1.0,
               sd_scale=1.0)
    md = prior_model_data(6, 1, pri, 1e-6, "diag")
    raw = sample_prior_raw(md, "diag", 20000, random_state=0)
    # alpha ~ Gamma(2, rate 20): KS against scipy
    assert stats.kstest(raw["alpha"], stats.gamma(2.0, scale=1 / 20.0).cdf).pvalue > 1e-3
    # given alpha, w_1 ~ Beta(alpha, 5 alpha); alpha ~ 0.1 makes most draws underflow in
    # numpy's Dirichlet, the log-scale draw must not: P(w_1 <= t | alpha) by the
    # probability integral transform is Uniform(0, 1)
    u = special.betainc(raw["alpha"], 5 * raw["alpha"], raw["w"][:, 0])
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert_allclose(raw["w"].sum(axis=1), 1.0, rtol=1e-12)
