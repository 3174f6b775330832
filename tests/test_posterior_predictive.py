"""Posterior predictive data sets, their check plot and report section, and PyMC's own
posterior predictive and log-likelihood on a fitted model.

The Bayesian fit is conftest's ``short_nuts_faithful`` (2 chains x 30 draws): the
moments below are checked conditionally on its draws, so a short chain does not matter.
"""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

import bayesgmm as bg
from bayesgmm import plotting
from bayesgmm.results import GMMResult


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fake_bayes(weights, means, covs, data, feature_names):
    """A Bayesian-looking result from given draws, (chain, draw, ...), no fitting."""
    dims = ("chain", "draw", "component")
    coords = {"feature": feature_names, "feature_bis": feature_names}
    post = xr.Dataset({"weights": (dims, weights),
                       "means": ((*dims, "feature"), means),
                       "covariances": ((*dims, "feature", "feature_bis"), covs)},
                      coords=coords)
    k = weights.shape[-1]
    resp = xr.DataArray(np.full((data.shape[0], k), 1 / k), dims=("obs", "component"))
    return GMMResult(post["weights"], post["means"], post["covariances"], resp, 0.0, "full",
                     method="nuts", idata=xr.DataTree.from_dict({"posterior": post}),
                     data=xr.DataArray(data, dims=("obs", "feature"),
                                       coords={"feature": feature_names}))


# ---------------------------------------------------------------------------
# GMMResult.posterior_predictive
# ---------------------------------------------------------------------------


def test_dims_coords_and_sizes(short_nuts_faithful):
    r = short_nuts_faithful
    reps = r.posterior_predictive(random_state=0)
    assert reps.dims == ("chain", "draw", "obs", "feature")
    assert dict(reps.sizes) == {"chain": 2, "draw": 30, "obs": 272, "feature": 2}
    assert reps["feature"].values.tolist() == ["eruptions", "waiting"]
    assert reps["draw"].values.tolist() == list(range(30))
    small = r.posterior_predictive(10, draws=4, random_state=0)
    assert dict(small.sizes) == {"chain": 2, "draw": 4, "obs": 10, "feature": 2}
    assert small["draw"].values.tolist() == [0, 10, 19, 29]  # evenly spaced, ends kept
    assert r.posterior_predictive(3, draws=500, random_state=0).sizes["draw"] == 30
    for bad in ({"n": 0}, {"draws": 0}, {"n": 2.5}):
        with pytest.raises(ValueError, match="must be an integer >= 1"):
            r.posterior_predictive(**bad)


def test_reproducible_with_random_state(short_nuts_faithful):
    r = short_nuts_faithful
    a = r.posterior_predictive(20, draws=3, random_state=7)
    b = r.posterior_predictive(20, draws=3, random_state=7)
    xr.testing.assert_identical(a, b)
    c = r.posterior_predictive(20, draws=3, random_state=8)
    assert not np.array_equal(a.values, c.values)
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(r.posterior_predictive(20, draws=3, random_state=rng).values,
                                  a.values)


def test_em_fits_refuse_and_name_the_method(faithful):
    em = bg.EMGMM(2, random_state=0).fit(faithful).result_
    with pytest.raises(ValueError, match=r"method='em'.*EMGMM.sample"):
        em.posterior_predictive()


