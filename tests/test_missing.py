"""EM on data with missing entries (issue 12): observed-data likelihood, predictions, imputation.

References are independent of the package: scipy.stats.multivariate_normal on each
row's observed coordinates, scipy.optimize on the observed-data likelihood, and
column-mean imputation.
"""

import warnings

import numpy as np
import pytest
from conftest import with_holes
from scipy import optimize, stats
from scipy.special import logsumexp

import bayesgmm as bg
from bayesgmm import em, em_missing
from bayesgmm._constants import COVARIANCE_TYPES


def _observed_log_likelihood(X, weights, means, covs):
    """sum_n log sum_k w_k N(x_nO | mu_kO, Sigma_kOO), one scipy call per row and component."""
    total = 0.0
    for x in X:
        o = ~np.isnan(x)
        terms = [np.log(w) + stats.multivariate_normal(m[o], c[np.ix_(o, o)]).logpdf(x[o])
                 for w, m, c in zip(weights, means, covs, strict=True)]
        total += logsumexp(terms)
    return total


@pytest.fixture(scope="module")
def iris_holes():
    X = bg.datasets.load_iris().to_numpy()
    return X, with_holes(X, 0.2, 0)


@pytest.fixture(scope="module")
def iris_fits(iris_holes):
    _, Xm = iris_holes
    return {kind: bg.EMGMM(3, covariance_type=kind, n_init=3, random_state=0).fit(Xm)
            for kind in COVARIANCE_TYPES}


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_log_likelihood_is_the_observed_data_one(kind, iris_holes, iris_fits):
    _, Xm = iris_holes
    r = iris_fits[kind].result_
    reference = _observed_log_likelihood(Xm, r.weights.values, r.means.values,
                                         r.covariances.values)
    # both sum 150 terms in float64: 1e-8 relative leaves room only for rounding
    assert r.log_likelihood == pytest.approx(reference, rel=1e-8)
    assert r.bic() == pytest.approx(-2 * reference + r.n_parameters * np.log(len(Xm)),
                                    rel=1e-8)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_em_never_lowers_the_observed_data_likelihood(kind):
    # continuous data: the floor is reg_covar, each iteration an EM step (on rounded data
    # the floor is raised to the rounding variance, see the test below)
    sim = bg.datasets.make_blobs_gmm(400, 3, 4, separation=3.0, random_state=2)
    Xm = with_holes(sim.X, 0.3, 4)
    assert np.all(em_missing.resolution_floor(Xm, 1e-6) == 1e-6)
    model = bg.EMGMM(3, covariance_type=kind, n_init=2, tol=1e-9, random_state=0).fit(Xm)
    assert model.converged_
    steps = np.diff(model.lower_bounds_)
    assert steps.min() > -1e-10  # monotone up to rounding of a mean of 400 terms


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rounded_data_with_many_holes_keep_the_resolution_floor(seed):
    # iris (recorded to 0.1 cm) with 40% MCAR: with reg_covar=1e-6 alone, the observed-data
    # likelihood has maxima in which a component sits on one recorded value of a coordinate
    # that few of its rows observe (benchmarks/bench_missing.py: every restart collapsed in
    # 25 of 50 replications). The floor is step^2 / 12 = 0.1^2 / 12 on every feature.
    X = bg.datasets.load_iris().to_numpy()
    Xm = with_holes(X, 0.4, seed)
    floor = em_missing.resolution_floor(Xm, 1e-6)
    np.testing.assert_allclose(floor, 0.01 / 12 + np.zeros(4), rtol=1e-6)  # 0.1-cm step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        model = bg.EMGMM(3, n_init=5, init_params="kmeans", tol=1e-6, max_iter=1000,
                         random_state=seed).fit(Xm)
    smallest = np.linalg.eigvalsh(model.covariances_)[:, 0]
    assert smallest.min() >= floor[0] * (1 - 1e-9)  # floor added to a PSD matrix
    state = em.EMState(model.weights_, model.means_, model.covariances_,
                       model.precisions_cholesky_, "full")
    assert em.collapsed_components(state, 150, 1e-6, rounding=em.rounding_variance(X)).size == 0
    # and the fit describes the complete rows better than one Gaussian fitted to them
    # (-2.53 per row, scipy below); with the floor at reg_covar alone, seed 2 gave -3.24
    single = stats.multivariate_normal(X.mean(axis=0), np.cov(X.T, bias=True)).logpdf(X)
    assert model.score_samples(X).mean() > single.mean()


