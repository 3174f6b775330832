"""The 14 mclust models on data with missing entries (issues 12 and 14).

The M-step of EM on incomplete data is the model's M-step
(``parsimonious.constrain``) applied to each component's expected complete-data
scatter. References are independent of the package's incomplete-data code:
scipy.stats.multivariate_normal on each row's observed coordinates, and the
expected scatter built row by row with NumPy from the Gaussian conditional moments.
"""

import warnings

import numpy as np
import pytest
from conftest import with_holes
from scipy import stats
from scipy.special import logsumexp
from test_mclust import _member_of
from test_missing import _observed_log_likelihood

import bayesgmm as bg
from bayesgmm import em, em_missing, parsimonious

#: Models checked on iris: closed forms and iterative M-steps, common-scale and per-column.
MODELS = ["EII", "VEI", "EVE", "VEV", "EEE", "VVV"]

IRIS = bg.datasets.load_iris().to_numpy()
IRIS_HOLES = with_holes(IRIS, 0.2, 0)  # ~20% MCAR


def _completions(X, weights, means, covs, conditional=None):
    """Responsibilities and completed rows (x_O, E[x_M | x_O, k]) of every row and component.

    r_nk from scipy's observed-part densities; the conditional mean by regression on the
    observed block, and (into ``conditional``, if given) the conditional covariance
    Sigma_MM - Sigma_MO Sigma_OO^-1 Sigma_OM: the Schur complement, not the
    precision-block form the package uses.
    """
    n, d = X.shape
    k = len(weights)
    resp = np.empty((n, k))
    completed = np.empty((n, k, d))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        m = ~o
        for j in range(k):
            S = covs[j]
            resp[i, j] = np.log(weights[j]) + stats.multivariate_normal(
                means[j][o], S[np.ix_(o, o)]).logpdf(x[o])
            gain = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
            completed[i, j] = x
            completed[i, j, m] = means[j][m] + gain @ (x[o] - means[j][o])
            if conditional is not None:
                conditional[i, j][np.ix_(m, m)] = S[np.ix_(m, m)] - gain @ S[np.ix_(o, m)]
        resp[i] = np.exp(resp[i] - logsumexp(resp[i]))
    return resp, completed


def _expected_scatter(X, weights, means, covs):
    """Sizes, means and expected complete-data scatters of one E-step, row by row."""
    n, d = X.shape
    conditional = np.zeros((n, len(weights), d, d))
    resp, completed = _completions(X, weights, means, covs, conditional)
    nk = resp.sum(axis=0)
    mu = np.einsum("nk,nkd->kd", resp, completed) / nk[:, None]
    dev = completed - mu[None]
    scatter = (np.einsum("nk,nkd,nke->kde", resp, dev, dev)
               + np.einsum("nk,nkde->kde", resp, conditional))
    return nk, mu, scatter


