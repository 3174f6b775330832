"""BayesGMM fits: a few short fits shared by every test of this module.

Each distinct (K, D, covariance_type) compiles one graph (seconds with a warm
PyTensor cache, about half a minute cold), so the fits below are few and small:
Old Faithful K=2 full by NUTS and by ADVI, plus one short fit per other
covariance type.  Full recovery checks live in test_bayes_slow.py.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

import bayesgmm as bg
from bayesgmm import posterior
from bayesgmm.exceptions import ConvergenceWarning, DiagnosticsWarning


def _fit(X, **kwargs):
    """Fit quietly: short test runs may warn about ESS or R-hat; tests check what matters."""
    params = {"random_state": 0, "progressbar": False, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DiagnosticsWarning)
        return bg.BayesGMM(**params).fit(X)


@pytest.fixture(scope="module")
def faithful_em(faithful):
    return bg.EMGMM(2, n_init=5, random_state=0).fit(faithful)


@pytest.fixture(scope="module")
def faithful_nuts(faithful):
    return _fit(faithful, n_components=2, draws=300, tune=300, chains=2)


@pytest.fixture(scope="module")
def faithful_advi(faithful):
    return _fit(faithful, n_components=2, method="advi", draws=300)


def _match(ref_means, means):
    """Order of ``means`` that matches ``ref_means`` (label-free comparison)."""
    cost = ((ref_means[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    return linear_sum_assignment(cost)[1]


# ---------------------------------------------------------------------------
# layout of the result
# ---------------------------------------------------------------------------


def test_result_layout(faithful_nuts, faithful):
    r = faithful_nuts.result_
    assert r.method == "nuts" and r.is_bayesian
    assert r.weights.dims == ("chain", "draw", "component")
    assert r.means.dims == ("chain", "draw", "component", "feature")
    assert r.covariances.dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert r.weights.sizes == {"chain": 2, "draw": 300, "component": 2}
    assert list(r.means["feature"].values) == list(faithful.columns)
    assert list(r.covariances["feature_bis"].values) == list(faithful.columns)
    assert r.responsibilities.dims == ("obs", "component")
    assert_allclose(r.responsibilities.sum("component"), 1.0)
    assert_allclose(r.weights.sum("component"), 1.0)
    groups = set(r.idata.children)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data",
            "relabeling"} <= groups
    ll = r.idata["log_likelihood"]["X"]
    assert ll.dims == ("chain", "draw", "obs") and ll.sizes["obs"] == len(faithful)
    assert "n_permuted" in r.idata["relabeling"].attrs
    assert isinstance(faithful_nuts.model_, __import__("pymc").Model)
    cov = r.covariances.values
    assert_allclose(cov, np.swapaxes(cov, -1, -2))
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_log_likelihood_group_is_the_marginal_density(faithful_nuts, faithful):
    r = faithful_nuts.result_
    post = r.idata["posterior"]
    w = post["weights"].values[0, :5]
    m = post["means"].values[0, :5]
    c = post["covariances"].values[0, :5]
    from scipy import stats

    X = faithful.to_numpy()
    for s in range(5):
        dens = sum(w[s, k] * stats.multivariate_normal(m[s, k], c[s, k]).pdf(X)
                   for k in range(2))
        assert_allclose(r.idata["log_likelihood"]["X"].values[0, s], np.log(dens), rtol=1e-8)


# ---------------------------------------------------------------------------
# agreement with EM (issue 3: means within 1 %, weights within 0.02)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fit_name", ["faithful_nuts", "faithful_advi"])
def test_agrees_with_em_on_faithful(fit_name, request, faithful_em, faithful):
    fit = request.getfixturevalue(fit_name)
    weights, means, _ = fit.result_.point_estimate()
    order = _match(faithful_em.means_, means.values)
    rel = np.abs(means.values[order] - faithful_em.means_) / np.abs(faithful_em.means_)
    assert rel.max() < 0.01
    assert np.abs(weights.values[order] - faithful_em.weights_).max() < 0.02
    assert adjusted_rand_score(faithful_em.predict(faithful), fit.predict(faithful)) > 0.95


def test_nuts_diagnostics(faithful_nuts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)  # 300 draws: ESS < 400 expected
        table = faithful_nuts.result_.diagnostics()
    assert table["r_hat"].max() < 1.05
    assert table.attrs["divergences"] == 0
    assert table.attrs["method"] == "nuts"
    assert table["ess_bulk"].min() > 50
    assert {"tree_depth_hits", "ebfmi", "draws_relabeled",
            "label_switches_within_chains"} <= set(table.attrs)


def test_responsibility_interval_brackets_the_median(faithful_nuts):
    r = faithful_nuts.result_
    iv = r.responsibility_interval(0.9)
    assert iv.dims == ("obs", "component", "ci_bound")
    lower, upper = iv.sel(ci_bound="lower"), iv.sel(ci_bound="upper")
    # (the mean of a skewed responsibility can fall outside an equal-tailed interval)
    median = posterior.responsibility_draws(r).median(("chain", "draw"))
    assert np.all(lower <= median) and np.all(median <= upper)
    assert np.all(lower >= 0) and np.all(upper <= 1)
    table = posterior.assignment_uncertainty(r)
    assert len(table) == r.n_obs
    # the most uncertain point lies between the two clusters
    assert table["entropy"].max() > 0.3 and table["probability"].min() < 0.9
    # against the posterior draws, by scipy: per draw s, r_sk = w_sk N(x | m_sk, C_sk) / sum_j
    # (posterior-mean responsibility, its equal-tailed 94% interval, entropy in nats)
    from scipy import stats
    from scipy.special import softmax

    post = r.idata["posterior"].to_dataset()
    w = post["weights"].transpose("chain", "draw", "component").values.reshape(-1, 2)
    m = post["means"].transpose("chain", "draw", "component", "feature").values.reshape(
        -1, 2, 2)
    c = post["covariances"].transpose("chain", "draw", "component", "feature",
                                      "feature_bis").values.reshape(-1, 2, 2, 2)
    X = r.idata["observed_data"]["X"].values
    logp = np.stack([[np.log(w[s, k]) + stats.multivariate_normal(m[s, k], c[s, k]).logpdf(X)
                      for k in range(2)] for s in range(len(w))])
    resp = softmax(logp, axis=1)  # (draw, component, obs)
    mean = resp.mean(axis=0)
    label = mean.argmax(axis=0)
    chosen = resp[:, label, np.arange(len(label))]
    assert_allclose(table["label"], label)
    assert_allclose(table["probability"], mean.max(axis=0), rtol=1e-9)
    assert_allclose(table["lower"], np.quantile(chosen, 0.03, axis=0), rtol=1e-9)
    assert_allclose(table["upper"], np.quantile(chosen, 0.97, axis=0), rtol=1e-9)
    assert_allclose(table["entropy"], stats.entropy(mean, axis=0), rtol=1e-7, atol=1e-12)


def test_waic_and_loo(faithful_nuts):
    r = faithful_nuts.result_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)  # a few high-variance points
        w = r.waic()
        lo = r.loo()
    assert np.isfinite(w.elpd) and w.se > 0 and 5 < w.p < 20
    assert w.pointwise.sizes["obs"] == r.n_obs
    assert abs(w.elpd - lo.elpd) < 2.0
    assert np.isfinite(r.aic()) and np.isfinite(r.bic()) and np.isfinite(r.icl())


def test_netcdf_round_trip(faithful_nuts, tmp_path):
    r = faithful_nuts.result_
    path = r.to_netcdf(tmp_path / "bayes.nc")
    back = bg.load(path)
    assert back.method == "nuts" and back.is_bayesian
    assert_allclose(back.weights.values, r.weights.values)
    assert_allclose(back.covariances.values, r.covariances.values)
    assert_allclose(back.idata["relabeling"]["permutation"].values,
                    r.idata["relabeling"]["permutation"].values)
    assert back.config["draws"] == 300 and back.config["sampler_used"] == "nutpie"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        assert_allclose(back.waic().elpd, r.waic().elpd)
        assert back.diagnostics().shape == r.diagnostics().shape


def test_predict_methods(faithful_nuts, faithful):
    proba = faithful_nuts.predict_proba(faithful)
    assert proba.shape == (len(faithful), 2)
    assert_allclose(proba.sum(axis=1), 1.0)
    scores = faithful_nuts.score_samples(faithful)
    assert scores.shape == (len(faithful),) and np.all(np.isfinite(scores))
    assert np.isfinite(faithful_nuts.score(faithful))
    assert_allclose(faithful_nuts.bic(faithful), faithful_nuts.result_.bic())
    X, y = faithful_nuts.sample(20)
    assert X.shape == (20, 2) and y.shape == (20,)


def test_compiled_kernel_is_reused_across_data(faithful_nuts, faithful):
    other = faithful * 1.1 + 3.0  # new data, same shape
    fit = _fit(other, n_components=2, draws=100, tune=100, chains=2,
               priors={"lkj_eta": 1.0, "weights_concentration": 2.0})
    assert fit.timing_["compile"] < 0.5  # nothing compiled again in this process
    # the fit really used the new data
    assert_allclose(fit.result_.idata["observed_data"]["X"].values, other.to_numpy())
    order = _match(faithful_nuts.means_ * 1.1 + 3.0, fit.means_)
    assert_allclose(fit.means_[order], faithful_nuts.means_ * 1.1 + 3.0, rtol=0.02)


# ---------------------------------------------------------------------------
# ADVI
# ---------------------------------------------------------------------------


def test_advi_result(faithful_advi):
    r = faithful_advi.result_
    assert r.method == "advi" and r.weights.sizes["chain"] == 1
    assert "variational" in r.idata.children and "sample_stats" not in r.idata.children
    vi = r.idata["variational"]
    assert vi.attrs["converged"] == 1 and r.converged
    assert r.n_iter == vi.attrs["n_steps"] == vi["loss"].size
    table = r.diagnostics()
    assert table["r_hat"].isna().all() and table.attrs["advi_converged"]


# ---------------------------------------------------------------------------
# the other covariance types and the prior
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tied", "diag", "spherical"])
def test_other_covariance_types(kind, blobs):
    fit = _fit(blobs.X, n_components=3, covariance_type=kind, draws=100, tune=150, chains=1)
    cov = fit.result_.covariances.values
    assert cov.shape == (1, 100, 3, 2, 2)
    if kind == "tied":
        assert_allclose(cov[:, :, 0], cov[:, :, 2])
    else:
        assert_allclose(cov[..., 0, 1], 0.0, atol=1e-12)
        if kind == "spherical":
            assert_allclose(cov[..., 0, 0], cov[..., 1, 1])
    assert adjusted_rand_score(blobs.labels, fit.predict(blobs.X)) > 0.9
    assert fit.covariances_.shape == {"tied": (2, 2), "diag": (3, 2),
                                      "spherical": (3,)}[kind]


def test_prior_predictive(faithful):
    est = bg.BayesGMM(2, random_state=1, priors={"weights_concentration": [2.0, 2.0]})
    tree = est.prior_predictive(faithful, draws=50)
    prior = tree["prior"]
    assert prior["weights"].sizes == {"chain": 1, "draw": 50, "component": 2}
    assert_allclose(prior["weights"].sum("component"), 1.0)
    sims = tree["prior_predictive"]["X"]
    assert sims.dims == ("chain", "draw", "obs", "feature")
    assert sims.sizes["obs"] == len(faithful)
    # the prior of the means is centred on the data mean with 2 data sd of spread
    centre = prior["means"].mean(("chain", "draw", "component")).values
    assert np.all(np.abs(centre - faithful.mean().values) < 1.0 * faithful.std().values)


@pytest.mark.parametrize("method", ["nuts", "advi"])
def test_one_component(method, faithful):
    # K=1 has no weight to sample (compare_k starts at K=1)
    fit = _fit(faithful, n_components=1, method=method, draws=100, tune=100, chains=1)
    r = fit.result_
    assert_allclose(r.weights.values, 1.0)
    assert_allclose(r.responsibilities.values, 1.0)
    # the posterior mean of a single Gaussian is the data mean
    assert_allclose(r.point_estimate()[1].values[0], faithful.mean().values, rtol=0.01)