def test_replicated_moments_match_the_posterior_mixtures(short_nuts_faithful):
    # Given the draws, the pooled rows are independent, row i of draw s from draw s's
    # mixture. Their mean and covariance are therefore the averages over draws of
    # sum_k w_k mu_k and of sum_k w_k (Sigma_k + mu_k mu_k') (minus the mean's outer
    # product), written out here with loops, independently of the package's einsums.
    r = short_nuts_faithful
    n = 2000
    reps = r.posterior_predictive(n, random_state=1).values  # (2, 30, n, 2)
    w = r.weights.values.reshape(-1, 2)
    m = r.means.values.reshape(-1, 2, 2)
    c = r.covariances.values.reshape(-1, 2, 2, 2)
    mean = np.zeros(2)
    second = np.zeros((2, 2))
    for s in range(w.shape[0]):
        for k in range(2):
            mean += w[s, k] * m[s, k]
            second += w[s, k] * (c[s, k] + np.outer(m[s, k], m[s, k]))
    mean /= w.shape[0]
    cov = second / w.shape[0] - np.outer(mean, mean)
    rows = reps.reshape(-1, 2)
    big_n = rows.shape[0]
    # Monte Carlo standard errors from the rows themselves: of a mean sd / sqrt(N), of a
    # covariance entry sd((x_i - m_i)(x_j - m_j)) / sqrt(N); 5 se is a 1-in-10^6 miss
    centred = rows - rows.mean(axis=0)
    se_mean = rows.std(axis=0) / np.sqrt(big_n)
    np.testing.assert_array_less(np.abs(rows.mean(axis=0) - mean), 5 * se_mean)
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.reshape(big_n, -1).std(axis=0).reshape(2, 2) / np.sqrt(big_n)
    np.testing.assert_array_less(np.abs(np.cov(rows.T) - cov), 5 * se_cov)
    # and per draw: each data set's mean is its own draw's mixture mean (not the pooled one)
    per_draw = reps.reshape(-1, n, 2).mean(axis=1)
    own = np.einsum("sk,skd->sd", w, m)
    sd_rows = reps.reshape(-1, n, 2).std(axis=1)
    z = np.abs(per_draw - own) / (sd_rows / np.sqrt(n))
    assert np.mean(z < 3) > 0.95


def test_data_units_and_the_data_size_by_default(short_nuts_faithful, faithful):
    reps = short_nuts_faithful.posterior_predictive(random_state=0)
    assert reps.sizes["obs"] == len(faithful)
    pooled = reps.values.reshape(-1, 2)
    # data units: waiting in minutes (~71 on average), eruptions in minutes (~3.5)
    np.testing.assert_allclose(pooled.mean(axis=0), faithful.mean().to_numpy(), rtol=0.05)


# ---------------------------------------------------------------------------
# plot_ppc
# ---------------------------------------------------------------------------


def test_ppc_plot_has_one_panel_per_feature_and_the_replicates(short_nuts_faithful):
    axes = plotting.plot_ppc(short_nuts_faithful, n_replicates=12)
    assert len(axes) == 2
    assert [a.get_xlabel() for a in axes] == ["eruptions", "waiting"]
    # 12 replicated ECDFs + the observed one (+ two legend handles on the first panel)
    assert [len(a.lines) for a in axes] == [12 + 1 + 2, 12 + 1]
    observed = axes[1].lines[12]
    assert observed.get_color() == "black"
    np.testing.assert_array_equal(np.sort(short_nuts_faithful.observed.values[:, 1]),
                                  observed.get_xdata())
    kde = plotting.plot_ppc(short_nuts_faithful, kind="kde", n_replicates=5)
    assert [len(a.lines) for a in kde] == [5 + 1 + 2, 5 + 1]
    assert kde[0].get_ylabel() == "density"
    with pytest.raises(ValueError, match="kind must be one of"):
        plotting.plot_ppc(short_nuts_faithful, kind="hist")


def test_ppc_plot_for_one_and_for_many_features_and_given_axes():
    rng = np.random.default_rng(0)
    s, k = 8, 2
    w = np.full((1, s, k), 0.5)
    one = _fake_bayes(w, rng.normal(size=(1, s, k, 1)), np.ones((1, s, k, 1, 1)),
                      rng.normal(size=(40, 1)), ["x"])
    axes = plotting.plot_ppc(one, n_replicates=5)
    assert len(axes) == 1 and len(axes[0].lines) == 5 + 1 + 2
    d = 4
    many = _fake_bayes(w, rng.normal(size=(1, s, k, d)),
                       np.broadcast_to(np.eye(d), (1, s, k, d, d)).copy(),
                       rng.normal(size=(40, d)), list("abcd"))
    axes = plotting.plot_ppc(many, n_replicates=3)
    assert len(axes) == 4
    figure = axes[0].figure
    assert sum(a.get_visible() for a in figure.axes) == 4  # a 2 x 3 grid, two hidden
    _, mine = plt.subplots(1, 4)
    assert list(plotting.plot_ppc(many, ax=mine, n_replicates=2)) == list(mine)
    with pytest.raises(ValueError, match="pass 4 Axes"):
        plotting.plot_ppc(many, ax=mine[:2])
    # the observed data may be passed; replicates have its number of rows
    axes = plotting.plot_ppc(many, rng.normal(size=(15, d)), n_replicates=2)
    assert len(axes[0].lines[0].get_xdata()) == 15


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------