def test_one_gaussian_reaches_the_numerical_maximum():
    # K=1 full: maximise the observed-data log-likelihood directly over (mu, Cholesky of
    # Sigma) with scipy; EM must reach the same maximum.
    rng = np.random.default_rng(3)
    X = with_holes(rng.multivariate_normal([1.0, -2.0, 0.5],
                                            [[2.0, 0.8, 0.3], [0.8, 1.0, -0.4],
                                             [0.3, -0.4, 1.5]], 120), 0.3, 1)
    fit = bg.EMGMM(1, reg_covar=0.0, tol=1e-12, max_iter=5000).fit(X)
    tril = np.tril_indices(3)

    def negative(theta):
        L = np.zeros((3, 3))
        L[tril] = theta[3:]
        cov = L @ L.T + 1e-12 * np.eye(3)
        return -_observed_log_likelihood(X, [1.0], [theta[:3]], [cov])

    start = np.concatenate([np.nanmean(X, axis=0), np.eye(3)[tril]])
    best = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-8})
    assert fit.result_.log_likelihood == pytest.approx(-best.fun, abs=1e-6)
    assert fit.result_.log_likelihood >= -best.fun - 1e-9  # EM is not worse


def test_complete_data_give_the_complete_data_fit():
    # The incomplete-data engine on complete rows is the usual EM: same densities and
    # the same iterates from the same start.
    X = bg.datasets.load_faithful().to_numpy()
    start = em.init_state(X, 2, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(0))
    a, _ = em.run_em(X, start, reg_covar=1e-6, tol=0.0, max_iter=15)
    b, _ = em_missing.run_em(X, start, reg_covar=1e-6, tol=0.0, max_iter=15)
    np.testing.assert_allclose(b.means, a.means, rtol=1e-9)
    np.testing.assert_allclose(b.covariances, a.covariances, rtol=1e-8)
    np.testing.assert_allclose(em_missing.weighted_log_prob(X, a), em.weighted_log_prob(X, a),
                               rtol=1e-11)


def test_layout_by_pattern_keys_equals_the_layout_by_unique_masks():
    # _Layout.of sorts by Numba pattern keys (D <= 56); _of_unique (any D) by np.unique on
    # the masks, the earlier construction: same row order, pattern numbering, groups,
    # working-unit rows and Jacobians
    X = with_holes(np.random.default_rng(0).normal(size=(500, 6)) * [1, 2, 3, 4, 5, 6], 0.35, 7)
    frame = em_missing.frame_of(X, "full")
    fast = em_missing._Layout.of(X, frame)
    slow = em_missing._Layout._of_unique(X, frame)
    np.testing.assert_array_equal(fast.order, slow.order)
    np.testing.assert_array_equal(fast.local, slow.local)
    np.testing.assert_array_equal(fast.ZO, slow.ZO)
    np.testing.assert_array_equal(fast.log_jacobian, slow.log_jacobian)
    assert len(fast.groups) == len(slow.groups) > 3
    for a, b in zip(fast.groups, slow.groups, strict=True):
        assert (a.start, a.stop) == (b.start, b.stop)
        np.testing.assert_array_equal(a.missing, b.missing)
    # the working units: mean and sd (ddof 0) of each column's observed values
    np.testing.assert_allclose(frame.center, np.nanmean(X, axis=0), rtol=1e-13)
    np.testing.assert_allclose(frame.scale, np.nanstd(X, axis=0), rtol=1e-13)


