"""Comparison.table's status column: choices use only fits that pass their own checks."""

import warnings

import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm.compare import Comparison, fit_status


@pytest.fixture(scope="module")
def spurious_sweep(spurious_em_fits):
    return Comparison(dict(spurious_em_fits))


def test_a_collapsed_fit_is_flagged_and_never_chosen(spurious_sweep):
    status = spurious_sweep.table["status"]
    assert status[("em", 3)].startswith("spurious: component(s)")
    assert status[("em", 2)] == "ok" and status[("em", 1)] == "ok"
    # The spurious fit has the best AIC and BIC numerically ...
    assert spurious_sweep.best("aic", include_flagged=True) == 3
    assert spurious_sweep.best("bic", include_flagged=True) == 3
    # ... and is left out by default, with the reason in words.
    assert spurious_sweep.best("aic") == 2 and spurious_sweep.best("bic") == 2
    text = spurious_sweep.verdict()
    assert "K=2" in text and "Left out" in text and "em K=3 (spurious" in text
    assert "Left out" not in spurious_sweep.verdict(include_flagged=True)
    assert spurious_sweep.left_out() == {("em", 3): status[("em", 3)]}


def test_status_of_a_failed_and_an_unconverged_fit():
    X = bg.datasets.load_faithful()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unconverged = bg.EMGMM(2, max_iter=2, random_state=0).fit(X).result_
    assert fit_status(unconverged) == ["EM not converged"]
    cmp = Comparison({("em", 2): unconverged, ("em", 3): None})
    assert cmp.table["status"].tolist() == ["EM not converged", "fit failed"]
    assert cmp.best("bic") is None
    assert "No fit passes its diagnostics" in cmp.verdict()
    assert cmp.best("bic", include_flagged=True) == 2


def test_nuts_fit_that_fails_its_diagnostics_is_flagged(short_nuts_faithful):
    reasons = fit_status(short_nuts_faithful)
    assert any(r.startswith("R-hat") for r in reasons)
    assert any(r.startswith("bulk ESS") for r in reasons)


def test_a_bayesian_component_on_the_auto_floor_is_flagged():
    # One cluster has x0 = 6.0 on every row: its x0 variance is the "auto" floor (the data's
    # resolution, 0.01), not anything the data say. With reg_covar="auto" the check used to
    # count points only, so this fit passed; now the floor is the resolved per-feature one.
    rng = np.random.default_rng(1)
    a = rng.normal([0, 0], 1, (100, 2)).round(1)
    b = np.column_stack([np.full(60, 6.0), rng.normal(6, 1, 60).round(1)])
    X = np.concatenate([a, b])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = bg.BayesGMM(2, method="advi", random_state=0, progressbar=False).fit(X)
    np.testing.assert_allclose(est.result_.config["reg_covar_used"], [0.01, 0.01])
    thin = int(np.argmax(est.result_.means.mean(("chain", "draw")).values[:, 0]))
    assert f"spurious: component(s) [{thin}] collapsed" in fit_status(est.result_)
    # and the same data without the constant column pass
    X[100:, 0] += rng.normal(0, 1, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = bg.BayesGMM(2, method="advi", random_state=0, progressbar=False).fit(X)
    assert not any(r.startswith("spurious") for r in fit_status(ok.result_))


@pytest.mark.parametrize("reg_covar", [1e-9, 0.0])
def test_a_near_singular_component_is_flagged_whatever_the_floor(reg_covar):
    # Data of variance about 13 with a 40-point cluster lying on a line (spread 1.1e-4
    # across it, variance about 1e-8, i.e. 1e-9 of the data's). With a floor far below that
    # variance the floor test cannot see it; the rule relative to the data must.
    rng = np.random.default_rng(0)
    a = rng.normal([0, 0], 1.5, (150, 2))
    b = rng.normal([7, 7], 1.5, (150, 2))
    t = rng.uniform(-3, 3, 40)
    line = np.column_stack([3 + t, 3 + 0.5 * t + rng.normal(0, 1.1e-4, 40)])
    X = np.concatenate([a, b, line])
    with pytest.warns(bg.ConvergenceWarning, match="near-singular"):
        result = bg.EMGMM(3, reg_covar=reg_covar, n_init=10, random_state=0).fit(X).result_
    thinnest = min(np.linalg.eigvalsh(result.covariances.values)[:, 0])
    assert thinnest < 1e-7 * X.var(axis=0).min()  # the case is what it says
    assert any(r.startswith("spurious") for r in fit_status(result))
    cmp = Comparison({("em", 3): result})
    assert cmp.best("bic") is None and cmp.best("bic", include_flagged=True) == 3


def test_a_thin_but_real_cluster_is_not_flagged():
    # A cluster 1,000 times narrower than the data (variance ratio 1e-6) is real data,
    # not a singular fit: the relative rule must leave it alone.
    rng = np.random.default_rng(1)
    wide = rng.normal(0, 10, (200, 2))
    thin = rng.normal([5, 5], 0.01, (100, 2))
    result = bg.EMGMM(2, reg_covar=0.0, n_init=3, random_state=0).fit(
        np.concatenate([wide, thin])).result_
    assert fit_status(result) == []


def test_a_component_narrower_than_the_data_rounding_is_flagged():
    # 40 rows recorded to 0.1 whose second feature is 2.0 on every row but one: that
    # component's variance across x1 is far below the rounding variance (0.1^2 / 12) of
    # the data, floor or not; a real cluster as narrow as the rounding passes.
    rng = np.random.default_rng(4)
    wide = rng.normal([0, 0], 1.0, (200, 2))
    spike = np.column_stack([rng.normal(5, 1.0, 40), np.full(40, 2.0)])
    spike[0, 1] = 2.1
    X = np.concatenate([wide, spike]).round(1)
    from bayesgmm import em

    rounding = em.rounding_variance(X)
    np.testing.assert_allclose(rounding, 0.01 / 12, rtol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.EMGMM(2, n_init=1, random_state=0).fit(X)
    thin = np.linalg.eigvalsh(fit.covariances_).min(axis=1)
    assert thin.min() < 0.01 / 12  # the fit is what the test says
    assert any(r.startswith("spurious") for r in fit_status(fit.result_))
    ok = np.concatenate([wide, np.column_stack([rng.normal(5, 1.0, 40),
                                                rng.normal(2, 0.1, 40)])]).round(1)
    assert fit_status(bg.EMGMM(2, n_init=1, random_state=0).fit(ok).result_) == []