def test_report_has_the_check_for_a_bayesian_fit_only(short_nuts_faithful, faithful, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bayes = bg.report(short_nuts_faithful, tmp_path / "bayes.html")
    text = bayes.read_text()
    assert "<h2>Posterior predictive check</h2>" in text
    assert "cumulative distribution of the data (black)" in text
    md = bayes.with_suffix(".md").read_text()
    assert "## Posterior predictive check" in md
    assert (tmp_path / "bayes_files" / "1_nuts_k2_ppc.png").stat().st_size > 1000
    em = bg.EMGMM(2, random_state=0).fit(faithful).result_
    plain = bg.report(em, tmp_path / "em.html").read_text()
    assert "Posterior predictive check" not in plain
    assert not list((tmp_path / "em_files").glob("*ppc*"))


# ---------------------------------------------------------------------------
# PyMC's own machinery on a fitted model_
# ---------------------------------------------------------------------------


def test_pymc_posterior_predictive_and_log_likelihood_work_on_the_fitted_model(faithful):
    # The likelihood of BayesGMM.model_ is the observed pm.CustomDist "X_obs" on the
    # standardized data. result_.idata holds the relabeled parameters in data units, not
    # the model's own variables (w, mu_std, sd_std, cpc_u), so PyMC is given draws of the
    # model's own variables: 20 prior draws from the NumPy specification (sample_prior_raw).
    # The fit repeats conftest's short_nuts_faithful (which keeps only result_, not model_);
    # it runs on the kernel and compiles no PyTensor graph: the two PyMC calls below
    # compile the one new graph of this module, in FAST_COMPILE mode.
    import pymc as pm

    from bayesgmm.bayes.params import params_from_raw
    from bayesgmm.bayes.spec import model_data, sample_prior_raw
    from bayesgmm.posterior import pointwise_log_likelihood

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = bg.BayesGMM(2, draws=30, tune=30, chains=2, random_state=3,
                          progressbar=False).fit(faithful)
    model = est.model_
    assert [v.name for v in model.observed_RVs] == ["X_obs"]
    X = faithful.to_numpy()
    md = model_data(X, 2, est.priors, est.reg_covar_, "full")
    raw = sample_prior_raw(md, "full", 20, random_state=0)
    draws = xr.Dataset({name: (("chain", "draw", *(f"{name}_dim{i}" for i in
                                                   range(v.ndim - 1))), v[None])
                        for name, v in raw.items()},
                       coords={"chain": [0], "draw": np.arange(20)})
    assert set(draws.data_vars) == {v.name for v in model.free_RVs}
    idata = xr.DataTree.from_dict({"posterior": draws})
    fast = {"mode": "FAST_COMPILE"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ll = pm.compute_log_likelihood(idata, model=model, extend_inferencedata=False,
                                       progressbar=False, compile_kwargs=fast)
        pp = pm.sample_posterior_predictive(idata, model=model, random_seed=0,
                                            progressbar=False, compile_kwargs=fast)
    pointwise = ll["X_obs"].values  # extend_inferencedata=False: the group itself
    assert pointwise.shape == (1, 20, 272)
    # against the NumPy mixture density in data units: the model scores the standardized
    # data, whose log-density is that of the data plus sum(log scale)
    w, m, c = params_from_raw(raw, covariance_type="full", n_components=2, center=md.center,
                              scale=md.scale, reg_diag=md.reg_diag)
    want = pointwise_log_likelihood(X, w, m, c) + np.log(md.scale).sum()
    np.testing.assert_allclose(pointwise[0], want, rtol=1e-8, atol=1e-8)
    sims = pp["posterior_predictive"]["X_obs"].values
    assert sims.shape == (1, 20, 272, 2)
    # each simulated data set, back in data units, centres on its draw's mixture mean
    data_units = sims[0] * md.scale + md.center
    own = np.einsum("sk,skd->sd", w, m)
    spread = np.sqrt(np.einsum("sk,skdd->sd", w, c + m[..., :, None] * m[..., None, :])
                     - own**2)
    z = np.abs(data_units.mean(axis=1) - own) / (spread / np.sqrt(272))
    assert np.mean(z < 4) >= 0.9