def test_wide_data_take_the_general_layout_and_match_scipy():
    # D = 60 > 56: the pattern key does not fit in 64 bits, _Layout falls back to
    # np.unique; densities still equal scipy's on each row's observed coordinates
    rng = np.random.default_rng(1)
    d = 60
    X = with_holes(rng.normal(size=(40, d)), 0.2, 3)
    a = rng.normal(size=(2, d, d)) / np.sqrt(d)
    covs = a @ np.swapaxes(a, 1, 2) + np.eye(d)
    means = rng.normal(size=(2, d))
    state = em.EMState(np.array([0.3, 0.7]), means, covs,
                       em.precision_cholesky(covs, "full", 0.0), "full")
    got = em_missing.weighted_log_prob(X, state)
    for n in (0, 17, 39):
        o = ~np.isnan(X[n])
        for k in range(2):
            ref = np.log(state.weights[k]) + stats.multivariate_normal(
                means[k, o], covs[k][np.ix_(o, o)]).logpdf(X[n, o])
            assert got[n, k] == pytest.approx(ref, rel=1e-10)  # 60-D Cholesky rounding


def test_threads_follow_the_callers_blas_budget():
    # the incomplete-data passes plan threads as complete data do (em.plan_threads): one
    # worker when the caller limits BLAS to one thread, the same plan otherwise
    from threadpoolctl import threadpool_limits

    X = with_holes(np.random.default_rng(0).normal(size=(20_000, 16)), 0.2, 0)
    layout = em_missing._Layout.of(X, em_missing.frame_of(X, "full"))
    with threadpool_limits(1, user_api="blas"):
        threads = em_missing._Threads(layout, 8)
        assert threads.workers == 1
        threads.close()
    expected = em.plan_threads(20_000, 8, 16, "full")[0]  # before _Threads limits BLAS
    threads = em_missing._Threads(layout, 8)
    try:
        assert threads.workers == expected
    finally:
        threads.close()


