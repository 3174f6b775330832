"""Bayesian results in bounded memory (issue 13 section 1).

Per-draw quantities over observations are computed in blocks of observations (all
draws each) and reduced on the spot. Checked here on fake posteriors (no sampling):

- every summary (pointwise log-likelihood, mean responsibilities, intervals, the
  assignment table, WAIC, PSIS-LOO) equals a direct unchunked computation from
  scipy.stats densities, ArviZ's ``loo`` on the whole matrix, or the hand formula;
- the block size changes nothing but rounding;
- the memory they take is a block's, not the ``(chain, draw, obs, component)`` array's;
- a float32 log-likelihood moves WAIC and LOO far less than their Monte Carlo error;
- a large log-likelihood is left out of a saved file and recomputed on loading.

One short NUTS fit (Old Faithful, K=2, the compiled kernel: seconds) checks what a fit stores.
"""

import tracemalloc
import warnings

import arviz as az
import h5netcdf
import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose
from scipy import stats
from scipy.special import logsumexp

import bayesgmm as bg
from bayesgmm import posterior, results
from bayesgmm.exceptions import ConvergenceWarning, DiagnosticsWarning

K, D = 3, 2


def _fake(n_chain=2, n_draw=60, n_obs=45, seed=0):
    """A posterior tree of overlapping components (uncertain responsibilities)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-1.5, 0.0], [1.5, 0.0], [0.0, 2.0]])
    X = centres[rng.integers(0, K, n_obs)] + rng.normal(size=(n_obs, D))
    shape = (n_chain, n_draw)
    m = centres + 0.3 * rng.normal(size=(*shape, K, D))
    w = rng.dirichlet([20.0] * K, size=shape)
    a = 0.3 * rng.normal(size=(*shape, K, D, D))
    c = np.eye(D) + a @ np.swapaxes(a, -1, -2)
    s = n_chain * n_draw
    ll = _direct_log_density(X, w.reshape(s, K), m.reshape(s, K, D), c.reshape(s, K, D, D))
    ll = logsumexp(ll, axis=-1)
    cd = {"chain": np.arange(n_chain), "draw": np.arange(n_draw)}
    names = ["x0", "x1"]
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset(
            {"weights": (("chain", "draw", "component"), w),
             "means": (("chain", "draw", "component", "feature"), m),
             "covariances": (("chain", "draw", "component", "feature", "feature_bis"), c)},
            coords={**cd, "component": np.arange(K), "feature": names, "feature_bis": names}),
        "log_likelihood": posterior.log_likelihood_group(ll, cd["chain"], cd["draw"]),
        "observed_data": xr.Dataset({"X": (("obs", "feature"), X)},
                                    coords={"obs": np.arange(n_obs), "feature": names}),
    })
    return tree, X, (w.reshape(s, K), m.reshape(s, K, D), c.reshape(s, K, D, D))


def _direct_log_density(X, w, m, c):
    """log w_k + log N(x | m_k, c_k) by scipy, for every draw, point and component."""
    return np.stack([
        np.stack([np.log(w[s, k]) + stats.multivariate_normal(m[s, k], c[s, k]).logpdf(X)
                  for k in range(w.shape[1])], axis=-1)
        for s in range(w.shape[0])])


@pytest.fixture(scope="module")
def fake():
    tree, X, draws = _fake()
    lp = _direct_log_density(X, *draws)  # (S, N, K): the unchunked reference
    ll = logsumexp(lp, axis=-1)
    resp = np.exp(lp - ll[..., None])
    return tree, X, draws, ll, resp


# budgets of 1, 7 and all 45 observations per block (float64 values: 120 draws x K)
BUDGETS = [1, 8 * 120 * K * 7, None]


@pytest.mark.parametrize("budget", BUDGETS)
def test_draw_summaries_equal_the_unchunked_scipy_computation(fake, budget):
    _, X, draws, ll, resp = fake
    out = posterior.draw_summaries(X, *draws, prob=0.8, budget=budget)
    # scipy's densities against EM's Cholesky form: rounding only (values of order 1-10)
    assert_allclose(out.log_lik, ll, rtol=1e-12, atol=1e-12)
    assert_allclose(out.mean, resp.mean(axis=0), rtol=1e-12, atol=1e-14)
    want = np.moveaxis(np.quantile(resp, [0.1, 0.9], axis=0), 0, -1)
    assert_allclose(out.interval, want, rtol=1e-12, atol=1e-14)
    assert np.all(out.interval[..., 0] <= out.interval[..., 1])


def test_the_block_size_changes_nothing_but_rounding(fake):
    _, X, draws, _, _ = fake
    runs = [posterior.draw_summaries(X, *draws, prob=0.94, budget=b) for b in BUDGETS]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            # each block is evaluated in its own working units (column scales of the
            # block): 1e-13 relative, far from any statistical difference
            assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert posterior.obs_blocks(45, 120, K, budget=1) == [slice(i, i + 1) for i in range(45)]
    blocks = posterior.obs_blocks(45, 120, K, budget=8 * 120 * K * 7)
    assert [b.stop - b.start for b in blocks] == [7] * 6 + [3]


@pytest.mark.parametrize("budget", BUDGETS)
def test_interval_and_assignment_table_equal_the_direct_computation(fake, budget):
    tree, *_, resp = fake
    iv = posterior.responsibility_interval(tree, 0.9, budget=budget)
    assert iv.dims == ("obs", "component", "ci_bound")
    assert list(iv["ci_bound"].values) == ["lower", "upper"]
    assert iv.attrs == {"ci_kind": "eti", "ci_prob": 0.9}
    assert_allclose(iv.values, np.moveaxis(np.quantile(resp, [0.05, 0.95], axis=0), 0, -1),
                    rtol=1e-12, atol=1e-14)
    table = posterior.assignment_uncertainty(tree, 0.9, budget=budget)
    mean = resp.mean(axis=0)
    labels = mean.argmax(axis=1)
    rows = np.arange(len(labels))
    chosen = resp[:, rows, labels]  # (S, N): the assigned component's responsibility
    np.testing.assert_array_equal(table["label"].values, labels)
    assert_allclose(table["probability"].values, mean[rows, labels], rtol=1e-12)
    assert_allclose(table["lower"].values, np.quantile(chosen, 0.05, axis=0), rtol=1e-12)
    assert_allclose(table["upper"].values, np.quantile(chosen, 0.95, axis=0), rtol=1e-12)
    assert_allclose(table["entropy"].values, stats.entropy(mean, axis=1), rtol=1e-10)
    assert table["probability"].min() < 0.9  # overlapping components: a real test


@pytest.mark.parametrize("budget", [8 * 120 * 5, None])
def test_waic_and_loo_in_blocks_equal_the_whole_matrix(fake, budget):
    tree, _, _, ll, _ = fake
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = az.loo(tree, pointwise=True, var_name=posterior.LOG_LIK_VAR)
        got = posterior.loo(tree, budget=budget)
    # PSIS is per point and the blocks are whole points: the same numbers
    for name in ("elpd", "se", "p", "good_k"):
        assert getattr(got, name) == pytest.approx(getattr(ref, name), rel=1e-12)
    assert_allclose(got.elpd_i.values, ref.elpd_i.values, rtol=1e-12)
    assert_allclose(got.pareto_k.values, ref.pareto_k.values, rtol=1e-12)
    assert got.warning == ref.warning
    assert got.log_weights is None  # the (chain, draw, obs) weights are not kept
    with pytest.warns(DiagnosticsWarning, match="WAIC"):  # 2 points with var > 0.4 here
        out = posterior.waic(tree, budget=budget)
    s = ll.shape[0]
    lppd = logsumexp(ll, axis=0) - np.log(s)
    p = np.var(ll, axis=0, ddof=1)
    assert out.elpd == pytest.approx(np.sum(lppd - p), rel=1e-12)
    assert out.p == pytest.approx(p.sum(), rel=1e-12)
    assert out.se == pytest.approx(np.sqrt(ll.shape[1] * np.var(lppd - p, ddof=1)), rel=1e-10)


def test_a_float32_log_likelihood_moves_waic_and_loo_far_less_than_their_error():
    tree, *_ = _fake(n_chain=4, n_draw=250, n_obs=400, seed=3)
    groups = {name: node.to_dataset() for name, node in tree.children.items()}
    groups["log_likelihood"] = groups["log_likelihood"].astype(np.float32)
    rounded = xr.DataTree.from_dict(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        full, half = posterior.loo(tree), posterior.loo(rounded)
        w_full, w_half = posterior.waic(tree), posterior.waic(rounded)
    # float32 rounds each value by at most 6e-8 relative (|ll| < 10 here: 6e-7 absolute); the
    # sums are taken in float64, so each elpd_i moves by about that much, and the total by
    # about sqrt(400) times it. Allowed: 1e-4 nats in total, 1e-5 per point and in k-hat
    # (float32 sums over draws would leave some 1e-5 per point; the Monte Carlo error
    # of the total, se / sqrt(ESS), is about 0.1 here)
    assert abs(half.elpd - full.elpd) < 1e-4 and abs(w_half.elpd - w_full.elpd) < 1e-4
    assert abs(half.p - full.p) < 1e-4 and abs(half.se - full.se) < 1e-4
    assert np.max(np.abs(half.elpd_i.values - full.elpd_i.values)) < 1e-5
    assert np.max(np.abs(half.pareto_k.values - full.pareto_k.values)) < 1e-3
    assert full.se / np.sqrt(1000) > 100 * abs(half.elpd - full.elpd)
    assert posterior.log_likelihood_dtype(posterior.LOG_LIK_FLOAT64_MAX_VALUES) is np.float64
    assert posterior.log_likelihood_dtype(
        posterior.LOG_LIK_FLOAT64_MAX_VALUES + 1) is np.float32


def test_summaries_take_a_blocks_memory_not_the_whole_array():
    # 4 x 100 draws, 3000 points, 3 components: the (chain, draw, obs, component) array of
    # float64 is 28.8 MB (the unchunked code held about 3 of them). What a summary may hold
    # at once, per block: the block of responsibilities, EM's log-density of it and its
    # shifted copy (em.weighted_log_prob) and np.quantile's partitioned copy; LOO and WAIC
    # hold the block widened to float64 and one temporary of it. Measured: 5.0-5.6 budgets
    # for the intervals, 2.0-2.3 for LOO and WAIC, at 3,000 and 12,000 points and budgets
    # of 1 and 4 MB. Bound: 6 budgets plus the outputs, at two budgets (the peak follows
    # the budget, not the fit's size; LOO at the larger one only, for time). A LOO whose
    # blocks outlived the loop in reference cycles (xarray accessors) held the whole
    # float64 matrix (9.6 MB here) and failed this.
    tree, *_ = _fake(n_chain=4, n_draw=100, n_obs=3000, seed=1)
    whole = 400 * 3000 * K * 8
    outputs = 3000 * K * 8 * 4  # mean and interval (obs, component), the table's columns
    tracemalloc.start()
    try:
        for budget in (2**19, 2**20):
            assert 6 * budget + outputs < whole / 4  # a test that can fail
            calls = [(posterior.responsibility_interval, (0.9,)),
                     (posterior.assignment_uncertainty, (0.9,)), (posterior.waic, ())]
            if budget == 2**20:  # ArviZ's per-point PSIS loop is slow under tracemalloc
                calls.append((posterior.loo, ()))
            for call, args in calls:
                tracemalloc.reset_peak()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DiagnosticsWarning)
                    call(tree, *args, budget=budget)
                peak = tracemalloc.get_traced_memory()[1]
                assert peak < 6 * budget + outputs, (call, budget, peak)
    finally:
        tracemalloc.stop()


def _with_log_lik(tree, ll):
    groups = {name: node.to_dataset() for name, node in tree.children.items()}
    post = groups["posterior"]
    groups["log_likelihood"] = posterior.log_likelihood_group(
        ll, post["chain"].values, post["draw"].values)
    return xr.DataTree.from_dict(groups)


def test_recompute_log_likelihood_gives_the_fit_time_values(fake):
    tree, X, draws, _, _ = fake
    fit_time = posterior.draw_summaries(X, *draws, prob=posterior.DEFAULT_PROB).log_lik
    again = posterior.recompute_log_likelihood(_with_log_lik(tree, fit_time), np.float32)
    assert again["X"].dtype == np.float32
    # the same computation, then rounded to float32
    np.testing.assert_array_equal(again["X"].values.reshape(fit_time.shape),
                                  fit_time.astype(np.float32))
    assert again.attrs == {posterior.LOG_LIK_SOURCE_ATTR: posterior.LOG_LIK_SOURCE}


# ---------------------------------------------------------------------------
# a fit: what it stores, and the file
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nuts_fit(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DiagnosticsWarning)
        return bg.BayesGMM(2, draws=100, tune=100, chains=2, random_state=1,
                           progressbar=False).fit(faithful)


def test_a_fit_stores_its_summaries_equal_to_the_direct_computation(nuts_fit, faithful):
    r = nuts_fit.result_
    group = r.idata[posterior.RESPONSIBILITY_GROUP].to_dataset()
    assert set(group.data_vars) == {"mean", "interval"}
    assert group["interval"].attrs["ci_prob"] == posterior.DEFAULT_PROB
    np.testing.assert_array_equal(group["mean"].values, r.responsibilities.values)
    w = r.weights.values.reshape(-1, 2)
    m = r.means.values.reshape(-1, 2, 2)
    c = r.covariances.values.reshape(-1, 2, 2, 2)
    lp = _direct_log_density(faithful.to_numpy(), w, m, c)
    ll = logsumexp(lp, axis=-1)
    resp = np.exp(lp - ll[..., None])
    assert_allclose(r.responsibilities.values, resp.mean(axis=0), rtol=1e-10, atol=1e-12)
    stored = r.responsibility_interval()  # read from the group
    assert_allclose(stored.values, np.moveaxis(np.quantile(resp, [0.03, 0.97], axis=0), 0, -1),
                    rtol=1e-10, atol=1e-12)
    recomputed = posterior.responsibility_interval(r, budget=10_000)  # budget: recompute
    xr.testing.assert_allclose(stored, recomputed, rtol=1e-12, atol=1e-14)
    table = r.assignment_uncertainty()
    assert_allclose(table["lower"].values,
                    stored.values[np.arange(r.n_obs), table["label"].values, 0])
    ll_group = r.idata["log_likelihood"]["X"]
    assert ll_group.dtype == np.float64  # 200 x 272 values: small
    assert_allclose(ll_group.values.reshape(ll.shape), ll, rtol=1e-10)
    swapped = r.permute_components([1, 0])  # the stored summaries follow the components
    assert_allclose(swapped.responsibility_interval().values, stored.values[:, ::-1])


def test_a_large_log_likelihood_is_recomputed_on_loading(nuts_fit, tmp_path, monkeypatch):
    r = nuts_fit.result_
    small = r.to_netcdf(tmp_path / "small.nc")
    monkeypatch.setattr(posterior, "LOG_LIK_FLOAT64_MAX_VALUES", 0)
    path = r.to_netcdf(tmp_path / "large.nc")
    with h5netcdf.File(path, "r") as handle:
        group = handle.groups["log_likelihood"]
        assert "X" not in group.variables
        assert results._OMITTED_ATTR in group.attrs
    with h5netcdf.File(small, "r") as handle:
        assert "X" in handle.groups["log_likelihood"].variables
    # the log-likelihood was most of this file
    assert path.stat().st_size < small.stat().st_size - r.idata["log_likelihood"]["X"].nbytes / 2
    back = bg.load(path)
    xr.testing.assert_identical(back.idata, r.idata)  # values recomputed, same bits here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        assert back.loo().elpd == r.loo().elpd
    # saving the loaded result leaves the values out again: the same contents digest
    again = back.to_netcdf(tmp_path / "again.nc")
    with h5netcdf.File(path, "r") as a, h5netcdf.File(again, "r") as b:
        assert a.attrs["sha256"] == b.attrs["sha256"]


def test_a_log_likelihood_bayesgmm_did_not_compute_is_always_saved(nuts_fit, tmp_path,
                                                                    monkeypatch):
    r = nuts_fit.result_
    groups = {name: node.to_dataset() for name, node in r.idata.children.items()}
    groups["log_likelihood"].attrs = {}  # e.g. a user's own log-likelihood
    import dataclasses

    other = dataclasses.replace(r, idata=xr.DataTree.from_dict(groups))
    monkeypatch.setattr(posterior, "LOG_LIK_FLOAT64_MAX_VALUES", 0)
    path = other.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "r") as handle:
        assert "X" in handle.groups["log_likelihood"].variables
    xr.testing.assert_identical(bg.load(path).idata, other.idata)
