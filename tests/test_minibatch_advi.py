"""Minibatch ADVI (issue 13 §3): unbiased minibatch gradients, optimiser, BayesGMM(batch_size)."""

import dataclasses
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import bayesgmm as bg
from bayesgmm.bayes import vi
from bayesgmm.bayes.density import MixtureDensity
from bayesgmm.bayes.spec import model_data


def _mixture(n, seed=0):
    """Three well separated components in 2-D with unequal spreads."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    return centres[rng.integers(0, 3, n)] + rng.standard_normal((n, 2)) * np.array([1.0, 0.5])


def _density(X, kind="full"):
    return MixtureDensity(3, 2, kind, model_data(X, 3, None, np.full(2, 1e-6), kind))


def _point(dens, seed=1):
    x = np.random.default_rng(seed).normal(scale=0.5, size=dens.n_dim)
    assert np.isfinite(dens.logp(x))
    return x


# ---------------------------------------------------------------------------
# the minibatch estimate of the log-density and its gradient
# ---------------------------------------------------------------------------


def test_epoch_batches_visit_every_row_once_in_even_batches():
    rng = np.random.default_rng(0)
    first = vi.epoch_batches(1003, 100, rng)
    second = vi.epoch_batches(1003, 100, rng)
    for batches in (first, second):
        sizes = [b.size for b in batches]
        assert len(batches) == 11 and max(sizes) <= 100 and max(sizes) - min(sizes) <= 1
        assert_allclose(np.sort(np.concatenate(batches)), np.arange(1003))
        assert all(np.all(np.diff(b) > 0) for b in batches)  # sorted, no repeats
    assert not np.array_equal(first[0], second[0])  # a new permutation every epoch
    again = vi.epoch_batches(1003, 100, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_subset_density_is_the_kernel_on_those_rows(kind):
    # value_and_grad_rows(x, rows, 1) is the model's density on the data of those rows only
    # (same standardization and priors): an independent MixtureDensity built on the subset
    X = _mixture(500)
    dens = _density(X, kind)
    rows = np.sort(np.random.default_rng(3).choice(500, 77, replace=False))
    sub = MixtureDensity(3, 2, kind, dataclasses.replace(dens.data, X_std=dens.data.X_std[rows]))
    x = _point(dens)
    value, grad = dens.value_and_grad_rows(x, rows, 1.0)
    ref_value, ref_grad = sub.value_and_grad(x)
    assert_allclose(value, ref_value, rtol=1e-12)
    assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10)
    # no rows: the prior (and Jacobians) alone, whatever the scale
    prior, _ = dens.value_and_grad_rows(x, rows[:0], 123.0)
    empty = MixtureDensity(3, 2, kind, dataclasses.replace(dens.data, X_std=dens.data.X_std[:0]))
    assert_allclose(prior, empty.logp(x), rtol=1e-12)
    # the scale multiplies the likelihood only
    scaled, _ = dens.value_and_grad_rows(x, rows, 7.0)
    assert_allclose(scaled - prior, 7.0 * (value - prior), rtol=1e-10)


@pytest.mark.parametrize("n", [1000, 1003])
def test_an_epochs_minibatch_gradients_average_to_the_full_gradient(n):
    # unbiased: every row is in exactly one batch per epoch, so the batches' estimates
    # (likelihood scaled by n / |b|), weighted by |b| / n, sum to the full-data value and
    # gradient; with equal batches (n = 1000) that is their plain mean. Float tolerance:
    # sums of ~1000 terms of size ~1 in a different order
    X = _mixture(n)
    dens = _density(X)
    x = _point(dens)
    full_value, full_grad = dens.value_and_grad(x)
    batches = vi.epoch_batches(n, 100, np.random.default_rng(5))
    estimates = [dens.value_and_grad_rows(x, b, n / b.size) for b in batches]
    weights = np.array([b.size for b in batches]) / n
    assert_allclose(weights @ np.array([e[0] for e in estimates]), full_value, rtol=1e-12)
    assert_allclose(weights @ np.array([e[1] for e in estimates]), full_grad,
                    rtol=1e-9, atol=1e-9 * np.abs(full_grad).max())
    if n % 100 == 0:
        assert_allclose(np.mean([e[1] for e in estimates], axis=0), full_grad,
                        rtol=1e-9, atol=1e-9 * np.abs(full_grad).max())
    # the control-variate form the optimiser uses (same rows at an anchor, plus the full
    # value there) averages to the full gradient too
    anchor = x + 0.01
    a_value, a_grad = dens.value_and_grad(anchor)
    cv = [dens.value_and_grad_rows(x, b, n / b.size)[1]
          - dens.value_and_grad_rows(anchor, b, n / b.size)[1] + a_grad for b in batches]
    assert_allclose(weights @ np.array(cv), full_grad, rtol=1e-9,
                    atol=1e-9 * np.abs(full_grad).max())
    # ... and its spread over batches is far smaller than the plain estimate's
    plain_spread = np.std([e[1] for e in estimates], axis=0).max()
    assert np.std(cv, axis=0).max() < 0.2 * plain_spread
    assert np.isfinite(a_value)


def test_minibatch_estimate_is_unbiased_with_missing_entries():
    # NaN entries: the kernel walks its rows in runs of one missingness pattern; rows index
    # that order (kernel_args[0]) and sorted batches keep patterns together
    X = _mixture(600)
    rng = np.random.default_rng(2)
    X[rng.random(X.shape) < 0.15] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    dens = _density(X)
    x = _point(dens)
    n = dens.n_rows
    full_value, full_grad = dens.value_and_grad(x)
    batches = vi.epoch_batches(n, 64, np.random.default_rng(0))
    weights = np.array([b.size for b in batches]) / n
    est = [dens.value_and_grad_rows(x, b, n / b.size) for b in batches]
    assert_allclose(weights @ np.array([e[0] for e in est]), full_value, rtol=1e-12)
    assert_allclose(weights @ np.array([e[1] for e in est]), full_grad, rtol=1e-9,
                    atol=1e-9 * np.abs(full_grad).max())


# ---------------------------------------------------------------------------
# the optimiser, on a target whose posterior is known exactly
# ---------------------------------------------------------------------------

_RNG = np.random.default_rng(11)
_DESIGN = np.column_stack([np.ones(4000), _RNG.normal(size=4000)])
_Y = _DESIGN @ np.array([1.0, -0.5]) + _RNG.normal(size=4000)
_PRIOR_PREC = np.eye(2)
# Bayesian linear regression, unit noise and N(0, I) prior: the posterior is Gaussian
_POST_PREC = _PRIOR_PREC + _DESIGN.T @ _DESIGN
_POST_COV = np.linalg.inv(_POST_PREC)
_POST_MEAN = _POST_COV @ _DESIGN.T @ _Y


def _regression_rows(x, rows, scale):
    r = _Y[rows] - _DESIGN[rows] @ x
    value = -0.5 * x @ _PRIOR_PREC @ x - 0.5 * scale * r @ r
    return value, -_PRIOR_PREC @ x + scale * _DESIGN[rows].T @ r


def _regression(x):
    return _regression_rows(x, np.arange(_Y.size), 1.0)


def _in_posterior_sds(q):
    return np.abs(q.mean - _POST_MEAN) / np.sqrt(np.diag(_POST_COV))


def test_fullrank_minibatch_recovers_the_exact_posterior():
    q, trace = vi.fit_minibatch_advi(_regression_rows, np.zeros(2), _Y.size, 50,
                                     method="fullrank_advi", value_and_grad=_regression,
                                     rng=np.random.default_rng(0))
    assert q.converged and trace.n_decays >= 1 and trace.control_variate
    # the window-averaged mean is within a fifth of a posterior sd of the exact mean (the
    # stopping rule asks window-to-window moves below 0.2 sd), the covariance within 15 %
    assert np.all(_in_posterior_sds(q) < 0.2)
    assert_allclose(q.chol @ q.chol.T, _POST_COV, rtol=0.15, atol=0.15 * _POST_COV.max())


def test_meanfield_minibatch_reaches_the_mean_field_optimum_without_control_variate():
    # no anchor: plain minibatch gradients (noisier); the mean-field optimum of a Gaussian
    # target has q's variances 1 / diag(precision) (Bishop 2006, 10.1.2)
    q, trace = vi.fit_minibatch_advi(_regression_rows, np.zeros(2), _Y.size, 200,
                                     method="advi", rng=np.random.default_rng(1))
    assert q.converged and not trace.control_variate
    assert np.all(_in_posterior_sds(q) < 0.5)
    assert_allclose(np.diag(q.chol) ** 2, 1.0 / np.diag(_POST_PREC), rtol=0.2)


def test_batch_of_every_row_reaches_the_full_batch_optimum():
    # batch_size = n: each step sees every row (scale 1), the same gradient as full batch;
    # both optimisers then reach the same q up to their Monte Carlo noise
    minibatch, _ = vi.fit_minibatch_advi(_regression_rows, np.zeros(2), _Y.size, _Y.size,
                                         method="fullrank_advi", rng=np.random.default_rng(2))
    full = vi.fit_advi(_regression, np.zeros(2), method="fullrank_advi", max_steps=20_000,
                       rng=np.random.default_rng(2))
    sd = np.sqrt(np.diag(_POST_COV))
    assert np.all(np.abs(minibatch.mean - full.mean) / sd < 0.5)
    assert np.all(_in_posterior_sds(minibatch) < 0.2)


def test_minibatch_optimiser_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 4000\]"):
        vi.fit_minibatch_advi(_regression_rows, np.zeros(2), _Y.size, 0)
    with pytest.raises(ValueError, match="batch_size"):
        vi.fit_minibatch_advi(_regression_rows, np.zeros(2), _Y.size, 4001)
    with pytest.raises(ValueError, match="batch_size"):
        vi.fit_minibatch_advi(_regression_rows, np.zeros(2), _Y.size, 10.0)
    with pytest.raises(ValueError, match="method must be one of"):
        vi.fit_minibatch_advi(_regression_rows, np.zeros(2), _Y.size, 10, method="nuts")
    with pytest.raises(ValueError, match="not finite at the starting point"):
        vi.fit_minibatch_advi(lambda x, r, s: (-np.inf, np.zeros(2)), np.zeros(2), 10, 5)


# ---------------------------------------------------------------------------
# BayesGMM(batch_size=...)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minibatch_fit():
    X = _mixture(20_000, seed=4)
    est = bg.BayesGMM(3, method="fullrank_advi", batch_size=1000, draws=200, random_state=0,
                      progressbar=False).fit(X)
    return X, est


def test_minibatch_fit_reaches_em_within_two_hundredths_of_a_data_sd(minibatch_fit):
    X, est = minibatch_fit
    attrs = est.result_.idata["variational"].attrs
    assert attrs["engine"] == "kernel" and attrs["batch_size"] == 1000
    assert attrs["converged"] == 1 and est.result_.converged
    assert 1 <= attrs["n_anchors"] and attrs["n_epochs"] < 1000
    # the goal of issue 13 §3: posterior means within 0.02 data sd of the EM optimum
    # (the posterior sd of a mean here is about 0.005 data sd; both fits are labelled alike,
    # the draws are relabeled to EM)
    gap = np.abs(est.means_ - est.reference_.means_) / X.std(axis=0)
    assert gap.max() < 0.02
    # the diagnostic of the approximation on the full data: full-rank q fits the posterior
    assert 0 <= attrs["pareto_k"] < 0.7
    # and it is a posterior, not a point: at 20,000 rows the posterior is close to the
    # Laplace approximation at the mode (Bernstein-von Mises), whose sds of the means come
    # from the curvature of the full-data log-density at the EM optimum (0.006-0.025 data
    # units here: two components overlap along the first feature). 200 draws give the
    # spread to about 5 %; 25 % allows for the remaining non-Gaussianity
    from bayesgmm import em
    from bayesgmm.bayes.params import raw_from_params, unconstrained_from_raw

    md = model_data(X, 3, None, est.reg_covar_, "full")
    dens = MixtureDensity(3, 2, "full", md)
    ref = est.reference_
    cov = em.full_covariances(ref.covariances_, "full", 3, 2)
    start = dens.flatten(unconstrained_from_raw(raw_from_params(
        ref.weights_, ref.means_, cov, covariance_type="full", center=md.center,
        scale=md.scale, reg_diag=md.reg_diag)))
    L = vi.curvature_factor(dens.value_and_grad_rows, start, np.arange(dens.n_rows), 1.0,
                            full=True, max_std=10.0)
    mu = dens.slices[dens.names.index("mu_std")]
    laplace = np.sqrt(np.sum(L * L, axis=1))[mu].reshape(3, 2) * md.scale
    spread = est.result_.means.std(("chain", "draw")).values
    assert_allclose(spread, laplace, rtol=0.25)


def test_same_seed_same_minibatches_and_fit():
    X = _mixture(3000, seed=7)
    kw = dict(method="advi", batch_size=300, draws=50, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mean-field k-hat may be flagged here
        a = bg.BayesGMM(3, random_state=3, **kw).fit(X)
        b = bg.BayesGMM(3, random_state=3, **kw).fit(X)
        c = bg.BayesGMM(3, random_state=4, **kw).fit(X)
    la, lb, lc = (e.result_.idata["variational"]["loss"].values for e in (a, b, c))
    assert np.array_equal(la, lb) and not np.array_equal(la[:100], lc[:100])


def test_batch_size_n_is_the_full_batch_fit():
    X = bg.datasets.load_faithful()
    kw = dict(method="advi", draws=100, random_state=0, progressbar=False)
    full = bg.BayesGMM(2, **kw).fit(X)
    same = bg.BayesGMM(2, batch_size=len(X), **kw).fit(X)
    assert_allclose(same.result_.means.values, full.result_.means.values, rtol=0, atol=0)
    assert "batch_size" not in same.result_.idata["variational"].attrs


def test_minibatch_fit_with_missing_entries(tmp_path):
    X = _mixture(4000, seed=8)
    rng = np.random.default_rng(0)
    X[rng.random(X.shape) < 0.1] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    est = bg.BayesGMM(3, method="fullrank_advi", batch_size=400, draws=100, random_state=0,
                      progressbar=False).fit(X)
    attrs = est.result_.idata["variational"].attrs
    assert attrs["engine"] == "kernel" and attrs["batch_size"] == 400 and attrs["converged"]
    # the EM reference marginalises the same missing entries; the posterior means sit
    # within a few posterior sds (~0.015 data sd at 4,000 rows) of its optimum
    gap = np.abs(est.means_ - est.reference_.means_) / np.nanstd(X, axis=0)
    assert gap.max() < 0.05
    # the schedule's record survives a save and load
    est.result_.to_netcdf(tmp_path / "fit.nc")
    back = bg.load(tmp_path / "fit.nc").idata["variational"].attrs
    assert back["batch_size"] == 400 and len(back["moved"]) == len(attrs["moved"])


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True])
def test_bad_batch_size_is_refused(bad):
    X = _mixture(200)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        bg.BayesGMM(3, method="advi", batch_size=bad).fit(X)


def test_batch_size_above_n_rows_nuts_and_pymc_are_refused():
    X = _mixture(200)
    with pytest.raises(ValueError, match=r"batch_size must be at most the number of rows \(200\)"):
        bg.BayesGMM(3, method="advi", batch_size=201).fit(X)
    with pytest.raises(ValueError, match="batch_size=50 needs method='advi' or 'fullrank_advi'"):
        bg.BayesGMM(3, method="nuts", batch_size=50).fit(X)
    with pytest.raises(ValueError, match="sampler='pymc'"):
        bg.BayesGMM(3, method="advi", sampler="pymc", batch_size=50).fit(X)


def test_too_few_draws_for_psis_give_nan_not_a_failure():
    # PSIS fits min(S / 5, 3 sqrt(S)) tail ratios and needs 5: with 20 draws arviz-stats
    # raises, which used to send the whole ADVI fit to the pm.fit fallback (and fail there)
    q = vi.GaussianApproximation("advi", np.zeros(1), 1.5 * np.eye(1), np.zeros(1), True, 1)
    p = lambda v: -0.5 * float(v @ v)  # noqa: E731
    assert np.isnan(vi.importance_pareto_k(p, q, q.sample(20, np.random.default_rng(0))))
    assert np.isfinite(vi.importance_pareto_k(p, q, q.sample(40, np.random.default_rng(0)),
                                              workers=2))
