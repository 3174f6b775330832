"""LOO and WAIC against the exact leave-one-out predictive density of a conjugate model.

For x_i ~ N(mu, 1) with mu ~ N(0, tau^2) the posterior is normal in closed form, and so is
every leave-one-out predictive density: p(x_i | x_-i) = N(x_i; m_-i, 1 + v_-i), with
v_-i = 1 / (1/tau^2 + n - 1) and m_-i = v_-i * sum_{j != i} x_j. The exact elpd_loo needs
no sampling; the package's estimates from exact posterior draws must reach it.
"""

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from bayesgmm import posterior
from bayesgmm.posterior import LOG_LIK_VAR

N, TAU, SHAPE = 50, 10.0, (4, 1000)  # 4 "chains" of 1000 independent posterior draws


def _conjugate(seed):
    """A posterior tree of draws of mu, the exact pointwise elpd_loo and the exact lppd."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 1.0, N)
    v = 1 / (1 / TAU**2 + N)
    mu = rng.normal(v * x.sum(), np.sqrt(v), SHAPE)
    tree = xr.DataTree()
    tree["posterior"] = xr.Dataset({"mu": (("chain", "draw"), mu)})
    tree["log_likelihood"] = xr.Dataset(
        {LOG_LIK_VAR: (("chain", "draw", "obs"), stats.norm.logpdf(x, mu[..., None], 1.0))})
    v_loo = 1 / (1 / TAU**2 + N - 1)
    exact_loo = stats.norm.logpdf(x, v_loo * (x.sum() - x), np.sqrt(1 + v_loo))
    exact_lppd = stats.norm.logpdf(x, v * x.sum(), np.sqrt(1 + v))
    return tree, exact_loo, exact_lppd


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psis_loo_reaches_the_exact_leave_one_out_elpd(seed):
    tree, exact_loo, exact_lppd = _conjugate(seed)
    out = posterior.loo(tree)
    # Tolerance: with 4000 independent draws the Monte Carlo error of the total is about
    # 0.016 nats (sd over 20 seeds; largest 0.045), shared by all points through the draws;
    # 0.1 is 6 sd. Wrong answers are far: the in-sample lppd is p_loo ~ 1 nat higher.
    assert out.elpd == pytest.approx(exact_loo.sum(), abs=0.1)
    assert out.p == pytest.approx(exact_lppd.sum() - exact_loo.sum(), abs=0.1)
    assert exact_lppd.sum() - exact_loo.sum() > 0.5  # so the in-sample lppd would fail
    # per point the error is below 0.014 in 20 seeds (Pareto k < 0.25 everywhere)
    np.testing.assert_allclose(np.asarray(out.elpd_i).ravel(), exact_loo, atol=0.03)
    assert float(np.max(out.pareto_k)) < 0.5
    # se = sqrt(n var_i(elpd_i)) (ddof=1); the exact pointwise values give it to 1 %
    assert out.se == pytest.approx(np.sqrt(N * np.var(exact_loo, ddof=1)), rel=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_waic_reaches_the_exact_leave_one_out_elpd(seed):
    # WAIC is asymptotically equal to LOO (Watanabe 2010); for this one-parameter normal
    # model with n=50 the two differ by less than the Monte Carlo error above.
    tree, exact_loo, exact_lppd = _conjugate(seed)
    out = posterior.waic(tree)
    assert out.elpd == pytest.approx(exact_loo.sum(), abs=0.1)
    assert out.p == pytest.approx(exact_lppd.sum() - exact_loo.sum(), abs=0.1)
    np.testing.assert_allclose(out.pointwise.values, exact_loo, atol=0.03)
