"""EM's BLAS threads (issue 16) and its two full-covariance kernels (issue 13 §2).

EM plans its threads per pass (:func:`bayesgmm.em.plan_threads`) and sets the
BLAS limit only while a pass runs: whatever happens, the caller's limit is
the one in force afterwards. The projected full-covariance kernel (chosen for
D >= 3K) and the expanded one must give the same densities, responsibilities
and M-step, both equal to scipy.stats.
"""

import os
import threading

import numpy as np
import pytest
from conftest import random_state
from scipy import stats
from scipy.special import logsumexp
from threadpoolctl import threadpool_info, threadpool_limits

import bayesgmm as bg
from bayesgmm import em

two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                              reason="the threaded plan needs two CPUs")


def _blas_limits():
    """Every BLAS library's thread limit, as threadpoolctl reports it (independent of em)."""
    return sorted(info["num_threads"] for info in threadpool_info()
                  if info["user_api"] == "blas")


def _problem(n=2000, d=3, k=2, seed=0):
    X = bg.datasets.make_blobs_gmm(n, k, d, random_state=seed).X
    start = em.init_state(X, k, "full", reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(seed))
    return X, start


@pytest.fixture
def threaded(monkeypatch):
    """Every pass large enough for row blocks on two threads (the plan's threshold at 0)."""
    monkeypatch.setattr(em, "_PARALLEL_MIN_WORK", 0)


def test_plan_is_one_thread_for_small_work():
    with threadpool_limits(limits=2, user_api="blas"):
        # 300 x 2 x 2 rows-components-features: far below the threshold
        assert em.plan_threads(300, 2, 2, "full") == (1, 1)
        assert em.plan_threads(2000, 2, 2, "diag") == (1, 1)


@two_cpus
def test_plan_splits_large_work_into_row_blocks_with_one_blas_thread_each():
    with threadpool_limits(limits=2, user_api="blas"):
        assert em.plan_threads(200_000, 8, 16, "full") == (2, 1)
        assert em.plan_threads(200_000, 8, 16, "spherical") == (2, 1)


@two_cpus
def test_plan_respects_the_callers_limit():
    with threadpool_limits(limits=1, user_api="blas"):
        assert em.plan_threads(200_000, 8, 16, "full") == (1, 1)
    with threadpool_limits(limits=2, user_api="blas"):
        workers, blas = em.plan_threads(200_000, 8, 16, "full")
        assert workers * blas == 2


def test_plan_never_exceeds_the_cpus():
    cpus = len(os.sched_getaffinity(0))
    with threadpool_limits(limits=64, user_api="blas"):
        for shape in [(200_000, 8, 64), (2000, 30, 64), (20_000, 2, 2)]:
            workers, blas = em.plan_threads(*shape, "full")
            assert workers * blas <= min(4, cpus)


@two_cpus
def test_fit_sets_one_blas_thread_per_worker_and_restores_the_callers_limit(threaded):
    X, start = _problem()
    during = []
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_limits()
        em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=3,
                  callback=lambda i, ll: during.append(_blas_limits()))
        assert _blas_limits() == before
    # inside the passes each of the two row-block threads has one BLAS thread
    assert all(set(limits) == {1} for limits in during)


def test_estimator_fit_leaves_the_callers_limit_as_it_was(threaded):
    X, _ = _problem(n=3000)
    for caller in (1, 2, 3):
        with threadpool_limits(limits=caller, user_api="blas"):
            before = _blas_limits()
            model = bg.EMGMM(2, random_state=0).fit(X)
            model.predict_proba(X)
            model.score_samples(X)
            assert _blas_limits() == before


def test_callers_limit_is_restored_after_an_error_inside_the_fit(threaded, monkeypatch):
    X, start = _problem()

    def interrupt(iteration, mean_log_likelihood):
        raise KeyboardInterrupt  # as Ctrl-C inside the loop

    def failed_cholesky(self, reg):
        raise ValueError("not positive definite")

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_limits()
        with pytest.raises(KeyboardInterrupt):
            em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=5, callback=interrupt)
        assert _blas_limits() == before
        monkeypatch.setattr(em._Stats, "m_step", failed_cholesky)
        with pytest.raises(ValueError, match="reg_covar"):
            em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=5)
        assert _blas_limits() == before


