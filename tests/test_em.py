"""The EM engine against independent references (scipy.stats, scikit-learn)."""

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, random_state
from scipy import stats
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

from bayesgmm import em


def _naive_log_prob(X, state):
    k, d = state.means.shape
    covs = em.full_covariances(state.covariances, state.covariance_type, k, d)
    return np.column_stack(
        [stats.multivariate_normal(state.means[j], covs[j]).logpdf(X) for j in range(k)]
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_densities_match_scipy(covariance_type):
    rng = np.random.default_rng(1)
    X = rng.normal(0, 3, (200, 4))
    state = random_state(covariance_type)
    # rtol 1e-10: both are exact double-precision formulas for the same density.
    np.testing.assert_allclose(em.estimate_log_gaussian_prob(X, state),
                               _naive_log_prob(X, state), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_densities_stay_finite_far_from_every_component(covariance_type):
    X = np.array([[1e3, -1e3, 5e2, 0.0], [0.0, 0.0, 0.0, 0.0]])
    state = random_state(covariance_type)
    # responsibilities underflow there, log-densities must not
    np.testing.assert_allclose(em.estimate_log_gaussian_prob(X, state),
                               _naive_log_prob(X, state), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_matches_naive_logsumexp(covariance_type):
    rng = np.random.default_rng(2)
    X = rng.normal(0, 3, (150, 4))
    state = random_state(covariance_type)
    wlp = _naive_log_prob(X, state) + np.log(state.weights)
    log_lik, resp = em.e_step(X, state)
    np.testing.assert_allclose(log_lik, logsumexp(wlp, axis=1), rtol=1e-10)
    np.testing.assert_allclose(resp, np.exp(wlp - logsumexp(wlp, axis=1)[:, None]),
                               rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_matches_weighted_moments(covariance_type):
    rng = np.random.default_rng(3)
    X = rng.normal(5, 2, (120, 3))
    resp = rng.dirichlet(np.ones(3), size=120)
    state = em.m_step(X, resp, covariance_type, reg_covar=1e-3)
    nk = resp.sum(0)
    means = resp.T @ X / nk[:, None]
    covs = np.stack([(resp[:, j, None] * (X - means[j])).T @ (X - means[j]) / nk[j]
                     for j in range(3)])
    np.testing.assert_allclose(state.weights, nk / 120, rtol=1e-12)
    np.testing.assert_allclose(state.means, means, rtol=1e-10)
    if covariance_type == "full":
        expected = covs + 1e-3 * np.eye(3)
    elif covariance_type == "tied":
        expected = (covs * nk[:, None, None]).sum(0) / 120 + 1e-3 * np.eye(3)
    elif covariance_type == "diag":
        expected = np.diagonal(covs, axis1=1, axis2=2) + 1e-3
    else:
        expected = np.diagonal(covs, axis1=1, axis2=2).mean(1) + 1e-3
    np.testing.assert_allclose(state.covariances, expected, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_run_em_follows_scikit_learn_from_the_same_start(covariance_type):
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(m, 1, (100, 3)) for m in (-3, 0, 4)])
    start = em.init_state(X, 3, covariance_type, reg_covar=1e-6,
                          init_params="random_from_data", rng=np.random.default_rng(0))
    ours, info = em.run_em(X, start, reg_covar=1e-6, tol=0.0, max_iter=15)
    pc = start.precisions_cholesky
    precisions = {"full": lambda u: u @ u.transpose(0, 2, 1), "tied": lambda u: u @ u.T}.get(
        covariance_type, np.square)(pc)
    ref = GaussianMixture(3, covariance_type=covariance_type, tol=0.0, max_iter=15,
                          weights_init=start.weights, means_init=start.means,
                          precisions_init=precisions, init_params="random_from_data")
    with pytest.warns(Warning):  # scikit-learn warns that tol=0 never converges
        ref.fit(X)
    # rtol 1e-7: same algorithm, different summation order over 15 iterations.
    np.testing.assert_allclose(ours.weights, ref.weights_, rtol=1e-7)
    np.testing.assert_allclose(ours.means, ref.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.covariances, ref.covariances_, rtol=1e-7)
    np.testing.assert_allclose(info.lower_bound, ref.lower_bound_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(covariance_type, global_random_seed):
    rng = np.random.default_rng(global_random_seed)
    X = np.vstack([rng.normal(m, s, (80, 2)) for m, s in ((-2, 1), (0, 0.3), (3, 2))])
    start = em.init_state(X, 4, covariance_type, reg_covar=1e-6, init_params="random",
                          rng=rng)
    _, info = em.run_em(X, start, reg_covar=1e-6, tol=0.0, max_iter=60)
    # Each step may only gain; allow rounding noise of 1e-12 per sample.
    assert np.all(np.diff(info.trace) >= -1e-12)


def test_cholesky_projection_agrees_with_expanded_form(monkeypatch):
    rng = np.random.default_rng(5)
    X = rng.normal(0, 1, (500, 5))
    state = random_state("full", 3, 5)
    fast = em.e_step(X, state)
    monkeypatch.setattr(em, "_EXPANSION_BOUND", 0.0)  # force the exact projection path
    exact = em.e_step(X, state)
    np.testing.assert_allclose(fast[0], exact[0], rtol=1e-11)
    np.testing.assert_allclose(fast[1], exact[1], rtol=1e-9, atol=1e-14)
    start = em.init_state(X, 3, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(0))
    a, _ = em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=5)
    monkeypatch.undo()
    b, _ = em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=5)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-9)


def test_threaded_passes_agree_with_one_thread(monkeypatch):
    rng = np.random.default_rng(6)
    X = rng.normal(0, 1, (3000, 3))
    start = em.init_state(X, 2, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(0))
    monkeypatch.setattr(em, "_PARALLEL_MIN_WORK", np.inf)
    one, _ = em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=5)
    monkeypatch.setattr(em, "_PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(em, "_CHUNK_ELEMENTS", 64)  # many chunks per worker
    many, _ = em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=5)
    np.testing.assert_allclose(one.means, many.means, rtol=1e-10)
    np.testing.assert_allclose(one.covariances, many.covariances, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_is_exact_far_from_the_origin_and_across_scales(covariance_type):
    # A change of units must not change the fit: EM runs in centred, scaled units.
    rng = np.random.default_rng(7)
    Z = np.vstack([rng.normal(m, 1, (100, 2)) for m in (-3, 3)])
    scale = np.array([1e-4, 1e4]) if covariance_type != "spherical" else np.array([1e4, 1e4])
    # Shifts keep ~1e-9 relative precision in X itself (1e2 * eps vs 1e-4 spread).
    shift = np.array([1e2, -5e7])
    X = Z * scale + shift
    start_z = em.init_state(Z, 2, covariance_type, reg_covar=0.0, init_params="kmeans",
                            rng=np.random.default_rng(0))
    start_x = em.EMState(start_z.weights, start_z.means * scale + shift,
                         *_scaled(start_z, scale))
    fit_z, _ = em.run_em(Z, start_z, reg_covar=0.0, tol=0, max_iter=10)
    fit_x, _ = em.run_em(X, start_x, reg_covar=0.0, tol=0, max_iter=10)
    np.testing.assert_allclose(fit_x.weights, fit_z.weights, rtol=1e-8)
    np.testing.assert_allclose((fit_x.means - shift) / scale, fit_z.means, atol=1e-7)
    np.testing.assert_allclose(_scaled(fit_x, 1 / scale)[0], fit_z.covariances, rtol=1e-7)


def _scaled(state, scale):
    kind = state.covariance_type
    if kind == "full":
        covs = state.covariances * scale[:, None] * scale[None, :]
    elif kind == "tied":
        covs = state.covariances * np.outer(scale, scale)
    elif kind == "diag":
        covs = state.covariances * scale**2
    else:
        covs = state.covariances * scale[0] ** 2
    return covs, em.precision_cholesky(covs, kind), kind


def test_collapsed_component_is_detected():
    X = np.vstack([np.random.default_rng(0).normal(size=(50, 2)), [[5.0, 5.0]] * 3])
    resp = np.zeros((53, 2))
    resp[:50, 0] = 1
    resp[50:, 1] = 1
    state = em.m_step(X, resp, "full", reg_covar=1e-6)
    assert em.collapsed_components(state, 53, 1e-6).tolist() == [1]


def test_failed_cholesky_says_what_to_do():
    with pytest.raises(ValueError, match="increase reg_covar"):
        em.precision_cholesky(np.zeros((1, 2, 2)), "full")


def test_kmeans_is_reproducible_and_separates_blobs(blobs):
    a = em.kmeans(blobs.X, 3, np.random.default_rng(0))
    b = em.kmeans(blobs.X, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(blobs.labels, a) > 0.95