def test_predictions_use_the_observed_coordinates(iris_fits):
    model = iris_fits["full"]
    r = model.result_
    rows = np.array([[5.0, np.nan, 1.5, np.nan], [np.nan, np.nan, np.nan, 2.0],
                     [6.3, 2.8, 5.1, 1.5]])
    logs = []
    for x in rows:
        o = ~np.isnan(x)
        logs.append([np.log(w) + stats.multivariate_normal(m[o], c[np.ix_(o, o)]).logpdf(x[o])
                     for w, m, c in zip(r.weights.values, r.means.values,
                                        r.covariances.values, strict=True)])
    logs = np.array(logs)
    np.testing.assert_allclose(model.score_samples(rows), logsumexp(logs, axis=1), rtol=1e-10)
    proba = np.exp(logs - logsumexp(logs, axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(rows), proba, rtol=1e-8, atol=1e-14)
    np.testing.assert_array_equal(model.predict(rows), proba.argmax(axis=1))
    np.testing.assert_allclose(r.predict_proba(rows), proba, rtol=1e-8, atol=1e-14)


def test_impute_beats_column_means(iris_holes, iris_fits):
    X, Xm = iris_holes
    holes = np.isnan(Xm)
    done = iris_fits["full"].result_.impute()
    assert done.attrs["n_imputed"] == holes.sum()
    np.testing.assert_array_equal(done.values[~holes], Xm[~holes])  # observed kept
    np.testing.assert_array_equal(done["imputed"].values, holes)
    rmse = np.sqrt(np.mean((done.values[holes] - X[holes]) ** 2))
    column_means = np.broadcast_to(np.nanmean(Xm, axis=0), X.shape)
    rmse_mean = np.sqrt(np.mean((column_means[holes] - X[holes]) ** 2))
    # iris' features are strongly correlated within species: regression on the observed
    # coordinates removes most of the error (measured 0.32 vs 1.10 cm on this draw)
    assert rmse < 0.5 * rmse_mean


def test_impute_one_gaussian_is_the_regression_on_the_observed_part():
    cov = np.array([[1.0, 0.8], [0.8, 2.0]])
    state = em.EMState(np.array([1.0]), np.array([[1.0, 2.0]]), cov[None],
                       np.linalg.cholesky(np.linalg.inv(cov))[None], "full")
    X = np.array([[2.0, np.nan], [np.nan, 0.0]])
    done = em_missing.conditional_mean(X, state)
    # E[x2 | x1] = mu2 + s12 / s11 (x1 - mu1);  E[x1 | x2] = mu1 + s12 / s22 (x2 - mu2)
    np.testing.assert_allclose(done, [[2.0, 2.0 + 0.8 * 1.0], [1.0 + 0.4 * -2.0, 0.0]])


def test_missing_error_and_bad_rows_are_refused(iris_holes):
    _, Xm = iris_holes
    with pytest.raises(ValueError, match="missing='marginalize'"):
        bg.EMGMM(2, missing="error").fit(Xm)
    with pytest.raises(ValueError, match="missing"):
        bg.EMGMM(2, missing="drop").fit(Xm)
    empty_row = Xm.copy()
    empty_row[4] = np.nan
    with pytest.raises(ValueError, match="every entry missing"):
        bg.EMGMM(2).fit(empty_row)
    empty_column = Xm.copy()
    empty_column[:, 2] = np.nan
    empty_column[np.isnan(empty_column).all(axis=1), 0] = 1.0  # no empty row as well
    with pytest.raises(ValueError, match=r"column\(s\) \['column 2'\] have every entry"):
        bg.EMGMM(2).fit(empty_column)
    with_inf = Xm.copy()
    with_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="Infinite values are never accepted"):
        bg.EMGMM(2).fit(with_inf)
    with pytest.raises(ValueError, match="BayesGMM\\(missing='marginalize'\\) fits them"):
        bg.BayesGMM(2, missing="error").fit(Xm)


def test_compare_k_and_file_round_trip_with_missing_values(iris_holes, tmp_path):
    _, Xm = iris_holes
    cmp = bg.compare_k(Xm, [1, 2, 3], methods="em", progressbar=False)
    assert (cmp.table["status"] == "ok").all()
    best = cmp.results[("em", cmp.best("bic"))]
    path = best.to_netcdf(tmp_path / "holes.nc")
    back = bg.load(path)
    np.testing.assert_array_equal(np.isnan(back.observed.values), np.isnan(Xm))
    assert back.log_likelihood == best.log_likelihood
    with pytest.raises(ValueError, match="missing='error' refuses them"):
        bg.compare_k(Xm, [2], methods="em", em_kwargs={"missing": "error"},
                     progressbar=False)


def test_tags_say_nan_is_allowed():
    assert bg.EMGMM().__sklearn_tags__().input_tags.allow_nan
    assert not bg.EMGMM(missing="error").__sklearn_tags__().input_tags.allow_nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bg.BayesGMM().__sklearn_tags__().input_tags.allow_nan
        assert not bg.BayesGMM(missing="error").__sklearn_tags__().input_tags.allow_nan