@two_cpus
def test_a_fit_in_another_thread_plans_from_the_callers_limit(threaded):
    # The BLAS limit is process-wide. Fit A (this thread) sets it; fit B starts
    # in another thread while A runs and is still running when A finishes. B
    # must plan from the caller's limit, not from A's temporary one, and the
    # caller's limit must be back after both, whichever ends first.
    # (OpenBLAS ignores a new limit set from a second thread once the main
    # thread has set one, so only the main thread's fit can change it here.)
    X, start = _problem()
    overlap = threading.Barrier(2, timeout=60)
    a_done = threading.Event()
    seen, errors = {}, []

    def fit_b():
        def callback(iteration, ll):
            if iteration == 1:
                overlap.wait()
                seen["plan"] = em.plan_threads(2000, 2, 3, "full")
                a_done.wait(timeout=60)

        try:
            em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=2, callback=callback)
        except Exception as exc:  # reported to the main thread
            errors.append(exc)

    b = threading.Thread(target=fit_b)

    def callback_a(iteration, ll):
        if iteration == 1:
            seen["during_a"] = _blas_limits()
            b.start()
            overlap.wait()

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_limits()
        try:
            em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=2, callback=callback_a)
        finally:
            a_done.set()
        b.join(timeout=120)
        assert not errors
        assert set(seen["during_a"]) == {1}
        assert seen["plan"] == (2, 1)  # planned from the caller's 2 threads, not A's 1
        assert _blas_limits() == before


# --------------------------------------------------------------------------
# The projected and the expanded full-covariance kernels
# --------------------------------------------------------------------------


def _reference(X, state):
    """Weighted log-densities by scipy.stats, one component at a time."""
    return np.column_stack([
        np.log(state.weights[j])
        + stats.multivariate_normal(state.means[j], state.covariances[j]).logpdf(X)
        for j in range(state.weights.size)])


@pytest.fixture(params=["projected", "expanded"])
def kernel(request, monkeypatch):
    """Run the full-covariance kernel of the given kind, whatever the shape prefers."""
    projected = request.param == "projected"
    monkeypatch.setattr(em, "_prefer_projection", lambda k, d: projected)
    return request.param


@pytest.mark.parametrize(("k", "d"), [(2, 12), (3, 4)])  # D >= 3K (projected) and below
def test_full_kernels_match_scipy(kernel, k, d):
    rng = np.random.default_rng(11)
    X = rng.normal(0, 2, (400, d)) + 5.0
    state = random_state("full", k, d, seed=3)
    state = state._replace(means=state.means + 5.0)
    reference = _reference(X, state)
    # rtol 1e-10: both are exact double-precision formulas of the same density
    np.testing.assert_allclose(em.weighted_log_prob(X, state), reference, rtol=1e-10)
    log_lik, resp = em.e_step(X, state)
    np.testing.assert_allclose(log_lik, logsumexp(reference, axis=1), rtol=1e-10)
    np.testing.assert_allclose(resp, np.exp(reference - logsumexp(reference, axis=1)[:, None]),
                               rtol=1e-8, atol=1e-14)


def test_projected_kernel_is_the_default_only_where_d_is_at_least_3k():
    assert em._prefer_projection(2, 64) and em._prefer_projection(8, 64)
    assert not em._prefer_projection(30, 64) and not em._prefer_projection(8, 16)
    assert not em._prefer_projection(1, 2)  # small D: the expanded form is cheap


def test_projected_and_expanded_fits_agree(monkeypatch):
    # One EM run each way from the same start: the projected kernel takes second
    # moments about the previous means, the expanded one raw moments; the
    # parameters must agree to rounding (5 iterations, rtol 1e-9).
    X, start = _problem(n=1500, d=12, k=2, seed=4)
    fits = {}
    for projected in (True, False):
        monkeypatch.setattr(em, "_prefer_projection", lambda k, d, p=projected: p)
        fits[projected] = em.run_em(X, start, reg_covar=1e-6, tol=0, max_iter=5)
    (a, info_a), (b, info_b) = fits[True], fits[False]
    np.testing.assert_allclose(info_a.trace, info_b.trace, rtol=1e-12)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-9, atol=1e-12)


def test_responsibilities_far_below_exp_underflow_are_zero_to_the_sum():
    # Components 800 log-units apart: exp() of the gap underflows; the log-sum-exp
    # floors it at exp(-700), which no sum or log-likelihood can see.
    state = random_state("diag", 2, 1, seed=0)
    state = state._replace(means=np.array([[0.0], [60.0]]), covariances=np.ones((2, 1)),
                           precisions_cholesky=np.ones((2, 1)))
    X = np.array([[-10.0], [0.0], [70.0]])
    reference = _reference(X, em.EMState(state.weights, state.means,
                                         np.ones((2, 1, 1)), np.ones((2, 1, 1)), "full"))
    log_lik, resp = em.e_step(X, state)
    np.testing.assert_allclose(log_lik, logsumexp(reference, axis=1), rtol=1e-12)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-15)
    assert resp[0, 1] < 1e-300 and resp[2, 0] < 1e-300