@pytest.fixture(scope="module")
def fits():
    with warnings.catch_warnings():
        # the hc start on mean-filled data can lead one of the three runs to a collapsed
        # component; n_init=3 keeps a sound one, and the warning is not under test here
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        return {m: bg.EMGMM(3, covariance_type=m, n_init=3, random_state=0).fit(IRIS_HOLES)
                for m in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_log_likelihood_is_the_observed_data_one_and_covariances_are_members(model, fits):
    fit = fits[model]
    r = fit.result_
    assert r.covariance_type == model
    reference = _observed_log_likelihood(IRIS_HOLES, r.weights.values, r.means.values,
                                         r.covariances.values)
    # both sum 150 float64 terms: 1e-8 relative leaves room only for rounding
    assert r.log_likelihood == pytest.approx(reference, rel=1e-8)
    assert r.n_parameters == parsimonious.n_parameters(model, 3, 4)
    assert r.bic() == pytest.approx(-2 * reference + r.n_parameters * np.log(150), rel=1e-8)
    assert _member_of(model, fit.covariances_), model
    # the floor (rounding variance of iris, 0.1^2 / 12) is on the diagonal of every matrix
    floor = em_missing.resolution_floor(IRIS_HOLES, fit.reg_covar)
    assert np.linalg.eigvalsh(fit.covariances_).min() >= floor.min() * (1 - 1e-9)


def test_vvv_is_the_full_fit_on_incomplete_data(fits):
    # VVV is scikit-learn's "full": both reach the same sound maximum (-188.35) with
    # n_init=3 (docs/missing.md); both stop at tol=1e-7 per row, 150 rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        full = bg.EMGMM(3, covariance_type="full", n_init=3, random_state=0).fit(IRIS_HOLES)
    assert fits["VVV"].result_.log_likelihood == pytest.approx(full.result_.log_likelihood,
                                                               abs=1e-4)
    assert fits["VVV"].result_.log_likelihood == pytest.approx(-188.3518, abs=1e-3)


def test_member_check_sees_an_unconstrained_fit_on_the_same_data(fits):
    # the VVV fit to these data is not a member of the constrained models
    covs = fits["VVV"].covariances_
    assert not any(_member_of(m, covs) for m in ("EEE", "VEV", "EVE", "VEI", "EII"))


@pytest.mark.parametrize("model", MODELS)
def test_one_step_is_the_models_m_step_on_the_expected_scatter(model):
    # from one start, one EM iteration of the engine against an M-step built outside it:
    # the expected scatter row by row (scipy, the Schur-complement conditional
    # covariances) and the model's M-step run in data units. For the models that are not
    # equivariant under a per-feature scale, a run in per-column units would differ here.
    start = em.init_state(IRIS_HOLES, 3, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(1))
    state, info = em_missing.run_em(IRIS_HOLES, start, reg_covar=1e-6, tol=0.0, max_iter=1,
                                    model=model)
    nk, mu, scatter = _expected_scatter(IRIS_HOLES, start.weights, start.means,
                                        start.covariances)
    floor = em_missing.resolution_floor(IRIS_HOLES, 1e-6)
    diag = np.arange(4)
    unconstrained = scatter / nk[:, None, None]
    unconstrained[:, diag, diag] += floor
    covs = parsimonious.constrain(model, nk, unconstrained, start.covariances, reg=floor)
    np.testing.assert_allclose(state.weights, nk / 150, rtol=1e-10)
    np.testing.assert_allclose(state.means, mu, rtol=1e-10, atol=1e-12)
    # the iterative M-steps stop at EM_MSTEP_TOL (1e-8) in both; closed forms agree to
    # rounding
    rtol = 1e-10 if model in parsimonious.CLOSED_FORM else 1e-6
    np.testing.assert_allclose(state.covariances, covs, rtol=rtol,
                               atol=rtol * np.abs(covs).max())
    # the first trace value is the start's observed-data log-likelihood
    reference = _observed_log_likelihood(IRIS_HOLES, start.weights, start.means,
                                         start.covariances)
    assert info.trace[0] * 150 == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize("model", parsimonious.MODELS)
def test_generalised_em_never_lowers_the_observed_data_likelihood(model):
    # iris made continuous (uniform jitter within its 0.1-cm rounding), so the floor is
    # reg_covar and each iteration an exact generalised EM step (on rounded data the floor
    # is raised to the rounding variance and the trace can dip by ~1e-5 per row, see
    # em_missing.resolution_floor)
    rng = np.random.default_rng(5)
    Xm = with_holes(IRIS + rng.uniform(-0.05, 0.05, IRIS.shape), 0.2, 0)
    assert np.all(em_missing.resolution_floor(Xm, 1e-6) == 1e-6)
    start = em.init_state(Xm, 3, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(0))
    _, info = em_missing.run_em(Xm, start, reg_covar=1e-6, tol=1e-10, max_iter=300,
                                model=model)
    trace = info.trace
    # trace[0] is the (VVV) start, not a member of the model: it may lie above trace[1]
    steps = np.diff(trace[1:])
    assert steps.min() >= -1e-10 * np.abs(trace).max(), (model, steps.min())


@pytest.mark.parametrize("model", MODELS)
def test_without_missing_entries_it_is_the_complete_data_fit(model):
    start = em.init_state(IRIS, 3, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(2))
    a, info_a = em.run_em(IRIS, start, reg_covar=1e-6, tol=0.0, max_iter=40, model=model)
    b, info_b = em_missing.run_em(IRIS, start, reg_covar=1e-6, tol=0.0, max_iter=40,
                                  model=model)
    # same iterations in the same working units; the two engines differ in summation order
    # only (and the iterative M-steps amplify that a little: 1e-7)
    np.testing.assert_allclose(info_b.trace, info_a.trace, rtol=1e-9)
    np.testing.assert_allclose(b.weights, a.weights, rtol=1e-7)
    np.testing.assert_allclose(b.means, a.means, rtol=1e-7)
    np.testing.assert_allclose(b.covariances, a.covariances, rtol=1e-7,
                               atol=1e-7 * np.abs(a.covariances).max())


def test_predictions_with_missing_entries(fits):
    fit = fits["VEV"]
    r = fit.result_
    proba = fit.predict_proba(IRIS_HOLES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(fit.predict(IRIS_HOLES), proba.argmax(axis=1))
    rows = fit.score_samples(IRIS_HOLES[:10])
    for x, got in zip(IRIS_HOLES[:10], rows, strict=True):
        assert got == pytest.approx(_observed_log_likelihood(
            x[None], r.weights.values, r.means.values, r.covariances.values), rel=1e-10)
    assert fit.score_samples(IRIS_HOLES).sum() == pytest.approx(r.log_likelihood, rel=1e-10)
    # impute: each missing entry at sum_k r_nk E[x_M | x_O, k], built row by row here
    resp, completed = _completions(IRIS_HOLES, r.weights.values, r.means.values,
                                   r.covariances.values)
    np.testing.assert_allclose(proba, resp, rtol=1e-8, atol=1e-12)
    expected = np.einsum("nk,nkd->nd", resp, completed)
    np.testing.assert_allclose(np.asarray(r.impute()), expected, rtol=1e-9, atol=1e-12)


def test_compare_k_over_mclust_models_on_incomplete_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        cmp = bg.compare_k(IRIS_HOLES, [1, 2], methods="em", covariance_type=["VEV", "EEE"],
                           progressbar=False)
    table = cmp.table
    assert list(table.index) == [("em", "EEE", 1), ("em", "EEE", 2), ("em", "VEV", 1),
                                 ("em", "VEV", 2)]
    assert (table["status"] == "ok").all()
    # K=1: every model is one unconstrained Gaussian, whose observed-data maximum EM reaches
    one = bg.EMGMM(1, tol=1e-10, max_iter=5000).fit(IRIS_HOLES).result_.log_likelihood
    assert table["loglik"].loc[("em", "EEE", 1)] == pytest.approx(one, abs=1e-4)
    assert table["loglik"].loc[("em", "VEV", 1)] == pytest.approx(one, abs=1e-4)
    assert table["n_params"].loc[("em", "VEV", 2)] == parsimonious.n_parameters("VEV", 2, 4)
    # as on complete iris (mclust's choice), BIC picks VEV with two components
    assert str(cmp.best("bic")) == "VEV, K=2"