@pytest.fixture(scope="module")
def bayes_holes():
    # Old Faithful's first 80 eruptions, 10% of the entries missing; one short NUTS run
    # on the default route (bayesgmm's kernel, which marginalises the missing entries)
    X = with_holes(bg.datasets.load_faithful().to_numpy()[:80], 0.1, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bg.BayesGMM(2, draws=100, tune=100, chains=2, random_state=0,
                          progressbar=False).fit(X)
    return X, fit, caught


def test_bayes_fit_with_missing_entries_runs_on_the_kernel(bayes_holes):
    X, fit, caught = bayes_holes
    said = [str(w.message) for w in caught if issubclass(w.category, bg.SamplerFallbackWarning)]
    assert said == []  # no fallback to PyMC's graph
    assert "observed_mask" in fit.model_.named_vars
    r = fit.result_
    assert r.responsibilities.shape == (80, 2)
    np.testing.assert_allclose(r.responsibilities.sum("component"), 1.0)
    # the pointwise log-likelihood is each row's observed part, draw by draw (scipy)
    ll = r.idata["log_likelihood"].to_dataset()["X"].values  # (chain, draw, obs)
    c, d = 1, 37
    weights, means, covs = (r.weights.values[c, d], r.means.values[c, d],
                            r.covariances.values[c, d])
    rows = [3, int(np.flatnonzero(np.isnan(X).any(axis=1))[0])]
    for n in rows:
        expected = _observed_log_likelihood(X[n:n + 1], weights, means, covs)
        assert ll[c, d, n] == pytest.approx(expected, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 200 draws: a few Pareto k above the threshold
        assert np.isfinite(r.loo().elpd)
    assert r.impute().attrs["n_imputed"] == int(np.isnan(X).sum())


def test_a_second_fit_with_missing_entries_reuses_the_compiled_kernel(bayes_holes):
    # the kernel holds no data: a second fit on other incomplete data compiles nothing
    _, first, _ = bayes_holes
    other = with_holes(bg.datasets.load_faithful().to_numpy()[100:160], 0.15, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = bg.BayesGMM(2, draws=100, tune=100, chains=2, random_state=0,
                            progressbar=False).fit(other)
    assert again.timing_["compile"] < 0.1 * max(first.timing_["compile"], 1.0)
    np.testing.assert_allclose(np.isnan(again.result_.observed.values), np.isnan(other))
    # the posterior follows the new data: its means are near that data's EM fit (well
    # separated eruptions; 5 sd of the waiting time's posterior spread would be ~5 min)
    em_fit = bg.EMGMM(2, n_init=5, random_state=0).fit(other)
    order = np.argsort(again.means_[:, 1]), np.argsort(em_fit.means_[:, 1])
    np.testing.assert_allclose(again.means_[order[0]], em_fit.means_[order[1]], atol=5.0)


def test_kernel_takes_missing_data():
    from bayesgmm.bayes.inference import kernel_mismatch
    from bayesgmm.bayes.model import build_gmm_model

    X = with_holes(np.random.default_rng(0).normal(size=(30, 2)), 0.2, 0)
    assert kernel_mismatch(build_gmm_model(X, 2, "diag")) is None
    assert kernel_mismatch(build_gmm_model(np.nan_to_num(X), 2, "diag")) is None


def test_multiple_imputation_from_the_posterior(bayes_holes):
    X, fit, _ = bayes_holes
    r = fit.result_
    holes = np.isnan(X)
    sets = r.impute(draws=40, random_state=1)
    assert sets.dims == ("draw", "obs", "feature") and sets.sizes["draw"] == 40
    np.testing.assert_array_equal(sets.values[:, ~holes], np.broadcast_to(X[~holes], (40,
                                  int((~holes).sum()))))  # observed entries kept
    assert np.isfinite(sets.values).all()
    assert (sets.values[:, holes].std(axis=0) > 0).all()  # the imputations vary
    again = r.impute(draws=40, random_state=1)
    np.testing.assert_array_equal(sets.values, again.values)  # reproducible
    # the completed data sets scatter around the posterior predictive mean: their average
    # is within 4 Monte Carlo standard errors of impute()'s
    mean = r.impute().values[holes]
    spread = sets.values[:, holes].std(axis=0) / np.sqrt(40)
    assert np.all(np.abs(sets.values[:, holes].mean(axis=0) - mean) < 4 * spread + 1e-9)
    with pytest.raises(ValueError, match="needs posterior draws"):
        bg.EMGMM(2, random_state=0).fit(X).result_.impute(draws=5)
